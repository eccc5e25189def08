import { describe, expect, it, vi } from 'vitest';
import { TimeoutError, backoff, resilient, systemClock } from '../src/index.js';

// These prove systemClock's wiring on real time, with waits of at most 50 ms. They are not the only tests on
// real time: the keep-alive, demo, soak, example-app, Redis and multi-process suites run on it too, with
// bounds that hold on a busy machine; everything else runs on the manual clock.

describe('systemClock', () => {
  it('is frozen', () => {
    expect(Object.isFrozen(systemClock)).toBe(true);
  });

  it('now() is monotonic milliseconds from performance.now()', () => {
    const spy = vi.spyOn(performance, 'now').mockReturnValueOnce(1_234.5);
    expect(systemClock.now()).toBe(1_234.5);
    spy.mockRestore();
    const a = systemClock.now();
    const b = systemClock.now();
    expect(b).toBeGreaterThanOrEqual(a);
  });

  // The default clock reads the `performance` object once (Node's `globalThis.performance` is a lazy getter
  // that cost as much as the read itself), and again whenever `setTimeout` changed: fake timers replace both.
  describe('fake timers installed after the clock was read', () => {
    it('now() follows them, and the real clock again once they are uninstalled', () => {
      const before = systemClock.now(); // reads (and keeps) the real performance
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
      try {
        const start = systemClock.now();
        vi.advanceTimersByTime(60_000);
        expect(systemClock.now()).toBe(start + 60_000);
      } finally {
        vi.useRealTimers();
      }
      const after = systemClock.now();
      expect(after).toBeGreaterThanOrEqual(before);
      expect(after - before).toBeLessThan(60_000);
    });

    it('a timeout fires when the fake time reaches it, though real calls ran before', async () => {
      const slow = resilient(() => new Promise<never>(() => undefined), { timeout: 5_000 });
      const fast = resilient(async () => 1, { timeout: 5_000, rateLimiter: { limit: 1e9 } });
      for (let i = 0; i < 100; i++) await fast(); // the clock and the stages ran on real time
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
      try {
        const call = slow();
        const outcome = call.then(
          () => 'resolved',
          (error: unknown) => error,
        );
        await vi.advanceTimersByTimeAsync(4_999);
        let settled: unknown = 'pending';
        void outcome.then((o) => (settled = o));
        await Promise.resolve();
        expect(settled).toBe('pending');
        await vi.advanceTimersByTimeAsync(2);
        expect(await outcome).toBeInstanceOf(TimeoutError);
      } finally {
        vi.useRealTimers();
      }
    });

    it('does not follow performance replaced alone, with the real setTimeout (as the README says)', () => {
      const before = systemClock.now();
      vi.stubGlobal('performance', { now: () => -1 });
      try {
        expect(systemClock.now()).toBeGreaterThanOrEqual(before);
      } finally {
        vi.unstubAllGlobals();
      }
    });

    it('follows globals replaced by hand, setTimeout with performance', () => {
      systemClock.now();
      let t = 5;
      vi.stubGlobal('setTimeout', (cb: () => void) => cb);
      vi.stubGlobal('performance', { now: () => t });
      try {
        expect(systemClock.now()).toBe(5);
        t = 7;
        expect(systemClock.now()).toBe(7);
      } finally {
        vi.unstubAllGlobals();
      }
      expect(systemClock.now()).toBeGreaterThan(7);
    });
  });

  it('setTimer fires the callback once after about `ms`', async () => {
    const start = performance.now();
    const fired = await new Promise<number>((resolve) => {
      systemClock.setTimer(() => resolve(performance.now()), 20);
    });
    expect(fired - start).toBeGreaterThanOrEqual(19);
  });

  it('clearTimer cancels a pending timer; clearing a fired one is a no-op', async () => {
    const callback = vi.fn();
    const handle = systemClock.setTimer(callback, 5);
    systemClock.clearTimer(handle);
    const fired = await new Promise<unknown>((resolve) => {
      const h = systemClock.setTimer(() => resolve(h), 10);
    });
    expect(callback).not.toHaveBeenCalled();
    expect(() => systemClock.clearTimer(fired)).not.toThrow();
  });

  it('timers keep the process alive unless asked not to (unref)', () => {
    const kept = systemClock.setTimer(() => {}, 50) as NodeJS.Timeout;
    const unrefd = systemClock.setTimer(() => {}, 50, true) as NodeJS.Timeout;
    const explicit = systemClock.setTimer(() => {}, 50, false) as NodeJS.Timeout;
    expect(kept.hasRef()).toBe(true);
    expect(explicit.hasRef()).toBe(true);
    expect(unrefd.hasRef()).toBe(false);
    for (const h of [kept, unrefd, explicit]) systemClock.clearTimer(h);
  });

  it('is the default clock of the pipeline', () => {
    expect(resilient(() => 1).describe().clock).toBe('system');
  });
});

describe('the pipeline on real time', () => {
  it('an attempt timeout fires on real time, and its shared timer is ref’d while the call waits', async () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const start = performance.now();
    const call = resilient(() => new Promise(() => {}), { timeout: 20 })().catch((e: unknown) => e);
    // The one timer armed during the call (its delay is what is left of 20 ms: a busy machine may have
    // spent some of it already).
    const index = spy.mock.calls.findIndex(([, ms]) => ms !== undefined && ms > 0 && ms <= 20);
    const handle = spy.mock.results[index]?.value as NodeJS.Timeout;
    spy.mockRestore();
    expect(handle.hasRef()).toBe(true);
    const error = await call;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(performance.now() - start).toBeGreaterThanOrEqual(19);
  });

  it('retries after a real backoff sleep', async () => {
    const fn = vi.fn().mockRejectedValueOnce(new Error('x')).mockResolvedValueOnce('ok');
    const start = performance.now();
    await expect(resilient(fn, { retry: { backoff: backoff.constant(15) } })()).resolves.toBe('ok');
    expect(performance.now() - start).toBeGreaterThanOrEqual(14);
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('a real abort during a real sleep rejects at once', async () => {
    const controller = new AbortController();
    const call = resilient({ retry: { backoff: backoff.constant(10_000) } }).execute(
      () => Promise.reject(new Error('x')),
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort('stop'), 10);
    const start = performance.now();
    await expect(call).rejects.toBe('stop');
    expect(performance.now() - start).toBeLessThan(1_000);
  });
});
