import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  resilient,
  resilientSync,
  TimeoutError,
  type AttemptContext,
  type ResilienceEvent,
} from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { track } from '../helpers/promises.js';

/** A seeded PRNG (mulberry32): uniform in [0, 1), the same sequence for the same seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const injected = (events: ResilienceEvent[]) => events.filter((e) => e.type === 'chaosInjected');

describe('chaos: faults', () => {
  it('fails the attempt with the error without calling fn, and says so', async () => {
    const fn = vi.fn(async () => 'real');
    const boom = new Error('injected');
    const wrapped = resilient(fn, { chaos: { fault: { rate: 1, error: boom } } });
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    await expect(wrapped()).rejects.toBe(boom);
    expect(fn).not.toHaveBeenCalled();
    expect(events).toEqual([{ type: 'chaosInjected', kind: 'fault', attempt: 1, error: boom }]);
  });

  it("calls an error function with the call's this and arguments, for a fresh error each time", async () => {
    const seen: unknown[] = [];
    const wrapped = resilient(async (a: string, b: number) => `${a}${b}`, {
      chaos: {
        fault: {
          rate: 1,
          error(this: unknown, a: string, b: number) {
            seen.push(this, a, b);
            return new Error(`${a}:${b}`);
          },
        },
      },
    });
    const self = { id: 1 };
    const first = wrapped.call(self, 'x', 2);
    await expect(first).rejects.toThrow('x:2');
    const e1 = await first.catch((e: unknown) => e);
    const e2 = await wrapped.call(self, 'x', 2).catch((e: unknown) => e);
    expect(e1).not.toBe(e2);
    expect(seen.slice(0, 3)).toEqual([self, 'x', 2]);
  });

  it('on the slow path too (latency configured), an error function gets every argument', async () => {
    const seen: unknown[][] = [];
    const wrapped = resilient(async (...args: number[]) => args.length, {
      chaos: {
        latency: { rate: 0, delay: 10 },
        fault: {
          rate: 1,
          error: (...args: number[]) => {
            seen.push(args);
            return new Error('x');
          },
        },
      },
    });
    await expect(wrapped(1, 2, 3, 4, 5, 6)).rejects.toThrow('x');
    await expect(wrapped(1, 2)).rejects.toThrow('x');
    expect(seen).toEqual([
      [1, 2, 3, 4, 5, 6],
      [1, 2],
    ]);
  });

  it('an error function that throws fails the attempt with what it threw', async () => {
    const oops = new Error('oops');
    const wrapped = resilient(async () => 1, {
      chaos: {
        fault: {
          rate: 1,
          error: () => {
            throw oops;
          },
        },
      },
    });
    await expect(wrapped()).rejects.toBe(oops);
  });

  it('retry, breaker and fallback react to injected faults as to real ones', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(async () => 'real');
    const events: ResilienceEvent[] = [];
    const wrapped = resilient(fn, {
      clock,
      retry: { maxAttempts: 3, backoff: () => 10 },
      circuitBreaker: { consecutiveFailures: 3, halfOpenAfter: 1_000 },
      fallback: (error) => `fallback after ${(error as Error).message}`,
      chaos: { fault: { rate: 1, error: () => new Error('injected') } },
    });
    wrapped.on((e) => events.push(e));
    const call = track(wrapped());
    await clock.advance(20);
    expect(call.value).toBe('fallback after injected');
    expect(fn).not.toHaveBeenCalled();
    expect(injected(events).map((e) => (e as { attempt: number }).attempt)).toEqual([1, 2, 3]);
    expect(events.some((e) => e.type === 'circuitOpened')).toBe(true);
    // The open circuit now refuses before chaos is even asked.
    const next = track(wrapped());
    await clock.advance(0);
    expect(next.value).toMatch(/^fallback after/);
    expect(events.at(-2)).toMatchObject({ type: 'callRejected', reason: 'circuitOpen' });
    expect(injected(events)).toHaveLength(3);
  });

  it('an injected fault inside execute() without any other stage rejects the task', async () => {
    const policy = resilient({ chaos: { fault: { rate: 1, error: new Error('x') } } });
    const task = vi.fn((context: AttemptContext) => context.attempt);
    await expect(policy.execute(task)).rejects.toThrow('x');
    expect(task).not.toHaveBeenCalled();
  });

  it('an open circuit rejects without a fault being drawn (admission comes first)', async () => {
    const random = vi.fn(() => 0);
    const breaker = { consecutiveFailures: 1, halfOpenAfter: 1_000 };
    const wrapped = resilient(
      async () => {
        throw new Error('down');
      },
      { circuitBreaker: breaker, random, chaos: { fault: { rate: 0, error: new Error('x') } } },
    );
    await expect(wrapped()).rejects.toThrow('down');
    expect(random).toHaveBeenCalledTimes(1);
    await expect(wrapped()).rejects.toBeInstanceOf(CircuitOpenError);
    expect(random).toHaveBeenCalledTimes(1);
  });
});

describe('chaos: results', () => {
  it('returns the value without calling fn, and says so', async () => {
    const fn = vi.fn(async () => 'real');
    const wrapped = resilient(fn, { chaos: { result: { rate: 1, value: 'fake' } } });
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    await expect(wrapped()).resolves.toBe('fake');
    expect(fn).not.toHaveBeenCalled();
    expect(events).toEqual([{ type: 'chaosInjected', kind: 'result', attempt: 1, value: 'fake' }]);
  });

  it('retryOnResult sees an injected result as a real one', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(async () => 200);
    const random = seeded(1);
    const wrapped = resilient(fn, {
      clock,
      random,
      retry: { maxAttempts: 2, backoff: () => 5, retryOnResult: (r) => r === 503 },
      chaos: { result: { rate: 1, value: 503 } },
    });
    const call = track(wrapped());
    await clock.advance(5);
    // Both attempts got the injected 503: after the last attempt it is returned.
    expect(call.value).toBe(503);
    expect(fn).not.toHaveBeenCalled();
  });

  it('a fault drawn first wins over a result', async () => {
    const wrapped = resilient(async () => 'real', {
      chaos: { fault: { rate: 1, error: new Error('f') }, result: { rate: 1, value: 'r' } },
    });
    await expect(wrapped()).rejects.toThrow('f');
  });
});

describe('chaos: latency', () => {
  it('waits the delay before fn runs, inside the attempt', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(async () => 'real');
    const events: ResilienceEvent[] = [];
    const wrapped = resilient(fn, { clock, chaos: { latency: { rate: 1, delay: 100 } } });
    wrapped.on((e) => events.push(e));
    const call = track(wrapped());
    await clock.advance(99);
    expect(fn).not.toHaveBeenCalled();
    expect(call.status).toBe('pending');
    await clock.advance(1);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(call.value).toBe('real');
    expect(events).toEqual([{ type: 'chaosInjected', kind: 'latency', attempt: 1, delay: 100 }]);
    expect(clock.pending()).toBe(0);
  });

  it('the attempt timeout counts the wait: it times out, fn is never called, the timer is cleared', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(async () => 'real');
    const wrapped = resilient(fn, {
      clock,
      timeout: 50,
      retry: { maxAttempts: 2, backoff: () => 0 },
      chaos: { latency: { rate: 1, delay: 1_000 } },
    });
    const call = track(wrapped());
    await clock.advance(50);
    expect(call.status).toBe('pending'); // retried
    await clock.advance(50);
    expect(call.reason).toBeInstanceOf(TimeoutError);
    expect(fn).not.toHaveBeenCalled();
    // Both injected waits ended with their attempts: nothing is left to fire.
    expect(clock.pending()).toBe(0);
    await clock.advance(2_000);
    expect(fn).not.toHaveBeenCalled();
  });

  it('an Infinity delay is a hang only the timeout ends', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(async () => 'real');
    const wrapped = resilient(fn, {
      clock,
      timeout: 30,
      chaos: { latency: { rate: 1, delay: Infinity } },
    });
    const call = track(wrapped());
    await clock.advance(30);
    expect(call.reason).toBeInstanceOf(TimeoutError);
    expect(fn).not.toHaveBeenCalled();
    expect(clock.pending()).toBe(0);
  });

  it("the caller's abort ends the wait at once and clears its timer", async () => {
    const clock = new ManualClock();
    const policy = resilient({ clock, chaos: { latency: { rate: 1, delay: 10_000 } } });
    const task = vi.fn((context: AttemptContext) => context.attempt);
    const controller = new AbortController();
    const call = track(policy.execute(task, { signal: controller.signal }));
    await clock.advance(10);
    controller.abort(new Error('gone'));
    await clock.advance(0);
    expect((call.reason as Error).message).toBe('gone');
    expect(clock.pending()).toBe(0);
    await clock.advance(10_000);
    expect(task).not.toHaveBeenCalled();
  });

  it("the pipeline's long-lived signal ends the wait too", async () => {
    const clock = new ManualClock();
    const shutdown = new AbortController();
    const fn = vi.fn(async () => 'real');
    const wrapped = resilient(fn, {
      clock,
      signal: shutdown.signal,
      chaos: { latency: { rate: 1, delay: 10_000 } },
    });
    const call = track(wrapped());
    await clock.advance(1);
    shutdown.abort(new Error('shutdown'));
    await clock.advance(0);
    expect((call.reason as Error).message).toBe('shutdown');
    expect(clock.pending()).toBe(0);
    expect(fn).not.toHaveBeenCalled();
  });

  it('holds a bulkhead slot while it waits, and gives it back when the attempt times out', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(async () => 'real');
    const wrapped = resilient(fn, {
      clock,
      timeout: 100,
      bulkhead: { maxConcurrent: 1, maxQueue: 0 },
      chaos: { latency: { rate: 1, delay: 1_000 } },
    });
    const first = track(wrapped());
    await clock.advance(1);
    await expect(wrapped()).rejects.toBeInstanceOf(BulkheadRejectedError);
    await clock.advance(99);
    expect(first.reason).toBeInstanceOf(TimeoutError);
    expect(wrapped.stats().bulkhead).toMatchObject({ inFlight: 0 });
  });

  it('a hedge races an attempt slowed by injected latency', async () => {
    const clock = new ManualClock();
    let draws = 0;
    // The first attempt draws 0 (latency injected), the hedged one 0.9 (not injected).
    const random = () => (draws++ === 0 ? 0 : 0.9);
    const policy = resilient({
      clock,
      random,
      hedge: { delay: 20 },
      chaos: { latency: { rate: 0.5, delay: 500 } },
    });
    const task = vi.fn(({ signal }: AttemptContext) => (signal.aborted ? 'aborted' : 'ok'));
    const call = track(policy.execute(task));
    await clock.advance(20);
    expect(call.value).toBe('ok');
    expect(task).toHaveBeenCalledTimes(1);
    expect(clock.pending()).toBe(0);
  });
});

describe('chaos: enabled', () => {
  it('disabled: fn runs, nothing is drawn', async () => {
    const random = vi.fn(() => 0);
    const fn = vi.fn(async () => 'real');
    const wrapped = resilient(fn, {
      random,
      chaos: { fault: { rate: 1, error: new Error('x') }, enabled: false },
    });
    await expect(wrapped()).resolves.toBe('real');
    expect(random).not.toHaveBeenCalled();
  });

  it("a function is read once per call with the call's this and arguments; retries follow its answer", async () => {
    const clock = new ManualClock();
    const enabled = vi.fn(function (this: unknown, route: string) {
      return route === '/chaos';
    });
    const fn = vi.fn(async (route: string) => route);
    const wrapped = resilient(fn, {
      clock,
      retry: { maxAttempts: 3, backoff: () => 1 },
      chaos: { fault: { rate: 1, error: () => new Error('injected') }, enabled },
    });
    const self = { tenant: 'a' };
    const hit = track(wrapped.call(self, '/chaos'));
    await clock.advance(5);
    expect((hit.reason as Error).message).toBe('injected');
    expect(enabled).toHaveBeenCalledTimes(1);
    expect(enabled.mock.contexts[0]).toBe(self);
    await expect(wrapped('/calm')).resolves.toBe('/calm');
    expect(enabled).toHaveBeenCalledTimes(2);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('an enabled function that throws or returns a non-boolean leaves chaos off', async () => {
    const chaos = (enabled: () => unknown) => ({
      fault: { rate: 1, error: new Error('x') },
      enabled: enabled as () => boolean,
    });
    const thrower = resilient(async () => 'real', {
      chaos: chaos(() => {
        throw new Error('flag service down');
      }),
    });
    await expect(thrower()).resolves.toBe('real');
    const truthy = resilient(async () => 'real', { chaos: chaos(() => 1) });
    await expect(truthy()).resolves.toBe('real');
  });

  it('latency for a call whose flag is on; the same pipeline stays fast for the others', async () => {
    const clock = new ManualClock();
    const wrapped = resilient(async (id: number) => id, {
      clock,
      chaos: { latency: { rate: 1, delay: 10 }, enabled: (id: number) => id === 1 },
    });
    const slow = track(wrapped(1));
    await expect(wrapped(2)).resolves.toBe(2);
    expect(slow.status).toBe('pending');
    await clock.advance(10);
    expect(slow.value).toBe(1);
  });
});

describe('chaos: randomness', () => {
  const run = async (seed: number): Promise<string[]> => {
    const clock = new ManualClock();
    const outcomes: string[] = [];
    const wrapped = resilient(async () => 'ok', {
      clock,
      random: seeded(seed),
      retry: { maxAttempts: 2 },
      chaos: {
        fault: { rate: 0.3, error: () => new Error('fault') },
        latency: { rate: 0.2, delay: 7 },
        result: { rate: 0.2, value: 'fake' },
      },
    });
    wrapped.on((e) => {
      if (e.type === 'chaosInjected') outcomes.push(`${e.kind}@${e.attempt}`);
    });
    for (let i = 0; i < 50; i++) {
      const call = track(wrapped());
      await clock.runAll();
      outcomes.push(call.status === 'fulfilled' ? String(call.value) : 'failed');
    }
    return outcomes;
  };

  it('a seeded random makes a run reproducible', async () => {
    const a = await run(42);
    expect(await run(42)).toEqual(a);
    expect(await run(7)).not.toEqual(a);
    // Every kind shows up in such a run.
    for (const kind of ['fault@', 'latency@', 'result@']) expect(a.join(' ')).toContain(kind);
  });

  it('the observed injection frequency stays close to the rate (seeded, 2 000 calls)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        async (rate, seed) => {
          const n = 2_000;
          let faults = 0;
          const wrapped = resilient(() => 'ok', {
            random: seeded(seed),
            chaos: { fault: { rate, error: new Error('x') } },
          });
          wrapped.on(() => faults++);
          for (let i = 0; i < n; i++) await wrapped().catch(() => undefined);
          // A binomial's standard deviation is at most 0.5 / sqrt(n) ≈ 0.011: 5 of them is far out.
          expect(Math.abs(faults / n - rate)).toBeLessThanOrEqual(0.06);
          if (rate === 0) expect(faults).toBe(0);
          if (rate === 1) expect(faults).toBe(n);
        },
      ),
      { numRuns: 25, seed: 20261202 },
    );
  });
});

describe('chaos: options', () => {
  const e = new Error('x');
  it.each([
    [{ chaos: 1 }, 'Expected `chaos` to be an options object, got `1` (number)'],
    [
      { chaos: {} },
      'Expected `chaos` to be an object with at least one of `fault`, `latency`, `result`',
    ],
    [
      { chaos: { fault: { rate: 1.5, error: e } } },
      'Expected `chaos.fault.rate` to be a number in [0, 1] (the share of attempts injected), got `1.5` (number)',
    ],
    [
      { chaos: { fault: { error: e } } },
      'Expected `chaos.fault.rate` to be a number in [0, 1] (the share of attempts injected), got `undefined` (undefined); it is required',
    ],
    [
      { chaos: { fault: { rate: 0.1 } } },
      'Expected `chaos.fault.error` to be an Error, or a function (...args) => Error, got `undefined` (undefined); it is required',
    ],
    [
      { chaos: { fault: { rate: 0.1, error: 'boom' } } },
      'Expected `chaos.fault.error` to be an Error, or a function (...args) => Error, got `"boom"` (string)',
    ],
    [
      { chaos: { latency: { rate: Number.NaN, delay: 5 } } },
      'Expected `chaos.latency.rate` to be a number in [0, 1]',
    ],
    [
      { chaos: { latency: { rate: 0.5, delay: 0 } } },
      'Expected `chaos.latency.delay` to be a number > 0 (Infinity allowed), got `0` (number)',
    ],
    [
      { chaos: { latency: { rate: 0.5 } } },
      'Expected `chaos.latency.delay` to be a number of ms > 0, got `undefined` (undefined)',
    ],
    [
      { chaos: { result: { rate: '0.5', value: 1 } } },
      'Expected `chaos.result.rate` to be a number in [0, 1] (the share of attempts injected), got `"0.5"` (string)',
    ],
    [
      { chaos: { result: { rate: 0.5 }, enabled: 'yes' } },
      'Expected `chaos.enabled` to be a boolean or a function (...args) => boolean, got `"yes"` (string)',
    ],
    [{ chaos: { faults: {} } }, 'Unknown option `chaos.faults` (did you mean `chaos.fault`?)'],
    [
      { chaos: { latency: { rate: 1, delay: 5, jitter: 1 } } },
      'Unknown option `chaos.latency.jitter`',
    ],
  ])('%o is a TypeError naming the option', (options, message) => {
    expect(() => resilient(() => 1, options as never)).toThrow(TypeError);
    expect(() => resilient(() => 1, options as never)).toThrow(message);
  });

  it('chaos: false is no chaos', () => {
    expect(
      resilient(() => 1, { chaos: false as never })
        .describe()
        .stages.at(-1),
    ).toEqual({ stage: 'chaos', enabled: false });
  });

  it('resilientSync refuses chaos (its latency would wait)', () => {
    expect(() =>
      resilientSync(() => 1, { chaos: { result: { rate: 1, value: 2 } } } as never),
    ).toThrow('Expected `chaos` to be absent: chaos injects latency, a wait (use resilient())');
  });

  it('describe() shows the chaos stage, innermost', () => {
    const description = resilient(() => 1, {
      chaos: {
        fault: { rate: 0.1, error: () => new Error('x') },
        latency: { rate: 0.2, delay: 300 },
        enabled: () => true,
      },
    }).describe();
    expect(description.order.at(-1)).toBe('chaos');
    expect(description.stages.at(-1)).toEqual({
      stage: 'chaos',
      enabled: true,
      active: 'per call',
      fault: { rate: 0.1, error: 'function' },
      latency: { rate: 0.2, delay: 300 },
      result: 'none',
    });
    expect(
      resilient({ chaos: { result: { rate: 1, value: 1 }, enabled: false } })
        .describe()
        .stages.at(-1),
    ).toEqual({
      stage: 'chaos',
      enabled: true,
      active: false,
      fault: 'none',
      latency: 'none',
      result: { rate: 1 },
    });
  });
});
