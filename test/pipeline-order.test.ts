import { describe, expect, it, vi } from 'vitest';
import {
  CircuitOpenError,
  TimeoutError,
  backoff,
  bulkhead,
  cache,
  circuitBreaker,
  rateLimiter,
  resilient,
  type ResilienceEvent,
} from '../src/index.js';
import { ManualClock } from './helpers/manual-clock.js';
import { deferred, track } from './helpers/promises.js';

// The fixed order, outermost first:
//   fallback → cache → [total deadline] → retry → breaker → limiter → bulkhead → attempt timeout → fn
// Each test below pins one boundary of that order by an outcome that only that order gives.

const never = () => new Promise<never>(() => {});

describe('describe().order', () => {
  it('is the documented order', () => {
    expect(resilient({}).describe().order).toEqual([
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
    ]);
  });
});

describe('retry → attempt timeout: the timeout is inside retry', () => {
  it('each retry attempt gets its own attempt timeout', async () => {
    const clock = new ManualClock();
    const starts: number[] = [];
    const fn = vi.fn(() => {
      starts.push(clock.now());
      return never();
    });
    const wrapped = resilient(fn, {
      retry: { maxAttempts: 3, backoff: backoff.constant(50) },
      timeout: 100,
      clock,
    });
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    const call = track(wrapped());
    await clock.advance(399);
    expect(call.status).toBe('pending');
    await clock.advance(1);
    expect(starts).toEqual([0, 150, 300]);
    expect(events.filter((e) => e.type === 'timedOut')).toHaveLength(3);
    expect(call.reason).toBeInstanceOf(TimeoutError);
  });

  it('the rethrown error is the last attempt’s TimeoutError, the same object', async () => {
    const clock = new ManualClock();
    const seen: unknown[] = [];
    const policy = resilient({
      retry: { maxAttempts: 2, backoff: backoff.constant(0) },
      timeout: 10,
      clock,
    });
    const call = track(
      policy.execute(({ signal }) => {
        signal.addEventListener('abort', () => seen.push(signal.reason));
        return never();
      }),
    );
    await clock.advance(20);
    expect(seen).toHaveLength(2);
    expect(call.reason).toBe(seen[1]);
    expect(call.reason).not.toBe(seen[0]);
  });
});

describe('fallback → … → timeout: the fallback is outermost', () => {
  it('catches the final timeout after every retry, and only then', async () => {
    const clock = new ManualClock();
    const fn = vi.fn(never);
    const fallback = vi.fn<(error: unknown) => string>(() => 'fallback');
    const call = track(
      resilient(fn, {
        retry: { maxAttempts: 3, backoff: backoff.constant(0) },
        timeout: 100,
        fallback,
        clock,
      })(),
    );
    await clock.advance(200);
    expect(fallback).not.toHaveBeenCalled();
    await clock.advance(100);
    expect(call.value).toBe('fallback');
    expect(fn).toHaveBeenCalledTimes(3);
    expect(fallback).toHaveBeenCalledTimes(1);
    expect(fallback.mock.calls[0]?.[0]).toBeInstanceOf(TimeoutError);
  });

  it('catches an open circuit, which retry (inside it) did not retry', async () => {
    const breaker = circuitBreaker();
    breaker.isolate();
    const fn = vi.fn(async () => 'real');
    const fallback = vi.fn<(error: unknown) => string>(() => 'fallback');
    await expect(resilient(fn, { retry: true, circuitBreaker: breaker, fallback })()).resolves.toBe(
      'fallback',
    );
    expect(fn).not.toHaveBeenCalled();
    expect(fallback.mock.calls[0]?.[0]).toBeInstanceOf(CircuitOpenError);
  });
});

describe('total deadline → retry: the deadline is outside retry', () => {
  it('cuts retries short and rethrows the last error unchanged', async () => {
    const clock = new ManualClock();
    const errors: Error[] = [];
    const fn = vi.fn(() => {
      const error = new Error(`#${errors.length + 1}`);
      errors.push(error);
      return Promise.reject(error);
    });
    const call = track(
      resilient(fn, {
        retry: { maxAttempts: 100, backoff: backoff.constant(100) },
        timeout: { total: 350 },
        clock,
      })(),
    );
    await clock.advance(1_000);
    expect(fn).toHaveBeenCalledTimes(4); // at 0, 100, 200, 300
    expect(call.reason).toBe(errors[3]);
  });

  it('ends a slow attempt at the deadline, even when the attempt limit is longer', async () => {
    const clock = new ManualClock();
    const call = track(
      resilient(never, {
        retry: { maxAttempts: 100, backoff: backoff.constant(0) },
        timeout: { attempt: 1_000, total: 300 },
        clock,
      })(),
    );
    await clock.advance(300);
    expect((call.reason as TimeoutError).scope).toBe('total');
  });
});

