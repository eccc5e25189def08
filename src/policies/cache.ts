import type { Clock } from '../clock.js';
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

export const CACHE_DEFAULTS = Object.freeze({ ttl: 60_000, maxEntries: 1_000, staleIfError: 0 });

/** @internal one cached result, or a call in flight for its key. */
export interface CacheEntry {
  /** The promise callers get: the in-flight call, or the already-resolved stored result. */
  promise: Promise<unknown>;
  value: unknown;
  /** When the value stops being fresh; `-Infinity` while the first call is in flight. */
  expires: number;
  /** Set on a hit: an entry touched since the last eviction scan gets a second chance (CLOCK). */
  touched: boolean;
  /** A refresh in flight for an expired entry, shared by concurrent misses. */
  flight: Promise<unknown> | undefined;
}

/**
 * A bounded, TTL cache of successful results with single flight: concurrent misses on one key share one
 * call. Eviction is CLOCK (second chance), an LRU approximation whose hits cost no allocation.
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
  readonly key: ((...args: unknown[]) => unknown) | undefined;
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
    this.key = problems.func(`${path}.key`, o.key, undefined);
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

  /** @internal stores a fresh result for `key` (called when a miss succeeds). */
  store(key: unknown, entry: CacheEntry, value: unknown, now: number): void {
    entry.value = value;
    entry.expires = now + this.ttl;
    entry.flight = undefined;
    if (this.entries.get(key) !== entry) this.insert(key, entry);
  }

  /** @internal inserts a new entry, evicting with CLOCK when full. */
  insert(key: unknown, entry: CacheEntry): void {
    const entries = this.entries;
    if (!entries.has(key) && entries.size >= this.maxEntries) this.evictOne();
    entries.set(key, entry);
  }

  private evictOne(): void {
    // Oldest first; a touched entry is moved to the back once (second chance). Entries with a call in
    // flight are kept: their callers still wait on them.
    const entries = this.entries;
    let scanned = 0;
    const limit = entries.size * 2;
    for (const [key, entry] of entries) {
      if (++scanned > limit) break;
      if (entry.flight !== undefined || entry.expires === -Infinity) {
        entries.delete(key);
        entries.set(key, entry);
        continue;
      }
      if (entry.touched) {
        entry.touched = false;
        entries.delete(key);
        entries.set(key, entry);
        continue;
      }
      entries.delete(key);
      return;
    }
    // Everything is in flight: evict the oldest anyway, its callers keep their promise.
    const first = entries.keys().next();
    if (first.done !== true) entries.delete(first.value);
  }

  /** Drops one key, or everything. */
  clear(key?: unknown): void {
    if (arguments.length === 0) this.entries.clear();
    else this.entries.delete(key);
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
      key: this.key === undefined ? 'default' : 'custom',
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
export function cache(options: CacheOptions = {}): Cache {
  return new Cache(options);
}

/** True when `value` can be a default cache key. */
export function isPrimitiveKey(value: unknown): boolean {
  const type = typeof value;
  return value === null || (type !== 'object' && type !== 'function');
}
