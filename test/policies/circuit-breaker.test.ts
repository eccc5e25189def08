import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  backoff,
  BulkheadRejectedError,
  circuitBreaker,
  CircuitBreaker,
  CircuitOpenError,
  isResilienceError,
  RateLimitedError,
  resilient,
  resilientSync,
  type CircuitBreakerOptions,
  type CircuitBreakerSnapshot,
  type ResilienceEvent,
} from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';

type Outcome = 'ok' | 'fail' | number; // a number: a success that takes that many ms

const boom = new Error('boom');

/** A breaker on a manual clock, and a wrapped function whose outcome each call chooses. */
function setup(options: CircuitBreakerOptions = {}, clock = new ManualClock()) {
  const breaker = circuitBreaker({ clock, ...options });
  const fn = vi.fn((outcome: Outcome): Promise<string> => {
    if (outcome === 'ok') return Promise.resolve('ok');
    if (outcome === 'fail') return Promise.reject(boom);
    return new Promise((resolve) => clock.setTimer(() => resolve('slow'), outcome));
  });
  const call = resilient(fn, { clock, circuitBreaker: breaker });
  const events: ResilienceEvent[] = [];
  breaker.on((event) => events.push(event));
  /** Calls and settles (advancing the clock for slow calls); returns the value or the error. */
  const run = async (outcome: Outcome): Promise<unknown> => {
    const promise = call(outcome).then(
      (value) => value,
      (error: unknown) => error,
    );
    if (typeof outcome === 'number') await clock.advance(outcome);
    return promise;
  };
  const runAll = async (...outcomes: Outcome[]): Promise<void> => {
    for (const outcome of outcomes) await run(outcome);
  };
  const types = (): string[] => events.map((e) => e.type);
  return { breaker, clock, fn, call, run, runAll, events, types };
}

const times = (n: number, outcome: Outcome): Outcome[] => Array<Outcome>(n).fill(outcome);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('circuit breaker: defaults', () => {
  it('describes every default', () => {
    const breaker = circuitBreaker();
    expect(breaker.describe()).toEqual({
      stage: 'circuitBreaker',
      name: 'none',
      failureRateThreshold: 0.5,
      minimumCalls: 20,
      window: { type: 'count', size: 100 },
      consecutiveFailures: 'none',
      slowCallDuration: 'none',
      slowCallRateThreshold: 1,
      halfOpenAfter: 30_000,
      halfOpenMaxCalls: 1,
      maxRetryAfter: 300_000,
      isFailure: 'default',
    });
    expect(breaker).toBeInstanceOf(CircuitBreaker);
    expect(breaker.state).toBe('closed');
  });

  it('stays closed below minimumCalls (20) even when every call fails', async () => {
    const { runAll, breaker, fn, run } = setup();
    await runAll(...times(19, 'fail'));
    expect(breaker.state).toBe('closed');
    await run('fail');
    expect(breaker.state).toBe('open');
    expect(fn).toHaveBeenCalledTimes(20);
  });

  it('opens when the failure rate reaches 0.5 exactly, not below', async () => {
    const a = setup();
    await a.runAll(...times(11, 'ok'), ...times(9, 'fail'));
    expect(a.breaker.stats()).toMatchObject({ state: 'closed', calls: 20, failureRate: 0.45 });
    const b = setup();
    await b.runAll(...times(10, 'ok'), ...times(10, 'fail'));
    expect(b.breaker.state).toBe('open');
  });

  it('circuitBreaker: true is a breaker with the defaults, in resilient() and resilientSync()', async () => {
    const clock = new ManualClock();
    const fail = resilient(() => Promise.reject(boom), { clock, circuitBreaker: true });
    for (let i = 0; i < 20; i++) expect(await fail().catch((e: unknown) => e)).toBe(boom);
    expect(fail.stats().circuitBreaker).toMatchObject({ state: 'open', calls: 20 });
    expect(await fail().catch((e: unknown) => e)).toBeInstanceOf(CircuitOpenError);
    const failSync = resilientSync(
      (): number => {
        throw boom;
      },
      { clock, circuitBreaker: true },
    );
    for (let i = 0; i < 20; i++) expect(() => failSync()).toThrow(boom);
    expect(() => failSync()).toThrow(CircuitOpenError);
  });

  it('halfOpenAfter defaults to 30 s', async () => {
    const { runAll, breaker, clock, run } = setup({ consecutiveFailures: 1 });
    await runAll('fail');
    await clock.advance(29_999);
    expect(await run('ok')).toBeInstanceOf(CircuitOpenError);
    await clock.advance(1);
    expect(await run('ok')).toBe('ok');
    expect(breaker.state).toBe('closed');
  });
});

describe('circuit breaker: count window', () => {
  it('keeps the last `size` outcomes only', async () => {
    const { runAll, breaker } = setup({ window: { type: 'count', size: 4 }, minimumCalls: 4 });
    await runAll('fail', 'ok', 'ok', 'ok');
    expect(breaker.stats()).toMatchObject({ calls: 4, failures: 1, failureRate: 0.25 });
    await runAll('ok');
    expect(breaker.stats()).toMatchObject({ calls: 4, failures: 0 });
    await runAll('fail');
    expect(breaker.stats()).toMatchObject({ calls: 4, failures: 1, state: 'closed' });
    await runAll('fail');
    expect(breaker.stats()).toMatchObject({ state: 'open' });
  });

  it('checks the rate on a success too: the call that reaches minimumCalls may open it', async () => {
    const { runAll, breaker } = setup({ window: { type: 'count', size: 10 }, minimumCalls: 4 });
    await runAll('fail', 'fail', 'fail');
    expect(breaker.state).toBe('closed'); // 3 calls < minimumCalls
    await runAll('ok');
    expect(breaker.stats()).toMatchObject({ state: 'open', calls: 4, failureRate: 0.75 });
  });

  it('honours a custom failureRateThreshold', async () => {
    const { runAll, breaker } = setup({
      window: { type: 'count', size: 10 },
      minimumCalls: 4,
      failureRateThreshold: 0.75,
    });
    await runAll('fail', 'fail', 'ok', 'ok');
    expect(breaker.state).toBe('closed');
    await runAll('fail');
    expect(breaker.state).toBe('closed'); // 3 / 5
    await runAll('fail');
    expect(breaker.state).toBe('closed'); // 4 / 6
    await runAll('fail', 'fail');
    expect(breaker.state).toBe('open'); // 6 / 8
  });

  it('failureRateThreshold 1 opens only when every call in the window failed', async () => {
    const { runAll, breaker } = setup({
      window: { type: 'count', size: 3 },
      minimumCalls: 3,
      failureRateThreshold: 1,
    });
    await runAll('ok', 'fail', 'fail');
    expect(breaker.state).toBe('closed');
    await runAll('fail');
    expect(breaker.state).toBe('open');
  });

  it('sets no timer', async () => {
    const { runAll, clock } = setup({ minimumCalls: 2 });
    await runAll('fail', 'fail', 'ok');
    expect(clock.pending()).toBe(0);
  });
});

