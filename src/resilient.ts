import type { AttemptContext } from './core/attempt.js';
import { Pipeline } from './core/pipeline.js';
import { notAFunction } from './core/validate.js';
import { classDecorated, decorate, isClass, isDecoratorCall } from './decorator.js';
import { Emitter, type Listener, type Unsubscribe } from './events.js';
import { resolveOptions, type ResilientOptions, type ResolvedOptions } from './options.js';
import { describeChaos } from './policies/chaos.js';
import { describeFallback } from './policies/fallback.js';
import { describeHedge } from './policies/hedge.js';
import { describeRetry } from './policies/retry.js';
import type { Bulkhead } from './policies/bulkhead.js';
import type { Cache } from './policies/cache.js';
import type { CircuitBreaker } from './policies/circuit-breaker.js';
import type { PartitionStats } from './policies/partition.js';
import type { RateLimiter } from './policies/rate-limiter.js';

/** What `describe()` returns: the resolved pipeline, outermost stage first, defaults filled in. */
export interface PipelineDescription {
  readonly name: string | undefined;
  /** `async` for `resilient()`, `sync` for `resilientSync()` (which has no deadline, bulkhead or timeout). */
  readonly kind: 'async' | 'sync';
  /** The fixed order of the stages. */
  readonly order: readonly string[];
  /** Every stage in order; `enabled: false` for those not configured (they cost nothing). */
  readonly stages: readonly ({ readonly stage: string; readonly enabled: boolean } & Record<
    string,
    unknown
  >)[];
  readonly signal: boolean;
  readonly clock: 'system' | 'custom';
  readonly stackTraces: boolean;
}

/**
 * What `stats()` returns: the state of every stateful stage that is configured. A partitioned stage is
 * under `partitions` instead (one state per key).
 */
export interface PipelineStats {
  readonly circuitBreaker?: ReturnType<CircuitBreaker['stats']>;
  readonly rateLimiter?: ReturnType<RateLimiter['stats']>;
  readonly bulkhead?: ReturnType<Bulkhead['stats']>;
  readonly cache?: ReturnType<Cache['stats']>;
  readonly retryBudget?: { calls: number; retries: number; allowed: number };
  /** The partitioned stages: counts, and each live partition's state by key. */
  readonly partitions?: {
    readonly circuitBreaker?: PartitionStats<ReturnType<CircuitBreaker['stats']>>;
    readonly rateLimiter?: PartitionStats<ReturnType<RateLimiter['stats']>>;
    readonly bulkhead?: PartitionStats<ReturnType<Bulkhead['stats']>>;
  };
}

/** Methods shared by wrapped functions and policies. */
export interface Observable {
  /** The resolved pipeline: every stage, every option with defaults filled in. */
  describe(): PipelineDescription;
  /** Listens to every event; returns a function that stops listening. */
  on(listener: Listener): Unsubscribe;
  /** State of the stateful stages. */
  stats(): PipelineStats;
}

/** A function wrapped by {@link resilient}: same parameters and `this`, a promise of the result or the fallback. */
export interface ResilientFunction<This, A extends unknown[], T> extends Observable {
  (this: This, ...args: A): Promise<T>;
}

