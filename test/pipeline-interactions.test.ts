import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  backoff,
  bulkhead,
  BulkheadRejectedError,
  cache,
  circuitBreaker,
  CircuitOpenError,
  RateLimitedError,
  rateLimiter,
  resilient,
  TimeoutError,
  type ResilienceEvent,
} from '../src/index.js';
import { Emitter } from '../src/events.js';
import { flush, ManualClock } from './helpers/manual-clock.js';
import { deferred, type Deferred } from './helpers/promises.js';

const boom = new Error('boom');

const settle = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    (value) => value,
    (error: unknown) => error,
  );

afterEach(() => {
  vi.restoreAllMocks();
});

describe('breaker × limiter × bulkhead', () => {
  it('an open circuit rejects before a rate-limit token is spent', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1 });
    const limiter = rateLimiter({ clock, limit: 5 });
    const fn = vi.fn(() => Promise.reject(boom));
    const call = resilient(fn, { clock, circuitBreaker: breaker, rateLimiter: limiter });
    await settle(call());
    for (let i = 0; i < 10; i++) expect(await settle(call())).toBeInstanceOf(CircuitOpenError);
    expect(limiter.stats()).toMatchObject({ admitted: 1, rejected: 0 });
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('an open circuit rejects before a bulkhead slot is taken', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock });
    const pool = bulkhead(1);
    const call = resilient(() => 'x', { clock, circuitBreaker: breaker, bulkhead: pool });
    breaker.isolate();
    expect(await settle(call())).toBeInstanceOf(CircuitOpenError);
    expect(pool.stats()).toEqual({ inFlight: 0, queued: 0, rejected: 0 });
  });

  it('a rate-limit rejection is not a breaker failure', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1 });
    const limiter = rateLimiter({ clock, limit: 1 });
    const call = resilient(() => Promise.resolve('ok'), {
      clock,
      circuitBreaker: breaker,
      rateLimiter: limiter,
    });
    expect(await call()).toBe('ok');
    for (let i = 0; i < 5; i++) expect(await settle(call())).toBeInstanceOf(RateLimitedError);
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 1, failures: 0 });
  });

  it('a full bulkhead is not a breaker failure, and gives back the token it took', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1 });
    const limiter = rateLimiter({ clock, limit: 10 });
    const pool = bulkhead(1);
    const hold = deferred<string>();
    const call = resilient((p: Promise<string>) => p, {
      clock,
      circuitBreaker: breaker,
      rateLimiter: limiter,
      bulkhead: pool,
    });
    const running = call(hold.promise);
    for (let i = 0; i < 3; i++) {
      expect(await settle(call(Promise.resolve('x')))).toBeInstanceOf(BulkheadRejectedError);
    }
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 0 });
    expect(limiter.stats().admitted).toBe(1);
    hold.resolve('done');
    expect(await running).toBe('done');
    expect(breaker.stats().calls).toBe(1);
  });

  it.each([
    ['full', { maxConcurrent: 1 }],
    ['queue timeout', { maxConcurrent: 1, maxQueue: 1, queueTimeout: 50 }],
  ] as const)(
    'a bulkhead rejection on the slow path (%s) gives back the token it took, as the fast path does',
    async (_, options) => {
      const clock = new ManualClock();
      const limiter = rateLimiter({ clock, limit: 2, interval: 1_000 });
      const pool = bulkhead(options);
      const hold = deferred<string>();
      // A caller's signal sends every call down the slow path.
      const signal = new AbortController().signal;
      const policy = resilient({ clock, rateLimiter: limiter, bulkhead: pool });
      const running = policy.execute(() => hold.promise, { signal }); // token 1 of 2, the slot
      const rejected = settle(policy.execute(() => 'x', { signal })); // token 2, then no slot
      await clock.advance(50);
      expect(await rejected).toBeInstanceOf(BulkheadRejectedError);
      expect(limiter.stats().admitted).toBe(1);
      hold.resolve('done');
      await running;
      // The unused token is there again (no time for a new one has passed).
      expect(await policy.execute(() => 'y', { signal })).toBe('y');
      expect(limiter.stats()).toMatchObject({ admitted: 2, rejected: 0 });
    },
  );

  it('a rate-limit rejection hands the half-open trial slot back', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1, halfOpenAfter: 1_000 });
    const limiter = rateLimiter({ clock, limit: 1, interval: 2_000 });
    const fn = vi.fn((ok: boolean) => (ok ? Promise.resolve('ok') : Promise.reject(boom)));
    const call = resilient(fn, { clock, circuitBreaker: breaker, rateLimiter: limiter });
    await settle(call(false)); // opens; takes the only token
    await clock.advance(1_000);
    expect(await settle(call(true))).toBeInstanceOf(RateLimitedError);
    expect(breaker.state).toBe('halfOpen');
    await clock.advance(1_000); // a token again
    expect(await call(true)).toBe('ok'); // the trial slot was free: admitted
    expect(breaker.state).toBe('closed');
  });

  it('a full bulkhead hands the half-open trial slot back', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1, halfOpenAfter: 1_000 });
    const pool = bulkhead(1);
    const hold = deferred<string>();
    const other = resilient((p: Promise<string>) => p, { clock, bulkhead: pool });
    const call = resilient((p: Promise<string>) => p, {
      clock,
      circuitBreaker: breaker,
      bulkhead: pool,
    });
    await settle(call(Promise.reject(boom)));
    await clock.advance(1_000);
    const busy = other(hold.promise);
    expect(await settle(call(Promise.resolve('x')))).toBeInstanceOf(BulkheadRejectedError);
    expect(breaker.state).toBe('halfOpen');
    hold.resolve('free');
    await busy;
    expect(await call(Promise.resolve('trial'))).toBe('trial');
    expect(breaker.state).toBe('closed');
  });

  it('a bulkhead queue timeout (slow path) hands the half-open trial slot back too', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1, halfOpenAfter: 1_000 });
    const pool = bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeout: 50 });
    const hold = deferred<string>();
    const other = resilient((p: Promise<string>) => p, { clock, bulkhead: pool });
    const call = resilient((p: Promise<string>) => p, {
      clock,
      circuitBreaker: breaker,
      bulkhead: pool,
    });
    await settle(call(Promise.reject(boom)));
    await clock.advance(1_000);
    const busy = other(hold.promise);
    const waiting = settle(call(Promise.resolve('x')));
    await clock.advance(50);
    expect(await waiting).toBeInstanceOf(BulkheadRejectedError);
    hold.resolve('free');
    await busy;
    expect(await call(Promise.resolve('trial'))).toBe('trial');
    expect(breaker.state).toBe('closed');
  });

  it('a caller abort while waiting for a token hands the half-open trial slot back', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1, halfOpenAfter: 1_000 });
    const limiter = rateLimiter({ clock, limit: 1, interval: 5_000, maxWait: 10_000 });
    const policy = resilient({ clock, circuitBreaker: breaker, rateLimiter: limiter });
    await settle(policy.execute(() => Promise.reject(boom)));
    await clock.advance(1_000);
    const controller = new AbortController();
    const waiting = settle(policy.execute(() => 'late', { signal: controller.signal }));
    await clock.advance(10);
    expect(breaker.state).toBe('halfOpen');
    controller.abort('no');
    expect(await waiting).toBe('no');
    await clock.advance(4_000); // the token the aborted waiter gave back is free again now
    expect(await policy.execute(() => 'trial')).toBe('trial');
    expect(breaker.state).toBe('closed');
  });

  it('retry may honour a RateLimitedError retryAfter when retryOn allows it', async () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ clock, limit: 1, interval: 1_000 });
    const fn = vi.fn(() => Promise.resolve(clock.now()));
    const call = resilient(fn, {
      clock,
      rateLimiter: limiter,
      retry: { maxAttempts: 2, retryOn: () => true, backoff: backoff.constant(5_000) },
    });
    expect(await call()).toBe(0);
    const second = call();
    await clock.advance(1_000);
    expect(await second).toBe(1_000);
  });
});

