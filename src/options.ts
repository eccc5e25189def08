import { systemClock, type Clock } from './clock.js';
import { Problems } from './core/validate.js';
import { Bulkhead, type BulkheadOptions } from './policies/bulkhead.js';
import { Cache, type CacheOptions } from './policies/cache.js';
import { resolveChaos, type ChaosOptions, type ResolvedChaos } from './policies/chaos.js';
import { CircuitBreaker, isClock, type CircuitBreakerOptions } from './policies/circuit-breaker.js';
import { resolveHedge, type HedgeOptions, type ResolvedHedge } from './policies/hedge.js';
import {
  resolveFallback,
  type FallbackOption,
  type ResolvedFallback,
} from './policies/fallback.js';
import {
  Partitions,
  resolvePartition,
  type Partitionable,
  type PartitionOptions,
} from './policies/partition.js';
import { RateLimiter, type RateLimiterOptions } from './policies/rate-limiter.js';
import { resolveRetry, type ResolvedRetry, type RetryOptions } from './policies/retry.js';
import { resolveTimeout, type ResolvedTimeout, type TimeoutOptions } from './policies/timeout.js';
import { isStore } from './store.js';

/**
 * Options of {@link resilient}. Every stage is optional; a stage that is not configured is not built in
 * and costs nothing. The stages always run in this order, outermost first:
 *
 *     fallback → cache → retry → hedge → circuit breaker → rate limiter → bulkhead → timeout → chaos → fn
 */
export interface ResilientOptions<A extends readonly unknown[] = unknown[], F = never> {
  /** Retry failed attempts: `true` for the defaults. The default value is no retry. */
  retry?: boolean | RetryOptions;
  /** A per-attempt limit in ms, or `{ attempt, total }`. The default value is no timeout. */
  timeout?: number | TimeoutOptions;
  /**
   * Start another attempt in parallel when one is slow, `{ delay, maxHedgedAttempts }`; the first success
   * wins and the others are aborted. Each retry attempt is such a race. The default value is no hedging.
   */
  hedge?: HedgeOptions;
  /** A value or `(error, ...args) => value` used when everything else failed. The default value is none. */
  fallback?: FallbackOption<A, F> | undefined;
  /**
   * `true` for the defaults, options, or a shared breaker made by `circuitBreaker()`. Options may hold
   * a `partition` (a circuit per key). The default value is none.
   */
  circuitBreaker?: boolean | (CircuitBreakerOptions & Partitioned<A>) | CircuitBreaker;
  /**
   * Options, or a shared limiter made by `rateLimiter()`. Options may hold a `partition` (a limit per
   * key). The default value is none.
   */
  rateLimiter?: (RateLimiterOptions & Partitioned<A>) | RateLimiter;
  /**
   * `true` for the defaults, `maxConcurrent`, options, or a shared bulkhead made by `bulkhead()`.
   * Options may hold a `partition` (a bulkhead per key). The default value is none.
   */
  bulkhead?: boolean | number | (BulkheadOptions & Partitioned<A>) | Bulkhead;
  /** `true`, options, or a shared cache made by `cache()`. The default value is none. */
  cache?: boolean | CacheOptions<A> | Cache;
  /**
   * Faults, latency and results injected right around `fn` for game days, `{ fault, latency, result,
   * enabled }`: the rest of the pipeline reacts to them as to the real thing. The default value is none.
   */
  chaos?: ChaosOptions<A>;
  /** A long-lived signal (shutdown, say) that aborts every call at once. The default value is none. */
  signal?: AbortSignal;
  /**
   * The time source. The default value is `systemClock` (`performance.now` and `setTimeout`; a timer keeps
   * the process alive only while a call waits on it).
   */
  clock?: Clock;
  /** Uniform random numbers in [0, 1) for jitter and chaos. The default value is `Math.random`. */
  random?: () => number;
  /**
   * Whether the library's own rejections (open circuit, rate limited, bulkhead full, timeout) capture a
   * stack trace. Turn off under heavy load: a trace costs far more than the rejection itself.
   * The default value is `true`.
   */
  stackTraces?: boolean;
  /** A name shown by `describe()`. The default value is none. */
  name?: string;
}

/** The `partition` option of a stateful stage given as options. */
export interface Partitioned<A extends readonly unknown[] = unknown[]> {
  /**
   * Separate state per key: `by(...args)` (called with the call's `this` and arguments) names the
   * partition of each call; at most `maxPartitions` are kept (least recently used evicted first), never
   * one that is not at rest. `false` is none. The default value is none (one state for every call).
   */
  partition?: PartitionOptions<A> | false;
}

/** The fallback option as accepted for a function with parameters `A`. */
export type { FallbackOption };

