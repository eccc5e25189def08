import { context, trace, type Attributes } from '@opentelemetry/api';
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
import { resilient } from '../src/index.js';
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