/** Options of `policy.execute`. */
export interface ExecuteOptions {
  /** Aborts this call at once, wherever it waits; it rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * A reusable policy made by `resilient(options)`. It wraps functions, decorates methods (TC39 and legacy
 * `experimentalDecorators`) and runs tasks; its stateful stages (breaker, limiter, bulkhead) are shared
 * by everything it wraps.
 */
export interface Policy<F = never> extends Observable {
  /** Wraps `fn`. */
  <A extends unknown[], R, This = unknown>(
    fn: (this: This, ...args: A) => R,
  ): ResilientFunction<This, A, Awaited<R> | F>;
  /** Standard (TC39) method decorator. */
  <This, A extends unknown[], R>(
    method: (this: This, ...args: A) => R,
    context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => R>,
  ): (this: This, ...args: A) => R;
  /** Legacy (`experimentalDecorators`) method decorator, as NestJS uses. */
  (
    target: object,
    propertyKey: string | symbol,
    descriptor: PropertyDescriptor,
  ): PropertyDescriptor;
  /**
   * Runs `task` through the pipeline. `task` gets the attempt's `signal` (aborted on timeout or caller
   * abort) and number. The cache stage does not apply (there are no arguments to key on).
   *
   * @example
   * await policy.execute(({ signal }) => fetch(url, { signal }), { signal: request.signal });
   */
  execute<T>(
    task: (context: AttemptContext) => T,
    options?: ExecuteOptions,
  ): Promise<Awaited<T> | F>;
}

/**
 * Makes `fn` resilient: same parameters, a promise of its result (or of the fallback's).
 *
 * @example
 * const getUser = resilient(fetchUser, { retry: { maxAttempts: 4 }, timeout: 2_000, fallback: () => null });
 * const user = await getUser('42'); // User | null
 */
export function resilient<A extends unknown[], R, This = unknown, const F = never>(
  fn: (this: This, ...args: A) => R,
  options?: ResilientOptions<A, F>,
): ResilientFunction<This, A, Awaited<R> | F>;
/**
 * Makes a reusable {@link Policy}: wrap functions with it, use it as a method decorator, or run tasks
 * with `policy.execute`.
 *
 * @example
 * const policy = resilient({ retry: true, timeout: { attempt: 500, total: 3_000 } });
 * const getOrder = policy(fetchOrder);
 * class Repo { @policy async load(id: string) { ... } }
 */
export function resilient<const F = never>(options?: ResilientOptions<unknown[], F>): Policy<F>;
export function resilient(
  fnOrOptions?: ((...args: unknown[]) => unknown) | ResilientOptions,
  options?: ResilientOptions,
): unknown {
  if (typeof fnOrOptions === 'function') {
    const resolved = resolveOptions(options);
    return wrap(fnOrOptions, resolved, undefined);
  }
  const isOptions =
    typeof fnOrOptions === 'object' && fnOrOptions !== null && !Array.isArray(fnOrOptions);
  if (options !== undefined || (arguments.length > 1 && !isOptions)) {
    throw new TypeError(
      isOptions
        ? 'resilient(options) takes one argument; to wrap a function call resilient(fn, options)'
        : notAFunction('resilient(fn, options)', fnOrOptions),
    );
  }
  return makePolicy(resolveOptions(fnOrOptions));
}

type RoutedExecutor = (
  task: (context: AttemptContext) => unknown,
  signal: AbortSignal | undefined,
  input: unknown,
  init: unknown,
) => Promise<unknown>;

const routedExecutors = new WeakMap<object, RoutedExecutor>();

/**
 * @internal `policy.execute(task)` whose partition keys come from `by(input, init)` (resilientFetch:
 * its request); the task itself is called as usual.
 */
export function executeRouted(
  policy: object,
  task: (context: AttemptContext) => unknown,
  signal: AbortSignal | undefined,
  input: unknown,
  init: unknown,
): Promise<unknown> {
  return routedExecutors.get(policy)!(task, signal, input, init);
}

function makePolicy(resolved: ResolvedOptions): Policy<unknown> {
  const events = new Emitter();
  let executor: Pipeline | undefined;
  const policy = function (
    this: unknown,
    target: unknown,
    context?: unknown,
    descriptor?: unknown,
  ): unknown {
    if (arguments.length === 1 && typeof target === 'function') {
      if (isClass(target)) throw classDecorated(target);
      return wrap(target as (...args: unknown[]) => unknown, resolved, events);
    }
    if (isDecoratorCall(arguments.length, target, context)) {
      return decorate(target, context, descriptor, (method) => wrap(method, resolved, events));
    }
    throw new TypeError(
      arguments.length === 1
        ? notAFunction('policy(fn)', target)
        : 'A bulwark policy wraps a function (`policy(fn)`) or decorates a class method (`@policy`)',
    );
  } as Policy<unknown>;
  const execute = (
    task: (context: AttemptContext) => unknown,
    options?: ExecuteOptions,
  ): Promise<unknown> => {
    if (typeof task !== 'function') {
      return Promise.reject(
        new TypeError(`Expected \`execute(task)\` to get a function, got ${typeof task}`),
      );
    }
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      return Promise.reject(
        new TypeError('Expected `execute(task, { signal })` to get an AbortSignal'),
      );
    }
    executor ??= new Pipeline(undefined, resolved, events);
    return executor.execute(task, signal);
  };
  routedExecutors.set(policy, (task, signal, input, init) => {
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      return Promise.reject(
        new TypeError('Expected `execute(task, { signal })` to get an AbortSignal'),
      );
    }
    executor ??= new Pipeline(undefined, resolved, events);
    return executor.executeRouted(task, signal, input, init);
  });
  Object.defineProperties(policy, {
    // The policy's own name (OpenTelemetry's `bulwark.name` falls back to it), not a variable's.
    name: { value: resolved.name ?? 'policy', configurable: true },
    execute: { value: execute },
    describe: { value: () => describePipeline(resolved, undefined, 'async') },
    on: {
      value: (listener: Listener) =>
        subscribe(
          events,
          resolved,
          listener,
          typeof resolved.cache === 'object' ? resolved.cache : undefined,
        ),
    },
    stats: { value: () => statsOf(resolved, undefined) },
  });
  return policy;
}

