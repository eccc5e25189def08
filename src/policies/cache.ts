import type { Clock, TimerHandle } from '../clock.js';
import { Problems } from '../core/validate.js';
import { isClock } from './circuit-breaker.js';

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
  /** Name (used by shared stores and in `describe()`). The default value is none. */
  name?: string;
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
  private head: CacheEntry | undefined = undefined;
  private tail: CacheEntry | undefined = undefined;
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
    problems.throwIfAny(path === 'cache' ? 'Invalid cache options' : undefined);
    this.clock = isClock(o.clock) ? o.clock : undefined;
    this.name = typeof o.name === 'string' ? o.name : undefined;
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
    };
    const entries = this.entries;
    const old = entries.get(key);
    if (old !== undefined) this.unlink(old);
    else if (entries.size >= this.maxEntries) this.evictOne();
    entries.set(key, entry);
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

  /** @internal forgets an entry whose call failed and has no value to fall back on. */
  drop(entry: CacheEntry): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    this.unlink(entry);
  }

  private arm(at: number, now: number): void {
    const clock = this.clock!;
    this.timer = clock.setTimer(this.onTimer, Math.max(0, at - now), true);
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
      this.clock!.clearTimer(this.timer);
      this.timer = undefined;
    }
  }

  private evictOne(): void {
    // Oldest first; a touched entry is moved to the back once (second chance). Entries with a call in
    // flight are kept while others can go: their callers still wait on them.
    const entries = this.entries;
    let scanned = 0;
    const limit = entries.size * 2;
    for (const [key, entry] of entries) {
      if (++scanned > limit) break;
      if (entry.flight !== undefined || entry.touched) {
        entry.touched = false;
        entries.delete(key);
        entries.set(key, entry);
        continue;
      }
      entries.delete(key);
      this.unlink(entry);
      return;
    }
    // Everything is in flight: evict the oldest anyway, its callers keep their promise.
    const first = entries.values().next();
    if (first.done !== true) this.drop(first.value);
  }

  /** Drops one key, or everything. */
  clear(...key: [unknown?]): void {
    if (key.length === 0) {
      for (const entry of this.entries.values()) this.unlink(entry);
      this.entries.clear();
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