describe('circuit breaker: time window', () => {
  const time = { window: { type: 'time' as const, duration: 1_000 }, minimumCalls: 2 };

  it('counts calls within the last `duration` ms', async () => {
    const { runAll, breaker, clock } = setup(time);
    await runAll('fail');
    await clock.advance(999);
    await runAll('fail');
    expect(breaker.state).toBe('open');
  });

  it('forgets calls older than `duration`, lazily and without timers', async () => {
    const { runAll, breaker, clock } = setup({ ...time, failureRateThreshold: 1 });
    await runAll('fail', 'ok');
    expect(breaker.stats()).toMatchObject({ calls: 2, failures: 1 });
    expect(clock.pending()).toBe(0);
    await clock.advance(1_000);
    expect(breaker.stats()).toMatchObject({ calls: 0, failures: 0, failureRate: 0 });
    await runAll('fail', 'fail');
    expect(breaker.stats()).toMatchObject({ state: 'open', calls: 2, failures: 2 });
    expect(clock.pending()).toBe(0);
  });

  it('drops buckets one by one as time passes', async () => {
    const { runAll, breaker, clock } = setup({ ...time, minimumCalls: 10 });
    await runAll('ok'); // t = 0
    await clock.advance(500);
    await runAll('fail', 'fail'); // t = 500
    await clock.advance(499); // t = 999
    expect(breaker.stats()).toMatchObject({ calls: 3, failures: 2 });
    await clock.advance(1); // t = 1000: the bucket of t = 0 leaves
    expect(breaker.stats()).toMatchObject({ calls: 2, failures: 2 });
    await clock.advance(500); // t = 1500: the bucket of t = 500 leaves
    expect(breaker.stats()).toMatchObject({ calls: 0, failures: 0 });
  });

  it('survives a jump of many windows', async () => {
    const { runAll, breaker, clock } = setup(time);
    await runAll('fail');
    await clock.advance(1e9);
    expect(breaker.stats().calls).toBe(0);
    await runAll('fail', 'fail');
    expect(breaker.state).toBe('open');
  });

  // issue 10 item 1 (resilience4j SlidingTimeWindowMetrics): a sample belongs to the window of the
  // moment its outcome is known, not to that of the call's start.
  it.each([
    ['without', false],
    ['with', true],
  ])(
    'files a sample when its outcome is known: a call failing at 60 s does not join failures of t = 0 (%s a stats() read in between)',
    async (_, readStats) => {
      const clock = new ManualClock();
      const breaker = circuitBreaker({
        clock,
        window: { type: 'time', duration: 10_000 },
        minimumCalls: 5,
      });
      const call = resilient(
        (ms: number) => new Promise<never>((_, reject) => clock.setTimer(() => reject(boom), ms)),
        { clock, circuitBreaker: breaker },
      );
      const long = call(60_000).catch((error: unknown) => error);
      const fast = [1, 2, 3, 4].map(() => call(0).catch((error: unknown) => error));
      await clock.advance(0);
      await Promise.all(fast);
      expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 4, failures: 4 });
      await clock.advance(30_000);
      if (readStats) expect(breaker.stats().calls).toBe(0);
      await clock.advance(30_000);
      expect(await long).toBe(boom);
      expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 1, failures: 1 });
    },
  );

  it('files a long call that ends within the window with the recent failures, and opens', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({
      clock,
      window: { type: 'time', duration: 10_000 },
      minimumCalls: 5,
    });
    const call = resilient(
      (ms: number) => new Promise<never>((_, reject) => clock.setTimer(() => reject(boom), ms)),
      { clock, circuitBreaker: breaker },
    );
    const long = call(60_000).catch((error: unknown) => error);
    await clock.advance(55_000);
    const fast = [1, 2, 3, 4].map(() => call(0).catch((error: unknown) => error));
    await clock.advance(0);
    await Promise.all(fast);
    expect(breaker.state).toBe('closed');
    await clock.advance(5_000);
    await long;
    expect(breaker.stats()).toMatchObject({ state: 'open', calls: 5, failures: 5 });
  });

  it('measures a slow call from its start, and files it when it ends', async () => {
    const { run, breaker } = setup({
      window: { type: 'time', duration: 1_000 },
      minimumCalls: 1,
      slowCallDuration: 2_000,
      slowCallRateThreshold: 1,
    });
    // 2.5 s from start to end: slow; filed at its end, so it is in the window and opens the circuit.
    expect(await run(2_500)).toBe('slow');
    expect(breaker.stats()).toMatchObject({ state: 'open', calls: 1, slowCalls: 1 });
  });

  it('does not allow a size with a time window, nor a duration with a count window', () => {
    expect(() => circuitBreaker({ window: { type: 'time', size: 5 } as never })).toThrow(
      /`circuitBreaker.window.size` applies to a count window/,
    );
    expect(() => circuitBreaker({ window: { type: 'count', duration: 5 } as never })).toThrow(
      /`circuitBreaker.window.duration` applies to a time window/,
    );
  });

  it('defaults its duration to 60 s', async () => {
    const breaker = circuitBreaker({ window: { type: 'time' } });
    expect(breaker.describe().window).toEqual({ type: 'time', duration: 60_000 });
    const { runAll, clock, breaker: b } = setup({ window: { type: 'time' }, minimumCalls: 2 });
    await runAll('fail');
    await clock.advance(59_999);
    await runAll('fail');
    expect(b.state).toBe('open');
  });
});

describe('circuit breaker: consecutiveFailures', () => {
  it('opens after n failures in a row, whatever minimumCalls', async () => {
    const { runAll, breaker, events } = setup({ consecutiveFailures: 3 });
    await runAll('fail', 'fail');
    expect(breaker.stats().consecutiveFailures).toBe(2);
    await runAll('ok');
    expect(breaker.stats().consecutiveFailures).toBe(0);
    await runAll('fail', 'fail');
    expect(breaker.state).toBe('closed');
    await runAll('fail');
    expect(breaker.state).toBe('open');
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'circuitOpened', consecutiveFailures: 3 }),
    );
  });
});

describe('circuit breaker: the circuitOpened event', () => {
  it('reports the exact failure and slow-call rates of the window that opened it', async () => {
    const { runAll, events } = setup({
      window: { type: 'count', size: 10 },
      minimumCalls: 5,
      failureRateThreshold: 0.6,
      slowCallDuration: 50,
    });
    await runAll('ok', 60, 'fail', 'fail', 'fail');
    expect(events).toEqual([
      {
        type: 'circuitOpened',
        failureRate: 0.6,
        slowCallRate: 0.2,
        consecutiveFailures: 3,
        retryAfter: 30_000,
      },
    ]);
  });
});

