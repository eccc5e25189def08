import { describe, expect, it, vi } from 'vitest';
import {
  BulkheadRejectedError,
  bulkhead,
  circuitBreaker,
  CircuitOpenError,
  rateLimiter,
  RateLimitedError,
  resilient,
  resilientFetch,
  resilientSync,
  type ResilienceEvent,
  type ResilientOptions,
} from '../../src/index.js';
import type { Store } from '../../src/store.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';
import { deferred, track, type Deferred } from '../helpers/promises.js';

/** A downstream per key: calls wait on a deferred the test settles, or fail/succeed at once. */
function downstream() {
  const pending: { key: string; d: Deferred<string> }[] = [];
  const fn = vi.fn((key: string, mode: 'ok' | 'fail' | 'hold' = 'ok') => {
    if (mode === 'ok') return Promise.resolve(key);
    if (mode === 'fail') return Promise.reject(new Error(`${key} down`));
    const d = deferred<string>();
    pending.push({ key, d });
    return d.promise;
  });
  return { fn, pending };
}

const byKey = { by: (key: string) => key };

function outcome(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => value,
    (error: unknown) => error,
  );
}

describe('partition: circuit breaker per key', () => {
  it('one key opening its circuit leaves the others closed; events and stats carry the key', async () => {
    const clock = new ManualClock();
    const { fn } = downstream();
    const call = resilient(fn, {
      clock,
      circuitBreaker: { consecutiveFailures: 2, halfOpenAfter: 1_000, partition: byKey },
    });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    await outcome(call('a', 'fail'));
    await outcome(call('a', 'fail'));
    expect(await outcome(call('a'))).toBeInstanceOf(CircuitOpenError);
    expect(await call('b')).toBe('b');
    expect(events.filter((e) => e.type === 'circuitOpened')).toEqual([
      expect.objectContaining({ type: 'circuitOpened', partition: 'a', consecutiveFailures: 2 }),
    ]);
    expect(events.find((e) => e.type === 'callRejected')).toEqual({
      type: 'callRejected',
      reason: 'circuitOpen',
      retryAfter: 1_000,
      partition: 'a',
    });
    const stats = call.stats();
    expect(stats.circuitBreaker).toBeUndefined();
    expect(stats.partitions?.circuitBreaker).toMatchObject({
      count: 2,
      kept: 0,
      evicted: 0,
      byKey: { a: { state: 'open', failures: 2 }, b: { state: 'closed', calls: 1 } },
    });
    // After halfOpenAfter, 'a' runs its trial and closes, as an unpartitioned breaker does.
    await clock.advance(1_000);
    expect(await call('a')).toBe('a');
    expect(events.filter((e) => e.type === 'circuitClosed')).toEqual([
      { type: 'circuitClosed', partition: 'a' },
    ]);
    expect(events).toContainEqual({ type: 'circuitHalfOpened', partition: 'a' });
  });

  it('calls `by` with the call’s this and every argument, once per call on the fast path', async () => {
    const by = vi.fn(function (this: { tenant: string }, ...args: number[]) {
      return args.length > 0 ? this.tenant : 'none';
    });
    const service = {
      tenant: 't1',
      get: resilient(
        async function (this: unknown, ...args: number[]) {
          return args.length;
        },
        { circuitBreaker: { partition: { by } } },
      ),
    };
    expect(await service.get(1, 2, 3, 4, 5)).toBe(5);
    expect(by).toHaveBeenCalledTimes(1);
    expect(by.mock.contexts[0]).toBe(service);
    expect(by.mock.calls[0]).toEqual([1, 2, 3, 4, 5]);
    expect(Object.keys(service.get.stats().partitions!.circuitBreaker!.byKey)).toEqual(['t1']);
  });

  it('retries count in the partition of the call (the slow path looks it up again)', async () => {
    const clock = new ManualClock();
    const { fn } = downstream();
    const call = resilient(fn, {
      clock,
      retry: { maxAttempts: 3, backoff: () => 10 },
      circuitBreaker: { consecutiveFailures: 5, partition: byKey },
    });
    const result = outcome(call('a', 'fail'));
    await clock.advance(20);
    expect(await result).toBeInstanceOf(Error);
    expect(call.stats().partitions?.circuitBreaker?.byKey.a).toMatchObject({
      failures: 3,
      consecutiveFailures: 3,
    });
  });

  it('a key the caller already holds and an existing partition: the same state object every call', async () => {
    const call = resilient(async (key: string) => key, {
      circuitBreaker: { partition: byKey },
    });
    for (let i = 0; i < 5; i++) await call('tenant-1');
    expect(call.stats().partitions?.circuitBreaker).toMatchObject({
      count: 1,
      byKey: { 'tenant-1': { calls: 5 } },
    });
  });

  it('keys that are Object.prototype names are partitions like any other', async () => {
    const call = resilient(async (key: string) => key, { circuitBreaker: { partition: byKey } });
    await call('__proto__');
    await call('constructor');
    const byKeyStats = call.stats().partitions!.circuitBreaker!.byKey;
    expect(Object.keys(byKeyStats).sort()).toEqual(['__proto__', 'constructor']);
    const parsed = JSON.parse(JSON.stringify(byKeyStats)) as object;
    expect(Object.getOwnPropertyDescriptor(parsed, '__proto__')?.value).toMatchObject({ calls: 1 });
  });

  it('describe() shows the partitioning', () => {
    function tenantOf(id: string): string {
      return id;
    }
    const call = resilient(async (id: string) => id, {
      circuitBreaker: { partition: { by: tenantOf, maxPartitions: 50, idleAfter: 60_000 } },
      rateLimiter: { limit: 10, partition: { by: tenantOf } },
      bulkhead: { maxConcurrent: 2, partition: { by: tenantOf } },
    });
    const stages = call.describe().stages;
    expect(stages.find((s) => s.stage === 'circuitBreaker')?.partition).toEqual({
      by: '[function tenantOf]',
      maxPartitions: 50,
      idleAfter: 60_000,
    });
    expect(stages.find((s) => s.stage === 'rateLimiter')?.partition).toEqual({
      by: '[function tenantOf]',
      maxPartitions: 1_000,
      idleAfter: 'none',
    });
    expect(stages.find((s) => s.stage === 'bulkhead')).toMatchObject({
      maxConcurrent: 2,
      partition: { maxPartitions: 1_000 },
    });
    expect(
      resilient({ bulkhead: 2 })
        .describe()
        .stages.find((s) => s.stage === 'bulkhead'),
    ).not.toHaveProperty('partition');
    const anonymous = [(id: string): string => id][0]!;
    expect(anonymous.name).toBe('');
    expect(
      resilient(async (id: string) => id, {
        rateLimiter: { limit: 1, partition: { by: anonymous } },
      })
        .describe()
        .stages.find((s) => s.stage === 'rateLimiter')?.partition,
    ).toMatchObject({ by: '[function anonymous]' });
  });

  it('stats().byKey is a plain snapshot: its entries can be changed and deleted like any object’s', async () => {
    const call = resilient(async (key: string) => key, {
      rateLimiter: { limit: 10, partition: byKey },
    });
    await call('a');
    await call('__proto__');
    const stats = call.stats().partitions!.rateLimiter!.byKey as Record<string, unknown>;
    expect(Object.keys(stats)).toEqual(['__proto__', 'a']);
    for (const key of ['a', '__proto__'])
      expect(Object.getOwnPropertyDescriptor(stats, key)).toMatchObject({
        enumerable: true,
        writable: true,
        configurable: true,
      });
    stats.a = 'mine';
    expect(stats.a).toBe('mine');
    expect(delete stats.a).toBe(true);
  });
});