function wrap(
  fn: (...args: unknown[]) => unknown,
  resolved: ResolvedOptions,
  parent: Emitter | undefined,
): ResilientFunction<unknown, unknown[], unknown> {
  const pipeline = new Pipeline(fn, resolved, parent);
  pipeline.checkKey(fn);
  // Without a cache, a call goes straight to the pipeline's first attempt: `call` (the cache stage) is
  // too large for V8 to inline, and the frame it costs was a tenth of a timeout stage's time.
  const uncached = pipeline.cache === undefined;
  // Named parameters and `arguments.length` instead of a rest array: no array is allocated per call.
  const wrapped = function (
    this: unknown,
    a0?: unknown,
    a1?: unknown,
    a2?: unknown,
    a3?: unknown,
  ): Promise<unknown> {
    const argc = arguments.length;
    // eslint-disable-next-line prefer-rest-params -- a rest array would be allocated on every call
    const rest = argc > 4 ? (Array.prototype.slice.call(arguments) as unknown[]) : undefined;
    return uncached
      ? pipeline.callUncached(this, argc, a0, a1, a2, a3, rest)
      : pipeline.call(this, argc, a0, a1, a2, a3, rest);
  } as ResilientFunction<unknown, unknown[], unknown>;
  Object.defineProperties(wrapped, {
    name: { value: fn.name, configurable: true },
    length: { value: fn.length, configurable: true },
    describe: { value: () => describePipeline(resolved, pipeline.cache, 'async') },
    on: {
      value: (listener: Listener) => subscribe(pipeline.events, resolved, listener, pipeline.cache),
    },
    stats: { value: () => statsOf(resolved, pipeline.cache) },
  });
  return wrapped;
}

/** @internal */
export function subscribe(
  events: Emitter,
  resolved: ResolvedOptions,
  listener: Listener,
  cache?: Cache,
): Unsubscribe {
  if (typeof listener !== 'function')
    throw new TypeError(`Expected \`on(listener)\` to get a function, got ${typeof listener}`);
  const offPipeline = events.on(listener);
  const offBreaker = resolved.breaker?.on(listener);
  // Store events (storeUnavailable, storeRecovered) of a limiter, a cache or a bulkhead with a store.
  const offLimiter =
    resolved.limiter?.shared === undefined ? undefined : resolved.limiter.on(listener);
  const offCache = cache?.shared === undefined ? undefined : cache.on(listener);
  // An adaptive bulkhead's limit changes; a shared bulkhead's store events.
  const offBulkhead =
    resolved.bulkhead?.adaptive === undefined && resolved.bulkhead?.link === undefined
      ? undefined
      : resolved.bulkhead.on(listener);
  return () => {
    offPipeline();
    offBreaker?.();
    offBulkhead?.();
    offLimiter?.();
    offCache?.();
  };
}

const ORDER = [
  'fallback',
  'cache',
  'deadline',
  'retry',
  'hedge',
  'circuitBreaker',
  'rateLimiter',
  'bulkhead',
  'timeout',
  'chaos',
] as const;

