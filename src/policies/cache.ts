import {
  clearTimer,
  isFreeRunning,
  setTimer,
  systemClock,
  type Clock,
  type TimerHandle,
} from '../clock.js';
import { atTurnEnd, turnEndScheduled } from '../core/turn.js';
import { Problems } from '../core/validate.js';
import { Emitter, type Listener, type Unsubscribe } from '../events.js';
import {
  guarded,
  storeOption,
  StoreHealth,
  type Serializer,
  type SharedCache,
  type SharedCacheEntry,
  type Store,
} from '../store.js';
import { jsonSerializer } from '../json-serializer.js';
import { isClock } from './circuit-breaker.js';

export { jsonSerializer };

/** Options of the cache stage. */
export interface CacheOptions<A extends readonly unknown[] = unknown[]> {
  /** How long a result stays fresh, in ms. The default value is `60_000`. */
  ttl?: number;
  /** Entries kept at most (least recently used go first). The default value is `1_000`. */
  maxEntries?: number;
  /**
   * The cache key of a call. The default value works for a function of at most one primitive
   * argument (string, number, boolean, bigint, symbol, null, undefined); anything else needs a `key`.
   */
  key?: (...args: A) => unknown;
  /** For this many ms after expiry, a failed refresh serves the stale value. The default value is `0`. */
  staleIfError?: number;
  /**
   * For this many ms after expiry, a call gets the stale value at once while one refresh per key runs in
   * the background through the rest of the pipeline (retry, breaker, timeout...). A successful refresh
   * replaces the value; a failed one keeps it (and is a `cacheRefreshFailed` event). The default value
   * is `0` (an expired value is refreshed while the caller waits).
   */
  staleWhileRevalidate?: number;
  /** The clock; by default the pipeline's. */
  clock?: Clock;
  /** Name (used by shared stores and in `describe()`). Required with a `store`. The default value is none. */
  name?: string;
  /**
   * Keeps the values in a store shared by every process (`redisStore(client)` from `bulwark/redis`),
   * under `name`, at most `maxEntries` of them fleet-wide. The default value is none (in memory).
   */
  store?: Store;
  /**
   * With a store: single flight across the fleet. The process that misses a key first takes the key's
   * lock in the store for this many ms and computes it; the others wait for its value while the lock
   * lives (when its holder died or hangs and the lock expires, one of them takes it over), and compute
   * themselves once they have waited twice this long. `0` turns fleet single flight off (it stays per
   * process). The default value is `10_000`.
   */
  lockTimeout?: number;
  /**
   * With a store: how values are encoded. The default value is {@link jsonSerializer}, which refuses
   * what JSON would not read back as it was (class instances such as a `Date`, `Map`, `Set`, `NaN`,
   * `-0`, bigints, functions, `undefined` in arrays, cycles...) with a `TypeError` naming its path.
   */
  serializer?: Serializer;
}

/**
 * The `promise` of an entry that has none yet: its value is not stored, or no hit asked for it since (see
 * {@link Cache.promiseOf}). Never returned to callers.
 */
const UNSET = new Promise<unknown>(() => undefined);

export const CACHE_DEFAULTS = Object.freeze({
  ttl: 60_000,
  maxEntries: 1_000,
  staleIfError: 0,
  staleWhileRevalidate: 0,
  lockTimeout: 10_000,
});

/** While another process computes a key, the first poll of the store after this many ms, doubling... */
const POLL_FIRST = 5;
/** ...up to this many. */
const POLL_MAX = 50;

/** @internal what a read of a shared cache found (see {@link Cache.fetch}). */
export interface SharedLookup {
  readonly stored: { value: unknown; age: number; fresh: boolean } | undefined;
  /** The key's lock this flight holds, to release with its result (`''`: none). */
  readonly token: string;
  /** True when the value came from another process's computation that this one waited for. */
  readonly joined: boolean;
}

const NOTHING: SharedLookup = Object.freeze({ stored: undefined, token: '', joined: false });