describe('partition: rate limiter and bulkhead per key', () => {
  it('one tenant spending its limit leaves the others their own', async () => {
    const clock = new ManualClock();
    const call = resilient(async (tenant: string) => tenant, {
      clock,
      rateLimiter: { limit: 2, interval: 1_000, partition: byKey },
    });
    expect(await call('a')).toBe('a');
    expect(await call('a')).toBe('a');
    expect(await outcome(call('a'))).toBeInstanceOf(RateLimitedError);
    expect(await call('b')).toBe('b');
    expect(call.stats().partitions?.rateLimiter?.byKey).toMatchObject({
      a: { admitted: 2, rejected: 1, retryAfter: 500 },
      b: { admitted: 1, rejected: 0 },
    });
    await clock.advance(500);
    expect(await call('a')).toBe('a');
  });

  it('a waiting call waits for its own partition’s token (rateLimitWaited carries the key)', async () => {
    const clock = new ManualClock();
    const call = resilient(async (tenant: string) => tenant, {
      clock,
      rateLimiter: { limit: 1, interval: 100, maxWait: 1_000, partition: byKey },
    });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    await call('a');
    const waiting = track(call('a'));
    expect(await call('b')).toBe('b'); // b's bucket is full: no wait behind a
    await flush();
    expect(waiting.status).toBe('pending');
    await clock.advance(100);
    expect(waiting.status).toBe('fulfilled');
    expect(events).toContainEqual({ type: 'rateLimitWaited', wait: 100, partition: 'a' });
  });

  it('a full bulkhead partition rejects its own calls only', async () => {
    const { fn, pending } = downstream();
    const call = resilient(fn, { bulkhead: { maxConcurrent: 1, partition: byKey } });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    const a1 = track(call('a', 'hold'));
    expect(await outcome(call('a'))).toBeInstanceOf(BulkheadRejectedError);
    expect(await call('b')).toBe('b');
    expect(events).toContainEqual({
      type: 'callRejected',
      reason: 'bulkheadFull',
      retryAfter: 0,
      partition: 'a',
    });
    expect(call.stats().partitions?.bulkhead?.byKey).toMatchObject({
      a: { inFlight: 1, rejected: 1 },
      b: { inFlight: 0 },
    });
    pending[0]!.d.resolve('a');
    await flush();
    expect(a1.status).toBe('fulfilled');
    expect(call.stats().partitions?.bulkhead?.byKey.a).toMatchObject({ inFlight: 0 });
  });

  it('a queued call waits in its partition’s queue (bulkheadQueued carries the key)', async () => {
    const { fn, pending } = downstream();
    const call = resilient(fn, { bulkhead: { maxConcurrent: 1, maxQueue: 1, partition: byKey } });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    void call('a', 'hold');
    const queued = track(call('a', 'hold'));
    await flush();
    expect(events).toContainEqual({ type: 'bulkheadQueued', queued: 1, partition: 'a' });
    expect(fn).toHaveBeenCalledTimes(1);
    pending[0]!.d.resolve('first');
    await flush();
    expect(fn).toHaveBeenCalledTimes(2);
    pending[1]!.d.resolve('second');
    await flush();
    expect(queued.value).toBe('second');
  });

  it('each stage has its own key: a breaker per host, a limit per tenant', async () => {
    const call = resilient(async (host: string, tenant: string) => `${host}/${tenant}`, {
      clock: new ManualClock(),
      circuitBreaker: { partition: { by: (host) => host } },
      rateLimiter: { limit: 1, partition: { by: (_host, tenant) => tenant } },
    });
    await call('h1', 't1');
    await call('h2', 't2');
    expect(await outcome(call('h2', 't1'))).toBeInstanceOf(RateLimitedError);
    const partitions = call.stats().partitions!;
    expect(Object.keys(partitions.circuitBreaker!.byKey).sort()).toEqual(['h1', 'h2']);
    expect(Object.keys(partitions.rateLimiter!.byKey).sort()).toEqual(['t1', 't2']);
  });

  it('a policy shares its partitions between the functions it wraps; execute() keys on no arguments', async () => {
    const policy = resilient({
      clock: new ManualClock(),
      rateLimiter: { limit: 1, partition: { by: (tenant?: string) => tenant ?? 'none' } },
    });
    const one = policy(async (tenant: string) => tenant);
    const two = policy(async (tenant: string) => tenant);
    await one('a');
    expect(await outcome(two('a'))).toBeInstanceOf(RateLimitedError);
    expect(await policy.execute(() => 'task')).toBe('task');
    expect(Object.keys(policy.stats().partitions!.rateLimiter!.byKey).sort()).toEqual([
      'a',
      'none',
    ]);
  });
});