describe('fallback catches every rejection', () => {
  it.each([
    ['CircuitOpenError', CircuitOpenError],
    ['RateLimitedError', RateLimitedError],
    ['BulkheadRejectedError (full)', BulkheadRejectedError],
    ['BulkheadRejectedError (queueTimeout)', BulkheadRejectedError],
    ['TimeoutError', TimeoutError],
  ] as const)('%s', async (name, type) => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock });
    const limiter = rateLimiter({ clock, limit: 1 });
    const pool = bulkhead({
      maxConcurrent: 1,
      maxQueue: name.includes('queueTimeout') ? 1 : 0,
      queueTimeout: 10,
    });
    const hold = deferred<string>();
    const seen: unknown[] = [];
    const fallback = vi.fn((error: unknown, ...args: unknown[]) => {
      seen.push(error);
      return `fallback(${args.join()})`;
    });
    const fn = (mode: string) => (mode === 'hold' ? hold.promise : 'real');
    let call;
    if (name === 'CircuitOpenError') {
      breaker.isolate();
      call = resilient(fn, { clock, circuitBreaker: breaker, fallback });
    } else if (name === 'RateLimitedError') {
      call = resilient(fn, { clock, rateLimiter: limiter, fallback });
      await call('use the token');
    } else if (name === 'TimeoutError') {
      call = resilient(fn, { clock, timeout: 10, fallback });
    } else {
      call = resilient(fn, { clock, bulkhead: pool, fallback });
      void call('hold');
    }
    const result = call(name === 'TimeoutError' ? 'hold' : 'go');
    await clock.advance(10);
    expect(await result).toBe(`fallback(${name === 'TimeoutError' ? 'hold' : 'go'})`);
    expect(seen.at(-1)).toBeInstanceOf(type);
  });
});

