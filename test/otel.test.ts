import { context, metrics, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  MeterProvider,
  MetricReader,
  type DataPoint,
  type Histogram,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { circuitBreaker, resilient, resilientFetch, retryBudget } from '../src/index.js';
import { instrument, uninstrument } from '../src/otel/index.js';
import { ManualClock } from './helpers/manual-clock.js';

/** A reader that exports nothing: the test collects on demand. */
class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

let reader: TestReader;
let meterProvider: MeterProvider;
const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(spans)],
});
const tracer = tracerProvider.getTracer('test');
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
});
afterAll(() => {
  context.disable();
});
beforeEach(() => {
  reader = new TestReader();
  meterProvider = new MeterProvider({ readers: [reader] });
  spans.reset();
});

const meter = () => meterProvider.getMeter('test');

async function collect(): Promise<MetricData[]> {
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  return resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics);
}

function matches(point: DataPoint<unknown>, attributes: Attributes): boolean {
  return Object.entries(attributes).every(([key, value]) => point.attributes[key] === value);
}

/** The sum of a counter's (or gauge's) points whose attributes include `attributes`. */
function value(metrics: MetricData[], name: string, attributes: Attributes = {}): number {
  const metric = metrics.find((m) => m.descriptor.name === name);
  if (metric === undefined) return 0;
  return (metric.dataPoints as DataPoint<number>[])
    .filter((p) => matches(p, attributes))
    .reduce((total, p) => total + p.value, 0);
}

function histogram(metrics: MetricData[], name: string, attributes: Attributes = {}): Histogram {
  const metric = metrics.find((m) => m.descriptor.name === name);
  const point = (metric?.dataPoints as DataPoint<Histogram>[] | undefined)?.find((p) =>
    matches(p, attributes),
  );
  if (point === undefined) throw new Error(`no ${name} point with ${JSON.stringify(attributes)}`);
  return point.value;
}

const none = (): number => 0;

function failing(times: number, error: () => unknown = () => new Error('boom')) {
  let calls = 0;
  return async (x: number): Promise<number> => {
    calls++;
    if (calls <= times) throw error();
    return x * 2;
  };
}

describe('instrument: calls, outcomes, durations', () => {
  it('counts calls by outcome and records their duration in seconds', async () => {
    const clock = new ManualClock();
    const slow = (ms: number) =>
      new Promise<number>((resolve) => clock.setTimer(() => resolve(ms), ms));
    const wrapped = instrument(resilient(slow, { name: 'slow', clock }), { meter: meter(), clock });
    const first = wrapped(1_500);
    const second = wrapped(500);
    await clock.advance(1_500);
    expect(await first).toBe(1_500);
    expect(await second).toBe(500);
    const metrics = await collect();
    const success = { 'bulwark.name': 'slow', 'bulwark.outcome': 'success' };
    expect(value(metrics, 'bulwark.calls', success)).toBe(2);
    const duration = histogram(metrics, 'bulwark.call.duration', success);
    expect(duration.count).toBe(2);
    expect(duration.sum).toBeCloseTo(2);
    expect(duration.min).toBeCloseTo(0.5);
    expect(duration.max).toBeCloseTo(1.5);
    const descriptor = metrics.find((m) => m.descriptor.name === 'bulwark.call.duration')!;
    expect(descriptor.descriptor.unit).toBe('s');
  });

  it('counts a failure with its error.type', async () => {
    const wrapped = instrument(
      resilient(
        failing(9, () => new TypeError('bad')),
        { name: 'f' },
      ),
      {
        meter: meter(),
      },
    );
    await expect(wrapped(1)).rejects.toThrow('bad');
    const metrics = await collect();
    expect(
      value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'failure', 'error.type': 'TypeError' }),
    ).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'success' })).toBe(0);
  });

  it('counts first attempts and retries, and why retries stopped', async () => {
    const wrapped = instrument(
      resilient(failing(2), { name: 'r', retry: { maxAttempts: 3, backoff: none } }),
      { meter: meter() },
    );
    expect(await wrapped(2)).toBe(4); // two retries, then success
    const always = instrument(
      resilient(failing(99), { name: 'r', retry: { maxAttempts: 2, backoff: none } }),
      { meter: meter() },
    );
    await expect(always(1)).rejects.toThrow('boom');
    const metrics = await collect();
    expect(value(metrics, 'bulwark.attempts', { 'bulwark.attempt.retry': false })).toBe(2);
    expect(value(metrics, 'bulwark.attempts', { 'bulwark.attempt.retry': true })).toBe(3);
    expect(
      value(metrics, 'bulwark.retries.stopped', { 'bulwark.retry.stop_reason': 'exhausted' }),
    ).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'success' })).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'failure' })).toBe(1);
  });

  it('counts a call answered by the fallback as outcome fallback, not success', async () => {
    const wrapped = instrument(resilient(failing(1), { name: 'fb', fallback: -1 }), {
      meter: meter(),
    });
    expect(await wrapped(1)).toBe(-1);
    expect(await wrapped(1)).toBe(2);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'fallback' })).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'success' })).toBe(1);
    expect(value(metrics, 'bulwark.fallbacks', { 'bulwark.name': 'fb' })).toBe(1);
  });

  it('counts timeouts by scope', async () => {
    const clock = new ManualClock();
    const wrapped = instrument(
      resilient(() => new Promise(() => undefined), { name: 't', timeout: 100, clock }),
      { meter: meter(), clock },
    );
    const outcome = wrapped().catch((e: unknown) => e);
    await clock.advance(100);
    expect((await outcome) as Error).toMatchObject({ name: 'TimeoutError' });
    const metrics = await collect();
    expect(value(metrics, 'bulwark.timeouts', { 'bulwark.timeout.scope': 'attempt' })).toBe(1);
    expect(
      value(metrics, 'bulwark.calls', {
        'bulwark.outcome': 'failure',
        'error.type': 'TimeoutError',
      }),
    ).toBe(1);
    expect(histogram(metrics, 'bulwark.call.duration').sum).toBeCloseTo(0.1);
  });
});