/** @internal one cached result, or a call in flight for its key. */
export interface CacheEntry {
  key: unknown;
  /** The promise a hit returns, resolved with `value`: made by the first hit ({@link UNSET} until then). */
  promise: Promise<unknown>;
  value: unknown;
  /** True from a successful store until the expiry timer runs: a hit reads no clock. */
  fresh: boolean;
  /** When the value stops being fresh; `-Infinity` until a value is stored. */
  expires: number;
  /** A call in flight for this key (first fill or refresh), shared by concurrent misses. */
  flight: Promise<unknown> | undefined;
  /** The generation whose map holds the entry (see Cache); {@link DEAD} once it left the cache. */
  gen: number;
  // Expiry list: fresh entries in order of expiry (one TTL, so store order).
  prev: CacheEntry | undefined;
  next: CacheEntry | undefined;
  linked: boolean;
}

/** The generation of an entry that was dropped or cleared. */
const DEAD = -1;

/** What a `Map` holds for the key `-0`, which it would otherwise file as `0`. */
const NEGATIVE_ZERO = Symbol('-0');

/**
 * The `Map` key of a cache key: keys compare with `Object.is`, so `f(0)` and `f(-0)` are different calls,
 * but a `Map` treats `-0` as `0`. One comparison for every key but the number zero.
 */
function mapKey(key: unknown): unknown {
  return key === 0 && 1 / key < 0 ? NEGATIVE_ZERO : key;
}

/**
 * A bounded, TTL cache of successful results with single flight: concurrent misses on one key share one
 * call.
 *
 * Eviction is by generations (an LRU approximation, as in quick-lru): new entries go into the young
 * map; when it holds half of `maxEntries`, it becomes the old map and the previous old map is dropped
 * whole, except its calls still in flight, which move to the young map (single flight holds). A hit in
 * the old map moves the entry to the young one. So a miss costs two `Map` reads and one `Map.set`,
 * never a `Map.delete`: on a full cache, delete-then-set on one `Map` costs several times a bare call
 * (its table fills with holes and is rebuilt), dropping a whole map costs one walk over it per
 * generation. Entries used within the last generation are kept; at most `maxEntries` are held.
 *
 * Freshness is kept by one timer per cache, armed for the oldest fresh entry (one TTL means expiry
 * order is store order), so a hit reads no clock: on Node 20 `performance.now()` alone costs as much
 * as a bare async call. An entry is never served after its timer ran; under event-loop lag it can be
 * served for that lag past its TTL, as any timer-based deadline can.
 *
 * @example
 * const users = cache({ ttl: 30_000, maxEntries: 10_000 });
 * const getUser = resilient(fetchUser, { cache: users });
 */
export class Cache {
  readonly name: string | undefined;
  readonly ttl: number;
  readonly maxEntries: number;
  readonly staleIfError: number;
  readonly staleWhileRevalidate: number;
  /** @internal how long past `ttl` a value is kept: the longer of the two stale windows. */
  readonly staleFor: number;
  readonly lockTimeout: number;
  /** The `key` option (undefined: the default key). */
  readonly keyOf: ((...args: unknown[]) => unknown) | undefined;
  /** @internal */
  clock: Clock | undefined;
  /** @internal the young generation: new and recently used entries. */
  young = new Map<unknown, CacheEntry>();
  /** @internal the old generation: dropped whole when the young one fills up. */
  old = new Map<unknown, CacheEntry>();
  /** The young map's generation number; the old map's is one less. */
  private gen = 1;
  /** Entries per generation; the young map turns old when it holds this many. */
  private readonly generationSize: number;
  /**
   * Evicted entries that nothing refers to any more (no call in flight), reused by the next misses:
   * a miss then allocates no entry. At most one generation's worth.
   */
  private readonly spare: CacheEntry[] = [];
  private spareCount = 0;
  /** @internal */
  hits = 0;
  /** @internal */
  misses = 0;
  /** @internal */
  staleServed = 0;
  /** @internal stale values served while a refresh ran (`staleWhileRevalidate`). */
  staleHits = 0;
  /** @internal background refreshes that failed. */
  refreshFailures = 0;
  /**
   * @internal store keys this process refreshes in the background now: one refresh per key even when
   * fleet single flight is off (`lockTimeout: 0`).
   */
  readonly refreshing = new Set<string>();
  /** The shared entries, when a `store` was given. */
  readonly shared: SharedCache | undefined;
  readonly serializer: Serializer;
  /** @internal */
  readonly events = new Emitter();
  private readonly health: StoreHealth | undefined;
  /** Lock tokens: unique to this cache object, then a counter. */
  private readonly tokenBase = `${Math.random().toString(36).slice(2)}:`;
  private tokens = 0;
  private head: CacheEntry | undefined = undefined;
  private tail: CacheEntry | undefined = undefined;
  private timer: TimerHandle = undefined;
  private readonly onTimer = (): void => this.expire();
  /** The clock's time moves on its own (the system clock): expiries may be stamped per turn. */
  private freeRunning = false;
  /** The first listed entry whose expiry is stamped at the end of this turn (all after it too). */
  private unstamped: CacheEntry | undefined = undefined;
  /** A stamp at the end of this turn is queued. */
  private stamping = false;
  private readonly stampTurn = (): void => {
    this.stamping = false;
    if (this.unstamped !== undefined) this.stamp(this.clock!.now());
  };

