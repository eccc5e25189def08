import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  TimeoutError,
  backoff,
  circuitBreaker,
  resilient,
  retryBudget,
  systemClock,
  type ResilienceEvent,
} from '../src/index.js';
import { ManualClock } from './helpers/manual-clock.js';
import { deferred, track } from './helpers/promises.js';

const never = () => new Promise<never>(() => {});
const listeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length;

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('resilient(fn): a plain wrapper', () => {
  it('without options returns a promise of fn’s value, for async, sync and thenable results', async () => {
    await expect(resilient(async () => 1)()).resolves.toBe(1);
    await expect(resilient(() => 2)()).resolves.toBe(2);
    const thenable = { then: (ok: (v: number) => void) => ok(3) };
    await expect(resilient(() => thenable)()).resolves.toBe(3);
  });

  it('turns a synchronous throw into a rejection (never throws synchronously)', async () => {
    const error = new Error('sync');
    const wrapped = resilient(() => {
      throw error;
    });
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = wrapped();
    }).not.toThrow();
    await expect(result).rejects.toBe(error);
  });

  it('passes non-Error rejections through as is', async () => {
    await expect(resilient(() => Promise.reject('text'))()).rejects.toBe('text');
    const undefinedRejection = track(resilient(() => Promise.reject(undefined))());
    await new Promise((r) => setImmediate(r));
    expect(undefinedRejection.status).toBe('rejected');
    expect(undefinedRejection.reason).toBeUndefined();
  });

  it('keeps the name and length of fn', () => {
    function fetchUser(id: string, options: object) {
      return [id, options];
    }
    const wrapped = resilient(fetchUser);
    expect(wrapped.name).toBe('fetchUser');
    expect(wrapped.length).toBe(2);
  });

  it.each([0, 1, 2, 3, 4, 5, 6])(
    'forwards %i arguments exactly, arguments.length included (with and without stages)',
    async (count) => {
      const args = Array.from({ length: count }, (_, i) => ({ i }));
      const seen: unknown[] = [];
      const fn = function (...args: unknown[]) {
        seen.push(args); // a rest array is exactly as long as `arguments`
        return 'ok';
      };
      const clock = new ManualClock();
      for (const options of [undefined, { timeout: 100, clock }, { retry: true, clock }]) {
        await resilient(fn, options)(...args);
      }
      expect(seen).toHaveLength(3);
      for (const s of seen) {
        expect(s).toHaveLength(count);
        (s as unknown[]).forEach((a, i) => expect(a).toBe(args[i]));
      }
    },
  );

  it('an explicit undefined argument still counts in arguments.length', async () => {
    const fn = vi.fn((...args: unknown[]) => args.length);
    await expect(resilient(fn, { retry: true })(undefined)).resolves.toBe(1);
    await expect(resilient(fn, { retry: true })(undefined, undefined)).resolves.toBe(2);
  });

  it('forwards `this` as a method, through call/apply, and undefined when called bare', async () => {
    const thisValues: unknown[] = [];
    const wrapped = resilient(function (this: unknown) {
      thisValues.push(this);
      return 1;
    });
    const obj = { wrapped };
    const other = { other: true };
    await obj.wrapped();
    await wrapped.call(other);
    await wrapped.apply(other, []);
    const bare = wrapped;
    await bare();
    expect(thisValues).toEqual([obj, other, other, undefined]);
  });

  it('rejects a non-function to wrap', () => {
    expect(() => resilient(42 as never, {})).toThrow(TypeError);
  });

  it('resilient(options) takes one argument', () => {
    expect(() => (resilient as (...a: unknown[]) => unknown)({}, {})).toThrow(
      'resilient(options) takes one argument',
    );
  });
});

