import { describe, expect, it, vi } from 'vitest';
import {
  MAX_TIMER_DELAY,
  clearTimer,
  refTimer,
  setTimer,
  systemClock,
  type Clock,
} from '../src/clock.js';
import { TimeoutError, backoff, bulkhead, resilient } from '../src/index.js';
import { ManualClock } from './helpers/manual-clock.js';
import { deferred, track } from './helpers/promises.js';

// Issue 10 items 8 and 9: every timer handles any duration the options accept, and a timer keeps the
// process alive exactly while a call waits on it. The manual clocks here behave as Node's timers do
// (`nodeTimers`: a delay above 2³¹−1 ms fires after 1 ms), so a timer handed to the clock unchecked
// fires early, as it did in Node.

const DAY = 86_400_000;
const DAYS_30 = 30 * DAY;
const never = (): Promise<never> => new Promise(() => {});

function nodeClock(options: { refTimer?: boolean } = {}): ManualClock {
  return new ManualClock(0, { nodeTimers: true, ...options });
}

describe('setTimer (any duration on any clock)', () => {
  it('hands the clock a timer of at most 2³¹−1 ms, and fires a longer one exactly when due', async () => {
    const clock = nodeClock();
    const callback = vi.fn();
    setTimer(clock, callback, DAYS_30);
    await clock.advance(MAX_TIMER_DELAY);
    expect(callback).not.toHaveBeenCalled();
    await clock.advance(DAYS_30 - MAX_TIMER_DELAY - 1);
    expect(callback).not.toHaveBeenCalled();
    await clock.advance(1);
    expect(callback).toHaveBeenCalledTimes(1);
    expect(clock.overflows).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it('passes a timer within the limit straight to the clock', () => {
    const clock = nodeClock();
    const spy = vi.spyOn(clock, 'setTimer');
    const handle = setTimer(clock, () => {}, MAX_TIMER_DELAY, true);
    expect(spy).toHaveBeenCalledWith(expect.any(Function), MAX_TIMER_DELAY, true);
    expect(handle).toBe(spy.mock.results[0]?.value);
  });

  it('Infinity never fires and sets no timer', async () => {
    const clock = nodeClock();
    const callback = vi.fn();
    const handle = setTimer(clock, callback, Infinity);
    expect(clock.pending()).toBe(0);
    await clock.advance(1_000 * DAYS_30);
    expect(callback).not.toHaveBeenCalled();
    clearTimer(clock, handle);
    expect(refTimer(clock, handle, true)).toBe(true);
    expect(clock.overflows).toBe(0);
  });

  it('clearTimer cancels a chained timer in any link of its chain', async () => {
    const clock = nodeClock();
    const callback = vi.fn();
    const handle = setTimer(clock, callback, 3 * MAX_TIMER_DELAY);
    await clock.advance(MAX_TIMER_DELAY + 5);
    expect(clock.pending()).toBe(1);
    clearTimer(clock, handle);
    expect(clock.pending()).toBe(0);
    await clock.advance(3 * MAX_TIMER_DELAY);
    expect(callback).not.toHaveBeenCalled();
    clearTimer(clock, handle); // a no-op once cancelled or fired
  });

  it('a chained timer keeps its ref state on every link', async () => {
    const clock = nodeClock();
    const handle = setTimer(clock, () => {}, DAYS_30, true);
    expect(clock.pending({ refOnly: true })).toBe(0);
    expect(refTimer(clock, handle, true)).toBe(true);
    expect(clock.pending({ refOnly: true })).toBe(1);
    await clock.advance(MAX_TIMER_DELAY);
    expect(clock.pending({ refOnly: true })).toBe(1); // the next link is ref'd too
    refTimer(clock, handle, false);
    expect(clock.pending({ refOnly: true })).toBe(0);
    await clock.advance(MAX_TIMER_DELAY);
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('refTimer says false for a clock that cannot ref or unref', () => {
    const clock = nodeClock({ refTimer: false });
    const handle = setTimer(clock, () => {}, 10);
    expect(refTimer(clock, handle, false)).toBe(false);
    expect(clock.pending({ refOnly: true })).toBe(1);
  });
});

describe('durations above 2³¹−1 ms through the pipeline', () => {
  it('a 30-day retryAfter is waited for, not retried at once', async () => {
    const clock = nodeClock();
    const fn = vi
      .fn()
      .mockRejectedValueOnce(Object.assign(new Error('busy'), { retryAfter: DAYS_30 }))
      .mockResolvedValueOnce('ok');
    const call = track(
      resilient(fn, { retry: { maxAttempts: 2, maxRetryAfter: DAYS_30 }, clock })(),
    );
    await clock.advance(1_000);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(DAYS_30 - 1_001);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(call.status).toBe('pending');
    await clock.advance(1);
    expect(fn).toHaveBeenCalledTimes(2);
    expect(call.value).toBe('ok');
    expect(clock.overflows).toBe(0);
  });

  it('a 30-day backoff is slept in full', async () => {
    const clock = nodeClock();
    const fn = vi.fn().mockRejectedValueOnce(new Error('x')).mockResolvedValueOnce('ok');
    const call = track(
      resilient(fn, { retry: { maxAttempts: 2, backoff: backoff.constant(DAYS_30) }, clock })(),
    );
    await clock.advance(DAYS_30 - 1);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    expect(call.value).toBe('ok');
    expect(clock.overflows).toBe(0);
  });

  it.each([
    ['without a listener (shared deadline queue)', 'plain'],
    ['with a listener (a timer per call)', 'listener'],
    ['with a signal (the slow path)', 'signal'],
  ] as const)('timeout: 30 days times out after 30 days, %s', async (_name, mode) => {
    const clock = nodeClock();
    const policy = resilient({ timeout: DAYS_30, clock });
    if (mode === 'listener') policy.on(() => {});
    const call = track(
      mode === 'signal'
        ? policy.execute(never, { signal: new AbortController().signal })
        : policy.execute(never),
    );
    await clock.advance(1_000);
    expect(call.status).toBe('pending');
    await clock.advance(DAYS_30 - 1_001);
    expect(call.status).toBe('pending');
    await clock.advance(1);
    expect(call.reason).toBeInstanceOf(TimeoutError);
    expect((call.reason as TimeoutError).timeout).toBe(DAYS_30);
    expect(clock.overflows).toBe(0);
  });

  it('timeout.total: 30 days caps the whole call after 30 days', async () => {
    const clock = nodeClock();
    const call = track(resilient(never, { timeout: { total: DAYS_30 }, clock })());
    await clock.advance(DAYS_30 - 1);
    expect(call.status).toBe('pending');
    await clock.advance(1);
    expect(call.reason).toBeInstanceOf(TimeoutError);
    expect(clock.overflows).toBe(0);
  });

  it('a bulkhead queueTimeout of 30 days waits 30 days', async () => {
    const clock = nodeClock();
    const pool = bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeout: DAYS_30 });
    const gate = deferred<string>();
    const fn = resilient(() => gate.promise, { bulkhead: pool, clock });
    const first = track(fn());
    const queued = track(fn());
    await clock.advance(DAYS_30 - 1);
    expect(queued.status).toBe('pending');
    await clock.advance(1);
    expect(queued.status).toBe('rejected');
    gate.resolve('done');
    await clock.advance(0);
    expect(first.value).toBe('done');
    expect(clock.overflows).toBe(0);
  });

  it('a cache with a 30-day ttl arms one timer, serves for 30 days, then calls again', async () => {
    const clock = nodeClock();
    let calls = 0;
    const fn = resilient(async () => ++calls, { cache: { ttl: DAYS_30 }, clock });
    expect(await fn()).toBe(1);
    const spy = vi.spyOn(clock, 'setTimer');
    await clock.advance(DAYS_30 - 1);
    expect(await fn()).toBe(1);
    // The expiry timer is re-armed once per 2³¹−1 ms link, not spun every millisecond.
    expect(spy.mock.calls.length).toBeLessThanOrEqual(2);
    await clock.advance(1);
    expect(await fn()).toBe(2);
    expect(clock.overflows).toBe(0);
  });
});

describe('timers a call waits on keep the process alive; nothing else does', () => {
  it('the shared timeout timer is ref’d while a call waits, unref’d (not cleared) when none does', async () => {
    const clock = nodeClock();
    const gate = deferred<string>();
    let next = gate.promise;
    const fn = resilient(() => next, { timeout: 1_000, clock });
    const setTimerSpy = vi.spyOn(clock, 'setTimer');
    const first = track(fn());
    expect(clock.pending({ refOnly: true })).toBe(1);
    gate.resolve('a');
    await clock.advance(0);
    expect(first.value).toBe('a');
    expect(clock.pending()).toBe(1); // still armed: the next call needs no new timer
    expect(clock.pending({ refOnly: true })).toBe(0);
    const second = deferred<string>();
    next = second.promise;
    const call = track(fn());
    expect(clock.pending({ refOnly: true })).toBe(1);
    expect(setTimerSpy).toHaveBeenCalledTimes(1);
    second.resolve('b');
    await clock.advance(0);
    expect(call.value).toBe('b');
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('a call that never settles holds the process until its timeout, then releases it', async () => {
    const clock = nodeClock();
    const call = track(resilient(never, { timeout: 500, fallback: 'gave up', clock })());
    expect(clock.pending({ refOnly: true })).toBe(1);
    await clock.advance(500);
    expect(call.value).toBe('gave up');
    expect(clock.pending()).toBe(0);
  });

  it('with a listener, each waiting call’s own timer is ref’d and cleared when it settles', async () => {
    const clock = nodeClock();
    const gate = deferred<string>();
    const fn = resilient(() => gate.promise, { timeout: 500, clock });
    fn.on(() => {});
    const call = track(fn());
    expect(clock.pending({ refOnly: true })).toBe(1);
    gate.resolve('ok');
    await clock.advance(0);
    expect(call.value).toBe('ok');
    expect(clock.pending()).toBe(0);
  });

  it('on a clock without refTimer the shared timer is cleared when no call waits', async () => {
    const clock = nodeClock({ refTimer: false });
    const gate = deferred<string>();
    const fn = resilient(() => gate.promise, { timeout: 1_000, clock });
    const call = track(fn());
    expect(clock.pending({ refOnly: true })).toBe(1);
    gate.resolve('a');
    await clock.advance(0);
    expect(call.value).toBe('a');
    expect(clock.pending()).toBe(0);
  });

  it('a cache’s expiry timer never holds the process', async () => {
    const clock = nodeClock();
    const fn = resilient(async () => 1, { cache: { ttl: DAYS_30 }, clock });
    await fn();
    expect(clock.pending()).toBe(1);
    expect(clock.pending({ refOnly: true })).toBe(0);
  });
});

describe('the system clock on real time', () => {
  it('a timer above 2³¹−1 ms is pending after 50 ms, with no TimeoutOverflowWarning', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const callback = vi.fn();
      const handle = systemClock.setTimer(callback, DAYS_30);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(callback).not.toHaveBeenCalled();
      systemClock.clearTimer(handle);
      expect(warnings.filter((w) => w.name === 'TimeoutOverflowWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a 30-day timeout and a 30-day retryAfter have not fired after 50 ms', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const gate = deferred<string>();
      const timed = track(resilient(() => gate.promise, { timeout: DAYS_30 })());
      const controller = new AbortController();
      const fn = vi.fn(() =>
        Promise.reject(Object.assign(new Error('busy'), { retryAfter: DAYS_30 })),
      );
      const retried = track(
        resilient({ retry: { maxAttempts: 2, maxRetryAfter: DAYS_30 }, timeout: DAYS_30 }).execute(
          fn,
          {
            signal: controller.signal,
          },
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(timed.status).toBe('pending');
      expect(retried.status).toBe('pending');
      expect(fn).toHaveBeenCalledTimes(1);
      gate.resolve('ok');
      controller.abort(new Error('done'));
      await new Promise((resolve) => setTimeout(resolve, 0));
      expect(timed.value).toBe('ok');
      expect(retried.status).toBe('rejected');
      expect(warnings.filter((w) => w.name === 'TimeoutOverflowWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('refTimer refs and unrefs a Node timer', () => {
    const handle = systemClock.setTimer(() => {}, 1_000, true) as NodeJS.Timeout;
    expect(handle.hasRef()).toBe(false);
    systemClock.refTimer!(handle, true);
    expect(handle.hasRef()).toBe(true);
    systemClock.refTimer!(handle, false);
    expect(handle.hasRef()).toBe(false);
    systemClock.clearTimer(handle);
  });

  it('guards hosts without unref: a numeric handle (browser, Worker) and Deno’s refTimer', () => {
    const calls: string[] = [];
    const deno = {
      refTimer: (id: number) => calls.push(`ref ${id}`),
      unrefTimer: (id: number) => calls.push(`unref ${id}`),
    };
    const spy = vi
      .spyOn(globalThis, 'setTimeout')
      .mockReturnValue(42 as unknown as ReturnType<typeof setTimeout>);
    const clear = vi.spyOn(globalThis, 'clearTimeout').mockImplementation(() => {});
    try {
      // No Deno: a number is left alone.
      expect(() => systemClock.setTimer(() => {}, 10, true)).not.toThrow();
      vi.stubGlobal('Deno', deno);
      systemClock.setTimer(() => {}, 10, true);
      systemClock.refTimer!(42, true);
      expect(calls).toEqual(['unref 42', 'ref 42']);
      // A handle object without ref/unref (a Worker's, say) is left alone too.
      spy.mockReturnValue({} as ReturnType<typeof setTimeout>);
      expect(() => systemClock.setTimer(() => {}, 10, true)).not.toThrow();
    } finally {
      vi.unstubAllGlobals();
      spy.mockRestore();
      clear.mockRestore();
    }
  });
});

describe('Clock contract', () => {
  it('a custom clock built on setTimeout never sees a delay above the limit', async () => {
    const delays: number[] = [];
    const clock: Clock = {
      now: () => performance.now(),
      setTimer: (callback, ms) => {
        delays.push(ms);
        return setTimeout(callback, ms);
      },
      clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    };
    const gate = deferred<number>();
    const call = resilient(() => gate.promise, { timeout: DAYS_30, clock })();
    gate.resolve(1);
    expect(await call).toBe(1);
    expect(delays.length).toBeGreaterThan(0);
    expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_TIMER_DELAY);
  });
});