describe('circuit breaker: slow calls', () => {
  it('counts a success that took slowCallDuration or more as slow, and opens on the slow rate', async () => {
    const { run, breaker, events } = setup({
      slowCallDuration: 100,
      slowCallRateThreshold: 0.5,
      minimumCalls: 2,
    });
    expect(await run(99)).toBe('slow');
    expect(breaker.stats()).toMatchObject({ calls: 1, slowCalls: 0 });
    expect(await run(100)).toBe('slow');
    expect(breaker.stats()).toMatchObject({ state: 'open', slowCalls: 1, failures: 0 });
    expect(events.at(-1)).toEqual({
      type: 'circuitOpened',
      failureRate: 0,
      slowCallRate: 0.5,
      consecutiveFailures: 0,
      retryAfter: 30_000,
    });
  });

  it('a call is timed from its own start, not from time 0 (a clock far from 0)', async () => {
    const { run, runAll, breaker } = setup(
      { slowCallDuration: 100, minimumCalls: 2 },
      new ManualClock(1_000_000),
    );
    await runAll('ok', 'ok', 'fail', 99);
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 4, slowCalls: 0 });
    await run(100);
    expect(breaker.stats()).toMatchObject({ calls: 5, slowCalls: 1 });
  });

  it('slowCallRateThreshold defaults to 1: every call in the window must be slow', async () => {
    const { run, runAll, breaker } = setup({ slowCallDuration: 50, minimumCalls: 2 });
    await runAll('ok');
    await run(60);
    expect(breaker.state).toBe('closed');
    await run(60);
    expect(breaker.state).toBe('closed'); // 2 of 3
    const b = setup({ slowCallDuration: 50, minimumCalls: 2 });
    await b.run(60);
    await b.run(60);
    expect(b.breaker.state).toBe('open');
  });

  it('a slow failure counts as both a failure and a slow call', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, slowCallDuration: 10, minimumCalls: 5 });
    const call = resilient(
      () => new Promise((_, reject) => clock.setTimer(() => reject(boom), 10)),
      { clock, circuitBreaker: breaker },
    );
    const settled = call().catch((e: unknown) => e);
    await clock.advance(10);
    expect(await settled).toBe(boom);
    expect(breaker.stats()).toMatchObject({ calls: 1, failures: 1, slowCalls: 1 });
  });
});

describe('circuit breaker: open and half-open', () => {
  it('rejects at once without calling fn, with retryAfter counting down', async () => {
    const { runAll, run, fn, clock, breaker } = setup({
      consecutiveFailures: 1,
      halfOpenAfter: 1_000,
    });
    await runAll('fail');
    fn.mockClear();
    const error = (await run('ok')) as CircuitOpenError;
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error.retryAfter).toBe(1_000);
    expect(error.code).toBe('ERR_BULWARK_CIRCUIT_OPEN');
    expect(error.name).toBe('CircuitOpenError');
    expect(error.message).toBe('Circuit is open; retry after 1000 ms');
    expect(isResilienceError(error)).toBe(true);
    await clock.advance(400);
    expect(((await run('ok')) as CircuitOpenError).retryAfter).toBe(600);
    expect(breaker.stats().retryAfter).toBe(600);
    expect(fn).not.toHaveBeenCalled();
    expect(breaker.state).toBe('open');
  });

  it('lets one trial through after halfOpenAfter; its success closes with a fresh window', async () => {
    const { runAll, run, clock, breaker, types } = setup({
      window: { type: 'count', size: 10 },
      minimumCalls: 2,
      halfOpenAfter: 1_000,
    });
    await runAll('ok', 'fail', 'fail');
    expect(breaker.state).toBe('open');
    await clock.advance(1_000);
    expect(breaker.state).toBe('open'); // lazily: it turns half-open on the next call
    expect(await run('ok')).toBe('ok');
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 0, failures: 0 });
    expect(types()).toEqual(['circuitOpened', 'circuitHalfOpened', 'circuitClosed']);
    await runAll('fail');
    expect(breaker.state).toBe('closed'); // 1 call < minimumCalls: the window really is fresh
  });

  it('a failed trial opens the circuit again for another halfOpenAfter', async () => {
    const { runAll, run, clock, breaker, types } = setup({
      consecutiveFailures: 1,
      halfOpenAfter: 1_000,
    });
    await runAll('fail');
    await clock.advance(1_000);
    expect(await run('fail')).toBe(boom);
    expect(breaker.state).toBe('open');
    expect(breaker.stats().retryAfter).toBe(1_000);
    expect(types()).toEqual(['circuitOpened', 'circuitHalfOpened', 'circuitOpened']);
  });

  it('halfOpenMaxCalls: callers beyond the trials are rejected at once, not parked', async () => {
    const { runAll, call, clock, breaker, fn } = setup({
      consecutiveFailures: 1,
      halfOpenAfter: 1_000,
      halfOpenMaxCalls: 2,
    });
    await runAll('fail');
    await clock.advance(1_000);
    fn.mockClear();
    const t1 = call(100);
    const t2 = call(100);
    expect(breaker.state).toBe('halfOpen');
    const extra = await call('ok').catch((e: unknown) => e);
    expect(extra).toBeInstanceOf(CircuitOpenError);
    expect((extra as CircuitOpenError).retryAfter).toBe(0);
    expect(fn).toHaveBeenCalledTimes(2);
    await clock.advance(50);
    expect(breaker.state).toBe('halfOpen'); // trials still running
    await clock.advance(50);
    expect(await t1).toBe('slow');
    expect(await t2).toBe('slow');
    expect(breaker.state).toBe('closed');
  });

  it('closes only when every trial succeeded: one failure among them opens', async () => {
    const { runAll, call, clock, breaker } = setup({
      consecutiveFailures: 1,
      halfOpenAfter: 1_000,
      halfOpenMaxCalls: 3,
    });
    await runAll('fail');
    await clock.advance(1_000);
    const ok1 = call('ok');
    const bad = call('fail').catch((e: unknown) => e);
    const ok2 = call('ok');
    expect(await ok1).toBe('ok');
    expect(await bad).toBe(boom);
    expect(breaker.state).toBe('open');
    expect(await ok2).toBe('ok'); // a late success of an older trial does not close it
    expect(breaker.state).toBe('open');
  });

  it('a slow trial success opens the circuit again', async () => {
    const { runAll, run, clock, breaker } = setup({
      consecutiveFailures: 1,
      halfOpenAfter: 1_000,
      slowCallDuration: 50,
    });
    await runAll('fail');
    await clock.advance(1_000);
    expect(await run(60)).toBe('slow');
    expect(breaker.state).toBe('open');
  });

  it('halfOpenAfter 0 lets the next call through as a trial', async () => {
    const { runAll, run, breaker } = setup({ consecutiveFailures: 1, halfOpenAfter: 0 });
    await runAll('fail');
    expect(breaker.state).toBe('open');
    expect(await run('ok')).toBe('ok');
    expect(breaker.state).toBe('closed');
  });

  it('ignores outcomes of calls admitted before a transition', async () => {
    const { call, runAll, breaker, clock } = setup({ consecutiveFailures: 1 });
    const slow = call(100);
    await runAll('fail');
    breaker.reset();
    await clock.advance(100);
    expect(await slow).toBe('slow');
    expect(breaker.stats().calls).toBe(0);
  });
});