  constructor(options: boolean | CacheOptions = {}, path = 'cache') {
    const problems = new Problems();
    const o =
      options === true
        ? {}
        : (problems.object(path, options, [
            'ttl',
            'maxEntries',
            'key',
            'staleIfError',
            'staleWhileRevalidate',
            'clock',
            'name',
            'store',
            'serializer',
            'lockTimeout',
          ]) ?? {});
    this.ttl = problems.number(`${path}.ttl`, o.ttl, CACHE_DEFAULTS.ttl, {
      min: 0,
      exclusiveMin: true,
      infinity: true,
    });
    this.maxEntries = problems.number(
      `${path}.maxEntries`,
      o.maxEntries,
      CACHE_DEFAULTS.maxEntries,
      {
        min: 1,
        integer: true,
      },
    );
    this.staleIfError = problems.number(
      `${path}.staleIfError`,
      o.staleIfError,
      CACHE_DEFAULTS.staleIfError,
      {
        min: 0,
        infinity: true,
      },
    );
    this.staleWhileRevalidate = problems.number(
      `${path}.staleWhileRevalidate`,
      o.staleWhileRevalidate,
      CACHE_DEFAULTS.staleWhileRevalidate,
      { min: 0, infinity: true },
    );
    this.staleFor = Math.max(this.staleIfError, this.staleWhileRevalidate);
    this.lockTimeout = problems.number(
      `${path}.lockTimeout`,
      o.lockTimeout,
      CACHE_DEFAULTS.lockTimeout,
      { min: 0 },
    );
    this.keyOf = problems.func(`${path}.key`, o.key, undefined);
    if (o.clock !== undefined && !isClock(o.clock))
      problems.add(`${path}.clock`, o.clock, 'a Clock { now, setTimer, clearTimer }');
    if (o.name !== undefined && typeof o.name !== 'string')
      problems.add(`${path}.name`, o.name, 'a string');
    const store = o.store;
    const sharedIn = storeOption(problems, path, store, o.name, 'cache');
    const serializer = o.serializer;
    if (serializer !== undefined && !isSerializer(serializer))
      problems.add(`${path}.serializer`, serializer, 'a Serializer { encode, decode }');
    else if (serializer !== undefined && store === undefined)
      problems.raw(`\`${path}.serializer\` applies to a cache with a \`store\``);
    if (o.lockTimeout !== undefined && store === undefined)
      problems.raw(`\`${path}.lockTimeout\` applies to a cache with a \`store\``);
    problems.throwIfAny(path === 'cache' ? 'Invalid cache options' : undefined);
    // Two generations of half each (one of all with maxEntries 1: the old one stays empty).
    this.generationSize = Math.max(1, Math.floor(this.maxEntries / 2));
    this.clock = isClock(o.clock) ? o.clock : undefined;
    this.freeRunning = this.clock !== undefined && isFreeRunning(this.clock);
    this.name = typeof o.name === 'string' ? o.name : undefined;
    this.serializer = isSerializer(serializer) ? serializer : jsonSerializer;
    if (sharedIn !== undefined) {
      this.shared = sharedIn.forCache(this.name!);
      this.health = new StoreHealth(sharedIn, this.events, 'cache', this.name!, () =>
        (this.clock ?? systemClock).now(),
      );
    } else {
      this.shared = undefined;
      this.health = undefined;
    }
  }