describe('partition: with chaos', () => {
  it('an injected fault counts in the partition of its call: that circuit opens, the others stay closed', async () => {
    const clock = new ManualClock();
    const { fn } = downstream();
    const boom = new Error('injected');
    const call = resilient(fn, {
      clock,
      circuitBreaker: { consecutiveFailures: 1, halfOpenAfter: 1_000, partition: byKey },
      chaos: { fault: { rate: 1, error: boom }, enabled: (key: string) => key === 'a' },
    });
    expect(await outcome(call('a'))).toBe(boom);
    expect(await outcome(call('a'))).toBeInstanceOf(CircuitOpenError);
    expect(await call('b')).toBe('b');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(call.stats().partitions?.circuitBreaker?.byKey).toMatchObject({
      a: { state: 'open' },
      b: { state: 'closed' },
    });
  });

  it('injected latency holds a slot of the partition’s bulkhead, not of another key’s', async () => {
    const clock = new ManualClock();
    const { fn } = downstream();
    const call = resilient(fn, {
      clock,
      bulkhead: { maxConcurrent: 1, partition: byKey },
      chaos: { latency: { rate: 1, delay: 100 }, enabled: (key: string) => key === 'a' },
    });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    const slow = track(call('a'));
    await flush();
    expect(await outcome(call('a'))).toBeInstanceOf(BulkheadRejectedError);
    expect(events).toContainEqual({
      type: 'callRejected',
      reason: 'bulkheadFull',
      retryAfter: 0,
      partition: 'a',
    });
    expect(await call('b')).toBe('b');
    expect(slow.status).toBe('pending');
    await clock.advance(100);
    expect(slow.value).toBe('a');
    expect(call.stats().partitions?.bulkhead?.byKey.a).toMatchObject({ inFlight: 0 });
  });
});