describe('circuit breaker: a failure that says when to come back (retryAfter)', () => {
  /** A breaker that opens on one failure; the failure carries `retryAfter` ms (a 503's Retry-After). */
  function hinted(retryAfter: number, options: CircuitBreakerOptions = {}) {
    const clock = new ManualClock();
    const breaker = circuitBreaker({
      consecutiveFailures: 1,
      halfOpenAfter: 100,
      clock,
      ...options,
    });
    let hint: number | undefined = retryAfter;
    const fn = vi.fn(() =>
      hint === undefined
        ? Promise.resolve('ok')
        : Promise.reject(Object.assign(new Error('503'), { retryAfter: hint })),
    );
    const call = resilient(fn, { clock, circuitBreaker: breaker });
    const settle = (): Promise<unknown> =>
      call().then(
        (v) => v,
        (e: unknown) => e,
      );
    return { clock, breaker, fn, settle, heal: () => (hint = undefined) };
  }

  it('stays open for the hint when it is longer than halfOpenAfter', async () => {
    const { clock, breaker, fn, settle, heal } = hinted(500);
    const events: ResilienceEvent[] = [];
    breaker.on((event) => events.push(event));
    await settle();
    expect(breaker.state).toBe('open');
    expect(events[0]).toMatchObject({ type: 'circuitOpened', retryAfter: 500 });
    await clock.advance(100);
    const early = await settle();
    expect(early).toBeInstanceOf(CircuitOpenError);
    expect((early as CircuitOpenError).retryAfter).toBe(400);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(400);
    heal();
    await expect(settle()).resolves.toBe('ok');
    expect(breaker.state).toBe('closed');
  });

  it('keeps halfOpenAfter when the hint is shorter, and uses the hint of a failed trial', async () => {
    const { clock, breaker, settle } = hinted(20);
    await settle();
    expect(breaker.stats().retryAfter).toBe(100);
    await clock.advance(100);
    // The trial fails with a hint of 20: still at least halfOpenAfter.
    await settle();
    expect(breaker.stats().retryAfter).toBe(100);
    const longer = hinted(1_000);
    await longer.settle();
    await longer.clock.advance(1_000);
    await longer.settle(); // the trial fails, asking for 1 s again
    expect(longer.breaker.state).toBe('open');
    expect(longer.breaker.stats().retryAfter).toBe(1_000);
  });

  it('carries a long opening through toJSON and initialState', async () => {
    const { breaker, settle } = hinted(5_000);
    await settle();
    const snapshot = breaker.toJSON();
    expect(snapshot.retryAfter).toBe(5_000);
    const clock = new ManualClock();
    const restored = circuitBreaker({ halfOpenAfter: 100, initialState: snapshot, clock });
    expect(restored.state).toBe('open');
    expect(restored.retryAfter(clock.now())).toBeGreaterThan(4_900);
    expect(restored.tryEnter(clock.now() + 4_000)).toBe(-1);
  });

  // issue 10 item 10: a hint is external input, bounded by `maxRetryAfter` (default 5 minutes).
  it.each([
    ['huge (Retry-After: 999999999)', 999_999_999_000],
    ['Infinity', Infinity],
  ])(
    'holds the circuit open at most maxRetryAfter (5 min by default) for a hint that is %s',
    async (_label, value) => {
      const { clock, breaker, settle, heal } = hinted(value);
      const events: ResilienceEvent[] = [];
      breaker.on((event) => events.push(event));
      await settle();
      expect(events[0]).toMatchObject({ type: 'circuitOpened', retryAfter: 300_000 });
      expect(breaker.stats().retryAfter).toBe(300_000);
      await clock.advance(299_999);
      expect(await settle()).toBeInstanceOf(CircuitOpenError);
      await clock.advance(1);
      heal();
      await expect(settle()).resolves.toBe('ok');
      expect(breaker.state).toBe('closed');
    },
  );

  it('caps a hint by a custom maxRetryAfter, on the opening and on a failed trial', async () => {
    const { clock, breaker, settle } = hinted(60_000, { maxRetryAfter: 1_000 });
    await settle();
    expect(breaker.stats().retryAfter).toBe(1_000);
    await clock.advance(1_000);
    await settle(); // the trial fails, asking for a minute again
    expect(breaker.stats()).toMatchObject({ state: 'open', retryAfter: 1_000 });
    expect(breaker.describe().maxRetryAfter).toBe(1_000);
  });

  it('keeps halfOpenAfter when maxRetryAfter is shorter', async () => {
    const { breaker, settle } = hinted(60_000, { maxRetryAfter: 10 });
    await settle();
    expect(breaker.stats().retryAfter).toBe(100);
  });

  it('caps the wait of a restored snapshot too', () => {
    vi.spyOn(Date, 'now').mockReturnValue(0);
    const restored = circuitBreaker({
      clock: new ManualClock(),
      halfOpenAfter: 100,
      maxRetryAfter: 2_000,
      initialState: {
        version: 1,
        state: 'open',
        retryAfter: 1e12,
        savedAt: 0,
        consecutiveFailures: 1,
      },
    });
    expect(restored.stats().retryAfter).toBe(2_000);
  });

  it.each([
    ['negative', -5],
    ['NaN', Number.NaN],
    ['a string', '500'],
  ])('ignores a hint that is %s', async (_label, value) => {
    const { clock, breaker, settle } = hinted(value as number);
    await settle();
    expect(breaker.stats().retryAfter).toBe(100);
    await clock.advance(100);
    expect(breaker.tryEnter(clock.now())).toBeGreaterThanOrEqual(0);
  });
});

describe('circuit breaker: isFailure', () => {
  it('counts only the errors isFailure accepts; the others are not samples', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({
      clock,
      consecutiveFailures: 2,
      isFailure: (error) => error instanceof TypeError,
    });
    const call = resilient((error: Error) => Promise.reject(error), {
      clock,
      circuitBreaker: breaker,
    });
    for (let i = 0; i < 5; i++) await call(new RangeError('ignored')).catch(() => undefined);
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 0 });
    await call(new TypeError('a')).catch(() => undefined);
    await call(new TypeError('b')).catch(() => undefined);
    expect(breaker.state).toBe('open');
    expect(breaker.describe().isFailure).toBe('custom');
  });

  it('a throwing isFailure counts the error as a failure', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({
      clock,
      consecutiveFailures: 1,
      isFailure: () => {
        throw new Error('bad predicate');
      },
    });
    const call = resilient(() => Promise.reject(boom), { clock, circuitBreaker: breaker });
    expect(await call().catch((e: unknown) => e)).toBe(boom);
    expect(breaker.state).toBe('open');
  });

  it('an error isFailure rejects gives a half-open trial slot back', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({
      clock,
      consecutiveFailures: 1,
      halfOpenAfter: 10,
      isFailure: (error) => error === boom,
    });
    const call = resilient((e: unknown) => Promise.reject(e), { clock, circuitBreaker: breaker });
    await call(boom).catch(() => undefined);
    await clock.advance(10);
    await call('not a failure').catch(() => undefined);
    expect(breaker.state).toBe('halfOpen');
    expect(await call(boom).catch((e: unknown) => e)).toBe(boom); // admitted as a trial again
    expect(breaker.state).toBe('open');
  });

  it('an error isFailure rejects is no sample: it neither breaks a run of failures nor counts as a success', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({
      clock,
      consecutiveFailures: 3,
      window: { type: 'count', size: 4 },
      minimumCalls: 4,
      failureRateThreshold: 0.75,
      isFailure: (error) => error === boom,
    });
    const call = resilient((e: unknown) => Promise.reject(e), { clock, circuitBreaker: breaker });
    await call(boom).catch(() => undefined);
    await call(boom).catch(() => undefined);
    await call('ignored').catch(() => undefined);
    expect(breaker.stats()).toMatchObject({ calls: 2, failures: 2, consecutiveFailures: 2 });
    await call(boom).catch(() => undefined);
    expect(breaker.stats()).toMatchObject({ state: 'open', consecutiveFailures: 3 });
  });

  it('by default, local rejections are not failures', () => {
    const breaker = circuitBreaker({ clock: new ManualClock(), consecutiveFailures: 1 });
    const permit = breaker.tryEnter(0);
    breaker.recordFailure(permit, 0, new RateLimitedError(5));
    breaker.recordFailure(breaker.tryEnter(0), 0, new BulkheadRejectedError('full'));
    breaker.recordFailure(breaker.tryEnter(0), 0, new CircuitOpenError(5));
    expect(breaker.state).toBe('closed');
    breaker.recordFailure(breaker.tryEnter(0), 0, boom);
    expect(breaker.state).toBe('open');
  });

  it('a caller abort is not a failure', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1 });
    const policy = resilient({ clock, circuitBreaker: breaker });
    const controller = new AbortController();
    const pending = policy
      .execute(() => new Promise(() => undefined), { signal: controller.signal })
      .catch((e: unknown) => e);
    controller.abort(new Error('caller gave up'));
    expect(await pending).toEqual(new Error('caller gave up'));
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 0 });
  });
});