describe('instrument: stages', () => {
  it('counts rejections by reason, breaker transitions, and observes the circuit state', async () => {
    const clock = new ManualClock();
    const wrapped = instrument(
      resilient(failing(99), {
        name: 'cb',
        clock,
        circuitBreaker: { consecutiveFailures: 2, halfOpenAfter: 1_000 },
      }),
      { meter: meter() },
    );
    for (let i = 0; i < 5; i++) await wrapped(1).catch(() => undefined);
    let metrics = await collect();
    expect(
      value(metrics, 'bulwark.rejections', { 'bulwark.rejection.reason': 'circuit_open' }),
    ).toBe(3);
    expect(value(metrics, 'bulwark.circuit.transitions', { 'bulwark.circuit.state': 'open' })).toBe(
      1,
    );
    expect(value(metrics, 'bulwark.circuit.state', { 'bulwark.circuit.state': 'open' })).toBe(1);
    expect(value(metrics, 'bulwark.circuit.state', { 'bulwark.circuit.state': 'closed' })).toBe(0);
    expect(
      value(metrics, 'bulwark.calls', {
        'bulwark.outcome': 'failure',
        'error.type': 'CircuitOpenError',
      }),
    ).toBe(3);
    await clock.advance(1_000);
    await wrapped(1).catch(() => undefined); // the trial fails: open again
    metrics = await collect();
    expect(
      value(metrics, 'bulwark.circuit.transitions', { 'bulwark.circuit.state': 'half_open' }),
    ).toBe(1);
    expect(value(metrics, 'bulwark.circuit.transitions', { 'bulwark.circuit.state': 'open' })).toBe(
      2,
    );
  });

  it('observes bulkhead calls in flight and queued', async () => {
    const releases: (() => void)[] = [];
    const hold = () => new Promise<void>((resolve) => releases.push(resolve));
    const wrapped = instrument(
      resilient(hold, { name: 'bh', bulkhead: { maxConcurrent: 1, maxQueue: 2 } }),
      { meter: meter() },
    );
    const calls = [wrapped(), wrapped(), wrapped()];
    await expect(wrapped()).rejects.toMatchObject({ name: 'BulkheadRejectedError' });
    let metrics = await collect();
    expect(value(metrics, 'bulwark.bulkhead.in_flight', { 'bulwark.name': 'bh' })).toBe(1);
    expect(value(metrics, 'bulwark.bulkhead.queued', { 'bulwark.name': 'bh' })).toBe(2);
    expect(
      value(metrics, 'bulwark.rejections', { 'bulwark.rejection.reason': 'bulkhead_full' }),
    ).toBe(1);
    while (releases.length > 0) {
      releases.shift()!();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(calls);
    metrics = await collect();
    expect(value(metrics, 'bulwark.bulkhead.in_flight')).toBe(0);
    expect(value(metrics, 'bulwark.bulkhead.queued')).toBe(0);
  });

  it('counts cache hits and misses', async () => {
    const wrapped = instrument(
      resilient(async (k: string) => k, { name: 'c', cache: true }),
      {
        meter: meter(),
      },
    );
    await wrapped('a');
    await wrapped('a');
    await wrapped('a');
    await wrapped('b');
    const metrics = await collect();
    expect(value(metrics, 'bulwark.cache.requests', { 'bulwark.cache.result': 'hit' })).toBe(2);
    expect(value(metrics, 'bulwark.cache.requests', { 'bulwark.cache.result': 'miss' })).toBe(2);
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'success' })).toBe(4);
  });

  it('counts rate-limiter waits and how long they were', async () => {
    const clock = new ManualClock();
    const wrapped = instrument(
      resilient(async () => 1, {
        name: 'rl',
        clock,
        rateLimiter: { limit: 1, interval: 1_000, burst: 1, maxWait: 5_000 },
      }),
      { meter: meter() },
    );
    await wrapped();
    const second = wrapped();
    await clock.advance(1_000);
    await second;
    const metrics = await collect();
    expect(value(metrics, 'bulwark.rate_limiter.waits')).toBe(1);
    const waits = histogram(metrics, 'bulwark.rate_limiter.wait.duration');
    expect(waits.count).toBe(1);
    expect(waits.sum).toBeCloseTo(1);
  });
});

describe('instrument: partitioned stages', () => {
  it('carries bulwark.partition on rejections, transitions, circuit states, bulkhead counts and waits', async () => {
    const clock = new ManualClock();
    const releases: (() => void)[] = [];
    const fn = (key: string, mode: 'fail' | 'hold' | 'ok') =>
      mode === 'fail'
        ? Promise.reject(new Error('down'))
        : mode === 'hold'
          ? new Promise<string>((resolve) => releases.push(() => resolve(key)))
          : Promise.resolve(key);
    const partition = { by: (key: string) => key };
    const wrapped = instrument(
      resilient(fn, {
        name: 'p',
        clock,
        circuitBreaker: { consecutiveFailures: 1, halfOpenAfter: 1_000, partition },
        rateLimiter: { limit: 1, interval: 100, maxWait: 1_000, partition },
        bulkhead: { maxConcurrent: 1, partition },
      }),
      { meter: meter() },
    );
    await wrapped('dead', 'fail').catch(() => undefined);
    await wrapped('dead', 'ok').catch(() => undefined);
    const held = wrapped('busy', 'hold');
    // Waits for busy's token, then finds its bulkhead full (handled now: it rejects during advance).
    const waiting = wrapped('busy', 'ok').then(
      () => 'admitted',
      (error: unknown) => (error as Error).name,
    );
    await clock.advance(100);
    expect(await waiting).toBe('BulkheadRejectedError');
    const metrics = await collect();
    const dead = { 'bulwark.partition': 'dead' };
    const busy = { 'bulwark.partition': 'busy' };
    expect(
      value(metrics, 'bulwark.rejections', { ...dead, 'bulwark.rejection.reason': 'circuit_open' }),
    ).toBe(1);
    expect(
      value(metrics, 'bulwark.rejections', {
        ...busy,
        'bulwark.rejection.reason': 'bulkhead_full',
      }),
    ).toBe(1);
    expect(
      value(metrics, 'bulwark.circuit.transitions', { ...dead, 'bulwark.circuit.state': 'open' }),
    ).toBe(1);
    expect(
      value(metrics, 'bulwark.circuit.state', { ...dead, 'bulwark.circuit.state': 'open' }),
    ).toBe(1);
    expect(
      value(metrics, 'bulwark.circuit.state', { ...busy, 'bulwark.circuit.state': 'closed' }),
    ).toBe(1);
    expect(value(metrics, 'bulwark.bulkhead.in_flight', busy)).toBe(1);
    expect(value(metrics, 'bulwark.bulkhead.in_flight', dead)).toBe(0);
    expect(value(metrics, 'bulwark.rate_limiter.waits', busy)).toBe(1);
    releases.shift()!();
    await held;
  });
});