describe('cache in front of the stages', () => {
  it('a hit skips every stage: no token, no slot, no breaker sample, no timer, no fn', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock });
    const limiter = rateLimiter({ clock, limit: 1, interval: 60_000 });
    const pool = bulkhead(1);
    const fn = vi.fn((id: string) => Promise.resolve(`user ${id}`));
    const call = resilient(fn, {
      clock,
      cache: { ttl: 10_000 },
      retry: true,
      circuitBreaker: breaker,
      rateLimiter: limiter,
      bulkhead: pool,
      timeout: 1_000,
      fallback: 'fallback',
    });
    expect(await call('1')).toBe('user 1');
    const timers = clock.pending();
    for (let i = 0; i < 20; i++) expect(await call('1')).toBe('user 1');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(limiter.stats().admitted).toBe(1);
    expect(breaker.stats().calls).toBe(1);
    expect(pool.stats().inFlight).toBe(0);
    expect(clock.pending()).toBe(timers);
    // A miss still goes through them: the limiter has no token left, and the fallback answers.
    expect(await call('2')).toBe('fallback');
  });
});

describe('sharing', () => {
  it('a shared breaker opened through one function rejects calls through another', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 2 });
    const users = vi.fn(() => Promise.reject(boom));
    const orders = vi.fn(() => Promise.resolve('orders'));
    const getUser = resilient(users, { clock, circuitBreaker: breaker });
    const getOrders = resilient(orders, { clock, circuitBreaker: breaker });
    expect(await getOrders()).toBe('orders');
    await settle(getUser());
    await settle(getUser());
    expect(await settle(getOrders())).toBeInstanceOf(CircuitOpenError);
    expect(orders).toHaveBeenCalledTimes(1);
  });

  it('one policy made once shares its breaker, limiter and bulkhead across what it wraps', async () => {
    const clock = new ManualClock();
    const policy = resilient({
      clock,
      circuitBreaker: { consecutiveFailures: 1 },
      rateLimiter: { limit: 2 },
      bulkhead: 1,
    });
    const hold = deferred<string>();
    const f = policy((p: Promise<string>) => p);
    const g = policy((p: Promise<string>) => p);
    const running = f(hold.promise);
    expect(await settle(g(Promise.resolve('x')))).toBeInstanceOf(BulkheadRejectedError);
    expect(g.stats().bulkhead?.inFlight).toBe(1);
    hold.resolve('f');
    await running;
    expect(await g(Promise.resolve('g'))).toBe('g');
    expect(await settle(f(Promise.resolve('third')))).toBeInstanceOf(RateLimitedError); // 2 taken: the bulkhead's reject gave its token back
    await clock.advance(1_000);
    expect(await settle(f(Promise.reject(boom)))).toBe(boom);
    expect(await settle(g(Promise.resolve('x')))).toBeInstanceOf(CircuitOpenError);
    expect(await settle(policy.execute(() => 'x'))).toBeInstanceOf(CircuitOpenError);
    expect(policy.stats().circuitBreaker?.state).toBe('open');
  });

  it('a standalone limiter is shared by every function it is given to', async () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ limit: 2 });
    const a = resilient(() => 'a', { clock, rateLimiter: limiter });
    const b = resilient(() => 'b', { clock, rateLimiter: limiter });
    expect(await a()).toBe('a');
    expect(await b()).toBe('b');
    expect(await settle(a())).toBeInstanceOf(RateLimitedError);
    expect(await settle(b())).toBeInstanceOf(RateLimitedError);
  });

  it('wrapped.stats() gathers every stateful stage', async () => {
    const clock = new ManualClock();
    const call = resilient((id: string) => Promise.resolve(id), {
      clock,
      circuitBreaker: { minimumCalls: 1, window: { type: 'count', size: 10 } },
      rateLimiter: { limit: 10 },
      bulkhead: 2,
      cache: true,
    });
    await call('a');
    await call('a');
    expect(call.stats()).toEqual({
      circuitBreaker: {
        state: 'closed',
        calls: 1,
        failures: 0,
        slowCalls: 0,
        failureRate: 0,
        slowCallRate: 0,
        consecutiveFailures: 0,
        retryAfter: 0,
      },
      rateLimiter: { admitted: 1, rejected: 0, waited: 0, retryAfter: 0 },
      bulkhead: { inFlight: 0, queued: 0, rejected: 0 },
      cache: {
        size: 1,
        hits: 1,
        misses: 1,
        staleServed: 0,
        staleHits: 0,
        refreshFailures: 0,
        hitRate: 0.5,
      },
    });
    expect(resilient(() => 1).stats()).toEqual({});
  });
});