describe('retry: what it rethrows and when it retries', () => {
  it('rethrows the LAST error unchanged (same object), not the first and not a wrapper', async () => {
    const clock = new ManualClock();
    const errors = [new Error('first'), new RangeError('second'), new TypeError('last')];
    let i = 0;
    const call = track(
      resilient(() => Promise.reject(errors[i++]!), {
        retry: { backoff: backoff.constant(1) },
        timeout: 1_000,
        clock,
      })(),
    );
    await clock.advance(2);
    expect(call.reason).toBe(errors[2]);
  });

  it('uses an error’s retryAfter as the delay', async () => {
    const clock = new ManualClock();
    const starts: number[] = [];
    const fn = vi.fn(() => {
      starts.push(clock.now());
      return starts.length === 1
        ? Promise.reject(Object.assign(new Error('busy'), { retryAfter: 777 }))
        : Promise.resolve('ok');
    });
    const call = track(
      resilient(fn, { retry: { backoff: backoff.constant(1) }, timeout: 100, clock })(),
    );
    await clock.advance(1_000);
    expect(call.value).toBe('ok');
    expect(starts).toEqual([0, 777]);
  });
});

describe('cache → retry: the cache is outside retry, inside fallback', () => {
  it('one miss runs the whole retry loop; the result is cached, then served without fn', async () => {
    const clock = new ManualClock();
    const fn = vi
      .fn()
      .mockRejectedValueOnce(new Error('x'))
      .mockResolvedValueOnce('value')
      .mockResolvedValue('never again');
    const shared = cache({ ttl: 1_000 });
    const wrapped = resilient(fn, {
      cache: shared,
      retry: { backoff: backoff.constant(10) },
      clock,
    });
    const first = track(wrapped('k'));
    await clock.advance(10);
    expect(first.value).toBe('value');
    await expect(wrapped('k')).resolves.toBe('value');
    expect(fn).toHaveBeenCalledTimes(2);
    expect(shared.stats()).toMatchObject({ hits: 1, misses: 1 });
  });

  it('a fallback value is never cached', async () => {
    const clock = new ManualClock();
    const fn = vi.fn().mockRejectedValueOnce(new Error('down')).mockResolvedValue('fresh');
    const wrapped = resilient(fn, { cache: true, fallback: 'fallback', clock });
    await expect(wrapped('k')).resolves.toBe('fallback');
    await expect(wrapped('k')).resolves.toBe('fresh');
    await expect(wrapped('k')).resolves.toBe('fresh');
    expect(fn).toHaveBeenCalledTimes(2);
  });
});

describe('retry → breaker → limiter → bulkhead: every attempt passes each of them', () => {
  it('the breaker records one sample per attempt', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ minimumCalls: 100 });
    const fn = vi.fn(() => Promise.reject(new Error('x')));
    const call = track(
      resilient(fn, {
        retry: { maxAttempts: 3, backoff: backoff.constant(1) },
        circuitBreaker: breaker,
        clock,
      })(),
    );
    await clock.advance(2);
    expect(call.status).toBe('rejected');
    expect(breaker.stats()).toMatchObject({ calls: 3, failures: 3 });
  });

  it('an attempt timeout is a breaker failure (the timeout is inside the breaker)', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ minimumCalls: 100 });
    track(resilient(never, { circuitBreaker: breaker, timeout: 10, clock })());
    await clock.advance(10);
    expect(breaker.stats()).toMatchObject({ calls: 1, failures: 1 });
  });

  it('the limiter hands out one token per attempt, retries included', async () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ limit: 100 });
    const fn = vi.fn(() => Promise.reject(new Error('x')));
    track(
      resilient(fn, {
        retry: { maxAttempts: 3, backoff: backoff.constant(1) },
        rateLimiter: limiter,
        clock,
      })(),
    );
    await clock.advance(2);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(limiter.stats().admitted).toBe(3);
  });

  it('the bulkhead slot is held while fn runs, not during the backoff sleep', async () => {
    const clock = new ManualClock();
    const pool = bulkhead({ maxConcurrent: 1 });
    const first = deferred();
    const fn = vi
      .fn()
      .mockImplementationOnce(() => first.promise)
      .mockResolvedValue('ok');
    const call = track(
      resilient(fn, {
        retry: { backoff: backoff.constant(100) },
        bulkhead: pool,
        clock,
      })(),
    );
    await clock.advance(0);
    expect(pool.stats().inFlight).toBe(1);
    first.resolve(Promise.reject(new Error('x')));
    await clock.advance(50);
    expect(pool.stats().inFlight).toBe(0); // sleeping: the slot is free for others
    await clock.advance(50);
    expect(call.value).toBe('ok');
    expect(pool.stats().inFlight).toBe(0);
  });

  it('bulkhead → timeout: after a TimeoutError the slot stays taken until fn really settles', async () => {
    const clock = new ManualClock();
    const pool = bulkhead({ maxConcurrent: 1 });
    const slow = deferred();
    const call = track(resilient(() => slow.promise, { bulkhead: pool, timeout: 10, clock })());
    await clock.advance(10);
    expect(call.reason).toBeInstanceOf(TimeoutError);
    expect(pool.stats().inFlight).toBe(1);
    slow.resolve('late');
    await clock.advance(0);
    expect(pool.stats().inFlight).toBe(0);
  });
});