describe('instrument: policies', () => {
  it('records calls of the functions it wraps and of execute, and counts each event once', async () => {
    const policy = instrument(resilient({ name: 'inventory', retry: { backoff: none } }), {
      meter: meter(),
    });
    const getStock = policy(failing(1));
    expect(await getStock(3)).toBe(6);
    expect(await policy.execute(({ attempt }) => attempt)).toBe(1);
    const metrics = await collect();
    const ok = { 'bulwark.name': 'inventory', 'bulwark.outcome': 'success' };
    expect(value(metrics, 'bulwark.calls', ok)).toBe(2);
    expect(value(metrics, 'bulwark.attempts', { 'bulwark.attempt.retry': true })).toBe(1);
    expect(typeof policy.describe).toBe('function');
  });

  it('instruments methods it decorates', async () => {
    const policy = instrument(resilient({ name: 'repo' }), { meter: meter() });
    class Repo {
      factor = 10;
      @policy
      async load(x: number): Promise<number> {
        return x * this.factor;
      }
    }
    expect(await new Repo().load(2)).toBe(20);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.calls', { 'bulwark.name': 'repo' })).toBe(1);
  });
});

describe('instrument: spans', () => {
  it('records a span per call with retries as events, and an error status on failure', async () => {
    const ok = instrument(resilient(failing(1), { name: 'users', retry: { backoff: none } }), {
      meter: meter(),
      tracer,
    });
    const ko = instrument(resilient(failing(9), { name: 'orders' }), { meter: meter(), tracer });
    expect(await ok(1)).toBe(2);
    await expect(ko(1)).rejects.toThrow('boom');
    const [first, second] = spans.getFinishedSpans();
    expect(first!.name).toBe('users');
    expect(first!.attributes).toMatchObject({
      'bulwark.name': 'users',
      'bulwark.outcome': 'success',
    });
    expect(first!.events.map((e) => [e.name, e.attributes])).toEqual([
      ['bulwark.retry', { 'bulwark.attempt': 1, 'bulwark.retry.delay': 0, 'error.type': 'Error' }],
    ]);
    expect(first!.status.code).toBe(0); // UNSET
    expect(second!.name).toBe('orders');
    expect(second!.status).toEqual({ code: 2, message: 'boom' }); // ERROR
    expect(second!.events.map((e) => e.name)).toEqual(['exception']);
  });

  it('without a tracer, adds its events to the active span', async () => {
    const wrapped = instrument(
      resilient(failing(1), {
        name: 'x',
        retry: { backoff: none },
        circuitBreaker: { consecutiveFailures: 1, halfOpenAfter: 0 },
      }),
      { meter: meter() },
    );
    await tracer.startActiveSpan('request', async (span) => {
      await wrapped(1).catch(() => undefined);
      span.end();
    });
    const [request] = spans.getFinishedSpans();
    expect(request!.events.map((e) => [e.name, e.attributes])).toEqual([
      ['bulwark.circuit.state_change', { 'bulwark.circuit.state': 'open' }],
      ['bulwark.retry', { 'bulwark.attempt': 1, 'bulwark.retry.delay': 0, 'error.type': 'Error' }],
      ['bulwark.circuit.state_change', { 'bulwark.circuit.state': 'half_open' }],
      ['bulwark.circuit.state_change', { 'bulwark.circuit.state': 'closed' }],
    ]);
    expect(trace.getActiveSpan()).toBeUndefined();
  });
});

describe('instrument: off costs nothing', () => {
  it('leaves the original function and its siblings untouched', async () => {
    const policy = resilient({ retry: { backoff: none } });
    const a = policy(failing(1));
    const b = policy(failing(1));
    const ownBefore = Object.getOwnPropertyNames(a).sort();
    const instrumented = instrument(a, { meter: meter(), name: 'a' });
    expect(instrumented).not.toBe(a);
    expect(Object.getOwnPropertyNames(a).sort()).toEqual(ownBefore);
    expect(await b(5)).toBe(10);
    expect(await a(5)).toBe(10);
    const metrics = await collect();
    // Neither `a` itself nor `b` went through the instrumented wrapper.
    expect(value(metrics, 'bulwark.calls')).toBe(0);
    expect(await instrumented(1)).toBe(2);
    expect(value(await collect(), 'bulwark.calls', { 'bulwark.name': 'a' })).toBe(1);
  });

  it('stops recording after uninstrument', async () => {
    const wrapped = instrument(
      resilient(async () => 1, { name: 'u' }),
      { meter: meter() },
    );
    await wrapped();
    expect(uninstrument(wrapped)).toBe(true);
    expect(uninstrument(wrapped)).toBe(false);
    await wrapped();
    expect(value(await collect(), 'bulwark.calls')).toBe(1);
  });

  it('names what is wrong with its arguments', () => {
    expect(() => instrument((() => 1) as never)).toThrow(TypeError);
    expect(() =>
      instrument(
        resilient(async () => 1),
        { meter: {} as never, name: '', colour: 1 } as never,
      ),
    ).toThrow(/`meter`[\s\S]*`name`[\s\S]*Unknown option `colour`/);
  });
});

describe('instrument: counts between collections', () => {
  it('adds calls and first attempts counted between two collections, and on uninstrument', async () => {
    const wrapped = instrument(
      resilient(async () => 1, { name: 'between' }),
      { meter: meter() },
    );
    await wrapped();
    await wrapped();
    expect(value(await collect(), 'bulwark.calls', { 'bulwark.name': 'between' })).toBe(2);
    await wrapped();
    // Cumulative: counted once each, however many collections.
    expect(value(await collect(), 'bulwark.calls', { 'bulwark.name': 'between' })).toBe(3);
    expect(
      value(await collect(), 'bulwark.attempts', {
        'bulwark.name': 'between',
        'bulwark.attempt.retry': false,
      }),
    ).toBe(3);
    await wrapped();
    uninstrument(wrapped);
    expect(value(await collect(), 'bulwark.calls', { 'bulwark.name': 'between' })).toBe(4);
  });

  it('keeps every failure with many error types and no collection in between', async () => {
    let n = 0;
    const wrapped = instrument(
      resilient(
        async () => {
          const error = new Error('x');
          error.name = `Error${n++}`;
          throw error;
        },
        { name: 'types' },
      ),
      { meter: meter() },
    );
    for (let i = 0; i < 1_400; i++) await wrapped().catch(() => undefined);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.calls', { 'bulwark.name': 'types' })).toBe(1_400);
    expect(
      value(metrics, 'bulwark.calls', { 'bulwark.name': 'types', 'error.type': 'Error1399' }),
    ).toBe(1);
  });
});

