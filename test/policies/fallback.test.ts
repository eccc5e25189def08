import { describe, expect, it, vi } from 'vitest';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  RateLimitedError,
  TimeoutError,
  backoff,
  circuitBreaker,
  resilient,
  type ResilienceEvent,
} from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { track } from '../helpers/promises.js';

const never = () => new Promise<never>(() => {});

describe('fallback: a function', () => {
  it('gets the error and the call’s arguments, and its value is the result', async () => {
    const error = new Error('down');
    const fallback = vi.fn((e: unknown, id: string, n: number) => ({ e, id, n }));
    const fn = vi.fn<(id: string, n: number) => Promise<never>>(() => Promise.reject(error));
    const wrapped = resilient(fn, { fallback });
    await expect(wrapped('42', 7)).resolves.toEqual({ e: error, id: '42', n: 7 });
    expect(fallback).toHaveBeenCalledTimes(1);
    expect(fallback.mock.calls[0]?.[0]).toBe(error);
  });

  it('gets more than four arguments exactly', async () => {
    const fallback = vi.fn((...all: unknown[]) => all.slice(1));
    const fn = vi.fn<(...args: number[]) => Promise<number[]>>(() =>
      Promise.reject(new Error('x')),
    );
    const wrapped = resilient(fn, { fallback });
    await expect(wrapped(1, 2, 3, 4, 5, 6)).resolves.toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('is called with the caller’s `this`', async () => {
    const thisValues: unknown[] = [];
    const obj = {
      load: resilient(() => Promise.reject(new Error('x')), {
        fallback: function (this: unknown) {
          thisValues.push(this);
          return 'fb';
        },
      }),
    };
    await expect(obj.load()).resolves.toBe('fb');
    expect(thisValues).toEqual([obj]);
  });

  it('may be async', async () => {
    const wrapped = resilient(() => Promise.reject(new Error('x')), {
      fallback: async () => 'async fb',
    });
    await expect(wrapped()).resolves.toBe('async fb');
  });

  it('a fallback that throws or rejects makes the call reject with its error', async () => {
    const thrown = new Error('fallback threw');
    const rejected = new Error('fallback rejected');
    const throwing = resilient(() => Promise.reject(new Error('x')), {
      fallback: () => {
        throw thrown;
      },
    });
    const rejecting = resilient(() => Promise.reject(new Error('x')), {
      fallback: () => Promise.reject(rejected),
    });
    await expect(throwing()).rejects.toBe(thrown);
    await expect(rejecting()).rejects.toBe(rejected);
  });

  it('is not called when fn succeeds', async () => {
    const fallback = vi.fn(() => 'fb');
    await expect(resilient(async () => 'real', { fallback })()).resolves.toBe('real');
    expect(fallback).not.toHaveBeenCalled();
  });

  it('catches a synchronous throw and non-Error rejections (string, undefined)', async () => {
    const seen: unknown[] = [];
    const fallback = (e: unknown) => {
      seen.push(e);
      return 'fb';
    };
    await expect(
      resilient(
        () => {
          throw new Error('sync');
        },
        { fallback },
      )(),
    ).resolves.toBe('fb');
    await expect(resilient(() => Promise.reject('text'), { fallback })()).resolves.toBe('fb');
    await expect(resilient(() => Promise.reject(undefined), { fallback })()).resolves.toBe('fb');
    expect(seen[0]).toBeInstanceOf(Error);
    expect(seen.slice(1)).toEqual(['text', undefined]);
  });
});

describe('fallback: a plain value', () => {
  it.each([
    ['null', null],
    ['0', 0],
    ['false', false],
    ['an empty string', ''],
    ['an object', { cached: true }],
    ['an array', [1, 2]],
  ])('%s is returned as is', async (_label, value) => {
    await expect(
      resilient(() => Promise.reject(new Error('x')), { fallback: value })(),
    ).resolves.toBe(value);
  });

  it('`fallback: undefined` means no fallback', async () => {
    const error = new Error('x');
    await expect(
      resilient(() => Promise.reject(error), { fallback: undefined } as never)(),
    ).rejects.toBe(error);
  });
});

describe('fallback: which failures it sees', () => {
  it('the final error after retries are exhausted (the last one, unchanged)', async () => {
    const clock = new ManualClock();
    const errors: Error[] = [];
    const fn = () => {
      const error = new Error(`#${errors.length + 1}`);
      errors.push(error);
      return Promise.reject(error);
    };
    const fallback = vi.fn(() => 'fb');
    const call = track(
      resilient(fn, {
        retry: { maxAttempts: 3, backoff: backoff.constant(10) },
        fallback,
        clock,
      })(),
    );
    await clock.advance(20);
    expect(call.value).toBe('fb');
    expect(fallback).toHaveBeenCalledTimes(1);
    expect(fallback.mock.calls[0]).toEqual([errors[2]]);
  });

  it('a timeout of the first attempt (fast path)', async () => {
    const clock = new ManualClock();
    const fallback = vi.fn<(error: unknown) => string>(() => 'fb');
    const call = track(resilient(never, { timeout: 100, fallback, clock })());
    await clock.advance(100);
    expect(call.value).toBe('fb');
    expect(fallback.mock.calls[0]?.[0]).toBeInstanceOf(TimeoutError);
  });

  it('a total timeout after retries', async () => {
    const clock = new ManualClock();
    const fallback = vi.fn<(error: unknown) => string>(() => 'fb');
    const call = track(
      resilient(never, {
        timeout: { attempt: 100, total: 150 },
        retry: { backoff: backoff.constant(0) },
        fallback,
        clock,
      })(),
    );
    await clock.advance(150);
    expect(call.value).toBe('fb');
    const error = fallback.mock.calls[0]?.[0] as TimeoutError;
    expect(error.scope).toBe('total');
    expect(error.timeout).toBe(50);
  });

  it('a timeout on the slow path (caller signal)', async () => {
    const clock = new ManualClock();
    const policy = resilient({ timeout: 10, fallback: 'fb', clock });
    const call = track(policy.execute(never, { signal: new AbortController().signal }));
    await clock.advance(10);
    expect(call.value).toBe('fb');
  });

  it('the library’s own rejections: an open circuit', async () => {
    const breaker = circuitBreaker();
    breaker.isolate();
    const fn = vi.fn(async () => 'real');
    const fallback = vi.fn<(error: unknown) => string>(() => 'fb');
    await expect(resilient(fn, { circuitBreaker: breaker, fallback })()).resolves.toBe('fb');
    expect(fn).not.toHaveBeenCalled();
    expect(fallback.mock.calls[0]?.[0]).toBeInstanceOf(CircuitOpenError);
  });

  it('the library’s own rejections: a full bulkhead', async () => {
    const fallback = vi.fn<(error: unknown) => string>(() => 'fb');
    const wrapped = resilient(never, { bulkhead: { maxConcurrent: 1, maxQueue: 0 }, fallback });
    void wrapped();
    await expect(wrapped()).resolves.toBe('fb');
    expect(fallback.mock.calls[0]?.[0]).toBeInstanceOf(BulkheadRejectedError);
  });

  it('the library’s own rejections: rate limited', async () => {
    const clock = new ManualClock();
    const fallback = vi.fn<(error: unknown) => string>(() => 'fb');
    const wrapped = resilient(async () => 'real', {
      rateLimiter: { limit: 1 },
      fallback,
      clock,
    });
    await expect(wrapped()).resolves.toBe('real');
    await expect(wrapped()).resolves.toBe('fb');
    expect(fallback.mock.calls[0]?.[0]).toBeInstanceOf(RateLimitedError);
  });

  it('a throwing retryOn predicate', async () => {
    const predicateError = new Error('predicate');
    const fallback = vi.fn<(error: unknown) => string>(() => 'fb');
    const wrapped = resilient(() => Promise.reject(new Error('x')), {
      retry: {
        retryOn: () => {
          throw predicateError;
        },
      },
      fallback,
    });
    await expect(wrapped()).resolves.toBe('fb');
    expect(fallback.mock.calls[0]?.[0]).toBe(predicateError);
  });

  it('is not used on a caller abort: the call rejects with signal.reason', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const fallback = vi.fn(() => 'fb');
    const policy = resilient({ retry: true, timeout: 1_000, fallback, clock });
    const call = track(policy.execute(never, { signal: controller.signal }));
    await clock.advance(10);
    controller.abort('caller gave up');
    await clock.advance(0);
    expect(call.reason).toBe('caller gave up');
    expect(fallback).not.toHaveBeenCalled();
  });

  it('is not used on an abort of options.signal, nor for a signal aborted before the call', async () => {
    const shutdown = new AbortController();
    const fallback = vi.fn(() => 'fb');
    const wrapped = resilient(never, { signal: shutdown.signal, fallback });
    const call = track(wrapped());
    await Promise.resolve();
    shutdown.abort('shutdown');
    await new Promise((r) => setImmediate(r));
    expect(call.reason).toBe('shutdown');
    await expect(wrapped()).rejects.toBe('shutdown');
    expect(fallback).not.toHaveBeenCalled();
  });

  it('is used for fn’s own failure even when a caller signal is present', async () => {
    const fallback = vi.fn(() => 'fb');
    const policy = resilient({ fallback });
    await expect(
      policy.execute(() => Promise.reject(new Error('x')), {
        signal: new AbortController().signal,
      }),
    ).resolves.toBe('fb');
  });

  it('emits fallbackUsed with the error', async () => {
    const error = new Error('x');
    const wrapped = resilient(() => Promise.reject(error), { fallback: 0 });
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    await wrapped();
    expect(events).toEqual([{ type: 'fallbackUsed', error }]);
  });
});