describe('policies: resilient(options)', () => {
  it('wraps any number of functions with the same options', async () => {
    const clock = new ManualClock();
    const policy = resilient({ retry: { backoff: backoff.constant(0) }, clock });
    const a = vi.fn().mockRejectedValueOnce(new Error('a')).mockResolvedValueOnce('A');
    const b = vi.fn().mockRejectedValueOnce(new Error('b')).mockResolvedValueOnce('B');
    await expect(policy(a)()).resolves.toBe('A');
    await expect(policy(b)()).resolves.toBe('B');
  });

  it('shares its stateful stages (here a retry budget) across every function it wraps', async () => {
    const clock = new ManualClock();
    const policy = resilient({
      retry: {
        budget: retryBudget({ ratio: 0, minPerSecond: 1, window: 1_000 }),
        backoff: backoff.constant(0),
      },
      clock,
    });
    const a = vi.fn(() => Promise.reject(new Error('a')));
    const b = vi.fn(() => Promise.reject(new Error('b')));
    await expect(policy(a)()).rejects.toThrow('a');
    await expect(policy(b)()).rejects.toThrow('b');
    expect(a).toHaveBeenCalledTimes(2);
    expect(b).toHaveBeenCalledTimes(1);
    expect(policy.stats().retryBudget).toEqual({ calls: 2, retries: 1, allowed: 1 });
  });

  it('throws a TypeError when called with something that is neither a function nor a decorator call', () => {
    const policy = resilient({});
    expect(() => (policy as (...a: unknown[]) => unknown)(1)).toThrow(TypeError);
    expect(() => (policy as (...a: unknown[]) => unknown)(() => 1, 'x')).toThrow(
      /wraps a function/,
    );
    expect(() => (policy as (...a: unknown[]) => unknown)('a', 'x')).toThrow(/wraps a function/);
    expect(() => (policy as (...a: unknown[]) => unknown)(null, 'x')).toThrow(/wraps a function/);
    // No legacy decorator is ever applied to an arrow function: not a decorator call either.
    expect(() =>
      (policy as (...a: unknown[]) => unknown)(() => 1, 'x', { value: () => 1 }),
    ).toThrow(/wraps a function/);
  });

  it('policy.on hears events from every function it wraps; fn.on only its own', async () => {
    const clock = new ManualClock();
    const policy = resilient({ timeout: 10, clock });
    const a = policy(never);
    const b = policy(never);
    const all: ResilienceEvent[] = [];
    const onlyA: ResilienceEvent[] = [];
    policy.on((e) => all.push(e));
    a.on((e) => onlyA.push(e));
    track(a());
    track(b());
    await clock.advance(10);
    expect(all).toHaveLength(2);
    expect(onlyA).toEqual([{ type: 'timedOut', timeout: 10, scope: 'attempt' }]);
  });
});

describe('policy.execute', () => {
  it('runs the task with an attempt context and returns its value', async () => {
    const policy = resilient({});
    await expect(policy.execute(({ attempt }) => `attempt ${attempt}`)).resolves.toBe('attempt 1');
    await expect(policy.execute(() => Promise.resolve(5))).resolves.toBe(5);
  });

  it('a synchronous throw in the task becomes a rejection', async () => {
    const error = new Error('task');
    await expect(
      resilient({}).execute(() => {
        throw error;
      }),
    ).rejects.toBe(error);
  });

  it('rejects (does not throw) a task that is not a function or a signal that is not an AbortSignal', async () => {
    const policy = resilient({});
    await expect(policy.execute(42 as never)).rejects.toThrow(TypeError);
    await expect(policy.execute(() => 1, { signal: {} as never })).rejects.toThrow(/AbortSignal/);
  });

  it('the context signal is created only when read, and is not aborted on success', async () => {
    const policy = resilient({ signal: new AbortController().signal });
    let signal: AbortSignal | undefined;
    await policy.execute((c) => {
      signal = c.signal;
      expect(c.signal).toBe(signal); // the same signal on every read
      return 1;
    });
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(signal?.aborted).toBe(false);
  });
});