describe('instrument: every event kind', () => {
  it('counts retries stopped by the retry budget', async () => {
    const budget = retryBudget({ ratio: 0, minPerSecond: 0 });
    const wrapped = instrument(
      resilient(failing(9), { name: 'b', retry: { maxAttempts: 5, backoff: none, budget } }),
      { meter: meter() },
    );
    await expect(wrapped(1)).rejects.toThrow('boom');
    const metrics = await collect();
    expect(
      value(metrics, 'bulwark.retries.stopped', { 'bulwark.retry.stop_reason': 'budget' }),
    ).toBe(1);
    expect(value(metrics, 'bulwark.retries.stopped')).toBe(1);
    expect(value(metrics, 'bulwark.attempts', { 'bulwark.attempt.retry': true })).toBe(0);
  });

  it('counts retries stopped by the deadline, and total timeouts', async () => {
    const clock = new ManualClock();
    const wrapped = instrument(
      resilient(failing(9), {
        name: 'd',
        clock,
        timeout: { total: 1_000 },
        retry: { maxAttempts: 5, backoff: () => 5_000 },
      }),
      { meter: meter() },
    );
    await expect(wrapped(1)).rejects.toThrow('boom');
    const hang = instrument(
      resilient(() => new Promise(() => undefined), { name: 'h', clock, timeout: { total: 250 } }),
      { meter: meter() },
    );
    const outcome = hang().catch((e: unknown) => e);
    await clock.advance(250);
    expect(await outcome).toMatchObject({ name: 'TimeoutError' });
    const metrics = await collect();
    expect(
      value(metrics, 'bulwark.retries.stopped', {
        'bulwark.name': 'd',
        'bulwark.retry.stop_reason': 'deadline',
      }),
    ).toBe(1);
    expect(
      value(metrics, 'bulwark.timeouts', { 'bulwark.name': 'h', 'bulwark.timeout.scope': 'total' }),
    ).toBe(1);
    expect(value(metrics, 'bulwark.timeouts', { 'bulwark.timeout.scope': 'attempt' })).toBe(0);
    expect(
      value(metrics, 'bulwark.calls', { 'bulwark.name': 'h', 'error.type': 'TimeoutError' }),
    ).toBe(1);
  });

  it('adds a timeout event to the span of the call whose retry timed out', async () => {
    // A retry's attempt timer is armed in the call's context (the first attempt's deadline is not: see
    // the report on the shared deadline queue), so real timers carry the span to the event.
    let calls = 0;
    const wrapped = instrument(
      resilient(() => (++calls === 1 ? Promise.reject(new Error('boom')) : new Promise(() => {})), {
        name: 'ta',
        timeout: 5,
        retry: { maxAttempts: 2, backoff: none },
      }),
      { meter: meter(), tracer },
    );
    await expect(wrapped()).rejects.toMatchObject({ name: 'TimeoutError', scope: 'attempt' });
    const [span] = spans.getFinishedSpans();
    expect(span!.events.map((e) => [e.name, e.attributes]).slice(0, 2)).toEqual([
      ['bulwark.retry', { 'bulwark.attempt': 1, 'bulwark.retry.delay': 0, 'error.type': 'Error' }],
      ['bulwark.timeout', { 'bulwark.timeout.scope': 'attempt', 'bulwark.timeout.limit': 0.005 }],
    ]);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.timeouts', { 'bulwark.timeout.scope': 'attempt' })).toBe(1);
  });

  it('counts retries on a result, whose span event has no error.type', async () => {
    let calls = 0;
    const wrapped = instrument(
      resilient(async () => ++calls, {
        name: 'res',
        retry: { maxAttempts: 3, backoff: () => 20, retryOnResult: (r) => (r as number) < 2 },
      }),
      { meter: meter(), tracer },
    );
    expect(await wrapped()).toBe(2);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.attempts', { 'bulwark.attempt.retry': true })).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'success' })).toBe(1);
    const [span] = spans.getFinishedSpans();
    expect(span!.events.map((e) => [e.name, e.attributes])).toEqual([
      ['bulwark.retry', { 'bulwark.attempt': 1, 'bulwark.retry.delay': 0.02 }],
    ]);
  });

  it('counts rejections by the rate limiter, with a span event', async () => {
    const clock = new ManualClock();
    const wrapped = instrument(
      resilient(async () => 1, {
        name: 'rl',
        clock,
        rateLimiter: { limit: 1, interval: 1_000, burst: 1, maxWait: 0 },
      }),
      { meter: meter(), tracer },
    );
    expect(await wrapped()).toBe(1);
    await expect(wrapped()).rejects.toMatchObject({ name: 'RateLimitedError' });
    const metrics = await collect();
    expect(
      value(metrics, 'bulwark.rejections', { 'bulwark.rejection.reason': 'rate_limited' }),
    ).toBe(1);
    expect(value(metrics, 'bulwark.rejections')).toBe(1);
    expect(value(metrics, 'bulwark.rate_limiter.waits')).toBe(0);
    expect(
      value(metrics, 'bulwark.calls', {
        'bulwark.outcome': 'failure',
        'error.type': 'RateLimitedError',
      }),
    ).toBe(1);
    const rejected = spans.getFinishedSpans()[1]!;
    expect(rejected.events.map((e) => [e.name, e.attributes])).toContainEqual([
      'bulwark.rejection',
      { 'bulwark.rejection.reason': 'rate_limited' },
    ]);
  });

  it('counts calls that waited too long in the bulkhead queue', async () => {
    const clock = new ManualClock();
    const releases: (() => void)[] = [];
    const wrapped = instrument(
      resilient(() => new Promise<void>((resolve) => releases.push(resolve)), {
        name: 'q',
        clock,
        bulkhead: { maxConcurrent: 1, maxQueue: 1, queueTimeout: 100 },
      }),
      { meter: meter() },
    );
    const first = wrapped();
    const second = wrapped().catch((e: unknown) => e);
    let metrics = await collect();
    expect(value(metrics, 'bulwark.bulkhead.queued', { 'bulwark.name': 'q' })).toBe(1);
    await clock.advance(100);
    expect(await second).toMatchObject({ name: 'BulkheadRejectedError' });
    releases[0]!();
    await first;
    metrics = await collect();
    expect(
      value(metrics, 'bulwark.rejections', {
        'bulwark.rejection.reason': 'bulkhead_queue_timeout',
      }),
    ).toBe(1);
    expect(value(metrics, 'bulwark.rejections')).toBe(1);
    expect(value(metrics, 'bulwark.bulkhead.queued')).toBe(0);
  });

  it('counts joined cache requests and stale values served', async () => {
    const clock = new ManualClock();
    let fail = false;
    const releases: (() => void)[] = [];
    const wrapped = instrument(
      resilient(
        (k: string) =>
          fail
            ? Promise.reject(new Error('down'))
            : new Promise<string>((resolve) => releases.push(() => resolve(k.toUpperCase()))),
        { name: 'c', clock, cache: { ttl: 100, staleIfError: 1_000 } },
      ),
      { meter: meter() },
    );
    const first = wrapped('a');
    const second = wrapped('a'); // shares the call in flight
    releases[0]!();
    expect(await first).toBe('A');
    expect(await second).toBe('A');
    expect(releases).toHaveLength(1);
    await clock.advance(200);
    fail = true;
    expect(await wrapped('a')).toBe('A'); // stale, the refresh failed
    const metrics = await collect();
    expect(value(metrics, 'bulwark.cache.requests', { 'bulwark.cache.result': 'joined' })).toBe(1);
    expect(value(metrics, 'bulwark.cache.requests', { 'bulwark.cache.result': 'miss' })).toBe(2);
    expect(value(metrics, 'bulwark.cache.requests', { 'bulwark.cache.result': 'hit' })).toBe(0);
    expect(value(metrics, 'bulwark.cache.stale_served', { 'bulwark.name': 'c' })).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'success' })).toBe(3);
  });

  it('counts stale hits (staleWhileRevalidate) and failed background refreshes', async () => {
    const clock = new ManualClock();
    let fail = false;
    const wrapped = instrument(
      resilient(
        async (k: string) => {
          if (fail) throw new Error('down');
          return k;
        },
        { name: 'swr', clock, cache: { ttl: 100, staleWhileRevalidate: 1_000 } },
      ),
      { meter: meter() },
    );
    expect(await wrapped('a')).toBe('a');
    await clock.advance(100);
    fail = true;
    expect(await wrapped('a')).toBe('a');
    await clock.advance(0);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.cache.requests', { 'bulwark.cache.result': 'stale' })).toBe(1);
    expect(value(metrics, 'bulwark.cache.refresh_failures', { 'bulwark.name': 'swr' })).toBe(1);
  });

  it('counts chaos injections by kind, with span events', async () => {
    const clock = new ManualClock();
    let draw = 0;
    // Per attempt: latency, then fault, then result. Attempt 1: latency + fault; attempt 2: a result.
    const draws = [0, 0, 0.9, 0.9, 0];
    const wrapped = instrument(
      resilient(async () => 'real', {
        name: 'chaos',
        clock,
        random: () => draws[draw++] ?? 0.9,
        retry: { maxAttempts: 2, backoff: none },
        chaos: {
          latency: { rate: 0.5, delay: 250 },
          fault: { rate: 0.5, error: () => new TypeError('injected') },
          result: { rate: 0.5, value: 'fake' },
        },
      }),
      { meter: meter(), tracer },
    );
    const call = wrapped();
    await clock.advance(250);
    expect(await call).toBe('fake');
    const metrics = await collect();
    const kind = (k: string) =>
      value(metrics, 'bulwark.chaos.injections', {
        'bulwark.name': 'chaos',
        'bulwark.chaos.kind': k,
      });
    expect([kind('latency'), kind('fault'), kind('result')]).toEqual([1, 1, 1]);
    const [span] = spans.getFinishedSpans();
    expect(span!.events.map((e) => [e.name, e.attributes])).toEqual([
      ['bulwark.chaos', { 'bulwark.chaos.kind': 'latency', 'bulwark.chaos.delay': 0.25 }],
      ['bulwark.chaos', { 'bulwark.chaos.kind': 'fault', 'error.type': 'TypeError' }],
      [
        'bulwark.retry',
        { 'bulwark.attempt': 1, 'bulwark.retry.delay': 0, 'error.type': 'TypeError' },
      ],
      ['bulwark.chaos', { 'bulwark.chaos.kind': 'result' }],
    ]);
  });

  it('counts breaker transitions to every state and observes each state', async () => {
    const breaker = circuitBreaker({ consecutiveFailures: 1, halfOpenAfter: 1_000 });
    const wrapped = instrument(resilient(failing(1), { name: 'cb', circuitBreaker: breaker }), {
      meter: meter(),
    });
    const state = async (): Promise<Record<string, number>> => {
      const metrics = await collect();
      const states = ['closed', 'open', 'half_open', 'isolated'];
      return Object.fromEntries(
        states.map((s) => [
          s,
          value(metrics, 'bulwark.circuit.state', {
            'bulwark.name': 'cb',
            'bulwark.circuit.state': s,
          }),
        ]),
      );
    };
    expect(await state()).toEqual({ closed: 1, open: 0, half_open: 0, isolated: 0 });
    breaker.reset(); // closed already: no transition (issue 10 item 3)
    breaker.isolate();
    breaker.isolate(); // isolated already: no transition
    expect(await state()).toEqual({ closed: 0, open: 0, half_open: 0, isolated: 1 });
    await expect(wrapped(1)).rejects.toMatchObject({ name: 'CircuitOpenError' });
    breaker.reset();
    expect(await state()).toEqual({ closed: 1, open: 0, half_open: 0, isolated: 0 });
    await expect(wrapped(1)).rejects.toThrow('boom'); // opens
    expect(await state()).toEqual({ closed: 0, open: 1, half_open: 0, isolated: 0 });
    const metrics = await collect();
    const transitions = (s: string) =>
      value(metrics, 'bulwark.circuit.transitions', { 'bulwark.circuit.state': s });
    expect([transitions('isolated'), transitions('closed'), transitions('open')]).toEqual([
      1, 1, 1,
    ]);
    expect(transitions('half_open')).toBe(0);
    expect(
      value(metrics, 'bulwark.rejections', { 'bulwark.rejection.reason': 'circuit_open' }),
    ).toBe(1);
  });

  it('records no circuit or bulkhead values for a pipeline without them', async () => {
    const wrapped = instrument(
      resilient(async () => 1, { name: 'plain' }),
      { meter: meter() },
    );
    await wrapped();
    const metrics = await collect();
    const names = metrics.filter((m) => m.dataPoints.length > 0).map((m) => m.descriptor.name);
    expect(names.sort()).toEqual(['bulwark.attempts', 'bulwark.call.duration', 'bulwark.calls']);
  });

  it('keeps collecting other metrics when stats() throws (a failing clock)', async () => {
    let broken = false;
    const clock = {
      now: () => {
        if (broken) throw new Error('clock');
        return 0;
      },
      setTimer: (callback: () => void, ms: number) => setTimeout(callback, ms),
      clearTimer: (handle: unknown) => clearTimeout(handle as NodeJS.Timeout),
    };
    const wrapped = instrument(
      resilient(async () => 1, { name: 'sc', clock, circuitBreaker: {} }),
      { meter: meter(), clock: { now: () => 0 } },
    );
    await wrapped();
    broken = true;
    const metrics = await collect(); // no errors
    expect(value(metrics, 'bulwark.calls', { 'bulwark.name': 'sc' })).toBe(1);
    expect(metrics.find((m) => m.descriptor.name === 'bulwark.circuit.state')).toBeUndefined();
  });
});

