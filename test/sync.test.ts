import { describe, expect, it, vi } from 'vitest';
import {
  CircuitOpenError,
  RateLimitedError,
  circuitBreaker,
  rateLimiter,
  resilient,
  resilientSync,
  retryBudget,
  type ResilienceEvent,
} from '../src/index.js';
import { ManualClock } from './helpers/manual-clock.js';

describe('resilientSync', () => {
  it('returns the value synchronously, not a promise', () => {
    const double = resilientSync((x: number) => x * 2, { retry: true });
    const result = double(21);
    expect(result).toBe(42);
    expect(result).not.toBeInstanceOf(Promise);
  });

  it('retries at once up to maxAttempts and rethrows the last error unchanged', () => {
    const errors = [new Error('1'), new Error('2'), new Error('3')];
    let calls = 0;
    const fn = resilientSync(
      () => {
        throw errors[calls++]!;
      },
      { retry: { maxAttempts: 3 } },
    );
    let caught: unknown;
    try {
      fn();
    } catch (error) {
      caught = error;
    }
    expect(calls).toBe(3);
    expect(caught).toBe(errors[2]);
  });

  it('honours retryOn and retryOnResult', () => {
    let calls = 0;
    const fn = resilientSync(() => ++calls, {
      retry: { maxAttempts: 5, retryOnResult: (value) => (value as number) < 3 },
    });
    expect(fn()).toBe(3);
    let thrown = 0;
    const never = resilientSync(
      () => {
        thrown++;
        throw new TypeError('permanent');
      },
      { retry: { maxAttempts: 5, retryOn: (error) => !(error instanceof TypeError) } },
    );
    expect(() => never()).toThrow('permanent');
    expect(thrown).toBe(1);
  });

  it('forwards this and the exact arguments', () => {
    const target = {
      base: 10,
      sum(this: { base: number }, ...xs: number[]) {
        return this.base + xs.reduce((a, b) => a + b, 0) + arguments.length * 1000;
      },
    };
    const sum = resilientSync(target.sum, { retry: true });
    expect(sum.call(target, 1, 2, 3, 4, 5, 6)).toBe(10 + 21 + 6000);
    expect(sum.call(target)).toBe(10);
  });

  it('uses the fallback with the error and the arguments', () => {
    const fn = resilientSync(
      (id: string): string => {
        throw new Error(`no ${id}`);
      },
      { fallback: (error, id) => `fallback ${id}: ${(error as Error).message}` },
    );
    expect(fn('7')).toBe('fallback 7: no 7');
    expect(resilientSync((): number => Number.NaN, { fallback: 0 })()).toBeNaN();
  });

  it('opens a circuit breaker and rejects without calling fn', () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ consecutiveFailures: 2, halfOpenAfter: 1_000, clock });
    const fn = vi.fn(() => {
      throw new Error('down');
    });
    const call = resilientSync(fn, { circuitBreaker: breaker, clock });
    expect(() => call()).toThrow('down');
    expect(() => call()).toThrow('down');
    expect(breaker.state).toBe('open');
    let rejection: unknown;
    try {
      call();
    } catch (error) {
      rejection = error;
    }
    expect(rejection).toBeInstanceOf(CircuitOpenError);
    expect((rejection as CircuitOpenError).retryAfter).toBe(1_000);
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('lets a trial through after halfOpenAfter and closes on success', async () => {
    const clock = new ManualClock();
    let healthy = false;
    const call = resilientSync(
      () => {
        if (!healthy) throw new Error('down');
        return 'ok';
      },
      { circuitBreaker: { consecutiveFailures: 1, halfOpenAfter: 100 }, clock },
    );
    expect(() => call()).toThrow('down');
    expect(() => call()).toThrow(CircuitOpenError);
    await clock.advance(100);
    healthy = true;
    expect(call()).toBe('ok');
    expect(call.stats().circuitBreaker?.state).toBe('closed');
  });

  it('rejects over the rate limit without waiting', () => {
    const clock = new ManualClock();
    const call = resilientSync(() => 1, { rateLimiter: { limit: 2, interval: 1_000 }, clock });
    expect(call()).toBe(1);
    expect(call()).toBe(1);
    let rejection: unknown;
    try {
      call();
    } catch (error) {
      rejection = error;
    }
    expect(rejection).toBeInstanceOf(RateLimitedError);
    expect((rejection as RateLimitedError).retryAfter).toBe(500);
  });

  it('does not count a rate-limit rejection as a breaker failure', () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ consecutiveFailures: 1, clock });
    const call = resilientSync(() => 1, {
      circuitBreaker: breaker,
      rateLimiter: { limit: 1 },
      clock,
    });
    call();
    expect(() => call()).toThrow(RateLimitedError);
    expect(breaker.state).toBe('closed');
  });

  it('caches by the single primitive argument, with ttl and staleIfError', async () => {
    const clock = new ManualClock();
    let version = 0;
    let failing = false;
    const load = vi.fn((id: string) => {
      if (failing) throw new Error('down');
      return `${id}@${++version}`;
    });
    const cached = resilientSync(load, { cache: { ttl: 100, staleIfError: 50 }, clock });
    expect(cached('a')).toBe('a@1');
    expect(cached('a')).toBe('a@1');
    expect(load).toHaveBeenCalledTimes(1);
    await clock.advance(100);
    expect(cached('a')).toBe('a@2');
    await clock.advance(120);
    failing = true;
    const events: ResilienceEvent[] = [];
    cached.on((event) => events.push(event));
    expect(cached('a')).toBe('a@2');
    expect(events.map((e) => e.type)).toEqual(['cacheMiss', 'staleServed']);
    await clock.advance(100);
    expect(() => cached('a')).toThrow('down');
    expect(cached.stats().cache).toMatchObject({ hits: 1, misses: 4, staleServed: 1 });
  });

  it('never caches a fallback value', () => {
    let calls = 0;
    const cached = resilientSync(
      (id: number): number => {
        calls++;
        if (calls === 1) throw new Error('first');
        return id;
      },
      { cache: true, fallback: -1 },
    );
    expect(cached(5)).toBe(-1);
    expect(cached(5)).toBe(5);
    expect(cached(5)).toBe(5);
    expect(calls).toBe(2);
  });

  it('rejects arguments the default cache key cannot take', () => {
    const cached = resilientSync((value: unknown) => value, { cache: true });
    expect(() => cached({})).toThrow(/cache\.key/);
    expect(() => resilientSync((a: number, b: number) => a + b, { cache: true })).toThrow(
      /declares 2/,
    );
    const keyed = resilientSync((a: number, b: number) => a + b, {
      cache: { key: (a, b) => `${a}:${b}` },
    });
    expect(keyed(1, 2)).toBe(3);
  });

  it('stops retrying when the budget is spent', () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 0.1, window: 10_000, clock });
    let calls = 0;
    const fn = resilientSync(
      () => {
        calls++;
        throw new Error('x');
      },
      { retry: { maxAttempts: 3, budget }, clock },
    );
    expect(() => fn()).toThrow('x');
    expect(calls).toBe(2); // one retry allowed by the floor (0.1/s × 10 s)
    expect(() => fn()).toThrow('x');
    expect(calls).toBe(3); // no retry left
  });

  it.each([
    ['timeout', { timeout: 100 }],
    ['bulkhead', { bulkhead: 2 }],
    ['signal', { signal: new AbortController().signal }],
    ['hedge', { hedge: { delay: 10 } }],
    ['retry.backoff', { retry: { backoff: () => 10 } }],
    ['rateLimiter.maxWait', { rateLimiter: { limit: 1, maxWait: 100 } }],
    ['rateLimiter.maxWait', { rateLimiter: rateLimiter({ limit: 1, maxWait: 100 }) }],
  ])('rejects %s, which would need to wait, at wrap time', (path, options) => {
    expect(() => resilientSync(() => 1, options as never)).toThrow(
      new RegExp(`\`${path.replace('.', '\\.')}\``),
    );
  });

  it('shares a breaker with an async pipeline', async () => {
    const breaker = circuitBreaker({ consecutiveFailures: 1 });
    const sync = resilientSync(
      () => {
        throw new Error('x');
      },
      { circuitBreaker: breaker },
    );
    const async = resilient(async () => 1, { circuitBreaker: breaker });
    expect(() => sync()).toThrow('x');
    await expect(async()).rejects.toBeInstanceOf(CircuitOpenError);
  });

  it('describes only the stages it has', () => {
    const fn = resilientSync(() => 1, { retry: true, cache: true });
    const description = fn.describe();
    expect(description.kind).toBe('sync');
    expect(description.order).toEqual([
      'fallback',
      'cache',
      'retry',
      'circuitBreaker',
      'rateLimiter',
    ]);
    expect(description.stages.find((s) => s.stage === 'retry')).toMatchObject({
      enabled: true,
      maxAttempts: 3,
      backoff: { type: 'none' },
    });
  });

  it('refuses something that is not a function', () => {
    expect(() => resilientSync(42 as never)).toThrow(
      new TypeError(
        'resilientSync(fn, options): the function to wrap is `42` (number), not a function',
      ),
    );
  });

  it('emits retry and budget events to listeners, with the error or the result', () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 0.1, window: 10_000, clock });
    let calls = 0;
    const fn = resilientSync(
      () => {
        calls++;
        if (calls === 1) return 'not yet';
        throw new Error(`failure ${calls}`);
      },
      {
        retry: { maxAttempts: 4, budget, retryOnResult: (result) => result === 'not yet' },
        clock,
      },
    );
    const events: ResilienceEvent[] = [];
    fn.on((event) => events.push(event));
    expect(() => fn()).toThrow('failure 2');
    expect(events).toEqual([
      { type: 'retryResultScheduled', attempt: 1, delay: 0, result: 'not yet' },
      { type: 'retryBudgetExhausted', attempt: 2, error: new Error('failure 2') },
    ]);
  });

  it('passes more than four arguments to the fallback', () => {
    const fn = resilientSync(
      (...xs: number[]): number => {
        throw new Error(`sum of ${xs.length}`);
      },
      {
        fallback: (error, ...xs) =>
          `${(error as Error).message} = ${xs.reduce((a, b) => a + b, 0)}`,
      },
    );
    expect(fn(1, 2, 3, 4, 5, 6)).toBe('sum of 6 = 21');
  });

  it('retries an open circuit when retryOn says so, and counts slow calls with a timed window', () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({
      window: { type: 'time', duration: 10_000 },
      minimumCalls: 1,
      failureRateThreshold: 1,
      slowCallDuration: 1,
      slowCallRateThreshold: 1,
      halfOpenAfter: 5_000,
      clock,
    });
    const work = vi.fn(() => {
      clock.elapse(2); // a slow call
      return 'done';
    });
    const fn = resilientSync(work, {
      circuitBreaker: breaker,
      retry: { maxAttempts: 2, retryOn: (error) => error instanceof CircuitOpenError },
      clock,
    });
    expect(fn()).toBe('done');
    expect(breaker.state).toBe('open'); // one slow call of one: slow-call rate 1
    expect(() => fn()).toThrow(CircuitOpenError); // retried once, still open
    expect(work).toHaveBeenCalledTimes(1);
  });
});