describe('circuit breaker: isolate and reset', () => {
  it('isolate() keeps it open until reset(), whatever the time', async () => {
    const { breaker, run, clock, fn, types } = setup({ halfOpenAfter: 10 });
    breaker.isolate();
    expect(breaker.state).toBe('isolated');
    const error = (await run('ok')) as CircuitOpenError;
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error.retryAfter).toBe(Infinity);
    expect(error.message).toBe('Circuit is isolated');
    await clock.advance(1e6);
    expect(await run('ok')).toBeInstanceOf(CircuitOpenError);
    expect(fn).not.toHaveBeenCalled();
    expect(breaker.stats().retryAfter).toBe(Infinity);
    breaker.reset();
    expect(breaker.state).toBe('closed');
    expect(await run('ok')).toBe('ok');
    expect(types()).toEqual(['circuitIsolated', 'circuitClosed']);
  });

  // issue 10 item 3: events only for real transitions.
  it('isolate() on an isolated breaker and reset() on a closed one emit nothing', async () => {
    const { breaker, runAll, types } = setup({ minimumCalls: 5 });
    breaker.reset();
    expect(types()).toEqual([]);
    breaker.isolate();
    breaker.isolate();
    expect(types()).toEqual(['circuitIsolated']);
    breaker.reset();
    breaker.reset();
    expect(types()).toEqual(['circuitIsolated', 'circuitClosed']);
    // reset() on a closed breaker still gives it a fresh window.
    await runAll('fail', 'fail');
    expect(breaker.stats()).toMatchObject({ calls: 2, consecutiveFailures: 2 });
    breaker.reset();
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 0, consecutiveFailures: 0 });
    expect(types()).toEqual(['circuitIsolated', 'circuitClosed']);
  });

  it('reset() closes an open circuit with a fresh window', async () => {
    const { breaker, runAll } = setup({ minimumCalls: 2 });
    await runAll('fail', 'fail');
    expect(breaker.state).toBe('open');
    breaker.reset();
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 0, consecutiveFailures: 0 });
  });
});