describe('instrument: fallbacks', () => {
  it('with a tracer, marks the span of a call answered by the fallback, with an event', async () => {
    const wrapped = instrument(
      resilient(
        failing(1, () => new RangeError('out')),
        { name: 'fb', fallback: -1 },
      ),
      { meter: meter(), tracer },
    );
    expect(await wrapped(1)).toBe(-1);
    const [span] = spans.getFinishedSpans();
    expect(span!.attributes).toMatchObject({ 'bulwark.outcome': 'fallback' });
    expect(span!.attributes['error.type']).toBeUndefined();
    expect(span!.status.code).toBe(SpanStatusCode.UNSET);
    expect(span!.events.map((e) => [e.name, e.attributes])).toEqual([
      ['bulwark.fallback', { 'error.type': 'RangeError' }],
    ]);
  });

  it('does not mark an instrumented call for a fallback used by a call that bypassed it', async () => {
    const original = resilient(failing(1), { name: 'fb', fallback: -1 });
    const wrapped = instrument(original, { meter: meter() });
    expect(await original(1)).toBe(-1); // not through the instrumented wrapper
    expect(await wrapped(1)).toBe(2);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.fallbacks')).toBe(1); // events count for the whole target
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'success' })).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'fallback' })).toBe(0);
  });

  it('counts a call whose fallback threw as outcome fallback', async () => {
    const wrapped = instrument(
      resilient(failing(9), {
        name: 'fbt',
        fallback: () => {
          throw new Error('fallback failed too');
        },
      }),
      { meter: meter() },
    );
    await expect(wrapped(1)).rejects.toThrow('fallback failed too');
    const metrics = await collect();
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'fallback' })).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'failure' })).toBe(0);
  });
});

