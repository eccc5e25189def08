import { Stages } from './core/stages.js';
import { callWith, type AnyFunction } from './core/call.js';
import { notAFunction, Problems } from './core/validate.js';
import type { Emitter, Listener, Unsubscribe } from './events.js';
import { resolveOptions, type ResolvedOptions } from './options.js';
import {
  isPrimitiveKey,
  type Cache,
  type CacheEntry,
  type CacheOptions,
} from './policies/cache.js';
import type { CircuitBreaker, CircuitBreakerOptions } from './policies/circuit-breaker.js';
import type { FallbackOption } from './policies/fallback.js';
import { takeRouteError, type PartitionOptions } from './policies/partition.js';
import type { RateLimiter, RateLimiterOptions } from './policies/rate-limiter.js';
import type { RetryOptions } from './policies/retry.js';
import { describePipeline, statsOf, subscribe, type Observable } from './resilient.js';
import type { Clock } from './clock.js';

/**
 * Options of {@link resilientSync}: only the stages that never wait. A timeout, a bulkhead, a backoff,
 * a rate-limiter wait or a signal would need to wait, so they are not part of this type (and are a
 * TypeError at wrap time from JavaScript).
 */
export interface ResilientSyncOptions<A extends readonly unknown[] = unknown[], F = never> {
  /** Retries at once (no delay): `true` for the defaults. The default value is no retry. */
  retry?: boolean | Omit<RetryOptions, 'backoff'>;
  /** A value or `(error, ...args) => value`. The default value is none. */
  fallback?: FallbackOption<A, F> | undefined;
  /**
   * `true` for the defaults, options (with a `partition`, a circuit per key), or a shared breaker.
   * The default value is none.
   */
  circuitBreaker?:
    | boolean
    | (CircuitBreakerOptions & { partition?: PartitionOptions<A> | false })
    | CircuitBreaker;
  /**
   * Options (rejects without waiting; with a `partition`, a limit per key), or a shared limiter. The
   * default value is none.
   */
  rateLimiter?:
    (RateLimiterOptions & { maxWait?: 0; partition?: PartitionOptions<A> | false }) | RateLimiter;
  /** `true`, options, or a shared cache. The default value is none. */
  cache?: boolean | CacheOptions<A> | Cache;
  /** The time source. The default value is `systemClock`. */
  clock?: Clock;
  /** Uniform random numbers in [0, 1). The default value is `Math.random`. */
  random?: () => number;
  /** Whether the library's own rejections capture a stack trace. The default value is `true`. */
  stackTraces?: boolean;
  /** A name shown by `describe()`. The default value is none. */
  name?: string;
}

/** A synchronous function wrapped by {@link resilientSync}. */
export interface ResilientSyncFunction<This, A extends unknown[], T> extends Observable {
  (this: This, ...args: A): T;
}

const WAITING_OPTIONS = ['timeout', 'bulkhead', 'signal', 'hedge'] as const;

/**
 * Makes a synchronous function resilient with the stages that never wait: retry without delay, circuit
 * breaker, rate limiter (rejecting), cache and fallback. Its happy path allocates nothing.
 *
 * @example
 * const parse = resilientSync(parseConfig, { retry: { maxAttempts: 2 }, fallback: () => DEFAULTS });
 * const config = parse(text); // Config, not a promise
 */
