/**
 * OpenTelemetry for bulwark: `instrument(target, { meter, tracer })` records metrics and span events for a
 * wrapped function or a policy. It is an outer wrapper plus an event listener: the core never imports
 * `@opentelemetry/api`, and a function that is not instrumented runs exactly as before.
 */
import {
  context,
  metrics,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type BatchObservableResult,
  type Counter,
  type Histogram,
  type Meter,
  type ObservableGauge,
  type ObservableUpDownCounter,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type {
  Observable,
  PipelineStats,
  Policy,
  RejectionReason,
  ResilienceEvent,
  Unsubscribe,
} from '../index.js';

/** Options of {@link instrument}. */
export interface InstrumentOptions {
  /** Where metrics go. The default value is `metrics.getMeter('bulwark')` (the global provider). */
  meter?: Meter;
  /**
   * When given, every call gets its own span (kind `INTERNAL`, named after `name`), and its retries,
   * timeouts and rejections become events of that span. Without it, those events go on the span active
   * when they happen, if any. The default value is none.
   */
  tracer?: Tracer;
  /** The `bulwark.name` attribute. The default value is the pipeline's `name`, else the function's name. */
  name?: string;
  /** Measures call durations: `now()` in ms. The default value is `performance`. */
  clock?: { now(): number };
}

/** Metric names, as documented in the README. */
export const METRICS = Object.freeze({
  calls: 'bulwark.calls',
  callDuration: 'bulwark.call.duration',
  attempts: 'bulwark.attempts',
  retriesStopped: 'bulwark.retries.stopped',
  rejections: 'bulwark.rejections',
  timeouts: 'bulwark.timeouts',
  fallbacks: 'bulwark.fallbacks',
  cacheRequests: 'bulwark.cache.requests',
  cacheStaleServed: 'bulwark.cache.stale_served',
  cacheRefreshFailures: 'bulwark.cache.refresh_failures',
  chaosInjections: 'bulwark.chaos.injections',
  rateLimiterWaits: 'bulwark.rate_limiter.waits',
  rateLimiterWaitDuration: 'bulwark.rate_limiter.wait.duration',
  circuitState: 'bulwark.circuit.state',
  circuitTransitions: 'bulwark.circuit.transitions',
  bulkheadInFlight: 'bulwark.bulkhead.in_flight',
  bulkheadQueued: 'bulwark.bulkhead.queued',
});

const REASONS: Record<RejectionReason, string> = {
  circuitOpen: 'circuit_open',
  rateLimited: 'rate_limited',
  bulkheadFull: 'bulkhead_full',
  bulkheadQueueTimeout: 'bulkhead_queue_timeout',
};

const STATES = ['closed', 'open', 'half_open', 'isolated'] as const;
const STATE_OF = { closed: 'closed', open: 'open', halfOpen: 'half_open', isolated: 'isolated' };

type AnyFunction = (this: unknown, ...args: unknown[]) => unknown;
type Instrumentable = AnyFunction & Observable;

/** The `error.type` of OpenTelemetry's conventions: the error's class name (or `_OTHER`). */
function errorType(error: unknown): string {
  if (error instanceof Error) return error.name || error.constructor.name || 'Error';
  return '_OTHER';
}

/** Calls `invoke`, turning a synchronous throw into a rejection. */
function settled(invoke: () => unknown): Promise<unknown> {
  try {
    return Promise.resolve(invoke());
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The instruments and state of one `instrument()` call. */
class Telemetry {
  readonly attributes: Attributes;
  private readonly calls: Counter;
  private readonly duration: Histogram;
  private readonly attempts: Counter;
  private readonly retriesStopped: Counter;
  private readonly rejections: Counter;
  private readonly timeouts: Counter;
  private readonly fallbacks: Counter;
  private readonly cacheRequests: Counter;
  private readonly staleServed: Counter;
  private readonly refreshFailures: Counter;
  private readonly chaosInjections: Counter;
  private readonly waits: Counter;
  private readonly waitDuration: Histogram;
  private readonly transitions: Counter;
  private readonly circuitState: ObservableGauge;
  private readonly inFlight: ObservableUpDownCounter;
  private readonly queued: ObservableUpDownCounter;
  private readonly observe: (result: BatchObservableResult) => void;
  private readonly unsubscribe: Unsubscribe;
  private readonly clock: { now(): number };
  /** Calls of the instrumented wrapper that have not settled. */
  private running = 0;
  /** `fallbackUsed` events not yet matched to a call that settled. */
  private fallbacksPending = 0;
  active = true;

  constructor(
    private readonly target: Observable,
    private readonly meter: Meter,
    readonly tracer: Tracer | undefined,
    readonly name: string,
    clock: { now(): number } | undefined,
  ) {
    this.clock = clock ?? performance;
    this.attributes = { 'bulwark.name': name };
    this.calls = meter.createCounter(METRICS.calls, {
      description: 'Calls through the pipeline, by outcome.',
      unit: '{call}',
    });
    this.duration = meter.createHistogram(METRICS.callDuration, {
      description: 'Duration of calls through the pipeline, retries and waits included.',
      unit: 's',
    });
    this.attempts = meter.createCounter(METRICS.attempts, {
      description: 'Attempts started: the first of each call and every retry.',
      unit: '{attempt}',
    });
    this.retriesStopped = meter.createCounter(METRICS.retriesStopped, {
      description: 'Calls whose retries stopped before success, by reason.',
      unit: '{call}',
    });
    this.rejections = meter.createCounter(METRICS.rejections, {
      description: 'Attempts the pipeline turned away before calling the function, by reason.',
      unit: '{rejection}',
    });
    this.timeouts = meter.createCounter(METRICS.timeouts, {
      description: 'Attempts or calls that ran out of time, by scope.',
      unit: '{timeout}',
    });
    this.fallbacks = meter.createCounter(METRICS.fallbacks, {
      description: 'Times the fallback was used.',
      unit: '{fallback}',
    });
    this.cacheRequests = meter.createCounter(METRICS.cacheRequests, {
      description: 'Cache lookups, by result.',
      unit: '{request}',
    });
    this.staleServed = meter.createCounter(METRICS.cacheStaleServed, {
      description: 'Stale cache values served after a failed refresh.',
      unit: '{request}',
    });
    this.refreshFailures = meter.createCounter(METRICS.cacheRefreshFailures, {
      description:
        'Background refreshes (staleWhileRevalidate) that failed; the stale value stayed.',
      unit: '{refresh}',
    });
    this.chaosInjections = meter.createCounter(METRICS.chaosInjections, {
      description: 'Faults, latencies and results injected by chaos, by kind.',
      unit: '{injection}',
    });
    this.waits = meter.createCounter(METRICS.rateLimiterWaits, {
      description: 'Attempts that waited for a rate-limiter token.',
      unit: '{wait}',
    });
    this.waitDuration = meter.createHistogram(METRICS.rateLimiterWaitDuration, {
      description: 'How long attempts waited for a rate-limiter token.',
      unit: 's',
    });
    this.transitions = meter.createCounter(METRICS.circuitTransitions, {
      description: 'Circuit breaker state changes, by the state entered.',
      unit: '{transition}',
    });
    this.circuitState = meter.createObservableGauge(METRICS.circuitState, {
      description: 'Circuit breaker state: 1 for the current state, 0 for the others.',
      unit: '1',
    });
    this.inFlight = meter.createObservableUpDownCounter(METRICS.bulkheadInFlight, {
      description: 'Calls of the function running inside the bulkhead.',
      unit: '{call}',
    });
    this.queued = meter.createObservableUpDownCounter(METRICS.bulkheadQueued, {
      description: 'Calls waiting in the bulkhead queue.',
      unit: '{call}',
    });
    this.observe = (result) => this.observeStats(result);
    meter.addBatchObservableCallback(this.observe, [this.circuitState, this.inFlight, this.queued]);
    this.unsubscribe = target.on((event) => this.onEvent(event));
  }

  /** Called once, by {@link uninstrument} (which then forgets the target). */
  stop(): void {
    this.flush();
    this.active = false;
    this.unsubscribe();
    this.meter.removeBatchObservableCallback(this.observe, [
      this.circuitState,
      this.inFlight,
      this.queued,
    ]);
  }

  /**
   * The target's attributes plus `extra`: one frozen object per distinct combination, since a call
   * records the same few again and again (bounded: error types are the user's and many).
   */
  private with(extra: Record<string, string | boolean>): Attributes {
    let key = '';
    for (const name in extra) key += `${name}\u0000${String(extra[name])}\u0000`;
    let attributes = this.memo.get(key);
    if (attributes === undefined) {
      attributes = Object.freeze({ ...this.attributes, ...extra });
      if (this.memo.size < 256) this.memo.set(key, attributes);
    }
    return attributes;
  }

  private readonly memo = new Map<string, Attributes>();

  /**
   * Adds the calls and first attempts counted since the last collection. The SDK's `add()` hashes its
   * attributes on every record (~0.6 µs on Node 20); a call would pay it twice more on top of its
   * duration, so calls and first attempts are counted here and added once per collection: this runs at
   * the start of each collection (the batch callback), before the SDK reads its counters, and on
   * `uninstrument`. Attribute objects are memoized (`with`), so they key the pending counts.
   */
  private flush(): void {
    if (this.pendingFirstAttempts > 0) {
      this.attempts.add(this.pendingFirstAttempts, this.with({ 'bulwark.attempt.retry': false }));
      this.pendingFirstAttempts = 0;
    }
    for (const [attributes, count] of this.pendingCalls) this.calls.add(count, attributes);
    this.pendingCalls.clear();
  }

  private pendingFirstAttempts = 0;
  private readonly pendingCalls = new Map<Attributes, number>();

  private observeStats(result: BatchObservableResult): void {
    this.flush();
    let stats: PipelineStats;
    try {
      stats = this.target.stats();
    } catch {
      return;
    }
    const breaker = stats.circuitBreaker;
    if (breaker !== undefined) this.observeCircuit(result, breaker.state, undefined);
    const bulkhead = stats.bulkhead;
    if (bulkhead !== undefined) {
      result.observe(this.inFlight, bulkhead.inFlight, this.attributes);
      result.observe(this.queued, bulkhead.queued, this.attributes);
    }
    // A partitioned stage: one series per live partition, with `bulwark.partition`.
    const partitions = stats.partitions;
    for (const [key, circuit] of Object.entries(partitions?.circuitBreaker?.byKey ?? {}))
      this.observeCircuit(result, circuit.state, key);
    for (const [key, pool] of Object.entries(partitions?.bulkhead?.byKey ?? {})) {
      const attributes = this.with({ 'bulwark.partition': key });
      result.observe(this.inFlight, pool.inFlight, attributes);
      result.observe(this.queued, pool.queued, attributes);
    }
  }

  private observeCircuit(
    result: BatchObservableResult,
    circuitState: keyof typeof STATE_OF,
    partition: string | undefined,
  ): void {
    const current = STATE_OF[circuitState];
    for (const state of STATES) {
      result.observe(
        this.circuitState,
        state === current ? 1 : 0,
        this.with(withPartition({ 'bulwark.circuit.state': state }, partition)),
      );
    }
  }

  /** Runs one call of `invoke`, recording its outcome and duration (and its span, with a tracer). */
  record(invoke: () => unknown): Promise<unknown> {
    if (!this.active) return settled(invoke);
    const start = this.clock.now();
    this.running++;
    this.pendingFirstAttempts++;
    const tracer = this.tracer;
    let span: Span | undefined;
    let promise: Promise<unknown>;
    if (tracer === undefined) promise = settled(invoke);
    else {
      span = tracer.startSpan(this.name, { kind: SpanKind.INTERNAL, attributes: this.attributes });
      promise = context.with(trace.setSpan(context.active(), span), settled, undefined, invoke);
    }
    return promise.then(
      (value) => {
        this.settle(start, false, undefined, span);
        return value;
      },
      (error: unknown) => {
        this.settle(start, true, error, span);
        throw error;
      },
    );
  }

  private settle(start: number, failed: boolean, error: unknown, span: Span | undefined): void {
    this.running--;
    let outcome: 'success' | 'failure' | 'fallback';
    if (this.fallbacksPending > 0) {
      // The fallback's result (or its own error) settles the call that used it.
      this.fallbacksPending--;
      outcome = 'fallback';
    } else outcome = failed ? 'failure' : 'success';
    const attributes =
      outcome === 'failure'
        ? this.with({ 'bulwark.outcome': outcome, 'error.type': errorType(error) })
        : this.with({ 'bulwark.outcome': outcome });
    const pending = this.pendingCalls;
    pending.set(attributes, (pending.get(attributes) ?? 0) + 1);
    // Past the memo's bound each error type makes a new object: keep the map small without a reader.
    if (pending.size > 1_024) this.flush();
    this.duration.record(Math.max(0, this.clock.now() - start) / 1_000, attributes);
    if (span === undefined) return;
    span.setAttribute('bulwark.outcome', outcome);
    if (outcome === 'failure') {
      span.setAttribute('error.type', errorType(error));
      if (error instanceof Error) span.recordException(error);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    span.end();
  }

  private spanEvent(name: string, attributes: Attributes): void {
    const span = trace.getActiveSpan();
    if (span?.isRecording()) span.addEvent(name, attributes);
  }

  private onEvent(event: ResilienceEvent): void {
    switch (event.type) {
      case 'retryScheduled':
      case 'retryResultScheduled':
        this.attempts.add(1, this.with({ 'bulwark.attempt.retry': true }));
        this.spanEvent('bulwark.retry', {
          'bulwark.attempt': event.attempt,
          'bulwark.retry.delay': event.delay / 1_000,
          ...(event.type === 'retryScheduled' ? { 'error.type': errorType(event.error) } : {}),
        });
        break;
      case 'retriesExhausted':
        this.retriesStopped.add(1, this.with({ 'bulwark.retry.stop_reason': 'exhausted' }));
        break;
      case 'retryBudgetExhausted':
        this.retriesStopped.add(1, this.with({ 'bulwark.retry.stop_reason': 'budget' }));
        break;
      case 'retryAbandoned':
        this.retriesStopped.add(1, this.with({ 'bulwark.retry.stop_reason': 'deadline' }));
        break;
      case 'callRejected': {
        const reason = REASONS[event.reason];
        const attributes = withPartition({ 'bulwark.rejection.reason': reason }, event.partition);
        this.rejections.add(1, this.with(attributes));
        this.spanEvent('bulwark.rejection', attributes);
        break;
      }
      case 'timedOut':
        this.timeouts.add(1, this.with({ 'bulwark.timeout.scope': event.scope }));
        this.spanEvent('bulwark.timeout', {
          'bulwark.timeout.scope': event.scope,
          'bulwark.timeout.limit': event.timeout / 1_000,
        });
        break;
      case 'fallbackUsed':
        this.fallbacks.add(1, this.attributes);
        if (this.running > this.fallbacksPending) this.fallbacksPending++;
        this.spanEvent('bulwark.fallback', { 'error.type': errorType(event.error) });
        break;
      case 'cacheHit':
      case 'cacheMiss':
      case 'cacheJoined':
      case 'cacheStaleHit':
        this.cacheRequests.add(
          1,
          this.with({
            'bulwark.cache.result':
              event.type === 'cacheHit'
                ? 'hit'
                : event.type === 'cacheMiss'
                  ? 'miss'
                  : event.type === 'cacheJoined'
                    ? 'joined'
                    : 'stale',
          }),
        );
        break;
      case 'cacheRefreshFailed':
        this.refreshFailures.add(1, this.attributes);
        break;
      case 'staleServed':
        this.staleServed.add(1, this.attributes);
        break;
      case 'chaosInjected':
        this.chaosInjections.add(1, this.with({ 'bulwark.chaos.kind': event.kind }));
        this.spanEvent(
          'bulwark.chaos',
          event.kind === 'latency'
            ? { 'bulwark.chaos.kind': event.kind, 'bulwark.chaos.delay': event.delay / 1_000 }
            : event.kind === 'fault'
              ? { 'bulwark.chaos.kind': event.kind, 'error.type': errorType(event.error) }
              : { 'bulwark.chaos.kind': event.kind },
        );
        break;
      case 'rateLimitWaited': {
        const attributes =
          event.partition === undefined
            ? this.attributes
            : this.with({ 'bulwark.partition': event.partition });
        this.waits.add(1, attributes);
        this.waitDuration.record(event.wait / 1_000, attributes);
        break;
      }
      case 'circuitOpened':
      case 'circuitHalfOpened':
      case 'circuitClosed':
      case 'circuitIsolated': {
        const state =
          event.type === 'circuitOpened'
            ? 'open'
            : event.type === 'circuitHalfOpened'
              ? 'half_open'
              : event.type === 'circuitClosed'
                ? 'closed'
                : 'isolated';
        const attributes = withPartition({ 'bulwark.circuit.state': state }, event.partition);
        this.transitions.add(1, this.with(attributes));
        this.spanEvent('bulwark.circuit.state_change', attributes);
        break;
      }
      default:
        break;
    }
  }
}

/** `attributes` with `bulwark.partition` when the event or state belongs to a partition. */
function withPartition(
  attributes: Record<string, string>,
  partition: string | undefined,
): Record<string, string> {
  return partition === undefined ? attributes : { ...attributes, 'bulwark.partition': partition };
}

const stoppers = new WeakMap<object, Telemetry>();

function isObservable(target: unknown): target is Instrumentable {
  return (
    typeof target === 'function' &&
    typeof (target as Partial<Observable>).on === 'function' &&
    typeof (target as Partial<Observable>).stats === 'function' &&
    typeof (target as Partial<Observable>).describe === 'function'
  );
}

/** Wraps `fn` so that each call is recorded by `t`; keeps its name, length, `this` and Observable methods. */
function wrapCalls<F extends AnyFunction>(fn: F, t: Telemetry, source: Observable): F {
  const wrapped = function (this: unknown, ...args: unknown[]): Promise<unknown> {
    return t.record(() => fn.apply(this, args));
  };
  Object.defineProperties(wrapped, {
    name: { value: fn.name, configurable: true },
    length: { value: fn.length, configurable: true },
    describe: { value: () => source.describe() },
    on: { value: (listener: Parameters<Observable['on']>[0]) => source.on(listener) },
    stats: { value: () => source.stats() },
  });
  return wrapped as unknown as F;
}

/**
 * Records OpenTelemetry metrics (and spans, with a `tracer`) for a function wrapped by `resilient()`, a
 * `resilientFetch()`, or a policy. Returns a target of the same type; the original is left untouched,
 * so only calls made through the returned one are counted and timed. Events (retries, rejections,
 * timeouts, breaker transitions...) are counted for the whole target.
 *
 * @example
 * import { metrics, trace } from '@opentelemetry/api';
 * const getUser = instrument(resilient(fetchUser, { retry: true, name: 'users' }), {
 *   meter: metrics.getMeter('my-service'),
 *   tracer: trace.getTracer('my-service'),
 * });
 */
export function instrument<T extends Observable>(target: T, options: InstrumentOptions = {}): T {
  if (!isObservable(target)) {
    throw new TypeError(
      'Expected `instrument(target)` to get a function wrapped by resilient(), a resilientFetch() or a policy',
    );
  }
  const problems: string[] = [];
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected \`instrument(target, options)\` to get an options object`);
  }
  const { meter, tracer, name, clock } = options;
  // `null` is checked too: `typeof null` is 'object', and reading a property of it would throw.
  if (meter !== undefined && typeof (meter as Meter | null)?.createCounter !== 'function')
    problems.push('Expected `meter` to be an OpenTelemetry Meter');
  if (tracer !== undefined && typeof (tracer as Tracer | null)?.startSpan !== 'function')
    problems.push('Expected `tracer` to be an OpenTelemetry Tracer');
  if (name !== undefined && (typeof name !== 'string' || name === ''))
    problems.push('Expected `name` to be a non-empty string');
  if (clock !== undefined && typeof clock?.now !== 'function')
    problems.push('Expected `clock` to have a now() method');
  const known = ['meter', 'tracer', 'name', 'clock'];
  for (const key of Object.keys(options))
    if (!known.includes(key))
      problems.push(`Unknown option \`${key}\`; known options: ${known.join(', ')}`);
  if (problems.length > 0)
    throw new TypeError(
      `Invalid instrument options:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );

  const resolvedName =
    name ?? target.describe().name ?? (target.name === '' ? 'anonymous' : target.name);
  const t = new Telemetry(
    target,
    meter ?? metrics.getMeter('bulwark'),
    tracer,
    resolvedName,
    clock,
  );

  let result: Instrumentable;
  const maybePolicy = target as unknown as Partial<Policy<unknown>>;
  if (typeof maybePolicy.execute === 'function') {
    const policy = target as unknown as Policy<unknown> & AnyFunction;
    const instrumented = function (this: unknown, ...args: unknown[]): unknown {
      // The policy tells its call forms apart by their number of arguments: pass them on as they came.
      const made = policy.apply(this, args);
      if (args.length === 1) return wrapCalls(made as Instrumentable, t, made as Observable);
      if (typeof made === 'function') return wrapCalls(made as AnyFunction, t, policy);
      // Legacy decorator: a property descriptor whose `value` is the wrapped method (the policy throws
      // for anything else, accessors and fields included).
      const d = made as PropertyDescriptor;
      d.value = wrapCalls(d.value as AnyFunction, t, policy);
      return d;
    };
    Object.defineProperties(instrumented, {
      execute: {
        value: (
          task: Parameters<Policy['execute']>[0],
          executeOptions?: { signal?: AbortSignal },
        ) => t.record(() => policy.execute(task, executeOptions)),
      },
      describe: { value: () => policy.describe() },
      on: { value: (listener: Parameters<Observable['on']>[0]) => policy.on(listener) },
      stats: { value: () => policy.stats() },
    });
    result = instrumented as unknown as Instrumentable;
  } else {
    result = wrapCalls(target, t, target);
  }
  stoppers.set(result, t);
  return result as unknown as T;
}

/**
 * Stops recording for a target returned by {@link instrument}: its event listener and observable
 * callbacks are removed, and its calls pass straight through. Returns false for anything else.
 */
export function uninstrument(instrumented: object): boolean {
  const t = stoppers.get(instrumented);
  if (t === undefined) return false;
  t.stop();
  stoppers.delete(instrumented);
  return true;
}