describe('partition: eviction and idle partitions', () => {
  it('evicts the least recently used partition at rest beyond maxPartitions', async () => {
    const call = resilient(async (key: string) => key, {
      circuitBreaker: { partition: { by: (key) => key, maxPartitions: 2 } },
    });
    await call('a');
    await call('b');
    await call('a'); // a is now the most recently used
    await call('c'); // evicts b
    const stats = call.stats().partitions!.circuitBreaker!;
    expect(Object.keys(stats.byKey)).toEqual(['c', 'a']);
    expect(stats).toMatchObject({ count: 2, kept: 0, evicted: 1 });
  });

  it('evicts by recency, also after a partition in the middle of the order is used again', async () => {
    const call = resilient(async (key: string) => key, {
      circuitBreaker: { partition: { by: (key) => key, maxPartitions: 3 } },
    });
    for (const key of ['a', 'b', 'c', 'b', 'd']) await call(key); // order before d: b, c, a
    const stats = call.stats().partitions!.circuitBreaker!;
    expect(Object.keys(stats.byKey)).toEqual(['d', 'b', 'c']); // a, the least recent, went
    expect(stats).toMatchObject({ count: 3, evicted: 1 });
    await call('e'); // then c
    expect(Object.keys(call.stats().partitions!.circuitBreaker!.byKey)).toEqual(['e', 'd', 'b']);
  });

  it.each([
    [2, ['a']],
    [3, ['a', 'x']],
  ])(
    'maxPartitions %i: a kept partition used again rejoins the order without evicting what fits',
    async (maxPartitions, busy) => {
      const { fn, pending } = downstream();
      const call = resilient(fn, {
        bulkhead: { maxConcurrent: 10, partition: { by: (key) => key, maxPartitions } },
      });
      const held = busy.map((key) => outcome(call(key, 'hold')));
      await call('b');
      await call('c'); // evicts the busy ones (kept: their calls run) and b
      const bulkheads = () => call.stats().partitions!.bulkhead!;
      expect(bulkheads()).toMatchObject({ kept: busy.length, evicted: 1 });
      expect(bulkheads().byKey).not.toHaveProperty('b');
      // 'a' is used again: it rejoins; what is live still fits maxPartitions with the others kept.
      expect(await call('a')).toBe('a');
      expect(Object.keys(bulkheads().byKey).sort()).toEqual(['a', 'c', ...busy.slice(1)].sort());
      expect(bulkheads()).toMatchObject({
        count: busy.length + 1,
        kept: busy.length - 1,
        evicted: 1,
      });
      // And it is an ordinary member of the order again: used, passed over and used once more.
      await call('c');
      await call('a');
      expect(Object.keys(bulkheads().byKey).slice(0, 2)).toEqual(['a', 'c']);
      for (const p of pending) p.d.resolve(p.key);
      await Promise.all(held);
    },
  );

  it('a kept partition that rejoins a full order evicts the least recent at rest (maxPartitions 1)', async () => {
    const { fn, pending } = downstream();
    const call = resilient(fn, {
      bulkhead: { maxConcurrent: 10, partition: { by: (key) => key, maxPartitions: 1 } },
    });
    const held = outcome(call('a', 'hold'));
    await call('b'); // a kept (busy), b live
    pending[0]!.d.resolve('a');
    await held;
    await call('a'); // rejoins: b goes
    expect(call.stats().partitions!.bulkhead).toMatchObject({ count: 1, kept: 0, evicted: 1 });
    expect(Object.keys(call.stats().partitions!.bulkhead!.byKey)).toEqual(['a']);
  });

  it('idleAfter: a partition is dropped once idle for exactly idleAfter, not before, and recent ones stay', async () => {
    const clock = new ManualClock();
    const call = resilient(async (key: string) => key, {
      clock,
      circuitBreaker: { partition: { by: (key) => key, idleAfter: 1_000 } },
    });
    await call('a');
    await clock.advance(10);
    await call('b');
    await clock.advance(10);
    await call('a'); // both recent
    const keys = () => Object.keys(call.stats().partitions!.circuitBreaker!.byKey);
    expect(keys()).toEqual(['a', 'b']);
    await clock.advance(989); // b idle 999 ms
    await call('a');
    expect(keys()).toEqual(['a', 'b']);
    await clock.advance(1); // b idle 1000 ms
    await call('a');
    expect(keys()).toEqual(['a']);
    expect(call.stats().partitions!.circuitBreaker).toMatchObject({ evicted: 1 });
  });

  it('keeps an open circuit beyond maxPartitions until a trial closes it, then evicts it', async () => {
    const clock = new ManualClock();
    const { fn } = downstream();
    const call = resilient(fn, {
      clock,
      circuitBreaker: {
        consecutiveFailures: 1,
        halfOpenAfter: 1_000,
        partition: { by: (key) => key, maxPartitions: 1 },
      },
    });
    await outcome(call('dead', 'fail'));
    await call('b'); // would evict 'dead', which is open: kept
    await call('c');
    expect(call.stats().partitions!.circuitBreaker).toMatchObject({
      count: 2,
      kept: 1,
      evicted: 1,
    });
    // Long after its wait, the evicted-but-kept circuit still refuses all but its trial.
    await clock.advance(60_000);
    expect(await outcome(call('dead', 'fail'))).toBeInstanceOf(Error); // the trial fails: open again
    expect(await outcome(call('dead'))).toBeInstanceOf(CircuitOpenError);
    await clock.advance(1_000);
    expect(await call('dead')).toBe('dead'); // closed
    await call('d'); // now 'dead' is at rest: evicted with the others
    expect(call.stats().partitions!.circuitBreaker).toMatchObject({ count: 1, kept: 0 });
    expect(Object.keys(call.stats().partitions!.circuitBreaker!.byKey)).toEqual(['d']);
  });

  it('keeps a closed circuit whose call is in flight (its failure must count)', async () => {
    const { fn, pending } = downstream();
    const call = resilient(fn, {
      circuitBreaker: { consecutiveFailures: 1, partition: { by: (key) => key, maxPartitions: 1 } },
    });
    const slow = outcome(call('a', 'hold'));
    await call('b');
    expect(call.stats().partitions!.circuitBreaker).toMatchObject({ count: 2, kept: 1 });
    pending[0]!.d.reject(new Error('a down'));
    await slow;
    expect(await outcome(call('a'))).toBeInstanceOf(CircuitOpenError);
  });

  it('keeps a spent limiter until its bucket is full again', async () => {
    const clock = new ManualClock();
    const call = resilient(async (key: string) => key, {
      clock,
      rateLimiter: { limit: 1, interval: 1_000, partition: { by: (key) => key, maxPartitions: 1 } },
    });
    await call('a');
    await call('b'); // a is spent: kept
    expect(await outcome(call('a'))).toBeInstanceOf(RateLimitedError);
    await call('c'); // a (used last) is still spent: kept; b is at rest? spent too: kept
    expect(call.stats().partitions!.rateLimiter).toMatchObject({ kept: 2, count: 3 });
    await clock.advance(1_000);
    await call('d'); // a, b and c have their token back: all three evicted
    expect(call.stats().partitions!.rateLimiter).toMatchObject({ count: 1, kept: 0, evicted: 3 });
  });

  it('keeps a bulkhead with calls in flight or queued until they are done', async () => {
    const { fn, pending } = downstream();
    const call = resilient(fn, {
      bulkhead: {
        maxConcurrent: 1,
        maxQueue: 1,
        partition: { by: (key) => key, maxPartitions: 1 },
      },
    });
    void call('a', 'hold');
    void call('a', 'hold');
    await call('b');
    await call('c');
    // 'a' was evicted while busy: kept, and still bounds its own calls.
    expect(await outcome(call('a'))).toBeInstanceOf(BulkheadRejectedError);
    expect(call.stats().partitions!.bulkhead!.byKey.a).toMatchObject({ inFlight: 1, queued: 1 });
    await call('d');
    pending[0]!.d.resolve('1');
    await flush();
    pending[1]!.d.resolve('2');
    await flush();
    await call('e');
    expect(call.stats().partitions!.bulkhead).toMatchObject({ count: 1, kept: 0 });
  });

  it('idleAfter drops partitions at rest nobody used for that long, and keeps those that are not', async () => {
    const clock = new ManualClock();
    const { fn } = downstream();
    const call = resilient(fn, {
      clock,
      circuitBreaker: {
        consecutiveFailures: 1,
        halfOpenAfter: 10_000,
        partition: { by: (key) => key, idleAfter: 1_000 },
      },
    });
    await call('a');
    await outcome(call('open', 'fail'));
    await clock.advance(600);
    await call('b');
    await clock.advance(600);
    await call('b'); // 'a' idle for 1200 ms: dropped; 'open' idle too but open: kept
    const stats = call.stats().partitions!.circuitBreaker!;
    expect(Object.keys(stats.byKey).sort()).toEqual(['b', 'open']);
    expect(stats).toMatchObject({ evicted: 1, kept: 1 });
    // What idleness forgets of a closed circuit: its counts.
    await clock.advance(1_000);
    await call('c');
    expect(call.stats().partitions!.circuitBreaker!.byKey.c).toMatchObject({ calls: 1 });
    expect(call.stats().partitions!.circuitBreaker!.byKey).not.toHaveProperty('b');
  });
});

