import { clearTimer, setTimer, systemClock, type Clock, type TimerHandle } from '../clock.js';
import { Problems } from '../core/validate.js';
import { Emitter, type Listener, type Unsubscribe } from '../events.js';
import {
  guarded,
  storeOption,
  StoreHealth,
  type Serializer,
  type SharedCache,
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
  /** The clock; by default the pipeline's. */
  clock?: Clock;
  /** Name (used by shared stores and in `describe()`). Required with a `store`. The default value is none. */
  name?: string;
  /**
   * Keeps the values in a store shared by every process (`redisStore(client)` from `bulwark/redis`),
   * under `name`; single flight stays per process. The default value is none (in memory).
   */
  store?: Store;
  /**
   * With a store: how values are encoded. The default value is {@link jsonSerializer}, which refuses
   * what JSON would not read back as it was (class instances such as a `Date`, `Map`, `Set`, `NaN`,
   * `-0`, bigints, functions, `undefined` in arrays, cycles...) with a `TypeError` naming its path.
   */
  serializer?: Serializer;
}

/** Placeholder promise of an entry whose first value is not stored yet (never returned to callers). */
const UNSET = new Promise<unknown>(() => undefined);

export const CACHE_DEFAULTS = Object.freeze({ ttl: 60_000, maxEntries: 1_000, staleIfError: 0 });

/** @internal one cached result, or a call in flight for its key. */
export interface CacheEntry {
  readonly key: unknown;
  /** The promise callers get: the in-flight call, or the already-resolved stored result. */
  promise: Promise<unknown>;
  value: unknown;
  /** True from a successful store until the expiry timer runs: a hit reads no clock. */
  fresh: boolean;
  /** When the value stops being fresh; `-Infinity` until a value is stored. */
  expires: number;
  /** Set on a hit: an entry touched since the last eviction scan gets a second chance (CLOCK). */
  touched: boolean;
  /** A call in flight for this key (first fill or refresh), shared by concurrent misses. */
  flight: Promise<unknown> | undefined;
  // Expiry list: fresh entries in order of expiry (one TTL, so store order).
  prev: CacheEntry | undefined;
  next: CacheEntry | undefined;
  linked: boolean;
  // Age list: every entry, oldest first, for CLOCK eviction without iterating the Map (a Map used as
  // delete-oldest-then-set leaves a hole per deletion that iteration walks over until it rehashes).
  older: CacheEntry | undefined;
  newer: CacheEntry | undefined;
}