export const OPTION_KEYS = [
  'retry',
  'timeout',
  'hedge',
  'fallback',
  'circuitBreaker',
  'rateLimiter',
  'bulkhead',
  'cache',
  'chaos',
  'signal',
  'clock',
  'random',
  'stackTraces',
  'name',
] as const;

/** @internal the options, validated once per policy. */
export interface ResolvedOptions {
  readonly name: string | undefined;
  readonly retry: ResolvedRetry | undefined;
  readonly timeout: ResolvedTimeout | undefined;
  readonly hedge: ResolvedHedge | undefined;
  readonly fallback: ResolvedFallback | undefined;
  readonly breaker: CircuitBreaker | undefined;
  readonly limiter: RateLimiter | undefined;
  readonly bulkhead: Bulkhead | undefined;
  /**
   * The partitions of a partitioned stage; the stage's own instance above is then only its template
   * (its settings and its events), never used for a call.
   */
  readonly breakerPartitions: Partitions<CircuitBreaker> | undefined;
  readonly limiterPartitions: Partitions<RateLimiter> | undefined;
  readonly bulkheadPartitions: Partitions<Bulkhead> | undefined;
  /** A shared cache, or a factory giving each wrapped function its own. */
  readonly cache: Cache | (() => Cache) | undefined;
  readonly chaos: ResolvedChaos | undefined;
  readonly signal: AbortSignal | undefined;
  readonly clock: Clock;
  readonly clockIsCustom: boolean;
  readonly random: () => number;
  readonly stackTraces: boolean;
}

/** Validates every option at once; throws one TypeError listing every problem. */
export function resolveOptions(options: unknown): ResolvedOptions {
  const problems = new Problems();
  const o = options === undefined ? {} : (problems.object('', options, OPTION_KEYS) ?? {});
  // A value may be a Proxy whose traps throw, or hide getters deeper down: `guard` turns a throw into a
  // problem naming the option.
  const retry = problems.guard('retry', () => resolveRetry(o.retry, problems), undefined);
  const timeout = problems.guard('timeout', () => resolveTimeout(o.timeout, problems), undefined);
  const hedge = problems.guard('hedge', () => resolveHedge(o.hedge, problems), undefined);
  const fallback = resolveFallback(o.fallback);
  const chaos = problems.guard('chaos', () => resolveChaos(o.chaos, problems), undefined);

  const breakerPart = partitionOf(problems, 'circuitBreaker', o.circuitBreaker, CircuitBreaker);
  const breaker = stage(
    problems,
    'circuitBreaker',
    breakerPart.rest,
    CircuitBreaker,
    (v) =>
      new CircuitBreaker(
        v === true ? {} : (v as CircuitBreakerOptions),
        'circuitBreaker',
        breakerPart.partition === undefined ? undefined : 'template',
      ),
  );
  const limiterPart = partitionOf(problems, 'rateLimiter', o.rateLimiter, RateLimiter);
  const limiter = stage(
    problems,
    'rateLimiter',
    limiterPart.rest,
    RateLimiter,
    (v) => new RateLimiter(v as RateLimiterOptions, 'rateLimiter'),
  );
  const bulkheadPart = partitionOf(problems, 'bulkhead', o.bulkhead, Bulkhead);
  const bulkhead = stage(
    problems,
    'bulkhead',
    bulkheadPart.rest,
    Bulkhead,
    (v) => new Bulkhead(v === true ? {} : (v as number | BulkheadOptions), 'bulkhead'),
  );
  // Each partition is made with its key and the stage's emitter before it talks to a store, so that
  // its store keys and store events carry the key.
  const breakerPartitions = partitions(problems, 'circuitBreaker', breakerPart, breaker, (key) => {
    const made = new CircuitBreaker(breakerPart.rest as CircuitBreakerOptions, 'circuitBreaker', {
      key,
      events: breaker!.events,
    });
    made.adoptClock(breaker!.clock!);
    return made;
  });
  const limiterPartitions = partitions(problems, 'rateLimiter', limiterPart, limiter, (key) => {
    const made = new RateLimiter(limiterPart.rest as RateLimiterOptions, 'rateLimiter', {
      key,
      events: limiter!.events,
    });
    made.adoptClock(limiter!.clock!);
    return made;
  });
  const bulkheadPartitions = partitions(problems, 'bulkhead', bulkheadPart, bulkhead, (key) => {
    return new Bulkhead(bulkheadPart.rest as BulkheadOptions, 'bulkhead', {
      key,
      events: bulkhead!.events,
    });
  });
  let cache: Cache | (() => Cache) | undefined;
  const first = stage(
    problems,
    'cache',
    o.cache,
    Cache,
    (v) => new Cache(v as boolean | CacheOptions, 'cache'),
  );
  // A shared cache() is used as is; inline options give each wrapped function its own cache.
  if (first !== undefined && first === o.cache) cache = first;
  else if (first !== undefined) {
    let unused: Cache | undefined = first;
    const raw = o.cache as boolean | CacheOptions;
    cache = () => {
      const made = unused ?? new Cache(raw, 'cache');
      unused = undefined;
      return made;
    };
  }

  const signal = problems.guard(
    'signal',
    () => {
      if (o.signal === undefined || o.signal instanceof AbortSignal) return o.signal;
      problems.add('signal', o.signal, 'an AbortSignal');
      return undefined;
    },
    undefined,
  );
  const clock = problems.guard(
    'clock',
    () => {
      if (o.clock === undefined || isClock(o.clock)) return o.clock;
      problems.add('clock', o.clock, 'a Clock { now, setTimer, clearTimer }');
      return undefined;
    },
    undefined,
  );
  const random = problems.func('random', o.random, Math.random);
  const stackTraces = o.stackTraces;
  if (stackTraces !== undefined && typeof stackTraces !== 'boolean')
    problems.add('stackTraces', stackTraces, 'a boolean');
  if (o.name !== undefined && typeof o.name !== 'string') problems.add('name', o.name, 'a string');
  problems.throwIfAny();

  const resolvedClock = clock ?? systemClock;
  breaker?.adoptClock(resolvedClock);
  limiter?.adoptClock(resolvedClock);
  breakerPartitions?.adoptClock(resolvedClock);
  limiterPartitions?.adoptClock(resolvedClock);
  bulkheadPartitions?.adoptClock(resolvedClock);
  if (cache instanceof Cache) cache.adoptClock(resolvedClock);
  retry?.budget?.adoptClock(resolvedClock);
  return {
    name: typeof o.name === 'string' ? o.name : undefined,
    retry,
    timeout,
    hedge,
    fallback,
    breaker,
    limiter,
    bulkhead,
    breakerPartitions,
    limiterPartitions,
    bulkheadPartitions,
    cache,
    chaos,
    signal,
    clock: resolvedClock,
    clockIsCustom: resolvedClock !== systemClock,
    random,
    stackTraces: stackTraces !== false,
  };
}