describe('cancellation', () => {
  it('a signal already aborted rejects with its reason without calling fn', async () => {
    const controller = new AbortController();
    const reason = new Error('shutting down');
    controller.abort(reason);
    const fn = vi.fn(() => 1);
    await expect(
      resilient({ retry: true }).execute(fn, { signal: controller.signal }),
    ).rejects.toBe(reason);
    await expect(resilient(fn, { signal: controller.signal })()).rejects.toBe(reason);
    expect(fn).not.toHaveBeenCalled();
    expect(listeners(controller.signal)).toBe(0);
  });

  it('abort while fn runs rejects at once with signal.reason (a DOMException when none given)', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const call = track(resilient({ clock }).execute(never, { signal: controller.signal }));
    await clock.advance(0);
    expect(call.status).toBe('pending');
    controller.abort();
    await clock.advance(0);
    expect(call.status).toBe('rejected');
    expect(call.reason).toBe(controller.signal.reason);
    expect((call.reason as DOMException).name).toBe('AbortError');
  });

  it('abort aborts the attempt signal with the caller’s reason and clears the attempt timer', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    let attemptSignal: AbortSignal | undefined;
    const call = track(
      resilient({ timeout: 1_000, clock }).execute(
        ({ signal }) => {
          attemptSignal = signal;
          return never();
        },
        { signal: controller.signal },
      ),
    );
    await clock.advance(10);
    expect(clock.pending()).toBe(1);
    controller.abort('stop');
    await clock.advance(0);
    expect(call.reason).toBe('stop');
    expect(attemptSignal?.reason).toBe('stop');
    expect(clock.pending()).toBe(0);
  });

  it('abort during a backoff sleep rejects at once and clears the sleep timer', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const fn = vi.fn(() => Promise.reject(new Error('down')));
    const call = track(
      resilient({ retry: { backoff: backoff.constant(10_000) }, clock }).execute(fn, {
        signal: controller.signal,
      }),
    );
    await clock.advance(100);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(clock.pending()).toBe(1);
    const reason = new Error('user left');
    controller.abort(reason);
    await clock.advance(0);
    expect(call.reason).toBe(reason);
    expect(clock.pending()).toBe(0);
    expect(listeners(controller.signal)).toBe(0);
    await clock.advance(20_000);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('a caller abort is never retried, whatever retryOn says', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const fn = vi.fn(never);
    const retryOn = vi.fn(() => true);
    const call = track(
      resilient({ retry: { retryOn, backoff: backoff.constant(0) }, clock }).execute(fn, {
        signal: controller.signal,
      }),
    );
    await clock.advance(0);
    controller.abort('bye');
    await clock.advance(100);
    expect(call.reason).toBe('bye');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(retryOn).not.toHaveBeenCalled();
  });

  it('a task that aborts the caller’s signal and then fails rejects at once with the reason', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const fn = vi.fn(() => {
      controller.abort('aborted inside');
      throw new Error('then failed');
    });
    const call = track(
      resilient({ retry: { backoff: backoff.constant(10_000) }, clock }).execute(fn, {
        signal: controller.signal,
      }),
    );
    await clock.advance(0);
    expect(call.status).toBe('rejected');
    expect(call.reason).toBe('aborted inside');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(clock.pending()).toBe(0);
  });

  it('an abort between an attempt’s failure and its backoff sleep still wakes the call at once', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const failure = deferred();
    const fn = vi.fn(() => failure.promise);
    const call = track(
      resilient({ retry: { backoff: backoff.constant(10_000) }, clock }).execute(fn, {
        signal: controller.signal,
      }),
    );
    await clock.advance(0);
    // the attempt fails and the caller aborts in the same tick, before the retry loop sleeps
    failure.reject(new Error('down'));
    controller.abort('gone');
    await clock.advance(0);
    expect(call.reason).toBe('gone');
    expect(clock.pending()).toBe(0);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('options.signal (long-lived) aborts every call of a wrapped function', async () => {
    const clock = new ManualClock();
    const shutdown = new AbortController();
    const wrapped = resilient(never, { signal: shutdown.signal, clock });
    const calls = [track(wrapped()), track(wrapped()), track(wrapped())];
    await clock.advance(0);
    shutdown.abort('shutdown');
    await clock.advance(0);
    expect(calls.map((c) => c.reason)).toEqual(['shutdown', 'shutdown', 'shutdown']);
  });

  it('options.signal and execute’s signal both abort; the first abort’s reason wins', async () => {
    const clock = new ManualClock();
    const shutdown = new AbortController();
    const request = new AbortController();
    const policy = resilient({ signal: shutdown.signal, clock });
    const byRequest = track(policy.execute(never, { signal: request.signal }));
    const byShutdown = track(policy.execute(never, { signal: new AbortController().signal }));
    await clock.advance(0);
    request.abort('request');
    await clock.advance(0);
    expect(byRequest.reason).toBe('request');
    expect(byShutdown.status).toBe('pending');
    shutdown.abort('shutdown');
    await clock.advance(0);
    expect(byShutdown.reason).toBe('shutdown');
    expect(listeners(request.signal)).toBe(0);
  });

  it('removes its abort listeners when calls end, however they end', async () => {
    const clock = new ManualClock();
    const shutdown = new AbortController();
    const request = new AbortController();
    const policy = resilient({
      signal: shutdown.signal,
      retry: { backoff: backoff.constant(10) },
      timeout: 100,
      clock,
    });
    await policy.execute(() => 'ok', { signal: request.signal });
    expect(listeners(shutdown.signal)).toBe(0);
    expect(listeners(request.signal)).toBe(0);

    const failing = track(
      policy.execute(() => Promise.reject(new Error('x')), { signal: request.signal }),
    );
    await clock.advance(0);
    expect(listeners(shutdown.signal)).toBeGreaterThan(0);
    await clock.runAll();
    expect(failing.status).toBe('rejected');
    expect(listeners(shutdown.signal)).toBe(0);
    expect(listeners(request.signal)).toBe(0);

    const timingOut = track(policy.execute(never, { signal: request.signal }));
    await clock.runAll();
    expect(timingOut.reason).toBeInstanceOf(TimeoutError);
    expect(listeners(shutdown.signal)).toBe(0);
    expect(listeners(request.signal)).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it('many concurrent calls on one long-lived signal add at most one listener (no MaxListenersExceededWarning)', async () => {
    const clock = new ManualClock();
    const shutdown = new AbortController();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const wrapped = resilient(never, { signal: shutdown.signal, clock });
      const calls = Array.from({ length: 50 }, () => track(wrapped()));
      await clock.advance(0);
      expect(listeners(shutdown.signal)).toBeLessThanOrEqual(1);
      shutdown.abort('down');
      await clock.advance(0);
      expect(calls.every((c) => c.reason === 'down')).toBe(true);
      expect(listeners(shutdown.signal)).toBe(0);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a listener stays on a long-lived signal only while calls are in flight', async () => {
    const clock = new ManualClock();
    const shutdown = new AbortController();
    const pendingCalls = [deferred(), deferred()];
    let i = 0;
    const wrapped = resilient(() => pendingCalls[i++]!.promise, { signal: shutdown.signal, clock });
    const first = track(wrapped());
    const second = track(wrapped());
    await clock.advance(0);
    expect(listeners(shutdown.signal)).toBeGreaterThan(0);
    pendingCalls[0]!.resolve('a');
    await clock.advance(0);
    expect(first.value).toBe('a');
    expect(listeners(shutdown.signal)).toBeGreaterThan(0);
    pendingCalls[1]!.resolve('b');
    await clock.advance(0);
    expect(second.value).toBe('b');
    expect(listeners(shutdown.signal)).toBe(0);
    expect(shutdown.signal.aborted).toBe(false);
  });

  it('both signals aborting in the same tick: the first reason wins, listeners go', async () => {
    const clock = new ManualClock();
    const shutdown = new AbortController();
    const request = new AbortController();
    const policy = resilient({ signal: shutdown.signal, clock });
    const call = track(policy.execute(never, { signal: request.signal }));
    await clock.advance(0);
    request.abort('request');
    shutdown.abort('shutdown');
    await clock.advance(0);
    expect(call.reason).toBe('request');
    expect(listeners(request.signal)).toBe(0);
    expect(listeners(shutdown.signal)).toBe(0);
  });

  it('the same signal as options.signal and execute’s signal is watched once and cleaned up', async () => {
    const clock = new ManualClock();
    const shared = new AbortController();
    const policy = resilient({ signal: shared.signal, clock });
    await expect(policy.execute(() => 'ok', { signal: shared.signal })).resolves.toBe('ok');
    expect(listeners(shared.signal)).toBe(0);
    const call = track(policy.execute(never, { signal: shared.signal }));
    await clock.advance(0);
    expect(listeners(shared.signal)).toBe(1);
    shared.abort('once');
    await clock.advance(0);
    expect(call.reason).toBe('once');
    expect(listeners(shared.signal)).toBe(0);
  });

  it('with a signal, the retry budget still counts each call once', async () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 0 });
    const policy = resilient({ retry: { budget }, clock });
    await expect(
      policy.execute(() => Promise.reject(new Error('x')), {
        signal: new AbortController().signal,
      }),
    ).rejects.toThrow('x');
    expect(budget.stats().calls).toBe(1);
    expect(budget.stats().retries).toBe(0);
  });
});