describe('partition: the key function', () => {
  it.each([
    [
      'a number',
      42,
      'Expected `circuitBreaker.partition.by` to return a string (the partition key), got `42` (number)',
    ],
    ['undefined', undefined, 'got `undefined` (undefined)'],
    ['an object', { id: 1 }, 'got `[object]` (object)'],
  ])(
    'returning %s rejects the call with a TypeError, fallback or not',
    async (_name, key, message) => {
      const fn = vi.fn(async () => 'ran');
      const call = resilient(fn, {
        circuitBreaker: { partition: { by: () => key as unknown as string } },
        retry: true,
        fallback: 'fallback',
      });
      const error = await outcome(call());
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toContain(message);
      expect(fn).not.toHaveBeenCalled();
    },
  );

  it('a key function that throws rejects the call with its TypeError (or one that wraps another error)', async () => {
    const own = new TypeError('no tenant');
    const call = resilient(async () => 'ran', {
      rateLimiter: {
        limit: 1,
        partition: {
          by: () => {
            throw own;
          },
        },
      },
    });
    expect(await outcome(call())).toBe(own);
    const cause = new Error('lookup failed');
    const other = resilient(async () => 'ran', {
      bulkhead: {
        maxConcurrent: 1,
        partition: {
          by: () => {
            throw cause;
          },
        },
      },
    });
    const error = (await outcome(other())) as TypeError;
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toBe('`bulkhead.partition.by` threw: Error: lookup failed');
    expect(error.cause).toBe(cause);
  });

  it('on the slow path too (a caller signal): the call rejects, nothing runs', async () => {
    const fn = vi.fn(async () => 'ran');
    const policy = resilient({
      circuitBreaker: { partition: { by: () => 1 as unknown as string } },
    });
    const error = await outcome(policy.execute(fn, { signal: new AbortController().signal }));
    expect(error).toBeInstanceOf(TypeError);
    expect(fn).not.toHaveBeenCalled();
  });
});