describe('rejections without stack traces', () => {
  it('stackTraces: false builds rejections with no stack frames', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock });
    breaker.isolate();
    const limiter = rateLimiter({ clock, limit: 1 });
    const hold = deferred<string>();
    const errors: unknown[] = [];
    const quiet = { clock, stackTraces: false };
    errors.push(await settle(resilient(() => 1, { ...quiet, circuitBreaker: breaker })()));
    const limited = resilient(() => 1, { ...quiet, rateLimiter: limiter });
    await limited();
    errors.push(await settle(limited()));
    const full = resilient((p: Promise<string>) => p, { ...quiet, bulkhead: 1 });
    void full(hold.promise);
    errors.push(await settle(full(hold.promise)));
    const slow = resilient(() => hold.promise, { ...quiet, timeout: 5 });
    const timedOut = settle(slow());
    await clock.advance(5);
    errors.push(await timedOut);
    expect(errors.map((e) => (e as Error).name)).toEqual([
      'CircuitOpenError',
      'RateLimitedError',
      'BulkheadRejectedError',
      'TimeoutError',
    ]);
    for (const error of errors) expect((error as Error).stack).not.toMatch(/\n\s+at /);
    expect(Error.stackTraceLimit).toBeGreaterThan(0); // restored

    const loud = await settle(resilient(() => 1, { clock, circuitBreaker: breaker })());
    expect((loud as Error).stack).toMatch(/\n\s+at /);
  });
});