describe('instrument: errors', () => {
  it('records a non-Error rejection as error.type _OTHER, without an exception event', async () => {
    const wrapped = instrument(
      resilient(
        failing(9, () => 'nope'),
        { name: 'str' },
      ),
      { meter: meter(), tracer },
    );
    await expect(wrapped(1)).rejects.toBe('nope');
    const metrics = await collect();
    expect(
      value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'failure', 'error.type': '_OTHER' }),
    ).toBe(1);
    expect(histogram(metrics, 'bulwark.call.duration', { 'error.type': '_OTHER' }).count).toBe(1);
    const [span] = spans.getFinishedSpans();
    expect(span!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'nope' });
    expect(span!.attributes).toMatchObject({
      'bulwark.outcome': 'failure',
      'error.type': '_OTHER',
    });
    expect(span!.events).toEqual([]);
  });

  it('names an error without a name after its class, else Error', async () => {
    class QuotaError extends Error {}
    const Anonymous = [class extends Error {}][0]!;
    const errors = [
      Object.assign(new QuotaError('q'), { name: '' }),
      Object.assign(new Anonymous('a'), { name: '' }),
    ];
    const wrapped = instrument(
      resilient(async (i: number) => Promise.reject(errors[i]!), { name: 'n' }),
      { meter: meter() },
    );
    await expect(wrapped(0)).rejects.toBe(errors[0]);
    await expect(wrapped(1)).rejects.toBe(errors[1]);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.calls', { 'error.type': 'QuotaError' })).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'error.type': 'Error' })).toBe(1);
  });

  it('turns a synchronous throw of the target into a rejection, counted as a failure', async () => {
    const http = instrument(
      resilientFetch({
        name: 'sync',
        fetch: () => {
          throw new TypeError('Invalid URL');
        },
      }),
      { meter: meter(), tracer },
    );
    const result = http('not a url');
    expect(result).toBeInstanceOf(Promise);
    await expect(result).rejects.toThrow('Invalid URL');
    const metrics = await collect();
    expect(
      value(metrics, 'bulwark.calls', {
        'bulwark.name': 'sync',
        'bulwark.outcome': 'failure',
        'error.type': 'TypeError',
      }),
    ).toBe(1);
    const [span] = spans.getFinishedSpans();
    expect(span!.status.code).toBe(SpanStatusCode.ERROR);
    expect(span!.events.map((e) => e.name)).toEqual(['exception']);
  });
});

describe('instrument: resilientFetch', () => {
  const respond = (...statuses: number[]) => {
    const seen: string[] = [];
    const fetch = async (input: string | URL | Request): Promise<Response> => {
      seen.push(input instanceof Request ? input.url : input.toString());
      return new Response(null, { status: statuses.shift() ?? 200 });
    };
    return { fetch, seen };
  };

  it('records calls, retries and a span per request, keeping describe() and on()', async () => {
    const { fetch, seen } = respond(503, 200);
    const raw = resilientFetch({ name: 'payments', fetch, retry: { backoff: none } });
    const http = instrument(raw, { meter: meter(), tracer });
    const events: string[] = [];
    const off = http.on((event) => events.push(event.type));
    const response = await http('https://pay.example/charge');
    off();
    expect(response.status).toBe(200);
    expect(seen).toEqual(['https://pay.example/charge', 'https://pay.example/charge']);
    expect(events).toEqual(['retryScheduled']);
    expect(http.describe().fetch).toMatchObject({ fetch: 'custom' });
    expect(http.describe().name).toBe('payments');
    expect(http.stats()).toEqual(raw.stats());
    expect(http.name).toBe('resilientFetch');
    const metrics = await collect();
    const attributes = { 'bulwark.name': 'payments' };
    expect(value(metrics, 'bulwark.calls', { ...attributes, 'bulwark.outcome': 'success' })).toBe(
      1,
    );
    expect(
      value(metrics, 'bulwark.attempts', { ...attributes, 'bulwark.attempt.retry': true }),
    ).toBe(1);
    const [span] = spans.getFinishedSpans();
    expect(span!.name).toBe('payments');
    expect(span!.events.map((e) => [e.name, e.attributes])).toEqual([
      [
        'bulwark.retry',
        { 'bulwark.attempt': 1, 'bulwark.retry.delay': 0, 'error.type': 'ResponseStatusError' },
      ],
    ]);
  });

  it('is named resilientFetch without a name', async () => {
    const { fetch } = respond(200);
    const http = instrument(resilientFetch({ fetch }), { meter: meter() });
    await http('https://example.com/');
    const metrics = await collect();
    expect(value(metrics, 'bulwark.calls', { 'bulwark.name': 'resilientFetch' })).toBe(1);
  });
});