describe('partition: options', () => {
  const fn = async (key: string) => key;
  const by = (key: string): string => key;
  it.each<[string, ResilientOptions<[string]>, string]>([
    [
      'by missing',
      { circuitBreaker: { partition: {} as never } },
      'Expected `circuitBreaker.partition.by` to be a function (...args) => string that returns the key of a call, got `undefined` (undefined)',
    ],
    [
      'by not a function',
      { rateLimiter: { limit: 1, partition: { by: 'tenant' as never } } },
      'Expected `rateLimiter.partition.by` to be a function',
    ],
    [
      'maxPartitions 0',
      { bulkhead: { partition: { by, maxPartitions: 0 } } },
      'Expected `bulkhead.partition.maxPartitions` to be an integer >= 1, got `0` (number)',
    ],
    [
      'maxPartitions fractional',
      { circuitBreaker: { partition: { by, maxPartitions: 1.5 } } },
      'Expected `circuitBreaker.partition.maxPartitions` to be an integer >= 1, got `1.5` (number)',
    ],
    [
      'maxPartitions Infinity',
      { circuitBreaker: { partition: { by, maxPartitions: Infinity } } },
      'Expected `circuitBreaker.partition.maxPartitions` to be an integer >= 1, got `Infinity` (number)',
    ],
    [
      'idleAfter 0',
      { circuitBreaker: { partition: { by, idleAfter: 0 } } },
      'Expected `circuitBreaker.partition.idleAfter` to be a number > 0 (Infinity allowed), got `0` (number)',
    ],
    [
      'idleAfter a string',
      { circuitBreaker: { partition: { by, idleAfter: '1m' as never } } },
      'Expected `circuitBreaker.partition.idleAfter` to be a number > 0',
    ],
    [
      'an unknown key',
      { circuitBreaker: { partition: { by, maxPartition: 3 } as never } },
      'Unknown option `circuitBreaker.partition.maxPartition` (did you mean `circuitBreaker.partition.maxPartitions`?)',
    ],
    [
      'not an object',
      { circuitBreaker: { partition: true as never } },
      'Expected `circuitBreaker.partition` to be an options object, got `true` (boolean)',
    ],
    [
      'with initialState',
      {
        circuitBreaker: {
          partition: { by },
          initialState: circuitBreaker().toJSON(),
        },
      },
      '`circuitBreaker.initialState` restores one circuit; a partitioned breaker (`circuitBreaker.partition`) has one per key',
    ],
  ])('%s: one TypeError naming the option', (_name, options, message) => {
    expect(() => resilient(fn, options)).toThrow(TypeError);
    expect(() => resilient(fn, options)).toThrow(message);
  });

  it('reports the stage’s own problems alongside', () => {
    expect(() =>
      resilient(fn, {
        rateLimiter: { limit: -1, partition: { by, maxPartitions: -1 } },
      }),
    ).toThrow(
      /rateLimiter\.partition\.maxPartitions[\s\S]*rateLimiter\.limit|rateLimiter\.limit[\s\S]*rateLimiter\.partition\.maxPartitions/,
    );
  });

  it('a standalone policy refuses `partition`: a policy made by resilient() shares partitions', () => {
    const partition = { by };
    const message = 'applies to the options given to resilient()';
    expect(() => circuitBreaker({ partition } as never)).toThrow(
      `\`circuitBreaker.partition\` ${message}`,
    );
    expect(() => rateLimiter({ limit: 1, partition } as never)).toThrow(
      `\`rateLimiter.partition\` ${message}`,
    );
    expect(() => bulkhead({ partition } as never)).toThrow(`\`bulkhead.partition\` ${message}`);
  });

  it('`partition: false` is no partitioning; a shared instance is used as is', async () => {
    const breaker = circuitBreaker();
    const call = resilient(fn, {
      circuitBreaker: breaker,
      rateLimiter: { limit: 10, partition: false },
    });
    await call('a');
    expect(call.stats().partitions).toBeUndefined();
    expect(call.stats().rateLimiter).toMatchObject({ admitted: 1 });
    expect(breaker.stats().calls).toBe(1);
  });
});