  /** Listens to this cache's store events (`storeUnavailable`, `storeRecovered`). */
  on(listener: Listener): Unsubscribe {
    return this.events.on(listener);
  }

  /** @internal the store key of a cache key: typed, so that `1` and `'1'` do not collide. */
  storeKey(key: unknown): string {
    switch (typeof key) {
      case 'string':
        return `s:${key}`;
      case 'number':
        return key === 0 && 1 / key < 0 ? 'number:-0' : `number:${String(key)}`;
      case 'bigint':
      case 'boolean':
        return `${typeof key}:${String(key)}`;
      case 'undefined':
        return 'undefined';
      default:
        if (key === null) return 'null';
        throw new TypeError(
          `A cache with a store needs a string, number, bigint, boolean, null or undefined key, got ${typeof key}; return one from \`cache.key\``,
        );
    }
  }

  /**
   * @internal reads a shared entry: its value, how old it is, and whether it is still fresh (the store
   * keeps it `ttl + staleIfError` ms, so what is left says both, with no clock shared between hosts).
   * With no fresh value it takes the key's lock, or, while another process holds it, polls for that
   * process's value while the lock lives, `2 × lockTimeout` ms at most. Nothing stored while the store is
   * unavailable (a miss).
   */
  async fetch(key: string): Promise<SharedLookup> {
    const health = this.health!;
    const lockMs = this.lockTimeout;
    const token = lockMs > 0 ? `${this.tokenBase}${++this.tokens}` : '';
    const lock = lockMs > 0 ? { ms: lockMs, token, staleFor: this.staleFor } : undefined;
    const clock = this.clock ?? systemClock;
    let limit = -1;
    let delay = POLL_FIRST;
    for (;;) {
      if (!health.usable()) return NOTHING;
      const read = await guarded(health, () => this.shared!.get(key, lock));
      if (read === undefined) {
        // The read may still run when the store wakes (a stall, not an outage), and take the lock for a
        // caller that gave up on it: release it right behind the read (same connection, in order), so
        // nobody waits `lockTimeout` on a lock that nobody holds.
        if (lock !== undefined) void this.shared!.release(key, token).catch(ignore);
        return NOTHING;
      }
      const stored = this.decode(read.entry);
      const joined = limit >= 0;
      if (stored?.fresh === true || read.lock <= 0)
        return { stored, token: read.lock === 0 ? token : '', joined };
      // Another process refreshes a value still within `staleWhileRevalidate`: serve it, do not wait.
      if (stored !== undefined && this.revalidates(stored.age - this.ttl))
        return { stored, token: '', joined: false };
      // Another process computes this key: wait for its value while its lock lives (when the lock
      // expires, its holder died or hangs: one waiter takes the lock over), `2 × lockTimeout` ms at most
      // in all (a holder, then the one that took over from it).
      const now = clock.now();
      if (limit < 0) limit = now + 2 * lockMs;
      const left = Math.min(limit, now + read.lock + POLL_MAX) - now;
      if (left <= 0) return { stored, token: '', joined: false };
      const ms = Math.min(delay, left, read.lock);
      await new Promise<void>((resolve) => clock.setTimer(resolve, ms));
      delay = Math.min(delay * 2, POLL_MAX);
    }
  }

  private decode(
    entry: SharedCacheEntry | undefined,
  ): { value: unknown; age: number; fresh: boolean } | undefined {
    if (entry === undefined) return undefined;
    let value: unknown;
    try {
      value = this.serializer.decode(entry.data);
    } catch {
      return undefined; // written by another version or serializer: a miss
    }
    const keep = this.ttl + this.staleFor;
    return {
      value,
      age: entry.remaining === Infinity ? 0 : Math.max(0, keep - entry.remaining),
      fresh: entry.remaining > this.staleFor,
    };
  }

  /** @internal whether a value `pastExpiry` ms past its ttl is served while a refresh runs. */
  revalidates(pastExpiry: number): boolean {
    return this.staleWhileRevalidate > 0 && pastExpiry <= this.staleWhileRevalidate;
  }