/** A stage's options split into its `partition` (resolved) and the rest. */
interface PartitionPart {
  readonly rest: unknown;
  readonly partition: ReturnType<typeof resolvePartition>;
}

/** Takes `partition` out of a stage given as options (a shared instance has none). */
function partitionOf(
  problems: Problems,
  path: string,
  value: unknown,
  type: abstract new (...args: never[]) => unknown,
): PartitionPart {
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    problems.guard(path, () => value instanceof type, true)
  )
    return { rest: value, partition: undefined };
  return problems.guard<PartitionPart>(
    path,
    () => {
      if (!('partition' in value)) return { rest: value, partition: undefined };
      const { partition, ...rest } = value as { partition?: unknown };
      return { rest, partition: resolvePartition(partition, `${path}.partition`, problems) };
    },
    { rest: undefined, partition: undefined },
  );
}

/** The partitions of a stage, once its template validated. */
function partitions<T extends Partitionable>(
  problems: Problems,
  path: string,
  part: PartitionPart,
  template: { readonly name?: string | undefined; readonly shared?: unknown } | undefined,
  make: (key: string) => T,
): Partitions<T> | undefined {
  if (part.partition === undefined || template === undefined) return undefined;
  const rest = part.rest as Record<string, unknown>;
  const store = rest.store;
  if (isStore(store) && store.partitioned !== true)
    problems.raw(
      `\`${path}.partition\` needs a store that keeps partitions apart (\`partitioned: true\`, as redisStore from bulwark/redis): this one would merge every partition into one state`,
    );
  if (rest.initialState !== undefined)
    problems.raw(
      `\`${path}.initialState\` restores one circuit; a partitioned breaker (\`${path}.partition\`) has one per key`,
    );
  return new Partitions(part.partition, path, make);
}

/**
 * Resolves a stateful stage given as a shared instance or as options. The stage's own constructor
 * validates; its TypeError lines are folded into the collector so all problems show at once.
 */
function stage<T>(
  problems: Problems,
  path: string,
  value: unknown,
  type: abstract new (...args: never[]) => T,
  make: (value: unknown) => T,
): T | undefined {
  if (value === undefined || value === false) return undefined;
  if (problems.guard(path, () => value instanceof type, false)) return value as T;
  try {
    return make(value);
  } catch (error) {
    const lines = error instanceof TypeError ? error.message.split('\n').slice(1) : [];
    // Anything but the stage's own validation error (a getter or a Proxy trap that threw) is
    // reported against the stage too, never thrown as is.
    if (lines.length === 0) {
      problems.threw(path, error);
      return undefined;
    }
    for (const line of lines) problems.raw(line.replace(/^ {2}- /, ''));
    return undefined;
  }
}
