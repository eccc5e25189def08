import { describe, expect, it, vi } from 'vitest';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  RateLimitedError,
  TimeoutError,
  backoff,
  resilient,
  retryBudget,
  type ResilienceEvent,
} from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { track } from '../helpers/promises.js';

/** A function that fails `failures` times with fresh errors, then returns `value`. */
function flaky<T>(failures: number, value: T) {
  const errors: Error[] = [];
  const fn = vi.fn(async () => {
    if (errors.length < failures) {
      const error = new Error(`failure ${errors.length + 1}`);
      errors.push(error);
      throw error;
    }
    return value;
  });
  return { fn, errors };
}

const zero = () => 0;

/** Runs every timer and settles every promise, however many rounds that takes. */
async function drain(clock: ManualClock): Promise<void> {
  await clock.advance(0);
  await clock.runAll();
  await clock.advance(0);
}

describe('retry: maxAttempts', () => {
  it('defaults to 3 attempts in all, the first call included', async () => {
    const clock = new ManualClock();
    const { fn, errors } = flaky(Infinity, 'never');
    const call = track(resilient(fn, { retry: true, clock, random: zero })());
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(call.status).toBe('rejected');
    expect(call.reason).toBe(errors[2]);
  });

  it.each([1, 2, 5])('maxAttempts: %i calls fn exactly that many times', async (maxAttempts) => {
    const clock = new ManualClock();
    const { fn, errors } = flaky(Infinity, 'never');
    const call = track(resilient(fn, { retry: { maxAttempts }, clock, random: zero })());
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(maxAttempts);
    expect(call.reason).toBe(errors[maxAttempts - 1]);
  });

  it('stops retrying at the first success and returns its value', async () => {
    const clock = new ManualClock();
    const { fn } = flaky(2, 'ok');
    const call = track(resilient(fn, { retry: { maxAttempts: 5 }, clock, random: zero })());
    await drain(clock);
    expect(call.value).toBe('ok');
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it('rethrows the last error unchanged: same object, own class, own fields', async () => {
    class HttpError extends Error {
      constructor(readonly status: number) {
        super(`HTTP ${status}`);
      }
    }
    const clock = new ManualClock();
    const errors = [new HttpError(502), new HttpError(503)];
    let i = 0;
    const fn = () => Promise.reject(errors[i++]!);
    const call = track(
      resilient(fn, { retry: { maxAttempts: 2, backoff: backoff.constant(10) }, clock })(),
    );
    await clock.advance(10);
    expect(call.reason).toBe(errors[1]);
    expect(call.reason).toBeInstanceOf(HttpError);
    expect((call.reason as HttpError).status).toBe(503);
  });

  it('is not used without `retry`: one call, its error as is', async () => {
    const error = new Error('once');
    const fn = vi.fn(() => Promise.reject(error));
    await expect(resilient(fn, {})()).rejects.toBe(error);
    await expect(resilient(fn, { retry: false })()).rejects.toBe(error);
    expect(fn).toHaveBeenCalledTimes(2);
  });
});

describe('retry: what fn may throw or return', () => {
  it('retries a synchronous throw and a later plain (non-promise) return value', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const fn = (): number => {
      calls++;
      if (calls === 1) throw new Error('sync');
      return 42;
    };
    const call = track(resilient(fn, { retry: true, clock, random: zero })());
    await drain(clock);
    expect(call.value).toBe(42);
    expect(calls).toBe(2);
  });

  it('retries a rejected thenable and resolves a fulfilled one', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const fn = (): PromiseLike<string> => ({
      then(onFulfilled, onRejected) {
        calls++;
        return calls === 1
          ? (onRejected?.(new Error('thenable failed')) as never)
          : (onFulfilled?.('from thenable') as never);
      },
    });
    const call = track(resilient(fn, { retry: true, clock, random: zero })());
    await drain(clock);
    expect(call.value).toBe('from thenable');
  });

  it.each([
    ['a string', 'boom'],
    ['undefined', undefined],
    ['null', null],
    ['a number', 7],
  ])('retries rejections with %s and rethrows the last one as is', async (_label, reason) => {
    const clock = new ManualClock();
    const fn = vi.fn(() => Promise.reject(reason));
    const call = track(resilient(fn, { retry: true, clock, random: zero })());
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(call.status).toBe('rejected');
    expect(call.reason).toBe(reason);
  });
});