/** @internal */
export function describePipeline(
  resolved: ResolvedOptions,
  ownCache: Cache | undefined,
  kind: 'async' | 'sync',
): PipelineDescription {
  const off = (stage: string): { stage: string; enabled: boolean } => ({ stage, enabled: false });
  const on = (
    description: Record<string, unknown>,
  ): { stage: string; enabled: boolean } & Record<string, unknown> => ({
    ...description,
    stage: description.stage as string,
    enabled: true,
  });
  const cache = ownCache ?? (typeof resolved.cache === 'object' ? resolved.cache : undefined);
  const total = resolved.timeout?.total ?? Infinity;
  const attempt = resolved.timeout?.attempt ?? Infinity;
  const order: readonly string[] =
    kind === 'async'
      ? ORDER
      : ORDER.filter(
          (s) =>
            s !== 'deadline' &&
            s !== 'hedge' &&
            s !== 'bulkhead' &&
            s !== 'timeout' &&
            s !== 'chaos',
        );
  const retry = resolved.retry
    ? on({
        ...describeRetry(resolved.retry),
        ...(kind === 'sync' ? { backoff: { type: 'none' } } : {}),
      })
    : off('retry');
  const stages = [
    resolved.fallback ? on(describeFallback(resolved.fallback)) : off('fallback'),
    cache
      ? on(cache.describe())
      : resolved.cache
        ? { stage: 'cache', enabled: true, shared: false, note: 'one cache per wrapped function' }
        : off('cache'),
    total === Infinity ? off('deadline') : on({ stage: 'deadline', total }),
    retry,
    resolved.hedge ? on(describeHedge(resolved.hedge)) : off('hedge'),
    resolved.breaker
      ? on(withPartition(resolved.breaker.describe(), resolved.breakerPartitions))
      : off('circuitBreaker'),
    resolved.limiter
      ? on(withPartition(resolved.limiter.describe(), resolved.limiterPartitions))
      : off('rateLimiter'),
    resolved.bulkhead
      ? on(withPartition(resolved.bulkhead.describe(), resolved.bulkheadPartitions))
      : off('bulkhead'),
    attempt === Infinity
      ? off('timeout')
      : on(
          resolved.timeout?.latency === undefined
            ? { stage: 'timeout', attempt }
            : { stage: 'timeout', attempt: { ...resolved.timeout.latency } },
        ),
    resolved.chaos ? on(describeChaos(resolved.chaos)) : off('chaos'),
  ].filter((stage) => order.includes(stage.stage));
  return {
    name: resolved.name,
    kind,
    order,
    stages,
    signal: resolved.signal !== undefined,
    clock: resolved.clockIsCustom ? 'custom' : 'system',
    stackTraces: resolved.stackTraces,
  };
}

/** A stage's description, with its partitioning when it is partitioned. */
function withPartition(
  description: Record<string, unknown>,
  partitions: { describe(): Record<string, unknown> } | undefined,
): Record<string, unknown> {
  return partitions === undefined
    ? description
    : { ...description, partition: partitions.describe() };
}

/** @internal */
export function statsOf(resolved: ResolvedOptions, ownCache: Cache | undefined): PipelineStats {
  const result: {
    -readonly [K in keyof PipelineStats]: PipelineStats[K];
  } = {};
  const { breakerPartitions, limiterPartitions, bulkheadPartitions } = resolved;
  if (resolved.breaker && !breakerPartitions) result.circuitBreaker = resolved.breaker.stats();
  if (resolved.limiter && !limiterPartitions) result.rateLimiter = resolved.limiter.stats();
  if (resolved.bulkhead && !bulkheadPartitions) result.bulkhead = resolved.bulkhead.stats();
  if (breakerPartitions || limiterPartitions || bulkheadPartitions) {
    result.partitions = {
      ...(breakerPartitions && { circuitBreaker: breakerPartitions.stats((b) => b.stats()) }),
      ...(limiterPartitions && { rateLimiter: limiterPartitions.stats((l) => l.stats()) }),
      ...(bulkheadPartitions && { bulkhead: bulkheadPartitions.stats((b) => b.stats()) }),
    };
  }
  const cache = ownCache ?? (typeof resolved.cache === 'object' ? resolved.cache : undefined);
  if (cache) result.cache = cache.stats();
  if (resolved.retry?.budget) result.retryBudget = resolved.retry.budget.stats();
  return result;
}