describe('many calls at once', () => {
  it('keeps every call’s own arguments, `this` and result (more than the pooled call objects)', async () => {
    const clock = new ManualClock();
    const gates: ((value: unknown) => void)[] = [];
    const wrapped = resilient(
      function (this: { id: number }, n: number) {
        return new Promise((resolve) => gates.push(resolve)).then(() => [this.id, n]);
      },
      { retry: true, clock },
    );
    const count = 1_500;
    const calls = Array.from({ length: count }, (_, i) => wrapped.call({ id: i }, i * 2));
    gates.forEach((open) => open(undefined));
    const results = await Promise.all(calls);
    expect(results.every((r, i) => r[0] === i && r[1] === i * 2)).toBe(true);
    // and again, now that the pool is full
    const again = wrapped.call({ id: -1 }, 5);
    gates.at(-1)?.(undefined);
    await expect(again).resolves.toEqual([-1, 5]);
  });
});

describe('describe()', () => {
  it('shows every stage in the fixed order, disabled when not configured', () => {
    const description = resilient(() => 1).describe();
    expect(description).toEqual({
      name: undefined,
      kind: 'async',
      order: [
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
      ],
      stages: [
        { stage: 'fallback', enabled: false },
        { stage: 'cache', enabled: false },
        { stage: 'deadline', enabled: false },
        { stage: 'retry', enabled: false },
        { stage: 'hedge', enabled: false },
        { stage: 'circuitBreaker', enabled: false },
        { stage: 'rateLimiter', enabled: false },
        { stage: 'bulkhead', enabled: false },
        { stage: 'timeout', enabled: false },
        { stage: 'chaos', enabled: false },
      ],
      signal: false,
      clock: 'system',
      stackTraces: true,
    });
  });

  it('retry: true shows every default filled in', () => {
    const stage = resilient(() => 1, { retry: true })
      .describe()
      .stages.find((s) => s.stage === 'retry');
    expect(stage).toEqual({
      stage: 'retry',
      enabled: true,
      maxAttempts: 3,
      backoff: { type: 'exponential', initial: 100, factor: 2, max: 10_000, jitter: 'full' },
      retryOn: 'default',
      retryOnResult: 'none',
      budget: 'none',
      maxRetryAfter: 300_000,
    });
  });

  // issue 10 item 14: `true` means "with defaults" for every stage that takes options.
  it('circuitBreaker: true and bulkhead: true show every default filled in', () => {
    const stages = resilient(() => 1, { circuitBreaker: true, bulkhead: true })
      .describe()
      .stages.filter((s) => s.enabled);
    expect(stages).toEqual([
      { enabled: true, ...circuitBreaker().describe() },
      {
        stage: 'bulkhead',
        enabled: true,
        name: 'none',
        maxConcurrent: 10,
        maxQueue: 0,
        queueTimeout: 'none',
      },
    ]);
    expect(resilient({ circuitBreaker: false, bulkhead: false }).describe().stages).toEqual(
      resilient().describe().stages,
    );
  });

  it('shows every option given, on wrapped functions and on policies alike', () => {
    const options = {
      name: 'users',
      retry: {
        maxAttempts: 5,
        backoff: backoff.decorrelated({ initial: 10, max: 500 }),
        retryOn: () => true,
        retryOnResult: () => false,
        budget: retryBudget({ ratio: 0.1, minPerSecond: 1, window: 5_000 }),
      },
      timeout: { attempt: 200, total: 1_000 },
      fallback: () => null,
      signal: new AbortController().signal,
      clock: new ManualClock(),
      random: () => 0.5,
      stackTraces: false,
    };
    const expected = {
      name: 'users',
      kind: 'async',
      order: [
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
      ],
      stages: [
        { stage: 'fallback', enabled: true, type: 'function' },
        { stage: 'cache', enabled: false },
        { stage: 'deadline', enabled: true, total: 1_000 },
        {
          stage: 'retry',
          enabled: true,
          maxAttempts: 5,
          backoff: { type: 'decorrelated', initial: 10, max: 500 },
          retryOn: 'custom',
          retryOnResult: 'custom',
          budget: { ratio: 0.1, minPerSecond: 1, window: 5_000 },
          maxRetryAfter: 300_000,
        },
        { stage: 'hedge', enabled: false },
        { stage: 'circuitBreaker', enabled: false },
        { stage: 'rateLimiter', enabled: false },
        { stage: 'bulkhead', enabled: false },
        { stage: 'timeout', enabled: true, attempt: 200 },
        { stage: 'chaos', enabled: false },
      ],
      signal: true,
      clock: 'custom',
      stackTraces: false,
    };
    expect(resilient(() => 1, options).describe()).toEqual(expected);
    expect(resilient(options).describe()).toEqual(expected);
  });

  it('describes a constant backoff, a custom backoff, a value fallback and a bare timeout', () => {
    const d = (o: Parameters<typeof resilient>[0]) =>
      resilient(o as never)
        .describe()
        .stages.filter((s) => s.enabled);
    expect(d({ retry: { backoff: backoff.constant(250) } })[0]?.backoff).toEqual({
      type: 'constant',
      delay: 250,
    });
    expect(d({ retry: { backoff: () => 1 } })[0]?.backoff).toEqual({ type: 'custom' });
    expect(d({ fallback: 0 })).toEqual([{ stage: 'fallback', enabled: true, type: 'value' }]);
    expect(d({ timeout: 300 })).toEqual([{ stage: 'timeout', enabled: true, attempt: 300 }]);
    expect(d({ timeout: { total: 300 } })).toEqual([
      { stage: 'deadline', enabled: true, total: 300 },
    ]);
  });

  it('reports the system clock when systemClock is passed explicitly', () => {
    expect(resilient({ clock: systemClock }).describe().clock).toBe('system');
  });
});

describe('stats()', () => {
  it('is empty without stateful stages', () => {
    expect(resilient(() => 1, { retry: true, timeout: 10 }).stats()).toEqual({});
    expect(resilient({ retry: true }).stats()).toEqual({});
  });
});

describe('policy names', () => {
  it('a policy is named after its `name` option', () => {
    expect(resilient({ name: 'inventory' }).name).toBe('inventory');
    expect(resilient({}).name).toBe('policy');
  });
});