describe('instrument: policies, more', () => {
  it('counts events of functions the policy wrapped before, but not their calls', async () => {
    const original = resilient({ name: 'p', retry: { backoff: none } });
    const before = original(failing(1));
    const policy = instrument(original, { meter: meter() });
    const after = policy(failing(1));
    expect(await before(1)).toBe(2);
    let metrics = await collect();
    expect(value(metrics, 'bulwark.calls')).toBe(0);
    expect(value(metrics, 'bulwark.attempts', { 'bulwark.attempt.retry': true })).toBe(1);
    expect(await after(1)).toBe(2);
    metrics = await collect();
    expect(value(metrics, 'bulwark.calls', { 'bulwark.name': 'p' })).toBe(1);
    expect(value(metrics, 'bulwark.attempts', { 'bulwark.attempt.retry': true })).toBe(2);
    expect(value(metrics, 'bulwark.attempts', { 'bulwark.attempt.retry': false })).toBe(1);
  });

  it('keeps name, length, this, describe, on and stats of the functions it wraps', async () => {
    const policy = instrument(
      resilient({ name: 'inv', bulkhead: { maxConcurrent: 1, maxQueue: 0 } }),
      { meter: meter() },
    );
    const releases: (() => void)[] = [];
    const target = {
      factor: 3,
      scale: policy(function scale(this: { factor: number }, x: number, y: number) {
        return new Promise<number>((resolve) => releases.push(() => resolve(x * y * this.factor)));
      }),
    };
    expect(target.scale.name).toBe('scale');
    expect(target.scale.length).toBe(2);
    expect(target.scale.describe().name).toBe('inv');
    const fnEvents: string[] = [];
    const policyEvents: string[] = [];
    const offFn = target.scale.on((event) => fnEvents.push(event.type));
    const offPolicy = policy.on((event) => policyEvents.push(event.type));
    const running = target.scale(2, 5);
    expect(target.scale.stats().bulkhead).toMatchObject({ inFlight: 1, queued: 0 });
    expect(policy.stats().bulkhead).toMatchObject({ inFlight: 1, queued: 0 });
    await expect(target.scale(1, 1)).rejects.toMatchObject({ name: 'BulkheadRejectedError' });
    releases[0]!();
    expect(await running).toBe(30);
    offFn();
    offPolicy();
    expect(fnEvents).toEqual(['callRejected']);
    expect(policyEvents).toEqual(['callRejected']);
    expect(policy.describe().stages.find((s) => s.stage === 'bulkhead')?.enabled).toBe(true);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.rejections', { 'bulwark.name': 'inv' })).toBe(1); // counted once
    expect(value(metrics, 'bulwark.calls', { 'bulwark.name': 'inv' })).toBe(2);
  });

  it('records calls of execute, passing its signal on', async () => {
    const policy = instrument(resilient({ name: 'ex' }), { meter: meter(), tracer });
    const controller = new AbortController();
    const pending = policy.execute(() => new Promise(() => undefined), {
      signal: controller.signal,
    });
    controller.abort(new RangeError('stop'));
    await expect(pending).rejects.toThrow('stop');
    const metrics = await collect();
    expect(
      value(metrics, 'bulwark.calls', {
        'bulwark.name': 'ex',
        'bulwark.outcome': 'failure',
        'error.type': 'RangeError',
      }),
    ).toBe(1);
    expect(spans.getFinishedSpans().map((s) => s.name)).toEqual(['ex']);
  });

  it('instruments methods decorated the TC39 way, with a span per call', async () => {
    const policy = instrument(resilient({ name: 'repo' }), { meter: meter(), tracer });
    class Repo {
      constructor(private readonly factor: number) {}
      @policy
      async load(x: number): Promise<number> {
        if (x < 0) throw new RangeError('negative');
        return x * this.factor;
      }
    }
    const repo = new Repo(10);
    expect(await repo.load(2)).toBe(20);
    await expect(repo.load(-1)).rejects.toThrow('negative');
    const metrics = await collect();
    expect(value(metrics, 'bulwark.calls', { 'bulwark.outcome': 'success' })).toBe(1);
    expect(value(metrics, 'bulwark.calls', { 'error.type': 'RangeError' })).toBe(1);
    expect(spans.getFinishedSpans().map((s) => s.attributes['bulwark.outcome'])).toEqual([
      'success',
      'failure',
    ]);
  });

  it('instruments methods decorated the legacy way (experimentalDecorators)', async () => {
    const policy = instrument(resilient({ name: 'legacy', retry: { backoff: none } }), {
      meter: meter(),
    });
    let calls = 0;
    class Repo {
      factor = 10;
      async load(x: number): Promise<number> {
        if (++calls === 1) throw new Error('flaky');
        return x * this.factor;
      }
    }
    // What TypeScript's __decorate does for `@policy` under experimentalDecorators.
    const descriptor = Object.getOwnPropertyDescriptor(Repo.prototype, 'load')!;
    const decorated = policy(Repo.prototype, 'load', descriptor);
    Object.defineProperty(Repo.prototype, 'load', decorated);
    expect(decorated.value).not.toBe(descriptor.value);
    expect(await new Repo().load(2)).toBe(20);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.calls', { 'bulwark.name': 'legacy' })).toBe(1);
    expect(value(metrics, 'bulwark.attempts', { 'bulwark.attempt.retry': true })).toBe(1);
    expect(() => policy(Repo.prototype, 'x', { get: () => 1 })).toThrow(TypeError);
  });
});

