import { describe, expect, it, vi } from 'vitest';
import {
  ResilienceError,
  TimeoutError,
  backoff,
  isResilienceError,
  resilient,
  type ResilienceEvent,
} from '../../src/index.js';
import { Attempt } from '../../src/core/attempt.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { deferred, track } from '../helpers/promises.js';

const never = () => new Promise<never>(() => {});

describe('timeout: a number is the per-attempt limit', () => {
  it('rejects with TimeoutError { timeout } when fn runs past it', async () => {
    const clock = new ManualClock();
    const call = track(resilient(never, { timeout: 100, clock })());
    await clock.advance(99);
    expect(call.status).toBe('pending');
    await clock.advance(1);
    expect(call.status).toBe('rejected');
    const error = call.reason as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toBeInstanceOf(ResilienceError);
    expect(error).toBeInstanceOf(Error);
    expect(isResilienceError(error)).toBe(true);
    expect(error.timeout).toBe(100);
    expect(error.scope).toBe('attempt');
    expect(error.code).toBe('ERR_BULWARK_TIMEOUT');
    expect(error.name).toBe('TimeoutError');
    expect(error.message).toBe('Attempt timed out after 100 ms');
  });

  it('passes the value through when fn is in time, and nothing changes afterwards', async () => {
    const clock = new ManualClock();
    const d = deferred<string>();
    const call = track(resilient(() => d.promise, { timeout: 100, clock })());
    await clock.advance(50);
    d.resolve('in time');
    await clock.advance(0);
    expect(call.value).toBe('in time');
    await clock.advance(1_000);
    expect(call.status).toBe('fulfilled');
  });

  it('passes fn’s own error through when fn fails in time', async () => {
    const clock = new ManualClock();
    const error = new Error('own');
    const d = deferred();
    const call = track(resilient(() => d.promise, { timeout: 100, clock })());
    d.reject(error);
    await clock.advance(0);
    expect(call.reason).toBe(error);
  });

  it('ignores fn settling after the timeout (no unhandled rejection, result stays the TimeoutError)', async () => {
    const clock = new ManualClock();
    const late = deferred();
    const call = track(resilient(() => late.promise, { timeout: 10, clock })());
    await clock.advance(10);
    late.reject(new Error('too late'));
    await clock.advance(0);
    expect(call.reason).toBeInstanceOf(TimeoutError);
  });

  it('times each call separately, with one shared unref’d timer that keeps no process alive', async () => {
    const clock = new ManualClock();
    const wrapped = resilient(never, { timeout: 100, clock });
    const first = track(wrapped());
    await clock.advance(30);
    const second = track(wrapped());
    await clock.advance(70);
    expect(first.status).toBe('rejected');
    expect(second.status).toBe('pending');
    await clock.advance(30);
    expect(second.status).toBe('rejected');
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('calls that finish in time leave no timer that keeps a process alive', async () => {
    const clock = new ManualClock();
    const wrapped = resilient(async (x: number) => x * 2, { timeout: 100, clock });
    for (let i = 0; i < 5; i++) await expect(wrapped(i)).resolves.toBe(i * 2);
    // Released at the end of the event-loop turn in which the last call settled.
    await new Promise((resolve) => setImmediate(resolve));
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('applies to a synchronous throw and a plain return value as well', async () => {
    const clock = new ManualClock();
    const error = new Error('sync');
    await expect(
      resilient(
        () => {
          throw error;
        },
        { timeout: 100, clock },
      )(),
    ).rejects.toBe(error);
    await expect(resilient(() => 7, { timeout: 100, clock })()).resolves.toBe(7);
  });

  it('emits timedOut with the limit and scope', async () => {
    const clock = new ManualClock();
    const wrapped = resilient(never, { timeout: 25, clock });
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    track(wrapped());
    await clock.advance(25);
    expect(events).toEqual([{ type: 'timedOut', timeout: 25, scope: 'attempt' }]);
  });

  it('Infinity means no timeout stage', async () => {
    const clock = new ManualClock();
    const wrapped = resilient(never, { timeout: Infinity, clock });
    const call = track(wrapped());
    await clock.advance(1e9);
    expect(call.status).toBe('pending');
    expect(clock.pending()).toBe(0);
    expect(wrapped.describe().stages.find((s) => s.stage === 'timeout')?.enabled).toBe(false);
  });
});

describe('timeout on the system clock (real time)', () => {
  it('reads the clock once per turn of the event loop, not once per call', async () => {
    const wrapped = resilient(async (x: number) => x, { timeout: 10_000 });
    await wrapped(0); // the first call of the process may set things up
    await new Promise((resolve) => setImmediate(resolve));
    const now = vi.spyOn(performance, 'now');
    try {
      // 100 calls one after another, all in one turn of the event loop.
      for (let i = 0; i < 100; i++) await wrapped(i);
      expect(now.mock.calls.length).toBe(0);
      await new Promise((resolve) => setImmediate(resolve));
      expect(now.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      now.mockRestore();
    }
  });

  it('never fires early, and fires on a call that waits in a later turn', async () => {
    const wrapped = resilient(never, { timeout: 30 });
    const t0 = performance.now();
    const first = wrapped();
    // A busy turn: the deadline is stamped at its end.
    while (performance.now() - t0 < 5) {
      // spin
    }
    await new Promise((resolve) => setImmediate(resolve));
    const t1 = performance.now();
    const second = wrapped();
    await expect(first).rejects.toBeInstanceOf(TimeoutError);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(30);
    await expect(second).rejects.toBeInstanceOf(TimeoutError);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(30);
  });
});

describe('timeout: the attempt signal in execute', () => {
  it('is aborted with the TimeoutError as its reason (fast path)', async () => {
    const clock = new ManualClock();
    const policy = resilient({ timeout: 50, clock });
    let signal: AbortSignal | undefined;
    const call = track(
      policy.execute((context) => {
        signal = context.signal;
        return never();
      }),
    );
    await clock.advance(0);
    expect(signal?.aborted).toBe(false);
    await clock.advance(50);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(call.reason);
    expect(signal?.reason).toBeInstanceOf(TimeoutError);
  });

  it('read only after the timeout, is already aborted with that reason', async () => {
    const clock = new ManualClock();
    const policy = resilient({ timeout: 50, clock });
    let context: { signal: AbortSignal } | undefined;
    const call = track(
      policy.execute((c) => {
        context = c;
        return never();
      }),
    );
    await clock.advance(50);
    expect(context?.signal.aborted).toBe(true);
    expect(context?.signal.reason).toBe(call.reason);
  });

  it('is aborted on every timed-out retry attempt, each with its own error (slow path)', async () => {
    const clock = new ManualClock();
    const policy = resilient({
      timeout: 50,
      retry: { maxAttempts: 3, backoff: backoff.constant(10) },
      clock,
    });
    const signals: AbortSignal[] = [];
    const call = track(
      policy.execute(({ signal }) => {
        signals.push(signal);
        return never();
      }),
    );
    await clock.advance(50 + 10 + 50 + 10 + 50);
    expect(signals).toHaveLength(3);
    expect(signals.every((s) => s.aborted && s.reason instanceof TimeoutError)).toBe(true);
    expect(new Set(signals.map((s) => s.reason)).size).toBe(3);
    expect(call.reason).toBe(signals[2]?.reason);
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('is not aborted when the attempt finishes in time', async () => {
    const clock = new ManualClock();
    const policy = resilient({ timeout: 50, clock });
    let signal: AbortSignal | undefined;
    await expect(
      policy.execute((c) => {
        signal = c.signal;
        return 'ok';
      }),
    ).resolves.toBe('ok');
    await clock.advance(100);
    expect(signal?.aborted).toBe(false);
  });
});

describe('the attempt context', () => {
  it('keeps the first abort reason, whether its signal was read before or after', () => {
    const early = new Attempt(2);
    const signal = early.signal;
    early.abort('first');
    early.abort('second');
    expect(early.attempt).toBe(2);
    expect(signal.reason).toBe('first');
    const late = new Attempt(1);
    late.abort('first');
    late.abort('second');
    expect(late.signal.aborted).toBe(true);
    expect(late.signal.reason).toBe('first');
  });
});

describe('timeout: { attempt, total }', () => {
  it('each retry attempt gets its own attempt timeout', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(never);
    const call = track(
      resilient(fn, {
        timeout: { attempt: 100 },
        retry: { maxAttempts: 3, backoff: backoff.constant(0) },
        clock,
      })(),
    );
    await clock.advance(100);
    expect(fn).toHaveBeenCalledTimes(2);
    await clock.advance(100);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(call.status).toBe('pending');
    await clock.advance(100);
    expect(call.reason).toBeInstanceOf(TimeoutError);
    expect((call.reason as TimeoutError).scope).toBe('attempt');
  });

  it('total alone caps one call, with scope "total"', async () => {
    const clock = new ManualClock();
    const call = track(resilient(never, { timeout: { total: 300 }, clock })());
    await clock.advance(299);
    expect(call.status).toBe('pending');
    await clock.advance(1);
    const error = call.reason as TimeoutError;
    expect(error.scope).toBe('total');
    expect(error.timeout).toBe(300);
    expect(error.message).toBe('Call timed out after 300 ms');
  });

  it('total cuts retries short: a retry whose backoff would end past the deadline is not started', async () => {
    const clock = new ManualClock();
    const errors: Error[] = [];
    const fn = vi.fn(() => {
      const error = new Error(`#${errors.length + 1}`);
      errors.push(error);
      return Promise.reject(error);
    });
    const wrapped = resilient(fn, {
      timeout: { total: 250 },
      retry: { maxAttempts: 10, backoff: backoff.constant(100) },
      clock,
    });
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    const call = track(wrapped());
    await clock.advance(200);
    expect(fn).toHaveBeenCalledTimes(3); // at 0, 100, 200; a retry at 300 would end past 250
    expect(call.reason).toBe(errors[2]);
    expect(events.at(-1)).toEqual({
      type: 'retryAbandoned',
      attempt: 3,
      delay: 100,
      remaining: 50,
      error: errors[2],
    });
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('the last attempt only gets what is left of the total, and fails with scope "total"', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(never);
    const call = track(
      resilient(fn, {
        timeout: { attempt: 100, total: 250 },
        retry: { maxAttempts: 10, backoff: backoff.constant(20) },
        clock,
      })(),
    );
    // attempt 1: 0–100, sleep to 120, attempt 2: 120–220, sleep to 240, attempt 3: 240–250 (total)
    await clock.advance(249);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(call.status).toBe('pending');
    await clock.advance(1);
    const error = call.reason as TimeoutError;
    expect(error.scope).toBe('total');
    expect(error.timeout).toBe(10);
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it('a total timeout is never retried', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(never);
    const retryOn = vi.fn(() => true);
    const call = track(
      resilient(fn, {
        timeout: { attempt: 500, total: 100 },
        retry: { maxAttempts: 5, retryOn, backoff: backoff.constant(0) },
        clock,
      })(),
    );
    await clock.advance(100);
    expect((call.reason as TimeoutError).scope).toBe('total');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(retryOn).not.toHaveBeenCalled();
  });

  it('when attempt equals total, the first attempt’s timeout is the attempt one and nothing is retried', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(never);
    const call = track(
      resilient(fn, {
        timeout: { attempt: 100, total: 100 },
        retry: { backoff: backoff.constant(0) },
        clock,
      })(),
    );
    await clock.advance(100);
    expect((call.reason as TimeoutError).scope).toBe('attempt');
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('a retryAfter hint longer than the time left is not waited for', async () => {
    const clock = new ManualClock();
    const error = Object.assign(new Error('429'), { retryAfter: 5_000 });
    const fn = vi.fn(() => Promise.reject(error));
    const call = track(resilient(fn, { timeout: { total: 1_000 }, retry: true, clock })());
    await clock.advance(0);
    expect(call.reason).toBe(error);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('stackTraces: false builds the TimeoutError without a stack trace', async () => {
    const clock = new ManualClock();
    const withTrace = track(resilient(never, { timeout: 1, clock })());
    const without = track(resilient(never, { timeout: 1, clock, stackTraces: false })());
    await clock.advance(1);
    expect((withTrace.reason as Error).stack).toMatch(/\n\s+at /);
    expect((without.reason as Error).stack).not.toMatch(/\n\s+at /);
    // the global setting is restored
    expect(new Error('x').stack).toMatch(/\n\s+at /);
  });

  it('stackTraces: false also applies on the slow path', async () => {
    const clock = new ManualClock();
    const policy = resilient({ timeout: 5, clock, stackTraces: false });
    const call = track(policy.execute(never, { signal: new AbortController().signal }));
    await clock.advance(5);
    expect(call.reason).toBeInstanceOf(TimeoutError);
    expect((call.reason as Error).stack).not.toMatch(/\n\s+at /);
  });
});