describe('retry: arguments and this', () => {
  it.each([0, 1, 2, 3, 4, 5, 6])(
    'forwards %i arguments exactly on every attempt (arguments.length included)',
    async (count) => {
      const clock = new ManualClock();
      const seen: unknown[][] = [];
      const fn = function (this: unknown, ...args: unknown[]) {
        // eslint-disable-next-line prefer-rest-params
        seen.push([arguments.length, ...Array.prototype.slice.call(arguments)]);
        if (seen.length < 3) throw new Error('again');
        return args.length;
      };
      const args = Array.from({ length: count }, (_, i) => (i % 2 === 0 ? { i } : undefined));
      const wrapped = resilient(fn, { retry: true, clock, random: zero });
      const call = track(wrapped(...args));
      await drain(clock);
      expect(call.value).toBe(count);
      expect(seen).toHaveLength(3);
      for (const s of seen) {
        expect(s[0]).toBe(count);
        expect(s.slice(1)).toEqual(args);
        s.slice(1).forEach((a, i) => expect(a).toBe(args[i]));
      }
    },
  );

  it('calls every attempt with the same `this`', async () => {
    const clock = new ManualClock();
    const thisValues: unknown[] = [];
    const service = {
      name: 'svc',
      load: resilient(
        function (this: { name: string }) {
          thisValues.push(this);
          if (thisValues.length < 3) return Promise.reject(new Error('again'));
          return Promise.resolve(this.name);
        },
        { retry: true, clock, random: zero },
      ),
    };
    const call = track(service.load());
    await drain(clock);
    expect(call.value).toBe('svc');
    expect(thisValues).toEqual([service, service, service]);
  });
});