describe('instrument: names and meters', () => {
  it('names metrics after the option, else the pipeline, else the function, else anonymous', async () => {
    const m = meter();
    async function loadUser(): Promise<number> {
      return 1;
    }
    await instrument(resilient(loadUser, { name: 'pipeline' }), { meter: m, name: 'option' })();
    await instrument(resilient(loadUser, { name: 'pipeline' }), { meter: m })();
    await instrument(resilient(loadUser), { meter: m })();
    await instrument(
      resilient(async () => 1),
      { meter: m },
    )();
    const metrics = await collect();
    for (const name of ['option', 'pipeline', 'loadUser', 'anonymous'])
      expect(value(metrics, 'bulwark.calls', { 'bulwark.name': name })).toBe(1);
    expect(value(metrics, 'bulwark.calls')).toBe(4);
  });

  it('without a meter, uses the global MeterProvider', async () => {
    metrics.setGlobalMeterProvider(meterProvider);
    try {
      const wrapped = instrument(resilient(async () => 1, { name: 'global' }));
      await wrapped();
    } finally {
      metrics.disable();
    }
    const collected = await collect();
    expect(value(collected, 'bulwark.calls', { 'bulwark.name': 'global' })).toBe(1);
    const scopes = (await reader.collect()).resourceMetrics.scopeMetrics.map((s) => s.scope.name);
    expect(scopes).toEqual(['bulwark']);
  });

  it('with a tracer and without a meter, records spans and global metrics', async () => {
    metrics.setGlobalMeterProvider(meterProvider);
    try {
      const wrapped = instrument(
        resilient(async () => 1, { name: 'both' }),
        { tracer },
      );
      await wrapped();
    } finally {
      metrics.disable();
    }
    expect(spans.getFinishedSpans().map((s) => s.name)).toEqual(['both']);
    expect(value(await collect(), 'bulwark.calls', { 'bulwark.name': 'both' })).toBe(1);
  });
});

describe('uninstrument', () => {
  it('removes the listener and the observable callbacks: values stop changing', async () => {
    const releases: (() => void)[] = [];
    const original = resilient(() => new Promise<void>((resolve) => releases.push(resolve)), {
      name: 'u',
      bulkhead: { maxConcurrent: 1, maxQueue: 5 },
      retry: { backoff: none },
    });
    const wrapped = instrument(original, { meter: meter(), tracer });
    const first = wrapped();
    let metrics = await collect();
    expect(value(metrics, 'bulwark.bulkhead.in_flight')).toBe(1);
    releases.shift()!();
    await first;
    metrics = await collect();
    const before = {
      calls: value(metrics, 'bulwark.calls'),
      attempts: value(metrics, 'bulwark.attempts'),
    };
    expect(before).toEqual({ calls: 1, attempts: 1 });
    expect(spans.getFinishedSpans()).toHaveLength(1);

    expect(uninstrument(wrapped)).toBe(true);
    const held = [wrapped(), wrapped(), original()]; // one runs, two queue
    metrics = await collect();
    expect({
      calls: value(metrics, 'bulwark.calls'),
      attempts: value(metrics, 'bulwark.attempts'),
    }).toEqual(before);
    // The pipeline has one call in flight and two queued; the gauges keep what they had before.
    expect(original.stats().bulkhead).toMatchObject({ inFlight: 1, queued: 2 });
    expect(value(metrics, 'bulwark.bulkhead.in_flight')).toBe(0);
    expect(value(metrics, 'bulwark.bulkhead.queued')).toBe(0);
    while (releases.length > 0) {
      releases.shift()!();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(held);
    expect(value(await collect(), 'bulwark.calls')).toBe(1);
    expect(spans.getFinishedSpans()).toHaveLength(1);
    expect(original.stats().bulkhead).toMatchObject({ inFlight: 0, queued: 0 });
  });

  it('stops the functions an instrumented policy wraps, and their events', async () => {
    const policy = instrument(resilient({ name: 'pu', retry: { backoff: none } }), {
      meter: meter(),
    });
    const fn = policy(failing(1));
    expect(uninstrument(fn)).toBe(false); // only what instrument() returned
    expect(uninstrument(policy)).toBe(true);
    expect(await fn(1)).toBe(2);
    expect(await policy.execute(() => 1)).toBe(1);
    const metrics = await collect();
    expect(value(metrics, 'bulwark.calls')).toBe(0);
    expect(value(metrics, 'bulwark.attempts')).toBe(0);
  });

  it('returns false for anything instrument() did not return', () => {
    expect(uninstrument({})).toBe(false);
    expect(uninstrument(resilient(async () => 1))).toBe(false);
  });
});

describe('instrument: invalid arguments', () => {
  it('rejects a target that is not wrapped by bulwark', () => {
    expect(() => instrument({} as never)).toThrow(
      /resilient\(\), a resilientFetch\(\) or a policy/,
    );
    expect(() =>
      instrument(Object.assign(() => 1, { on: () => () => undefined }) as never),
    ).toThrow(TypeError);
  });

  it('rejects options that are not an object', () => {
    const fn = resilient(async () => 1);
    expect(() => instrument(fn, null as never)).toThrow(
      new TypeError('Expected `instrument(target, options)` to get an options object'),
    );
    expect(() => instrument(fn, 'meter' as never)).toThrow(/options object/);
  });

  it('names each invalid option', () => {
    const fn = resilient(async () => 1);
    const invalid = (options: object) => () => instrument(fn, options as never);
    expect(invalid({ meter: 'm' })).toThrow(/`meter` to be an OpenTelemetry Meter/);
    expect(invalid({ tracer: {} })).toThrow(/`tracer` to be an OpenTelemetry Tracer/);
    expect(invalid({ tracer: 'tracer' })).toThrow(/`tracer`/);
    expect(invalid({ name: 42 })).toThrow(/`name` to be a non-empty string/);
    expect(invalid({ clock: {} })).toThrow(/`clock` to have a now\(\) method/);
    expect(invalid({ clock: null })).toThrow(/`clock`/);
    expect(invalid({ meter: null, tracer: null })).toThrow(
      new TypeError(
        'Invalid instrument options:\n' +
          '  - Expected `meter` to be an OpenTelemetry Meter\n' +
          '  - Expected `tracer` to be an OpenTelemetry Tracer',
      ),
    );
  });

  it('leaves nothing behind when the options are invalid', async () => {
    const original = resilient(failing(1), { name: 'bad', retry: { backoff: none } });
    expect(() => instrument(original, { meter: meter(), tracer: null as never })).toThrow(
      /`tracer`/,
    );
    expect(await original(1)).toBe(2);
    expect(await collect()).toEqual([]);
    const wrapped = instrument(original, {
      meter: meter(),
      tracer,
      name: 'ok',
      clock: performance,
    });
    expect(await wrapped(1)).toBe(2);
    expect(value(await collect(), 'bulwark.calls', { 'bulwark.name': 'ok' })).toBe(1);
  });
});