export function resilientSync<A extends unknown[], R, This = unknown, const F = never>(
  fn: (this: This, ...args: A) => R,
  options?: ResilientSyncOptions<A, F>,
): ResilientSyncFunction<This, A, R | F> {
  if (typeof fn !== 'function') {
    throw new TypeError(notAFunction('resilientSync(fn, options)', fn));
  }
  const problems = new Problems();
  if (typeof options === 'object' && (options as object | null) !== null) {
    const raw = options as Record<string, unknown>;
    for (const key of WAITING_OPTIONS) {
      if (raw[key] !== undefined) {
        problems.add(
          key,
          raw[key],
          'absent: resilientSync never waits (use resilient() for async functions)',
        );
      }
    }
    if (raw.chaos !== undefined) {
      problems.add('chaos', raw.chaos, 'absent: chaos injects latency, a wait (use resilient())');
    }
    // A background refresh needs something to wait for it: a synchronous caller cannot.
    const cacheOption: unknown = raw.cache;
    const revalidate =
      typeof cacheOption === 'object' && cacheOption !== null
        ? (cacheOption as { staleWhileRevalidate?: unknown }).staleWhileRevalidate
        : undefined;
    if (revalidate !== undefined && revalidate !== 0) {
      problems.add(
        'cache.staleWhileRevalidate',
        revalidate,
        'absent or 0: resilientSync cannot refresh in the background (use resilient())',
      );
    }
    const retry = raw.retry;
    if (
      typeof retry === 'object' &&
      retry !== null &&
      (retry as RetryOptions).backoff !== undefined
    ) {
      problems.add(
        'retry.backoff',
        (retry as RetryOptions).backoff,
        'absent: resilientSync retries at once',
      );
    }
    // Options or a shared rateLimiter(): either way `maxWait` says whether it would wait.
    const limiter: unknown = raw.rateLimiter;
    const maxWait =
      typeof limiter === 'object' && limiter !== null
        ? (limiter as { maxWait?: unknown }).maxWait
        : undefined;
    // A store answers asynchronously: a shared policy has no place in a synchronous pipeline.
    for (const key of ['circuitBreaker', 'rateLimiter', 'cache'] as const) {
      const stage: unknown = raw[key];
      const store =
        typeof stage === 'object' && stage !== null
          ? 'link' in stage || 'shared' in stage
            ? ((stage as { link?: unknown; shared?: unknown }).link ??
              (stage as { shared?: unknown }).shared)
            : (stage as { store?: unknown }).store
          : undefined;
      if (store !== undefined)
        problems.add(
          `${key}.store`,
          store,
          'absent: a store answers asynchronously (use resilient())',
        );
    }
    if (maxWait !== undefined && maxWait !== 0) {
      problems.add(
        'rateLimiter.maxWait',
        maxWait,
        '0 or absent: resilientSync never waits for a token',
      );
    }
  }
  problems.throwIfAny('Invalid resilientSync options');
  const resolved = resolveOptions(options);
  const pipeline = new SyncPipeline(fn, resolved, undefined);
  pipeline.checkKey(fn);
  const wrapped = function (
    this: unknown,
    a0?: unknown,
    a1?: unknown,
    a2?: unknown,
    a3?: unknown,
  ): unknown {
    const argc = arguments.length;
    return pipeline.call(
      this,
      argc,
      a0,
      a1,
      a2,
      a3,
      // eslint-disable-next-line prefer-rest-params -- a rest array would be allocated on every call
      argc > 4 ? (Array.prototype.slice.call(arguments) as unknown[]) : undefined,
    );
  };
  Object.defineProperties(wrapped, {
    name: { value: fn.name, configurable: true },
    length: { value: fn.length, configurable: true },
    describe: { value: () => describePipeline(resolved, pipeline.cache, 'sync') },
    on: {
      value: (listener: Listener): Unsubscribe => subscribe(pipeline.events, resolved, listener),
    },
    stats: { value: () => statsOf(resolved, pipeline.cache) },
  });
  return wrapped as unknown as ResilientSyncFunction<This, A, R | F>;
}

/** The synchronous pipeline: fallback → cache → retry → circuit breaker → rate limiter → fn. */
class SyncPipeline extends Stages {
  private readonly needsClock: boolean;

  constructor(
    private readonly fn: AnyFunction,
    options: ResolvedOptions,
    parent: Emitter | undefined,
  ) {
    super(options, parent);
    const breaker = this.breaker;
    this.needsClock =
      this.partitionsTimed ||
      (breaker !== undefined &&
        (breaker.windowType === 'time' || breaker.slowCallDuration !== Infinity)) ||
      this.limiter !== undefined ||
      this.retry?.budget !== undefined;
  }

  call(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): unknown {
    const cache = this.cache;
    if (cache === undefined) return this.guarded(thisArg, argc, a0, a1, a2, a3, rest);
    let key: unknown;
    if (cache.keyOf === undefined) {
      if (argc > 1 || !isPrimitiveKey(a0)) throw this.keyError(argc, a0);
      key = a0;
    } else {
      key = callWith(cache.keyOf, thisArg, argc, a0, a1, a2, a3, rest);
    }
    const entry = cache.lookup(key);
    if (entry?.fresh === true) {
      cache.hits++;
      if (this.listening()) this.emit({ type: 'cacheHit', key });
      return entry.value;
    }
    cache.misses++;
    if (this.listening()) this.emit({ type: 'cacheMiss', key });
    let value: unknown;
    try {
      value = this.attempts(thisArg, argc, a0, a1, a2, a3, rest);
    } catch (error) {
      if (error instanceof AsyncResultError) throw error;
      const now = this.clock.now();
      if (
        entry !== undefined &&
        entry.expires !== -Infinity &&
        now - entry.expires <= cache.staleIfError
      ) {
        cache.staleServed++;
        if (this.listening()) {
          this.emit({ type: 'staleServed', key, age: now - entry.expires + cache.ttl, error });
        }
        return entry.value;
      }
      if (entry !== undefined) cache.drop(entry);
      return this.fallBack(error, thisArg, argc, a0, a1, a2, a3, rest);
    }
    const target: CacheEntry = entry ?? cache.create(key, undefined);
    cache.store(target, value, this.clock.now());
    return value;
  }