describe('retry: retryOn', () => {
  it('gets the error and the number of the attempt that failed, and stops on false', async () => {
    const clock = new ManualClock();
    const { fn, errors } = flaky(Infinity, 'never');
    const retryOn = vi.fn((_error: unknown, attempt: number) => attempt < 2);
    const call = track(
      resilient(fn, { retry: { maxAttempts: 5, retryOn }, clock, random: zero })(),
    );
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(2);
    expect(retryOn.mock.calls).toEqual([
      [errors[0], 1],
      [errors[1], 2],
    ]);
    expect(call.reason).toBe(errors[1]);
  });

  it('is not asked after the last attempt', async () => {
    const clock = new ManualClock();
    const { fn } = flaky(Infinity, 'never');
    const retryOn = vi.fn(() => true);
    track(resilient(fn, { retry: { maxAttempts: 3, retryOn }, clock, random: zero })());
    await drain(clock);
    expect(retryOn).toHaveBeenCalledTimes(2);
  });

  it('a throwing retryOn ends the call with its own error, without a retry', async () => {
    const clock = new ManualClock();
    const predicateError = new Error('retryOn broke');
    const { fn } = flaky(Infinity, 'never');
    const retryOn = () => {
      throw predicateError;
    };
    const call = track(resilient(fn, { retry: { retryOn }, clock, random: zero })());
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(call.reason).toBe(predicateError);
  });

  it('a throwing retryOn on a later attempt also ends the call with its error', async () => {
    const clock = new ManualClock();
    const predicateError = new Error('retryOn broke late');
    const { fn } = flaky(Infinity, 'never');
    const retryOn = (_e: unknown, attempt: number) => {
      if (attempt === 2) throw predicateError;
      return true;
    };
    const call = track(resilient(fn, { retry: { retryOn }, clock, random: zero })());
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(2);
    expect(call.reason).toBe(predicateError);
  });

  it.each([
    ['CircuitOpenError', () => new CircuitOpenError(1_000)],
    ['RateLimitedError', () => new RateLimitedError(1_000)],
    ['BulkheadRejectedError', () => new BulkheadRejectedError('full')],
  ])('by default does not retry the library rejection %s', async (_name, make) => {
    const error = make();
    const fn = vi.fn(() => Promise.reject(error));
    await expect(resilient(fn, { retry: true })()).rejects.toBe(error);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('by default retries an attempt timeout and any other error', async () => {
    const clock = new ManualClock();
    const errors = [new TimeoutError(5), new TypeError('x'), new Error('y')];
    let i = 0;
    const fn = vi.fn(() => Promise.reject(errors[i++]!));
    const call = track(resilient(fn, { retry: { maxAttempts: 3 }, clock, random: zero })());
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(call.reason).toBe(errors[2]);
  });

  it('a custom retryOn may retry a library rejection (here honouring its retryAfter)', async () => {
    const clock = new ManualClock();
    const error = new CircuitOpenError(250);
    const fn = vi.fn().mockRejectedValueOnce(error).mockResolvedValueOnce('ok');
    const call = track(resilient(fn, { retry: { retryOn: () => true }, clock, random: zero })());
    await clock.advance(249);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    expect(call.value).toBe('ok');
  });
});

describe('retry: retryOnResult', () => {
  it('retries while the predicate says so, with the result and attempt number', async () => {
    const clock = new ManualClock();
    const results = [{ status: 503 }, { status: 503 }, { status: 200 }];
    let i = 0;
    const fn = vi.fn(async () => results[i++]!);
    const retryOnResult = vi.fn((r: unknown) => (r as { status: number }).status === 503);
    const call = track(
      resilient(fn, { retry: { maxAttempts: 5, retryOnResult }, clock, random: zero })(),
    );
    await drain(clock);
    expect(call.value).toBe(results[2]);
    expect(retryOnResult.mock.calls).toEqual([
      [results[0], 1],
      [results[1], 2],
      [results[2], 3],
    ]);
  });

  it('returns the last result as is when attempts run out', async () => {
    const clock = new ManualClock();
    const results = [{ n: 1 }, { n: 2 }];
    let i = 0;
    const fn = vi.fn(async () => results[i++]!);
    const retryOnResult = vi.fn(() => true);
    const call = track(
      resilient(fn, { retry: { maxAttempts: 2, retryOnResult }, clock, random: zero })(),
    );
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(2);
    expect(call.status).toBe('fulfilled');
    expect(call.value).toBe(results[1]);
    // not asked about the last result: there is no attempt left anyway
    expect(retryOnResult).toHaveBeenCalledTimes(1);
  });

  it('a throwing retryOnResult rejects with its error', async () => {
    const predicateError = new Error('bad predicate');
    const fn = vi.fn(async () => 1);
    const call = resilient(fn, {
      retry: {
        retryOnResult: () => {
          throw predicateError;
        },
      },
    })();
    await expect(call).rejects.toBe(predicateError);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('is not consulted for errors, and retryOn is not consulted for results', async () => {
    const clock = new ManualClock();
    const retryOn = vi.fn(() => true);
    const retryOnResult = vi.fn(() => false);
    const fn = vi.fn().mockRejectedValueOnce(new Error('x')).mockResolvedValueOnce('fine');
    const call = track(resilient(fn, { retry: { retryOn, retryOnResult }, clock, random: zero })());
    await drain(clock);
    expect(call.value).toBe('fine');
    expect(retryOn).toHaveBeenCalledTimes(1);
    expect(retryOnResult).toHaveBeenCalledTimes(1);
    expect(retryOnResult).toHaveBeenCalledWith('fine', 2);
  });

  it("with a timeout, the first attempt's result is judged too (the timed fast path)", async () => {
    const clock = new ManualClock();
    const fn = vi.fn().mockResolvedValueOnce('bad').mockResolvedValueOnce('good');
    const retryOnResult = vi.fn((r: unknown) => r === 'bad');
    const call = track(
      resilient(fn, { retry: { retryOnResult, backoff: () => 0 }, timeout: 1_000, clock })(),
    );
    await drain(clock);
    expect(call.value).toBe('good');
    expect(retryOnResult.mock.calls).toEqual([
      ['bad', 1],
      ['good', 2],
    ]);
  });

  it('emits retryResultScheduled with the result', async () => {
    const clock = new ManualClock();
    const fn = vi.fn().mockResolvedValueOnce('bad').mockResolvedValueOnce('good');
    const wrapped = resilient(fn, {
      retry: { retryOnResult: (r) => r === 'bad', backoff: backoff.constant(30) },
      clock,
    });
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    const call = track(wrapped());
    await clock.advance(30);
    expect(call.value).toBe('good');
    expect(events).toEqual([
      { type: 'retryResultScheduled', attempt: 1, delay: 30, result: 'bad' },
    ]);
  });
});

describe('retry: delays', () => {
  it('the default backoff is exponential from 100 ms with full jitter (random injected)', async () => {
    const clock = new ManualClock();
    const { fn } = flaky(Infinity, 'never');
    const wrapped = resilient(fn, { retry: { maxAttempts: 4 }, clock, random: () => 0.5 });
    const delays: number[] = [];
    wrapped.on((e) => {
      if (e.type === 'retryScheduled') delays.push(e.delay);
    });
    track(wrapped());
    await clock.advance(0);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(49);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(1); // 100 × 0.5
    expect(fn).toHaveBeenCalledTimes(2);
    await clock.advance(99);
    expect(fn).toHaveBeenCalledTimes(2);
    await clock.advance(1); // 200 × 0.5
    expect(fn).toHaveBeenCalledTimes(3);
    await clock.advance(200); // 400 × 0.5
    expect(fn).toHaveBeenCalledTimes(4);
    expect(delays).toEqual([50, 100, 200]);
  });

  it('uses backoff.constant between every attempt', async () => {
    const clock = new ManualClock();
    const { fn } = flaky(Infinity, 'never');
    const call = track(
      resilient(fn, { retry: { maxAttempts: 3, backoff: backoff.constant(1_000) }, clock })(),
    );
    await clock.advance(999);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    expect(fn).toHaveBeenCalledTimes(2);
    await clock.advance(999);
    expect(fn).toHaveBeenCalledTimes(2);
    await clock.advance(1);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(call.status).toBe('rejected');
    expect(clock.pending()).toBe(0);
  });

  it('backoff.constant(0) retries at once, without a timer', async () => {
    const { fn } = flaky(2, 'ok');
    const clock = new ManualClock();
    const call = resilient(fn, { retry: { backoff: backoff.constant(0) }, clock })();
    await expect(call).resolves.toBe('ok');
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it('passes the failed attempt, the previous delay and the random source to a custom backoff', async () => {
    const clock = new ManualClock();
    const random = () => 0.25;
    const custom = vi.fn((attempt: number) => attempt * 10);
    const { fn } = flaky(Infinity, 'never');
    track(resilient(fn, { retry: { maxAttempts: 4, backoff: custom }, clock, random })());
    await drain(clock);
    expect(custom.mock.calls).toEqual([
      [1, 0, random],
      [2, 10, random],
      [3, 20, random],
    ]);
  });

  it.each([
    ['negative', -5],
    ['NaN', NaN],
  ])('a custom backoff returning %s retries without waiting', async (_label, value) => {
    const clock = new ManualClock();
    const { fn } = flaky(1, 'ok');
    await expect(resilient(fn, { retry: { backoff: () => value }, clock })()).resolves.toBe('ok');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('a custom backoff returning Infinity means never: the last error is rethrown at once', async () => {
    const clock = new ManualClock();
    const error = new Error('down');
    const fn = vi.fn().mockRejectedValue(error);
    const wrapped = resilient(fn, { retry: { maxAttempts: 5, backoff: () => Infinity }, clock });
    const events: ResilienceEvent[] = [];
    wrapped.on((event) => events.push(event));
    await expect(wrapped()).rejects.toBe(error);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(events).toEqual([
      { type: 'retryAbandoned', attempt: 1, delay: Infinity, remaining: Infinity, error },
    ]);
    expect(clock.pending()).toBe(0);
  });

  it('an error carrying retryAfter (ms) is retried after that delay, not the backoff', async () => {
    const clock = new ManualClock();
    const error = Object.assign(new Error('429'), { retryAfter: 1_234 });
    const fn = vi.fn().mockRejectedValueOnce(error).mockResolvedValueOnce('ok');
    const call = track(resilient(fn, { retry: { backoff: backoff.constant(5) }, clock })());
    await clock.advance(1_233);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    expect(call.value).toBe('ok');
  });

  // issue 10 item 10: a hint is external input, bounded by `retry.maxRetryAfter` (default 5 minutes).
  it.each([
    ['huge (Retry-After: 999999999)', 999_999_999_000],
    ['Infinity', Infinity],
    ['just over 5 minutes', 300_001],
  ])(
    'a retryAfter above maxRetryAfter (5 min by default) that is %s is not waited for: the call fails with that error',
    async (_label, retryAfter) => {
      const clock = new ManualClock();
      const error = Object.assign(new Error('503'), { retryAfter });
      const fn = vi.fn().mockRejectedValueOnce(error).mockResolvedValueOnce('ok');
      const budget = retryBudget({ ratio: 0, minPerSecond: 1, clock });
      const wrapped = resilient(fn, { retry: { maxAttempts: 5, budget }, clock });
      const events: ResilienceEvent[] = [];
      wrapped.on((e) => events.push(e));
      await expect(wrapped()).rejects.toBe(error);
      expect(fn).toHaveBeenCalledTimes(1);
      expect(events).toEqual([
        { type: 'retryAbandoned', attempt: 1, delay: retryAfter, remaining: 300_000, error },
      ]);
      expect(clock.pending()).toBe(0);
      // The abandoned retry cost the budget nothing: the next failure may still retry.
      const other = vi.fn().mockRejectedValueOnce(new Error('x')).mockResolvedValueOnce('ok');
      const call = track(
        resilient(other, { retry: { budget, backoff: backoff.constant(0) }, clock })(),
      );
      await drain(clock);
      expect(call.value).toBe('ok');
    },
  );

  it('waits for a hint of exactly maxRetryAfter, and honours a custom maxRetryAfter', async () => {
    const clock = new ManualClock();
    const at = (retryAfter: number) => Object.assign(new Error('503'), { retryAfter });
    const fn = vi.fn().mockRejectedValueOnce(at(1_000)).mockResolvedValueOnce('ok');
    const wrapped = resilient(fn, { retry: { maxRetryAfter: 1_000 }, clock });
    const call = track(wrapped());
    await clock.advance(999);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    expect(call.value).toBe('ok');
    const over = at(1_001);
    const refused = vi.fn().mockRejectedValueOnce(over).mockResolvedValueOnce('ok');
    await expect(resilient(refused, { retry: { maxRetryAfter: 1_000 }, clock })()).rejects.toBe(
      over,
    );
    expect(wrapped.describe().stages.find((s) => s.stage === 'retry')?.maxRetryAfter).toBe(1_000);
  });

  it('a retryAfter of 0 (a Retry-After date in the past) retries at once', async () => {
    const clock = new ManualClock();
    const error = Object.assign(new Error('503'), { retryAfter: 0 });
    const fn = vi.fn().mockRejectedValueOnce(error).mockResolvedValueOnce('ok');
    const call = track(resilient(fn, { retry: { backoff: backoff.constant(1_000) }, clock })());
    await clock.advance(0);
    expect(call.value).toBe('ok');
  });

  it.each([
    ['maxRetryAfter -1', -1, /`retry.maxRetryAfter` to be a number >= 0/],
    ['maxRetryAfter NaN', NaN, /`retry.maxRetryAfter`/],
    ['maxRetryAfter a string', '1m', /`retry.maxRetryAfter`/],
  ])('%s fails at wrap time', (_label, maxRetryAfter, message) => {
    expect(() => resilient(() => 1, { retry: { maxRetryAfter: maxRetryAfter as number } })).toThrow(
      message,
    );
  });

  it.each([
    ['negative', -1],
    ['NaN', NaN],
    ['a string', '100'],
  ])('a retryAfter that is %s is ignored: the backoff applies', async (_label, retryAfter) => {
    const clock = new ManualClock();
    const error = Object.assign(new Error('x'), { retryAfter });
    const fn = vi.fn().mockRejectedValueOnce(error).mockResolvedValueOnce('ok');
    const call = track(resilient(fn, { retry: { backoff: backoff.constant(20) }, clock })());
    await clock.advance(19);
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    expect(call.value).toBe('ok');
  });

  it('a retryAfter hint becomes the previous delay of the next backoff', async () => {
    const clock = new ManualClock();
    const custom = vi.fn(() => 1);
    const error = Object.assign(new Error('x'), { retryAfter: 300 });
    const fn = vi
      .fn()
      .mockRejectedValueOnce(error)
      .mockRejectedValueOnce(new Error('y'))
      .mockResolvedValueOnce('ok');
    const call = track(resilient(fn, { retry: { backoff: custom }, clock })());
    await drain(clock);
    expect(call.value).toBe('ok');
    expect(custom).toHaveBeenCalledTimes(1);
    expect(custom.mock.calls[0]?.slice(0, 2)).toEqual([2, 300]);
  });
});

describe('retry: events', () => {
  it('reports retryScheduled per retry and retriesExhausted at the end', async () => {
    const clock = new ManualClock();
    const { fn, errors } = flaky(Infinity, 'never');
    const wrapped = resilient(fn, { retry: { backoff: backoff.constant(10) }, clock });
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    track(wrapped());
    await drain(clock);
    expect(events).toEqual([
      { type: 'retryScheduled', attempt: 1, delay: 10, error: errors[0] },
      { type: 'retryScheduled', attempt: 2, delay: 10, error: errors[1] },
      { type: 'retriesExhausted', attempts: 3, error: errors[2] },
    ]);
  });
});

describe('retry: on the slow path (a caller signal)', () => {
  it('counts attempts, passes the attempt number and rethrows the last error', async () => {
    const clock = new ManualClock();
    const policy = resilient({ retry: { maxAttempts: 3, backoff: backoff.constant(10) }, clock });
    const attempts: number[] = [];
    const errors: Error[] = [];
    const call = track(
      policy.execute(
        ({ attempt }) => {
          attempts.push(attempt);
          const error = new Error(`attempt ${attempt}`);
          errors.push(error);
          throw error;
        },
        { signal: new AbortController().signal },
      ),
    );
    await drain(clock);
    expect(attempts).toEqual([1, 2, 3]);
    expect(call.reason).toBe(errors[2]);
  });

  it('retryOnResult works there too', async () => {
    const clock = new ManualClock();
    const policy = resilient({
      retry: { retryOnResult: (r) => r !== 3, backoff: backoff.constant(1), maxAttempts: 5 },
      clock,
    });
    const call = track(
      policy.execute(({ attempt }) => attempt, { signal: new AbortController().signal }),
    );
    await drain(clock);
    expect(call.value).toBe(3);
  });

  it('execute passes attempt numbers on the fast path too', async () => {
    const clock = new ManualClock();
    const policy = resilient({ retry: { backoff: backoff.constant(1) }, clock });
    const attempts: number[] = [];
    const call = track(
      policy.execute(({ attempt }) => {
        attempts.push(attempt);
        if (attempt < 3) throw new Error('again');
        return 'done';
      }),
    );
    await drain(clock);
    expect(call.value).toBe('done');
    expect(attempts).toEqual([1, 2, 3]);
  });
});

describe('retryBudget', () => {
  it('with ratio 0 and no floor allows no retry at all, and says so', async () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 0, clock });
    const { fn, errors } = flaky(Infinity, 'never');
    const wrapped = resilient(fn, { retry: { budget }, clock, random: zero });
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    const call = track(wrapped());
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(call.reason).toBe(errors[0]);
    expect(events).toEqual([{ type: 'retryBudgetExhausted', attempt: 1, error: errors[0] }]);
  });

  it('allows retries up to ratio × calls in the window', async () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0.5, minPerSecond: 0, window: 1_000 });
    const fn = vi.fn(() => Promise.reject(new Error('down')));
    const wrapped = resilient(fn, { retry: { maxAttempts: 2, budget }, clock, random: zero });
    // 4 calls: call 1 may not retry (0.5 allowed), call 2 may (1 allowed), call 3 not (1.5), call 4 may (2)
    for (let i = 0; i < 4; i++) {
      track(wrapped());
      await drain(clock);
    }
    expect(fn).toHaveBeenCalledTimes(4 + 2);
    expect(budget.stats()).toEqual({ calls: 4, retries: 2, allowed: 2 });
  });

  it('always allows minPerSecond × window/1000 retries (the floor)', async () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 2, window: 1_000 });
    const fn = vi.fn(() => Promise.reject(new Error('down')));
    const wrapped = resilient(fn, { retry: { maxAttempts: 10, budget }, clock, random: zero });
    track(wrapped());
    await drain(clock);
    expect(fn).toHaveBeenCalledTimes(3); // 1 call + 2 retries
  });

  it('frees up once the window has passed', async () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 1, window: 1_000 });
    const fn = vi.fn(() => Promise.reject(new Error('down')));
    const wrapped = resilient(fn, {
      retry: { maxAttempts: 5, budget, backoff: backoff.constant(0) },
      clock,
    });
    await expect(wrapped()).rejects.toThrow('down');
    expect(fn).toHaveBeenCalledTimes(2);
    await clock.advance(500);
    await expect(wrapped()).rejects.toThrow('down');
    expect(fn).toHaveBeenCalledTimes(3);
    await clock.advance(1_000);
    await expect(wrapped()).rejects.toThrow('down');
    expect(fn).toHaveBeenCalledTimes(5);
  });

  it('is shared by every function that uses it', async () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 1, window: 1_000 });
    const a = vi.fn(() => Promise.reject(new Error('a')));
    const b = vi.fn(() => Promise.reject(new Error('b')));
    const options = { retry: { budget, backoff: backoff.constant(0) }, clock } as const;
    await expect(resilient(a, options)()).rejects.toThrow('a');
    await expect(resilient(b, options)()).rejects.toThrow('b');
    expect(a).toHaveBeenCalledTimes(2);
    expect(b).toHaveBeenCalledTimes(1);
    expect(budget.stats()).toEqual({ calls: 2, retries: 1, allowed: 1 });
  });

  it('also stops retries of results', async () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 0 });
    const fn = vi.fn(async () => 'bad');
    const wrapped = resilient(fn, { retry: { budget, retryOnResult: () => true }, clock });
    await expect(wrapped()).resolves.toBe('bad');
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('works with a clock that reads negative times: counted calls still leave the window', async () => {
    const clock = new ManualClock(-50_050);
    const budget = retryBudget({ ratio: 0.5, minPerSecond: 0, window: 1_000, clock });
    const wrapped = resilient(async () => 'ok', { retry: { budget }, clock });
    await clock.advance(200); // -49 850: a bucket whose number is not a multiple of 10
    for (let i = 0; i < 4; i++) await wrapped();
    expect(budget.stats()).toEqual({ calls: 4, retries: 0, allowed: 2 });
    await clock.advance(1_000);
    expect(budget.stats()).toEqual({ calls: 0, retries: 0, allowed: 0 });
  });

  it('forgets calls bucket by bucket as the window slides', async () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 1, minPerSecond: 0, window: 1_000, clock });
    const wrapped = resilient(async () => 'ok', { retry: { budget }, clock });
    await wrapped(); // bucket 0
    await clock.advance(500);
    await wrapped(); // bucket 5
    expect(budget.stats().calls).toBe(2);
    await clock.advance(500); // t = 1000: bucket 0 has left the window
    expect(budget.stats().calls).toBe(1);
    await clock.advance(500); // t = 1500: bucket 5 too
    expect(budget.stats().calls).toBe(0);
  });

  it('has documented defaults: ratio 0.2, 10 per second, 10 s window', () => {
    const budget = retryBudget();
    expect(budget.describe()).toEqual({ ratio: 0.2, minPerSecond: 10, window: 10_000 });
    expect(budget.stats()).toEqual({ calls: 0, retries: 0, allowed: 100 });
    expect(resilient(() => 1, { retry: { budget } }).stats().retryBudget).toEqual({
      calls: 0,
      retries: 0,
      allowed: 100,
    });
  });

  it.each([
    [{ ratio: -0.1 }, 'retryBudget.ratio'],
    [{ ratio: NaN }, 'retryBudget.ratio'],
    [{ minPerSecond: -1 }, 'retryBudget.minPerSecond'],
    [{ window: 0 }, 'retryBudget.window'],
    [{ window: '10s' }, 'retryBudget.window'],
    [{ windw: 10 }, 'retryBudget.windw'],
  ])('rejects bad options %o naming %s', (options, path) => {
    expect(() => retryBudget(options as never)).toThrow(TypeError);
    expect(() => retryBudget(options as never)).toThrow(path);
  });

  it('a non-budget value is an option problem', () => {
    expect(() => resilient(() => 1, { retry: { budget: { ratio: 1 } as never } })).toThrow(
      /`retry\.budget` to be a RetryBudget made by retryBudget\(\)/,
    );
  });
});