describe('partition: with a store', () => {
  /**
   * A store that answers little and records which (name, partition) each policy asked for (`for`), and
   * the commands sent on each (`run`).
   */
  function recordingStore(partitioned: boolean) {
    const asked: string[] = [];
    const never = <T>() => new Promise<T>(() => undefined);
    const run = <T>(what: string, value: T): Promise<T> => {
      asked.push(what);
      return Promise.resolve(value);
    };
    const store: Store = {
      partitioned,
      forRateLimiter: (name, partition) => {
        asked.push(`for rl ${name} ${partition}`);
        return { reserve: () => run(`run rl ${partition}`, { granted: 1, wait: 0 }) };
      },
      forCircuit: (name, partition) => {
        asked.push(`for cb ${name} ${partition}`);
        return {
          record: () => never(),
          open: () => never(),
          close: () => never(),
          isolate: () => never(),
          tryTrial: () => never(),
          releaseTrial: () => never(),
          read: () => run(`run cb ${partition}`, { state: 'closed', retryAfter: 0 }),
          subscribe: () => () => undefined,
        };
      },
      forCache: () => {
        throw new Error('not used');
      },
      forBulkhead: (name, partition) => {
        asked.push(`for bh ${name} ${partition}`);
        return {
          acquire: () => run(`run bh ${partition}`, 1),
          renew: () => Promise.resolve(),
          release: () => Promise.resolve(),
          subscribe: () => () => undefined,
        };
      },
    };
    return { store, asked };
  }

  it('each partition asks the store for its own state; the stage itself sends nothing', async () => {
    const { store, asked } = recordingStore(true);
    const call = resilient(async (host: string, tenant: string) => `${host}/${tenant}`, {
      circuitBreaker: { name: 'hosts', store, partition: { by: (host) => host } },
      rateLimiter: { name: 'tenants', limit: 10, store, partition: { by: (_h, tenant) => tenant } },
      bulkhead: { name: 'pools', store, partition: { by: (_h, tenant) => tenant } },
    });
    // The stage's template asks for handles (the store checks the names), and never uses them: no
    // command, no subscription.
    expect(asked).toEqual([
      'for cb hosts undefined',
      'for rl tenants undefined',
      'for bh pools undefined',
    ]);
    asked.length = 0;
    expect(await call('h1', 't1')).toBe('h1/t1');
    expect(await call('h1', 't2')).toBe('h1/t2');
    expect(asked.filter((a) => a.startsWith('for'))).toEqual([
      'for cb hosts h1',
      'for rl tenants t1',
      'for bh pools t1',
      'for rl tenants t2',
      'for bh pools t2',
    ]);
    expect(asked.filter((a) => a.startsWith('run')).sort()).toEqual([
      'run bh t1',
      'run bh t2',
      'run cb h1',
      'run rl t1',
      'run rl t2',
    ]);
    expect(call.describe().stages).toContainEqual(
      expect.objectContaining({
        stage: 'circuitBreaker',
        store: 'shared',
        partition: expect.anything(),
      }),
    );
  });

  it('resilientFetch with a store: a fleet circuit per origin', async () => {
    const { store, asked } = recordingStore(true);
    const http = resilientFetch({
      retry: false,
      circuitBreaker: { name: 'upstreams', store },
      fetch: () => Promise.resolve(new Response('ok')),
    });
    await http('https://a.example/x');
    await http('https://b.example:8443/y');
    await http('https://a.example/z');
    expect(asked.filter((a) => a.startsWith('for cb'))).toEqual([
      'for cb upstreams undefined', // the stage's template (never used)
      'for cb upstreams https://a.example',
      'for cb upstreams https://b.example:8443',
    ]);
  });

  it('refuses a store that does not keep partitions apart (it would merge them into one state)', () => {
    const { store } = recordingStore(false);
    for (const options of [
      { circuitBreaker: { name: 'x', store, partition: byKey } },
      { rateLimiter: { name: 'x', limit: 1, store, partition: byKey } },
      { bulkhead: { name: 'x', store, partition: byKey } },
    ] as ResilientOptions<[string]>[]) {
      expect(() => resilient(async (key: string) => key, options)).toThrow(
        'needs a store that keeps partitions apart (`partitioned: true`',
      );
    }
  });
});