describe('events', () => {
  it('breaker transitions and rejections reach wrapped.on listeners', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1, halfOpenAfter: 100 });
    const call = resilient((ok: boolean) => (ok ? 'ok' : Promise.reject(boom)), {
      clock,
      circuitBreaker: breaker,
    });
    const events: ResilienceEvent[] = [];
    const off = call.on((e) => events.push(e));
    await settle(call(false));
    await settle(call(true));
    await clock.advance(100);
    await call(true);
    expect(events).toEqual([
      {
        type: 'circuitOpened',
        failureRate: 1,
        slowCallRate: 0,
        consecutiveFailures: 1,
        retryAfter: 100,
      },
      { type: 'callRejected', reason: 'circuitOpen', retryAfter: 100 },
      { type: 'circuitHalfOpened' },
      { type: 'circuitClosed' },
    ]);
    off();
    breaker.isolate();
    await settle(call(true));
    expect(events).toHaveLength(4);
  });

  it('a policy listener hears the events of every function it wraps', async () => {
    const clock = new ManualClock();
    const policy = resilient({ clock, rateLimiter: { limit: 1 }, cache: true });
    const events: ResilienceEvent[] = [];
    policy.on((e) => events.push(e));
    const f = policy((id: string) => id);
    await f('a');
    await f('a');
    await settle(f('b'));
    expect(events).toEqual([
      { type: 'cacheMiss', key: 'a' },
      { type: 'cacheHit', key: 'a' },
      { type: 'cacheMiss', key: 'b' },
      { type: 'callRejected', reason: 'rateLimited', retryAfter: 1_000 },
    ]);
  });

  it('callRejected names each reason', async () => {
    const clock = new ManualClock();
    const reasons: string[] = [];
    const listen = (e: ResilienceEvent) => {
      if (e.type === 'callRejected') reasons.push(e.reason);
    };
    const hold = deferred<string>();
    const open = resilient(() => 1, { clock, circuitBreaker: { halfOpenAfter: 10 } });
    open.on(listen);
    open.stats(); // (no effect)
    const limited = resilient(() => 1, { clock, rateLimiter: { limit: 1 } });
    limited.on(listen);
    const full = resilient((p: Promise<string>) => p, {
      clock,
      bulkhead: { maxConcurrent: 1, maxQueue: 1, queueTimeout: 5 },
    });
    full.on(listen);
    const breaker = circuitBreaker({ clock });
    breaker.isolate();
    const isolated = resilient(() => 1, { clock, circuitBreaker: breaker });
    isolated.on(listen);
    await settle(isolated());
    await limited();
    await settle(limited());
    void full(hold.promise);
    const queued = settle(full(hold.promise));
    await settle(full(hold.promise));
    await clock.advance(5);
    await queued;
    expect(reasons).toEqual(['circuitOpen', 'rateLimited', 'bulkheadFull', 'bulkheadQueueTimeout']);
  });

  it('staleServed is emitted with the key, the age and the error', async () => {
    const clock = new ManualClock();
    const fn = vi
      .fn<(id: string) => Promise<string>>()
      .mockResolvedValueOnce('v')
      .mockRejectedValue(boom);
    const call = resilient(fn, { clock, cache: { ttl: 10, staleIfError: 100 } });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    await call('k');
    await clock.advance(30);
    expect(await call('k')).toBe('v');
    expect(events).toEqual([
      { type: 'cacheMiss', key: 'k' },
      { type: 'cacheMiss', key: 'k' },
      { type: 'staleServed', key: 'k', age: 30, error: boom },
    ]);
  });

  it('no event object is built when nobody listens', async () => {
    const emit = vi.spyOn(Emitter.prototype, 'emit');
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, consecutiveFailures: 1, halfOpenAfter: 10 });
    const fn = vi
      .fn<(id: string) => Promise<string>>()
      .mockRejectedValueOnce(boom)
      .mockResolvedValueOnce('v')
      .mockRejectedValue(boom);
    const call = resilient(fn, {
      clock,
      circuitBreaker: breaker,
      rateLimiter: { limit: 100, maxWait: 1_000 },
      bulkhead: { maxConcurrent: 1, maxQueue: 1 },
      cache: { ttl: 5, staleIfError: 100 },
      retry: { maxAttempts: 2, backoff: backoff.constant(1) },
    });
    const first = settle(call('a')); // fails twice: opens, then rejected
    await clock.advance(1);
    expect(await first).toBeInstanceOf(CircuitOpenError);
    await clock.advance(10);
    expect(await call('a')).toBe('v'); // half-open, closed
    await call('a'); // hit
    await clock.advance(10);
    const stale = call('a'); // fails, opens the circuit, is not retried: the stale value is served
    await clock.advance(1);
    expect(await stale).toBe('v');
    breaker.isolate();
    breaker.reset();
    expect(emit).not.toHaveBeenCalled();
    const listener = vi.fn();
    call.on(listener);
    const last = settle(call('a'));
    await clock.advance(1);
    await last;
    expect(emit).toHaveBeenCalled();
    expect(listener).toHaveBeenCalled();
  });
});