/**
 * A bounded, TTL cache of successful results with single flight: concurrent misses on one key share one
 * call. Eviction is CLOCK (second chance), an LRU approximation whose hits cost no allocation.
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
  /** The `key` option (undefined: the default key). */
  readonly keyOf: ((...args: unknown[]) => unknown) | undefined;
  /** @internal */
  clock: Clock | undefined;
  /** @internal */
  readonly entries = new Map<unknown, CacheEntry>();
  /** @internal */
  hits = 0;
  /** @internal */
  misses = 0;
  /** @internal */
  staleServed = 0;
  /** The shared entries, when a `store` was given. */
  readonly shared: SharedCache | undefined;
  readonly serializer: Serializer;
  /** @internal */
  readonly events = new Emitter();
  private readonly health: StoreHealth | undefined;
  private head: CacheEntry | undefined = undefined;
  private tail: CacheEntry | undefined = undefined;
  private oldest: CacheEntry | undefined = undefined;
  private newest: CacheEntry | undefined = undefined;
  private timer: TimerHandle = undefined;
  private readonly onTimer = (): void => this.expire();

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
            'clock',
            'name',
            'store',
            'serializer',
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
    problems.throwIfAny(path === 'cache' ? 'Invalid cache options' : undefined);
    this.clock = isClock(o.clock) ? o.clock : undefined;
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
   * `undefined` on a miss, and while the store is unavailable (a miss, then).
   */
  async fetch(key: string): Promise<{ value: unknown; age: number; fresh: boolean } | undefined> {
    const health = this.health!;
    if (!health.usable()) return undefined;
    const entry = await guarded(health, () => this.shared!.get(key));
    if (entry === undefined) return undefined;
    let value: unknown;
    try {
      value = this.serializer.decode(entry.data);
    } catch {
      return undefined; // written by another version or serializer: a miss
    }
    const keep = this.ttl + this.staleIfError;
    return {
      value,
      age: entry.remaining === Infinity ? 0 : Math.max(0, keep - entry.remaining),
      fresh: entry.remaining > this.staleIfError,
    };
  }

  /** @internal stores a result in the store (fire-and-forget); throws when it cannot be encoded. */
  put(key: string, value: unknown): void {
    let data: string;
    try {
      data = this.serializer.encode(value);
    } catch (error) {
      throw new TypeError(
        `The cache ${JSON.stringify(this.name)} cannot store this result: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    const health = this.health!;
    if (!health.usable()) return;
    void guarded(health, () => this.shared!.set(key, data, this.ttl + this.staleIfError));
  }

  /** @internal */
  adoptClock(clock: Clock): void {
    this.clock ??= clock;
  }

  /** @internal a new entry for a first miss, inserted (evicting with CLOCK when full). */
  create(key: unknown, flight: Promise<unknown> | undefined): CacheEntry {
    const entry: CacheEntry = {
      key,
      promise: flight ?? UNSET,
      value: undefined,
      fresh: false,
      expires: -Infinity,
      touched: false,
      flight,
      prev: undefined,
      next: undefined,
      linked: false,
      older: undefined,
      newer: undefined,
    };
    const entries = this.entries;
    const old = entries.get(key);
    if (old !== undefined) this.drop(old);
    else if (entries.size >= this.maxEntries) this.evictOne();
    entries.set(key, entry);
    this.append(entry);
    return entry;
  }

  /** @internal stores a fresh result (a miss succeeded). */
  store(entry: CacheEntry, value: unknown, now: number): void {
    entry.value = value;
    // A synchronous pipeline stores plain values; an async one sharing the cache still gets a promise.
    entry.promise = entry.flight ?? Promise.resolve(value);
    entry.flight = undefined;
    entry.expires = now + this.ttl;
    entry.fresh = true;
    if (this.entries.get(entry.key) !== entry) return; // evicted or cleared meanwhile: not kept
    if (this.ttl === Infinity) return;
    this.unlink(entry);
    entry.prev = this.tail;
    if (this.tail === undefined) this.head = entry;
    else this.tail.next = entry;
    this.tail = entry;
    entry.linked = true;
    if (this.timer === undefined) this.arm(entry.expires, now);
  }

  /** @internal forgets an entry (its call failed with nothing to fall back on, or it is evicted). */
  drop(entry: CacheEntry): void {
    if (this.entries.get(entry.key) !== entry) return;
    this.entries.delete(entry.key);
    this.unlink(entry);
    this.detach(entry);
  }

  /** Appends to the age list as the newest entry. */
  private append(entry: CacheEntry): void {
    entry.older = this.newest;
    entry.newer = undefined;
    if (this.newest === undefined) this.oldest = entry;
    else this.newest.newer = entry;
    this.newest = entry;
  }

  /** Removes from the age list. */
  private detach(entry: CacheEntry): void {
    const { older, newer } = entry;
    if (older === undefined) {
      if (this.oldest === entry) this.oldest = newer;
    } else older.newer = newer;
    if (newer === undefined) {
      if (this.newest === entry) this.newest = older;
    } else newer.older = older;
    entry.older = undefined;
    entry.newer = undefined;
  }

  private arm(at: number, now: number): void {
    const clock = this.clock!;
    this.timer = setTimer(clock, this.onTimer, Math.max(0, at - now), true);
  }

  private expire(): void {
    this.timer = undefined;
    const now = this.clock!.now();
    let entry = this.head;
    while (entry !== undefined && entry.expires <= now) {
      this.unlink(entry);
      entry.fresh = false;
      // Without a stale window an expired value is of no further use: free it now.
      if (this.staleIfError === 0 && entry.flight === undefined) this.drop(entry);
      entry = this.head;
    }
    if (entry !== undefined) this.arm(entry.expires, now);
  }

  private unlink(entry: CacheEntry): void {
    if (!entry.linked) return;
    entry.linked = false;
    const { prev, next } = entry;
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

  private evictOne(): void {
    // CLOCK over the age list, oldest first: an entry touched since the last pass gets a second chance
    // (moved to the newest end); an entry with a call in flight is kept while others can go (its
    // callers still wait on it). Each step is O(1); a pass ends within two rounds of the list.
    let limit = this.entries.size * 2;
    for (let entry = this.oldest; entry !== undefined && limit > 0; entry = this.oldest, limit--) {
      if (entry.flight === undefined && !entry.touched) return this.drop(entry);
      entry.touched = false;
      if (entry === this.newest) break;
      this.detach(entry);
      this.append(entry);
    }
    // Everything is in flight: evict the oldest anyway, its callers keep their promise.
    if (this.oldest !== undefined) this.drop(this.oldest);
  }

  /** Drops one key, or everything. */
  clear(...key: [unknown?]): void {
    const shared = this.shared;
    if (shared !== undefined) {
      // Fleet-wide, asynchronously; local entries only carry calls in flight.
      const health = this.health!;
      if (key.length === 0) void guarded(health, () => shared.clear());
      else void guarded(health, () => shared.delete(this.storeKey(key[0])));
    }
    if (key.length === 0) {
      for (const entry of this.entries.values()) {
        this.unlink(entry);
        entry.older = entry.newer = undefined;
      }
      this.entries.clear();
      this.oldest = this.newest = undefined;
      return;
    }
    const entry = this.entries.get(key[0]);
    if (entry !== undefined) this.drop(entry);
  }

  stats(): { size: number; hits: number; misses: number; staleServed: number; hitRate: number } {
    const total = this.hits + this.misses;
    return {
      size: this.entries.size,
      hits: this.hits,
      misses: this.misses,
      staleServed: this.staleServed,
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
      ...(this.shared === undefined
        ? {}
        : {
            store: 'shared',
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