describe('partition: resilientSync', () => {
  it('partitions the breaker and the limiter of a synchronous function', () => {
    const clock = new ManualClock();
    const parse = resilientSync(
      (tenant: string, fail = false) => {
        if (fail) throw new Error('bad');
        return tenant;
      },
      {
        clock,
        circuitBreaker: { consecutiveFailures: 1, partition: { by: (tenant) => tenant } },
        rateLimiter: { limit: 2, partition: { by: (tenant) => tenant } },
      },
    );
    const events: ResilienceEvent[] = [];
    parse.on((e) => events.push(e));
    expect(() => parse('a', true)).toThrow('bad');
    expect(() => parse('a')).toThrow(CircuitOpenError);
    expect(parse('b')).toBe('b');
    expect(parse('b')).toBe('b');
    expect(() => parse('b')).toThrow(RateLimitedError);
    expect(events.filter((e) => e.type === 'callRejected')).toEqual([
      expect.objectContaining({ reason: 'circuitOpen', partition: 'a' }),
      expect.objectContaining({ reason: 'rateLimited', partition: 'b' }),
    ]);
    expect(() =>
      resilientSync(() => 1, { circuitBreaker: { partition: { by: () => 1 as never } } })(),
    ).toThrow('Expected `circuitBreaker.partition.by` to return a string');
  });
});