  /**
   * @internal stores a result in the store (fire-and-forget: the promise, which never rejects, says when
   * the write is done) and releases the key's lock `token`; throws when the result cannot be encoded.
   */
  put(key: string, value: unknown, token: string): Promise<unknown> {
    let data: string;
    try {
      data = this.serializer.encode(value);
    } catch (error) {
      this.release(key, token);
      throw new TypeError(
        `The cache ${JSON.stringify(this.name)} cannot store this result: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    const health = this.health!;
    // A flight that holds the key's lock writes even to a store that looked unavailable: the write
    // also frees the lock that the other processes wait on (and it is one command per computation).
    if (token === '' && !health.usable()) return Promise.resolve();
    return guarded(health, () =>
      this.shared!.set(key, data, this.ttl + this.staleFor, this.maxEntries, token),
    );
  }

  /** @internal releases the key's lock `token` (its computation failed): a waiter takes it over. */
  release(key: string, token: string): void {
    if (token === '') return;
    void guarded(this.health!, () => this.shared!.release(key, token));
  }

  /** @internal */
  adoptClock(clock: Clock): void {
    this.clock ??= clock;
    this.freeRunning = isFreeRunning(this.clock);
  }

  /**
   * @internal the entry of `key`, or undefined. A hit in the old generation moves the entry to the
   * young one: it was used, so it survives the next turn.
   */
  lookup(key: unknown): CacheEntry | undefined {
    const k = mapKey(key);
    const entry = this.young.get(k);
    if (entry !== undefined) return entry;
    const old = this.old.get(k);
    if (old === undefined) return undefined;
    this.old.delete(k);
    this.admit(old);
    return old;
  }

  /** @internal a new entry for a key that has none (the caller just looked it up). */
  insert(key: unknown, flight: Promise<unknown> | undefined): CacheEntry {
    const n = this.spareCount;
    if (n > 0) {
      // Unlinked when it was evicted; the rest is reset here.
      const spare = this.spare[n - 1]!;
      this.spareCount = n - 1;
      spare.key = key;
      spare.promise = UNSET;
      spare.value = undefined;
      spare.fresh = false;
      spare.expires = -Infinity;
      spare.flight = flight;
      this.admit(spare);
      return spare;
    }
    const entry: CacheEntry = {
      key,
      promise: UNSET,
      value: undefined,
      fresh: false,
      expires: -Infinity,
      flight,
      gen: DEAD,
      prev: undefined,
      next: undefined,
      linked: false,
    };
    this.admit(entry);
    return entry;
  }

  /** @internal a new entry for `key`, replacing any entry it has. */
  create(key: unknown, flight: Promise<unknown> | undefined): CacheEntry {
    const k = mapKey(key);
    const existing = this.young.get(k) ?? this.old.get(k);
    if (existing !== undefined) this.drop(existing);
    return this.insert(key, flight);
  }

  /** True while `entry` is held by one of the two generations. */
  private holds(entry: CacheEntry): boolean {
    return entry.gen === this.gen || entry.gen === this.gen - 1;
  }

  /** Puts an entry into the young generation, turning it old first when it is full. */
  private admit(entry: CacheEntry): void {
    if (this.young.size >= this.generationSize) this.turn();
    entry.gen = this.gen;
    this.young.set(mapKey(entry.key), entry);
  }

  /**
   * The young generation turns old and the old one leaves: its entries are evicted, but for calls
   * still in flight, which move to the new young generation (their callers share them) unless the
   * cache has room for one generation only (`maxEntries: 1`).
   */
  private turn(): void {
    const dying = this.generationSize * 2 > this.maxEntries ? this.young : this.old;
    const survivor = dying === this.young ? new Map<unknown, CacheEntry>() : this.young;
    this.gen++;
    const young = new Map<unknown, CacheEntry>();
    for (const entry of dying.values()) {
      if (entry.flight !== undefined && dying !== this.young) {
        entry.gen = this.gen;
        young.set(mapKey(entry.key), entry);
      } else {
        entry.gen = DEAD;
        this.unlink(entry);
        // No call in flight refers to it (a settled call cleared `flight`): reuse it.
        if (entry.flight === undefined && this.spareCount < this.generationSize) {
          entry.value = undefined;
          entry.promise = UNSET;
          this.spare[this.spareCount++] = entry;
        }
      }
    }
    // The survivor's entries carry the previous number, which is now the old generation's.
    this.old = survivor;
    this.young = young;
  }

  /**
   * @internal stores a fresh result that arrived just now (a miss succeeded). On the system clock, in a
   * turn of the event loop that has an end-of-turn run anyway (a timeout stage's), its expiry is stamped
   * there, with one clock read for every result of the turn: never early, late by at most the rest of
   * the turn. Otherwise the clock is read here.
   */
  storeNow(entry: CacheEntry, value: unknown): void {
    if (!this.freeRunning || this.ttl === Infinity || !turnEndScheduled()) {
      return this.store(entry, value, this.clock!.now());
    }
    this.fill(entry, value, NaN);
    if (!this.holds(entry)) return; // evicted or cleared meanwhile: not kept
    this.link(entry);
    if (this.unstamped === undefined) this.stampLater(entry);
    // Due no earlier than the entry's expiry, which is at least `ttl` from now.
    if (this.timer === undefined) this.timer = setTimer(this.clock!, this.onTimer, this.ttl, true);
  }

  /** The first result of this turn to be stamped at its end (with every later one). */
  private stampLater(entry: CacheEntry): void {
    this.unstamped = entry;
    if (!this.stamping) {
      this.stamping = true;
      atTurnEnd(this.stampTurn);
    }
  }

  /** @internal the promise a hit on `entry` (a stored value) returns: made by the first hit, then kept. */
  promiseOf(entry: CacheEntry): Promise<unknown> {
    const promise = entry.promise;
    return promise !== UNSET ? promise : (entry.promise = Promise.resolve(entry.value));
  }

  /** @internal stores a fresh result that arrived at `now`. */
  store(entry: CacheEntry, value: unknown, now: number): void {
    // Results stored earlier in this turn and not stamped yet: stamped now, so the list stays in order.
    if (this.unstamped !== undefined) this.stamp(now);
    this.fill(entry, value, now + this.ttl);
    if (!this.holds(entry)) return; // evicted or cleared meanwhile: not kept
    if (this.ttl === Infinity) return;
    this.link(entry);
    if (this.timer === undefined) this.arm(entry.expires, now);
  }

  private fill(entry: CacheEntry, value: unknown, expires: number): void {
    entry.value = value;
    // The promise of the call that filled it is not kept: the first hit makes one (promiseOf). Kept, it
    // outlived its call by as long as the entry stayed, and a cache that misses much moved every one of
    // them to the old generation of the heap. A synchronous pipeline's value gets a promise the same way.
    entry.promise = UNSET;
    entry.flight = undefined;
    entry.expires = expires;
    entry.fresh = true;
  }

  /** Appends an entry to the expiry list (the latest expiry). */
  private link(entry: CacheEntry): void {
    this.unlink(entry);
    entry.prev = this.tail;
    if (this.tail === undefined) this.head = entry;
    else this.tail.next = entry;
    this.tail = entry;
    entry.linked = true;
  }

  /** Every entry from `unstamped` on expires `ttl` after `now`. */
  private stamp(now: number): void {
    const expires = now + this.ttl;
    for (let e = this.unstamped; e !== undefined; e = e.next) e.expires = expires;
    this.unstamped = undefined;
  }

  /** @internal forgets an entry (its call failed with nothing to fall back on, or it expired). */
  drop(entry: CacheEntry): void {
    if (entry.gen === this.gen) this.young.delete(mapKey(entry.key));
    else if (entry.gen === this.gen - 1) this.old.delete(mapKey(entry.key));
    else return;
    entry.gen = DEAD;
    this.unlink(entry);
  }

  private arm(at: number, now: number): void {
    const clock = this.clock!;
    this.timer = setTimer(clock, this.onTimer, Math.max(0, at - now), true);
  }

  private expire(): void {
    this.timer = undefined;
    const now = this.clock!.now();
    // Results stored in this turn before the timer fired: stamped now, never early.
    if (this.unstamped !== undefined) this.stamp(now);
    let entry = this.head;
    while (entry !== undefined && entry.expires <= now) {
      this.unlink(entry);
      entry.fresh = false;
      // Without a stale window an expired value is of no further use: free it now.
      if (this.staleFor === 0 && entry.flight === undefined) this.drop(entry);
      entry = this.head;
    }
    if (entry !== undefined) this.arm(entry.expires, now);
  }

  private unlink(entry: CacheEntry): void {
    if (!entry.linked) return;
    entry.linked = false;
    const { prev, next } = entry;
    if (entry === this.unstamped) this.unstamped = next;
    if (prev === undefined) this.head = next;
    else prev.next = next;
    if (next === undefined) this.tail = prev;
    else next.prev = prev;
    entry.prev = undefined;
    entry.next = undefined;
    if (this.head === undefined && this.timer !== undefined) {
      clearTimer(this.clock!, this.timer);
      this.timer = undefined;
    }
  }

  /** Drops one key, or everything. With a store, a key it cannot hold is a `TypeError` (thrown here). */
  clear(...key: [unknown?]): void {
    const shared = this.shared;
    if (shared !== undefined) {
      // Fleet-wide, asynchronously; local entries only carry calls in flight.
      const health = this.health!;
      if (key.length === 0) void guarded(health, () => shared.clear());
      else {
        // A key the store cannot hold is the caller's mistake, not a store failure: it throws here.
        const storeKey = this.storeKey(key[0]);
        void guarded(health, () => shared.delete(storeKey));
      }
    }
    if (key.length === 0) {
      this.spare.length = this.spareCount = 0;
      for (const map of [this.young, this.old]) {
        for (const entry of map.values()) {
          entry.gen = DEAD;
          this.unlink(entry);
        }
        map.clear();
      }
      return;
    }
    const k = mapKey(key[0]);
    const entry = this.young.get(k) ?? this.old.get(k);
    if (entry !== undefined) this.drop(entry);
  }

  /**
   * `hits` counts every call answered from the cache, stale values served while a refresh ran
   * (`staleHits`) included; `refreshFailures` counts background refreshes that failed.
   */
  stats(): {
    size: number;
    hits: number;
    misses: number;
    staleServed: number;
    staleHits: number;
    refreshFailures: number;
    hitRate: number;
  } {
    const total = this.hits + this.misses;
    return {
      size: this.young.size + this.old.size,
      hits: this.hits,
      misses: this.misses,
      staleServed: this.staleServed,
      staleHits: this.staleHits,
      refreshFailures: this.refreshFailures,
      hitRate: total === 0 ? 0 : this.hits / total,
    };
  }

  describe(): Record<string, unknown> {
    return {
      stage: 'cache',
      name: this.name ?? 'none',
      ttl: this.ttl,
      maxEntries: this.maxEntries,
      key: this.keyOf === undefined ? 'default' : 'custom',
      staleIfError: this.staleIfError,
      staleWhileRevalidate: this.staleWhileRevalidate,
      ...(this.shared === undefined
        ? {}
        : {
            store: 'shared',
            lockTimeout: this.lockTimeout,
            serializer: this.serializer === jsonSerializer ? 'json' : 'custom',
          }),
    };
  }
}

/**
 * Makes a standalone {@link Cache}, to share between functions (their keys must then not collide).
 *
 * @example
 * const users = cache({ ttl: 5_000, key: (id: string) => id });
 */
export function cache<A extends readonly unknown[] = unknown[]>(
  options: CacheOptions<A> = {},
): Cache {
  // Generic so that a typed `key` (as in the example above) is accepted; the key is called with the
  // wrapped function's arguments.
  return new Cache(options as unknown as CacheOptions);
}

/** True when `value` can be a default cache key. */
export function isPrimitiveKey(value: unknown): boolean {
  const type = typeof value;
  return value === null || (type !== 'object' && type !== 'function');
}

function isSerializer(value: unknown): value is Serializer {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Serializer).encode === 'function' &&
    typeof (value as Serializer).decode === 'function'
  );
}

function ignore(): void {
  // A release that failed too: the lock expires on its own after `lockTimeout`.
}