describe('circuit breaker: toJSON and initialState', () => {
  it('round-trips a count window and an open state, aged by the wall clock', async () => {
    const now = vi.spyOn(Date, 'now').mockReturnValue(1_000_000);
    const { breaker, runAll, clock } = setup({
      window: { type: 'count', size: 5 },
      minimumCalls: 5,
      halfOpenAfter: 10_000,
    });
    await runAll('ok', 'ok', 'ok', 'fail', 'fail', 'fail');
    expect(breaker.state).toBe('open');
    await clock.advance(4_000);
    const snapshot = JSON.parse(JSON.stringify(breaker)) as CircuitBreakerSnapshot;
    expect(snapshot).toEqual({
      version: 1,
      state: 'open',
      retryAfter: 6_000,
      savedAt: 1_000_000,
      consecutiveFailures: 3,
      outcomes: [0, 0, 1, 1, 1],
    });

    now.mockReturnValue(1_002_500); // restored 2.5 s later, in another process
    const clock2 = new ManualClock(77);
    const restored = circuitBreaker({
      clock: clock2,
      window: { type: 'count', size: 5 },
      minimumCalls: 5,
      halfOpenAfter: 10_000,
      initialState: snapshot,
    });
    expect(restored.stats()).toMatchObject({
      state: 'open',
      calls: 5,
      failures: 3,
      consecutiveFailures: 3,
      retryAfter: 3_500,
    });
    expect(restored.toJSON().outcomes).toEqual([0, 0, 1, 1, 1]);
    expect(restored.tryEnter(clock2.now() + 3_499)).toBe(-1);
    expect(restored.tryEnter(clock2.now() + 3_500)).toBeGreaterThanOrEqual(0);
    expect(restored.state).toBe('halfOpen');
  });

  it('an open snapshot older than its wait restores ready for a trial', () => {
    const now = vi.spyOn(Date, 'now').mockReturnValue(0);
    const clock = new ManualClock();
    const source = circuitBreaker({ clock, halfOpenAfter: 1_000 });
    source.isolate();
    source.reset();
    source.recordFailure(source.tryEnter(0), 0, boom);
    const open = { ...source.toJSON(), state: 'open' as const, retryAfter: 1_000 };
    now.mockReturnValue(5_000);
    const restored = circuitBreaker({ clock, halfOpenAfter: 1_000, initialState: open });
    expect(restored.stats().retryAfter).toBe(0);
    expect(restored.tryEnter(0)).toBeGreaterThanOrEqual(0);
  });

  it('a count snapshot keeps only the newest outcomes that fit a smaller window', () => {
    vi.spyOn(Date, 'now').mockReturnValue(0);
    const snapshot: CircuitBreakerSnapshot = {
      version: 1,
      state: 'closed',
      retryAfter: 0,
      savedAt: 0,
      consecutiveFailures: 0,
      outcomes: [1, 1, 1, 0, 2, 3],
    };
    const restored = circuitBreaker({
      clock: new ManualClock(),
      window: { type: 'count', size: 3 },
      minimumCalls: 3,
      initialState: snapshot,
    });
    expect(restored.stats()).toMatchObject({ calls: 3, failures: 1, slowCalls: 2 });
    expect(restored.toJSON().outcomes).toEqual([0, 2, 3]);
  });

  it('a closed snapshot over the threshold opens on its next sample, a success included', () => {
    vi.spyOn(Date, 'now').mockReturnValue(0);
    const snapshot: CircuitBreakerSnapshot = {
      version: 1,
      state: 'closed',
      retryAfter: 0,
      savedAt: 0,
      consecutiveFailures: 0,
      outcomes: [1, 1, 1],
    };
    const clock = new ManualClock();
    const restored = circuitBreaker({
      clock,
      window: { type: 'count', size: 3 },
      minimumCalls: 3,
      failureRateThreshold: 0.5,
      initialState: snapshot,
    });
    expect(restored.state).toBe('closed');
    // The success replaces a failure on a full window: 2 of 3 calls failed, over the threshold.
    restored.recordSuccess(restored.tryEnter(clock.now()), clock.now());
    expect(restored.state).toBe('open');
  });

  it('successes on a full window keep a closed circuit closed, and a failure still trips it', () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({
      clock,
      window: { type: 'count', size: 4 },
      minimumCalls: 4,
      failureRateThreshold: 0.5,
    });
    const record = (ok: boolean): void => {
      const permit = breaker.tryEnter(clock.now());
      if (ok) breaker.recordSuccess(permit, clock.now());
      else breaker.recordFailure(permit, clock.now(), boom);
    };
    for (let i = 0; i < 10; i++) record(true);
    record(false);
    expect(breaker.state).toBe('closed'); // 1 of 4
    record(true);
    record(true); // the failure is still in the window: 1 of 4
    expect(breaker.state).toBe('closed');
    record(false); // 2 of 4
    expect(breaker.state).toBe('open');
  });

  it('round-trips a time window, dropping buckets that aged out', async () => {
    const now = vi.spyOn(Date, 'now').mockReturnValue(50_000);
    const options = { window: { type: 'time' as const, duration: 1_000 }, minimumCalls: 100 };
    const { breaker, runAll, clock } = setup(options);
    await runAll('fail'); // t = 0
    await clock.advance(500);
    await runAll('ok', 'fail'); // t = 500
    const snapshot = breaker.toJSON();
    expect(snapshot.bucketSize).toBe(100);
    expect(snapshot.buckets).toHaveLength(10);
    expect(snapshot.buckets?.at(-1)).toEqual([2, 1, 0]);
    expect(snapshot.buckets?.at(-6)).toEqual([1, 1, 0]);

    const same = circuitBreaker({ ...options, clock: new ManualClock(), initialState: snapshot });
    expect(same.stats()).toMatchObject({ calls: 3, failures: 2 });

    now.mockReturnValue(50_700); // 700 ms later: the bucket of t = 0 is now 1200 ms old
    const later = circuitBreaker({ ...options, clock: new ManualClock(), initialState: snapshot });
    expect(later.stats()).toMatchObject({ calls: 2, failures: 1 });

    now.mockReturnValue(52_000);
    const expired = circuitBreaker({
      ...options,
      clock: new ManualClock(),
      initialState: snapshot,
    });
    expect(expired.stats()).toMatchObject({ calls: 0, failures: 0 });
  });

  it('lets restored time-window buckets expire as the new clock moves', async () => {
    vi.spyOn(Date, 'now').mockReturnValue(0);
    const options = { window: { type: 'time' as const, duration: 1_000 }, minimumCalls: 100 };
    const source = setup(options);
    await source.runAll('fail'); // t = 0
    await source.clock.advance(500);
    await source.runAll('ok', 'fail'); // t = 500
    // Another process, with its own monotonic time; restored at 500 ms of the source's time.
    const clock = new ManualClock(7_000);
    const restored = circuitBreaker({ ...options, clock, initialState: source.breaker.toJSON() });
    expect(restored.stats()).toMatchObject({ calls: 3, failures: 2 });
    await clock.advance(499); // the source's t = 0 bucket is 999 ms old
    expect(restored.stats()).toMatchObject({ calls: 3, failures: 2 });
    await clock.advance(1); // ... now 1000 ms: gone
    expect(restored.stats()).toMatchObject({ calls: 2, failures: 1 });
    await clock.advance(499);
    expect(restored.stats()).toMatchObject({ calls: 2, failures: 1 });
    await clock.advance(1); // the t = 500 bucket goes too
    expect(restored.stats()).toMatchObject({ calls: 0, failures: 0 });
  });

  it('round-trips an isolated breaker through JSON (which writes its Infinity wait as null)', () => {
    const breaker = circuitBreaker({ clock: new ManualClock() });
    breaker.isolate();
    const json = JSON.parse(JSON.stringify(breaker)) as CircuitBreakerSnapshot;
    expect(json.retryAfter).toBeNull();
    const restored = circuitBreaker({ clock: new ManualClock(), initialState: json });
    expect(restored.stats()).toMatchObject({ state: 'isolated', retryAfter: Infinity });
  });

  it('restores isolated and closed states; a half-open one restarts ready for a trial', () => {
    vi.spyOn(Date, 'now').mockReturnValue(0);
    const base = { version: 1 as const, retryAfter: 0, savedAt: 0, consecutiveFailures: 0 };
    const clock = new ManualClock();
    expect(
      circuitBreaker({ clock, initialState: { ...base, state: 'isolated' } }).tryEnter(1e9),
    ).toBe(-1);
    expect(circuitBreaker({ clock, initialState: { ...base, state: 'closed' } }).state).toBe(
      'closed',
    );
    const half = circuitBreaker({ clock, initialState: { ...base, state: 'halfOpen' } });
    expect(half.state).toBe('open');
    expect(half.tryEnter(0)).toBeGreaterThanOrEqual(0);
    expect(half.state).toBe('halfOpen');
  });

  it('without a clock, the snapshot is restored when the first pipeline gives one', async () => {
    vi.spyOn(Date, 'now').mockReturnValue(0);
    const snapshot: CircuitBreakerSnapshot = {
      version: 1,
      state: 'open',
      retryAfter: 500,
      savedAt: 0,
      consecutiveFailures: 1,
    };
    const breaker = circuitBreaker({ initialState: snapshot, halfOpenAfter: 1_000 });
    const clock = new ManualClock(10_000);
    const call = resilient(() => Promise.resolve('ok'), { clock, circuitBreaker: breaker });
    expect(await call().catch((e: unknown) => e)).toBeInstanceOf(CircuitOpenError);
    await clock.advance(500);
    expect(await call()).toBe('ok');
  });

  it('without any clock, reading the state restores against the system clock', () => {
    vi.spyOn(Date, 'now').mockReturnValue(0);
    const performanceNow = vi.spyOn(performance, 'now').mockReturnValue(1_000_000);
    const breaker = circuitBreaker({
      halfOpenAfter: 100,
      initialState: {
        version: 1,
        state: 'open',
        retryAfter: 500,
        savedAt: 0,
        consecutiveFailures: 0,
      },
    });
    expect(breaker.state).toBe('open'); // restored here, at performance.now() = 1 000 000
    performanceNow.mockReturnValue(1_000_499);
    expect(breaker.tryEnter(performance.now())).toBe(-1);
    expect(breaker.stats().retryAfter).toBe(1);
    performanceNow.mockReturnValue(1_000_500);
    expect(breaker.tryEnter(performance.now())).toBeGreaterThanOrEqual(0);
    expect(breaker.state).toBe('halfOpen');
  });

  const valid: CircuitBreakerSnapshot = {
    version: 1,
    state: 'open',
    retryAfter: 500,
    savedAt: 0,
    consecutiveFailures: 1,
  };
  it.each<[string, unknown, RegExp]>([
    ['an array', [], /`circuitBreaker.initialState` to be a snapshot/],
    ['a string', 'open', /`circuitBreaker.initialState` to be a snapshot/],
    ['version 2', { ...valid, version: 2 }, /`circuitBreaker.initialState.version` to be 1/],
    ['no version', { ...valid, version: undefined }, /initialState.version/],
    [
      'a bogus state',
      { ...valid, state: 'ajar' },
      /`circuitBreaker.initialState.state` to be 'closed', 'open', 'halfOpen' or 'isolated', got `"ajar"`/,
    ],
    ['no state', { ...valid, state: undefined }, /initialState.state/],
    [
      'retryAfter a string',
      { ...valid, retryAfter: '500' },
      /`circuitBreaker.initialState.retryAfter`/,
    ],
    ['no retryAfter', { ...valid, retryAfter: undefined }, /initialState.retryAfter/],
    ['retryAfter NaN', { ...valid, retryAfter: NaN }, /initialState.retryAfter/],
    ['retryAfter negative', { ...valid, retryAfter: -1 }, /initialState.retryAfter/],
    ['retryAfter null while open', { ...valid, retryAfter: null }, /initialState.retryAfter/],
    [
      'savedAt a string',
      { ...valid, savedAt: '0' },
      /`circuitBreaker.initialState.savedAt` to be a time from Date.now\(\)/,
    ],
    ['no savedAt', { ...valid, savedAt: undefined }, /initialState.savedAt/],
    ['savedAt NaN', { ...valid, savedAt: NaN }, /initialState.savedAt/],
    [
      'no consecutiveFailures',
      { ...valid, consecutiveFailures: undefined },
      /initialState.consecutiveFailures/,
    ],
    [
      'fractional consecutiveFailures',
      { ...valid, consecutiveFailures: 1.5 },
      /`circuitBreaker.initialState.consecutiveFailures` to be an integer >= 0/,
    ],
    [
      'negative consecutiveFailures',
      { ...valid, consecutiveFailures: -1 },
      /initialState.consecutiveFailures/,
    ],
    [
      'outcomes not an array',
      { ...valid, outcomes: 'ffs' },
      /`circuitBreaker.initialState.outcomes` to be an array/,
    ],
    [
      'an outcome of 4',
      { ...valid, outcomes: [0, 1, 4] },
      /`circuitBreaker.initialState.outcomes\[2\]` to be 0, 1, 2 or 3, got `4`/,
    ],
    ['a fractional outcome', { ...valid, outcomes: [0.5] }, /initialState.outcomes\[0\]/],
    [
      'buckets not an array',
      { ...valid, buckets: 3, bucketSize: 100 },
      /`circuitBreaker.initialState.buckets` to be an array/,
    ],
    [
      'a bucket of two',
      { ...valid, buckets: [[1, 1]], bucketSize: 100 },
      /`circuitBreaker.initialState.buckets\[0\]` to be \[calls, failures, slow\]/,
    ],
    [
      'a fractional bucket count',
      { ...valid, buckets: [[1.5, 0, 0]], bucketSize: 100 },
      /`circuitBreaker.initialState.buckets\[0\]\[0\]` to be an integer >= 0/,
    ],
    [
      'more failures than calls',
      { ...valid, buckets: [[1, 2, 0]], bucketSize: 100 },
      /`circuitBreaker.initialState.buckets\[0\]` to be failures and slow calls no more than calls/,
    ],
    [
      'more slow calls than calls',
      { ...valid, buckets: [[1, 0, 2]], bucketSize: 100 },
      /initialState.buckets\[0\]` to be failures and slow/,
    ],
    [
      'buckets without bucketSize',
      { ...valid, buckets: [] },
      /`circuitBreaker.initialState.bucketSize` to be a number > 0/,
    ],
    ['bucketSize 0', { ...valid, buckets: [], bucketSize: 0 }, /initialState.bucketSize/],
  ])('rejects a snapshot with %s, naming the field', (_, initialState, message) => {
    const make = () =>
      circuitBreaker({
        clock: new ManualClock(),
        initialState: initialState as CircuitBreakerSnapshot,
      });
    expect(make).toThrow(TypeError);
    expect(make).toThrow(message);
  });

  it('accepts every part of a valid snapshot', () => {
    vi.spyOn(Date, 'now').mockReturnValue(0);
    const count = { ...valid, outcomes: [0, 1, 2, 3] };
    expect(circuitBreaker({ clock: new ManualClock(), initialState: count }).stats()).toMatchObject(
      {
        calls: 4,
        failures: 2,
        slowCalls: 2,
      },
    );
    const time = { ...valid, buckets: [[3, 1, 2] as const], bucketSize: 100 };
    const timed = circuitBreaker({
      clock: new ManualClock(),
      window: { type: 'time', duration: 1_000 },
      initialState: time,
    });
    expect(timed.stats()).toMatchObject({ calls: 3, failures: 1, slowCalls: 2 });
  });

  it('rejects a snapshot whose getter throws, naming it', () => {
    const initialState = {
      ...valid,
      get state(): never {
        throw new Error('nope');
      },
    };
    expect(() => circuitBreaker({ initialState })).toThrow(
      /Could not read `circuitBreaker.initialState`: it threw/,
    );
  });

  it('rejects something that is not a snapshot', () => {
    expect(() =>
      circuitBreaker({ initialState: { version: 2 } as unknown as CircuitBreakerSnapshot }),
    ).toThrow(/`circuitBreaker.initialState.version` to be 1, got `2`/);
    expect(() =>
      circuitBreaker({ initialState: null as unknown as CircuitBreakerSnapshot }),
    ).toThrow(/initialState/);
  });
});

describe('circuit breaker: one sample per attempt', () => {
  it('each retry attempt records one sample', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 10 });
    const fn = vi.fn(() => Promise.reject(boom));
    const call = resilient(fn, {
      clock,
      circuitBreaker: breaker,
      retry: { maxAttempts: 3, backoff: backoff.constant(10) },
    });
    const result = call().catch((e: unknown) => e);
    await clock.advance(20);
    expect(await result).toBe(boom);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(breaker.stats()).toMatchObject({ calls: 3, failures: 3, consecutiveFailures: 3 });
  });

  it('a retry that meets an open circuit is not retried and fn is not called again', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 2 });
    const fn = vi.fn(() => Promise.reject(boom));
    const call = resilient(fn, {
      clock,
      circuitBreaker: breaker,
      retry: { maxAttempts: 5, backoff: backoff.constant(10) },
    });
    const result = call().catch((e: unknown) => e);
    await clock.advance(100);
    expect(await result).toBeInstanceOf(CircuitOpenError);
    expect(fn).toHaveBeenCalledTimes(2);
  });
});

describe('circuit breaker: stats and standalone use', () => {
  it('stats() reports counts, rates and retryAfter', async () => {
    const { runAll, breaker } = setup({
      minimumCalls: 10,
      slowCallDuration: 1_000,
      halfOpenAfter: 5_000,
    });
    expect(breaker.stats()).toEqual({
      state: 'closed',
      calls: 0,
      failures: 0,
      slowCalls: 0,
      failureRate: 0,
      slowCallRate: 0,
      consecutiveFailures: 0,
      retryAfter: 0,
    });
    await runAll('ok', 'fail', 'fail', 'ok');
    expect(breaker.stats()).toEqual({
      state: 'closed',
      calls: 4,
      failures: 2,
      slowCalls: 0,
      failureRate: 0.5,
      slowCallRate: 0,
      consecutiveFailures: 0,
      retryAfter: 0,
    });
  });

  it('works without a pipeline: tryEnter / recordSuccess / recordFailure / release', () => {
    const clock = new ManualClock();
    const breaker = new CircuitBreaker({
      clock,
      consecutiveFailures: 1,
      halfOpenAfter: 100,
      name: 'db',
    });
    expect(breaker.name).toBe('db');
    expect(breaker.describe().name).toBe('db');
    breaker.recordSuccess(breaker.tryEnter(0), 0);
    breaker.recordFailure(breaker.tryEnter(0), 0, boom);
    expect(breaker.tryEnter(50)).toBe(-1);
    expect(breaker.retryAfter(50)).toBe(50);
    const trial = breaker.tryEnter(100);
    expect(trial).toBeGreaterThanOrEqual(0);
    expect(breaker.tryEnter(100)).toBe(-1);
    breaker.release(trial);
    const again = breaker.tryEnter(100);
    expect(again).toBeGreaterThanOrEqual(0);
    breaker.recordSuccess(again, 100);
    expect(breaker.state).toBe('closed');
  });

  it('without any clock it falls back to the system clock', () => {
    const performanceNow = vi.spyOn(performance, 'now').mockReturnValue(10_000);
    const breaker = circuitBreaker({ slowCallDuration: 5_000, consecutiveFailures: 1 });
    breaker.recordSuccess(breaker.tryEnter(0), 5_001); // 4 999 ms by performance.now(): not slow
    expect(breaker.stats()).toMatchObject({ calls: 1, slowCalls: 0 });
    breaker.recordSuccess(breaker.tryEnter(0), 5_000); // 5 000 ms: slow
    expect(breaker.stats()).toMatchObject({ calls: 2, slowCalls: 1 });
    breaker.recordFailure(breaker.tryEnter(0), 9_000, boom); // opens at performance.now()
    performanceNow.mockReturnValue(10_000 + 29_999);
    expect(breaker.stats()).toMatchObject({ state: 'open', retryAfter: 1 });
  });

  it('tells a listener when a snapshot is restored on adopting a clock', () => {
    vi.spyOn(Date, 'now').mockReturnValue(0);
    const breaker = circuitBreaker({
      initialState: {
        version: 1,
        state: 'closed',
        retryAfter: 0,
        savedAt: 0,
        consecutiveFailures: 2,
      },
    });
    const listener = vi.fn();
    breaker.on(listener);
    resilient(() => 1, { clock: new ManualClock(), circuitBreaker: breaker });
    expect(listener).toHaveBeenCalledWith({ type: 'circuitStateRestored', state: 'closed' });
    expect(breaker.stats().consecutiveFailures).toBe(2);
  });

  it('an unsubscribed listener hears nothing more', () => {
    const breaker = circuitBreaker({ clock: new ManualClock() });
    const listener = vi.fn();
    const off = breaker.on(listener);
    breaker.isolate();
    off();
    breaker.reset();
    expect(listener).toHaveBeenCalledTimes(1);
    expect(listener).toHaveBeenCalledWith({ type: 'circuitIsolated' });
  });
});

describe('circuit breaker: option validation', () => {
  it.each<[string, CircuitBreakerOptions, RegExp]>([
    ['threshold 0', { failureRateThreshold: 0 }, /`circuitBreaker.failureRateThreshold`.*> 0/],
    ['threshold > 1', { failureRateThreshold: 50 }, /`circuitBreaker.failureRateThreshold`.*`50`/],
    ['threshold NaN', { failureRateThreshold: NaN }, /`circuitBreaker.failureRateThreshold`/],
    ['minimumCalls 0', { minimumCalls: 0 }, /`circuitBreaker.minimumCalls`/],
    ['minimumCalls 1.5', { minimumCalls: 1.5 }, /`circuitBreaker.minimumCalls`.*integer/],
    [
      'minimumCalls > size',
      { minimumCalls: 11, window: { type: 'count', size: 10 } },
      /`circuitBreaker.minimumCalls` \(11\) exceeds `circuitBreaker.window.size` \(10\)/,
    ],
    [
      'minimumCalls > default size',
      { minimumCalls: 101 },
      /`circuitBreaker.minimumCalls` \(101\) exceeds `circuitBreaker.window.size` \(100\)/,
    ],
    ['window size 0', { window: { type: 'count', size: 0 } }, /`circuitBreaker.window.size`/],
    ['window duration 0', { window: { type: 'time', duration: 0 } }, /window.duration/],
    ['window type', { window: { type: 'sliding' } as never }, /`circuitBreaker.window.type`/],
    ['window no type', { window: {} as never }, /`circuitBreaker.window.type`/],
    ['window not object', { window: 5 as never }, /`circuitBreaker.window` to be an options/],
    ['consecutiveFailures 0', { consecutiveFailures: 0 }, /`circuitBreaker.consecutiveFailures`/],
    ['slowCallDuration 0', { slowCallDuration: 0 }, /`circuitBreaker.slowCallDuration`/],
    [
      'slowCallRateThreshold 2',
      { slowCallDuration: 10, slowCallRateThreshold: 2 },
      /`circuitBreaker.slowCallRateThreshold`/,
    ],
    [
      'slowCallRateThreshold alone',
      { slowCallRateThreshold: 0.5 },
      /`circuitBreaker.slowCallRateThreshold` needs `circuitBreaker.slowCallDuration`/,
    ],
    ['halfOpenAfter -1', { halfOpenAfter: -1 }, /`circuitBreaker.halfOpenAfter`/],
    ['halfOpenMaxCalls 0', { halfOpenMaxCalls: 0 }, /`circuitBreaker.halfOpenMaxCalls`/],
    [
      'maxRetryAfter -1',
      { maxRetryAfter: -1 },
      /`circuitBreaker.maxRetryAfter` to be a number >= 0/,
    ],
    ['maxRetryAfter NaN', { maxRetryAfter: NaN }, /`circuitBreaker.maxRetryAfter`/],
    ['maxRetryAfter a string', { maxRetryAfter: '5m' as never }, /`circuitBreaker.maxRetryAfter`/],
    ['isFailure', { isFailure: 'yes' as never }, /`circuitBreaker.isFailure` to be a function/],
    ['clock', { clock: {} as never }, /`circuitBreaker.clock`/],
    [
      'clock without now',
      { clock: { setTimer() {}, clearTimer() {} } as never },
      /`circuitBreaker.clock` to be a Clock \{ now, setTimer, clearTimer \} \(now not a function\)/,
    ],
    [
      'clock without setTimer',
      { clock: { now: () => 0, clearTimer() {} } as never },
      /\(setTimer not a function\)/,
    ],
    [
      'clock without clearTimer',
      { clock: { now: () => 0, setTimer() {} } as never },
      /\(clearTimer not a function\)/,
    ],
    ['clock null', { clock: null as never }, /`circuitBreaker.clock` to be a Clock.*got `null`/],
    [
      'clock a function',
      { clock: Object.assign(() => 0, { now: () => 0, setTimer() {}, clearTimer() {} }) },
      /`circuitBreaker.clock` to be a Clock/,
    ],
    [
      'window size 2.5',
      { window: { type: 'count', size: 2.5 }, minimumCalls: 1 },
      /`circuitBreaker.window.size` to be an integer/,
    ],
    [
      'consecutiveFailures 1.5',
      { consecutiveFailures: 1.5 },
      /`circuitBreaker.consecutiveFailures` to be an integer/,
    ],
    [
      'halfOpenMaxCalls 1.5',
      { halfOpenMaxCalls: 1.5 },
      /`circuitBreaker.halfOpenMaxCalls` to be an integer/,
    ],
    ['name', { name: 5 as never }, /`circuitBreaker.name`/],
    [
      'unknown key',
      { halfOpenAfterMs: 5 } as never,
      /Unknown option `circuitBreaker.halfOpenAfterMs`/,
    ],
    ['not an object', 5 as never, /`circuitBreaker` to be an options object/],
  ])('%s fails at wrap time naming the option', (_, options, message) => {
    expect(() => resilient(() => 1, { circuitBreaker: options })).toThrow(TypeError);
    expect(() => resilient(() => 1, { circuitBreaker: options })).toThrow(message);
    expect(() => circuitBreaker(options)).toThrow(message);
  });

  it('names every problem in one TypeError', () => {
    let error: unknown;
    try {
      circuitBreaker({ failureRateThreshold: 2, halfOpenMaxCalls: 0, minimumCalls: -1 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TypeError);
    const message = (error as TypeError).message;
    expect(message).toMatch(/^Invalid circuitBreaker options:/);
    expect(message).toMatch(/failureRateThreshold/);
    expect(message).toMatch(/halfOpenMaxCalls/);
    expect(message).toMatch(/minimumCalls/);
  });
});