  /** Attempts with the fallback around them. */
  private guarded(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): unknown {
    if (this.fallback === undefined) return this.attempts(thisArg, argc, a0, a1, a2, a3, rest);
    try {
      return this.attempts(thisArg, argc, a0, a1, a2, a3, rest);
    } catch (error) {
      if (error instanceof AsyncResultError) throw error;
      return this.fallBack(error, thisArg, argc, a0, a1, a2, a3, rest);
    }
  }

  private fallBack(
    error: unknown,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): unknown {
    const fallback = this.fallback;
    if (fallback === undefined) throw error;
    if (this.listening()) this.emit({ type: 'fallbackUsed', error });
    if (fallback.fn === undefined) return fallback.value;
    const args = argc > 4 ? rest! : [a0, a1, a2, a3].slice(0, argc);
    return fallback.fn.call(thisArg, error, ...args);
  }

  /** The retry loop, the breaker and the limiter around each call of `fn`. */
  private attempts(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): unknown {
    let breaker = this.breaker;
    let limiter = this.limiter;
    let breakerKey: string | undefined;
    let limiterKey: string | undefined;
    if (this.partitioned) {
      breakerKey = this.breakers?.keyOf(thisArg, argc, a0, a1, a2, a3, rest);
      if (this.breakers !== undefined && breakerKey === undefined) throw takeRouteError();
      limiterKey = this.limiters?.keyOf(thisArg, argc, a0, a1, a2, a3, rest);
      if (this.limiters !== undefined && limiterKey === undefined) throw takeRouteError();
    }
    const budget = this.retry?.budget;
    for (let attempt = 1; ; attempt++) {
      let now = this.needsClock ? this.clock.now() : 0;
      // Looked up on each attempt: a partition is one Map lookup, and the same one for every attempt
      // unless it was evicted at rest meanwhile.
      if (breakerKey !== undefined) breaker = this.breakers!.get(breakerKey, now);
      if (limiterKey !== undefined) limiter = this.limiters!.get(limiterKey, now);
      if (attempt === 1) budget?.recordCall(now);
      let failed = false;
      let value: unknown;
      let permit = 0;
      if (breaker !== undefined) {
        permit = breaker.closedPermit();
        if (permit < 0) {
          if (!this.needsClock) now = this.clock.now();
          permit = breaker.tryEnter(now);
        }
      }
      if (permit < 0) {
        failed = true;
        value = this.rejection('circuitOpen', breaker!.retryAfter(now), breaker!.partition);
      } else if (limiter !== undefined && !limiter.tryAcquire(now)) {
        breaker?.release(permit);
        limiter.countRejection();
        failed = true;
        value = this.rejection('rateLimited', limiter.retryAfter(now), limiter.partition);
      } else {
        try {
          value = callWith(this.fn, thisArg, argc, a0, a1, a2, a3, rest);
        } catch (error) {
          breaker?.recordFailure(permit, now, error);
          failed = true;
          value = error;
        }
        if (!failed) {
          if (isThenable(value)) {
            breaker?.release(permit);
            throw asyncResult(this.fn, value);
          }
          breaker?.recordSuccess(permit, now);
        }
      }
      const again = failed ? this.retriesError(value, attempt) : this.retriesResult(value, attempt);
      if (again && budget !== undefined && !budget.tryRetry(this.clock.now())) {
        if (this.listening())
          this.emit({ type: 'retryBudgetExhausted', attempt, error: failed ? value : undefined });
      } else if (again) {
        if (this.listening()) {
          this.emit(
            failed
              ? { type: 'retryScheduled', attempt, delay: 0, error: value }
              : { type: 'retryResultScheduled', attempt, delay: 0, result: value },
          );
        }
        continue;
      }
      if (failed) throw value;
      return value;
    }
  }
}

/**
 * `fn` returned a promise or a thenable: a programming error (it is async), which no stage may hide as a
 * failure, a retry, a stale value or a fallback. Private to this copy: only this file throws and checks it.
 */
class AsyncResultError extends TypeError {}

function isThenable(value: unknown): boolean {
  return (
    ((typeof value === 'object' && value !== null) || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function asyncResult(fn: AnyFunction, value: unknown): TypeError {
  // Nobody will read that promise: its rejection must not crash the process as unhandled.
  if (value instanceof Promise) void Promise.prototype.then.call(value, undefined, ignore);
  return new AsyncResultError(
    `resilientSync(fn) protects synchronous functions, and \`${fn.name || 'anonymous'}\` returned a ${value instanceof Promise ? 'promise' : 'thenable'}: use resilient() for an async function`,
  );
}

function ignore(): void {
  // the discarded promise's outcome
}