describe('resilientSync given an async function (issue 10 item 15)', () => {
  const rejected = (): Promise<string> => Promise.reject(new Error('async failure'));
  const thenable = (): PromiseLike<string> => ({
    then: (onOk) => Promise.resolve(onOk?.('later')) as never,
  });

  it.each([
    ['no stage', {}],
    ['retry', { retry: { maxAttempts: 3 } }],
    ['a fallback', { fallback: 'fallback' }],
    ['a breaker', { circuitBreaker: { consecutiveFailures: 1 } }],
    ['a cache with staleIfError', { cache: { staleIfError: 1_000 } }],
  ])('with %s: the first call throws a TypeError that says use resilient()', (_, options) => {
    for (const fn of [rejected, thenable]) {
      let calls = 0;
      const wrapped = resilientSync((key: string) => {
        calls += key === 'k' ? 1 : 0;
        return fn();
      }, options);
      expect(() => wrapped('k')).toThrow(TypeError);
      expect(() => wrapped('k')).toThrow(/returned a (promise|thenable).*use resilient\(\)/);
      // Neither retried nor hidden by a fallback, a stale value or an open circuit.
      expect(calls).toBe(2);
    }
  });

  it('does not leave the discarded promise as an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const wrapped = resilientSync(rejected);
      expect(() => wrapped()).toThrow(TypeError);
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