describe('invalid options fail at wrap time, all in one TypeError', () => {
  it('names the path of every bad stateful option', () => {
    let error: unknown;
    try {
      resilient(() => 1, {
        circuitBreaker: { failureRateThreshold: 1.5, halfOpenMaxCalls: 0 },
        rateLimiter: {} as never,
        bulkhead: 0,
        cache: { maxEntries: 0, ttl: -5 },
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TypeError);
    const message = (error as TypeError).message;
    expect(message).toMatch(/^Invalid bulwark options:/);
    for (const path of [
      'circuitBreaker.failureRateThreshold',
      'circuitBreaker.halfOpenMaxCalls',
      'rateLimiter.limit',
      'bulkhead',
      'cache.maxEntries',
      'cache.ttl',
    ]) {
      expect(message).toContain(`\`${path}\``);
    }
    expect(message.split('\n')).toHaveLength(7);
  });

  it('policies made once can be given as instances; they are not re-validated', () => {
    const breaker = circuitBreaker();
    const limiter = rateLimiter({ limit: 1 });
    const pool = bulkhead();
    const shared = cache();
    const call = resilient((id: string) => id, {
      circuitBreaker: breaker,
      rateLimiter: limiter,
      bulkhead: pool,
      cache: shared,
    });
    const stages = call.describe().stages.filter((s) => s.enabled);
    expect(stages.map((s) => s.stage)).toEqual([
      'cache',
      'circuitBreaker',
      'rateLimiter',
      'bulkhead',
    ]);
  });
});

describe('the whole stack together', () => {
  it('bulkhead slot, limiter token and breaker sample per attempt, across retries and timeouts', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 10 });
    const limiter = rateLimiter({ clock, limit: 100 });
    const pool = bulkhead(5);
    const holds: Deferred<string>[] = [];
    const call = resilient(
      () => {
        const d = deferred<string>();
        holds.push(d);
        return d.promise;
      },
      {
        clock,
        circuitBreaker: breaker,
        rateLimiter: limiter,
        bulkhead: pool,
        timeout: 10,
        retry: { maxAttempts: 3, backoff: backoff.constant(5) },
      },
    );
    const result = settle(call());
    await clock.advance(10 + 5 + 10 + 5 + 10);
    expect(await result).toBeInstanceOf(TimeoutError);
    expect(holds).toHaveLength(3);
    expect(breaker.stats()).toMatchObject({ calls: 3, failures: 3 });
    expect(limiter.stats().admitted).toBe(3);
    expect(pool.stats().inFlight).toBe(3);
    for (const d of holds) d.resolve('late');
    await flush();
    expect(pool.stats().inFlight).toBe(0);
    expect(breaker.stats().calls).toBe(3); // late results are not samples
  });
});
