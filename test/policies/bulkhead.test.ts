import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import {
  backoff,
  bulkhead,
  Bulkhead,
  BulkheadRejectedError,
  isResilienceError,
  resilient,
  TimeoutError,
  type BulkheadOptions,
  type ResilienceEvent,
} from '../../src/index.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';
import { deferred, type Deferred } from '../helpers/promises.js';

/** A bulkhead around a function whose calls each wait on a deferred the test settles. */
function setup(options: number | BulkheadOptions, clock = new ManualClock()) {
  const pool = bulkhead(options);
  const calls = new Map<string, Deferred<string>>();
  const started: string[] = [];
  const fn = vi.fn((name: string) => {
    started.push(name);
    const d = deferred<string>();
    calls.set(name, d);
    return d.promise;
  });
  const call = resilient(fn, { clock, bulkhead: pool });
  const events: ResilienceEvent[] = [];
  call.on((event) => events.push(event));
  const settle = (name: string): Promise<unknown> =>
    call(name).then(
      (value) => value,
      (error: unknown) => error,
    );
  const finish = async (name: string): Promise<void> => {
    calls.get(name)!.resolve(name);
    await flush();
  };
  return { pool, clock, fn, call, settle, finish, calls, started, events };
}

describe('bulkhead: limits', () => {
  it('bulkhead: true is a bulkhead with the defaults: 10 at once, no queue', async () => {
    const gate = deferred<number>();
    const call = resilient(() => gate.promise, { bulkhead: true });
    const running = Array.from({ length: 10 }, () => call());
    await expect(call()).rejects.toBeInstanceOf(BulkheadRejectedError);
    gate.resolve(1);
    expect(await Promise.all(running)).toEqual(Array<number>(10).fill(1));
    expect(call.describe().stages.find((s) => s.stage === 'bulkhead')).toMatchObject({
      maxConcurrent: 10,
      maxQueue: 0,
    });
  });

  it('a number is maxConcurrent; defaults are 10, no queue, no queue timeout', () => {
    expect(bulkhead(3).describe()).toEqual({
      stage: 'bulkhead',
      name: 'none',
      maxConcurrent: 3,
      maxQueue: 0,
      queueTimeout: 'none',
    });
    expect(bulkhead().maxConcurrent).toBe(10);
    expect(bulkhead({ maxQueue: 5, queueTimeout: 100, name: 'db' }).describe()).toEqual({
      stage: 'bulkhead',
      name: 'db',
      maxConcurrent: 10,
      maxQueue: 5,
      queueTimeout: 100,
    });
    expect(bulkhead()).toBeInstanceOf(Bulkhead);
  });

  it('the default of 10 lets 10 calls run and rejects the 11th', async () => {
    const { call, settle, pool, fn } = setup({});
    for (let i = 0; i < 10; i++) void call(String(i));
    expect(await settle('x')).toBeInstanceOf(BulkheadRejectedError);
    expect(fn).toHaveBeenCalledTimes(10);
    expect(pool.stats()).toEqual({ inFlight: 10, queued: 0, rejected: 1 });
  });

  it('runs at most maxConcurrent at once and rejects the rest without calling fn', async () => {
    const { call, settle, finish, pool, fn, events } = setup(2);
    const a = call('a');
    const b = call('b');
    const error = (await settle('c')) as BulkheadRejectedError;
    expect(error).toBeInstanceOf(BulkheadRejectedError);
    expect(error.reason).toBe('full');
    expect(error.code).toBe('ERR_BULWARK_BULKHEAD_REJECTED');
    expect(error.name).toBe('BulkheadRejectedError');
    expect(error.message).toBe('Bulkhead is full');
    expect(isResilienceError(error)).toBe(true);
    expect(events).toContainEqual({ type: 'callRejected', reason: 'bulkheadFull', retryAfter: 0 });
    expect(fn).toHaveBeenCalledTimes(2);
    expect(pool.stats()).toEqual({ inFlight: 2, queued: 0, rejected: 1 });
    await finish('a');
    expect(await a).toBe('a');
    expect(pool.stats().inFlight).toBe(1);
    const d = call('d');
    await finish('d');
    await finish('b');
    expect(await Promise.all([b, d])).toEqual(['b', 'd']);
    expect(pool.stats()).toEqual({ inFlight: 0, queued: 0, rejected: 1 });
  });

  it('releases the slot when fn fails, throws synchronously or returns a plain value', async () => {
    const pool = bulkhead(1);
    const clock = new ManualClock();
    const failing = resilient(() => Promise.reject(new Error('x')), { clock, bulkhead: pool });
    const throwing = resilient(
      (): string => {
        throw new Error('sync');
      },
      { clock, bulkhead: pool },
    );
    const plain = resilient(() => 'plain', { clock, bulkhead: pool });
    await expect(failing()).rejects.toThrow('x');
    await expect(throwing()).rejects.toThrow('sync');
    expect(await plain()).toBe('plain');
    expect(pool.stats()).toEqual({ inFlight: 0, queued: 0, rejected: 0 });
  });
});

describe('bulkhead: queue', () => {
  it('queues up to maxQueue callers in FIFO order; beyond, rejects', async () => {
    const { call, settle, finish, started, pool, events } = setup({
      maxConcurrent: 1,
      maxQueue: 2,
    });
    const results = ['a', 'b', 'c'].map((name) => call(name));
    await flush();
    expect(pool.stats()).toEqual({ inFlight: 1, queued: 2, rejected: 0 });
    expect(events.filter((e) => e.type === 'bulkheadQueued')).toEqual([
      { type: 'bulkheadQueued', queued: 1 },
      { type: 'bulkheadQueued', queued: 2 },
    ]);
    const rejected = (await settle('d')) as BulkheadRejectedError;
    expect(rejected.reason).toBe('full');
    expect(pool.stats().rejected).toBe(1);
    expect(started).toEqual(['a']);
    await finish('a');
    expect(started).toEqual(['a', 'b']);
    expect(pool.stats()).toEqual({ inFlight: 1, queued: 1, rejected: 1 });
    // A newcomer does not jump the queue: the slot goes to the oldest waiter.
    const e = call('e');
    await finish('b');
    expect(started).toEqual(['a', 'b', 'c']);
    await finish('c');
    await finish('e');
    expect(await Promise.all([...results, e])).toEqual(['a', 'b', 'c', 'e']);
    expect(pool.stats()).toEqual({ inFlight: 0, queued: 0, rejected: 1 });
  });

  it('maxQueue Infinity never rejects', async () => {
    const { call, pool } = setup({ maxConcurrent: 1, maxQueue: Infinity });
    for (let i = 0; i < 100; i++) void call(String(i));
    await flush();
    expect(pool.stats()).toEqual({ inFlight: 1, queued: 99, rejected: 0 });
  });

  it('queueTimeout: a waiter leaves at exactly queueTimeout with reason queueTimeout', async () => {
    const { call, settle, clock, pool, fn, events, finish, started } = setup({
      maxConcurrent: 1,
      maxQueue: 5,
      queueTimeout: 100,
    });
    void call('a');
    const waiting = settle('b');
    await clock.advance(50);
    const later = call('c');
    await clock.advance(49);
    expect(pool.stats().queued).toBe(2);
    await clock.advance(1);
    const error = (await waiting) as BulkheadRejectedError;
    expect(error).toBeInstanceOf(BulkheadRejectedError);
    expect(error.reason).toBe('queueTimeout');
    expect(error.message).toBe('Bulkhead queue wait timed out');
    expect(pool.stats()).toEqual({ inFlight: 1, queued: 1, rejected: 1 });
    expect(events).toContainEqual({
      type: 'callRejected',
      reason: 'bulkheadQueueTimeout',
      retryAfter: 0,
    });
    expect(fn).toHaveBeenCalledTimes(1);
    await finish('a');
    expect(started).toEqual(['a', 'c']);
    await finish('c');
    expect(await later).toBe('c');
    expect(clock.pending()).toBe(0); // the granted waiter's timer was cleared
  });

  it('a total deadline shorter than queueTimeout ends the wait with a TimeoutError', async () => {
    const clock = new ManualClock();
    const pool = bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeout: 1_000 });
    const hold = deferred<string>();
    const call = resilient((p: Promise<string>) => p, {
      clock,
      bulkhead: pool,
      timeout: { total: 100 },
    });
    void call(hold.promise).catch(() => undefined);
    const waiting = call(Promise.resolve('x')).catch((e: unknown) => e);
    await clock.advance(99);
    expect(pool.stats().queued).toBe(1);
    await clock.advance(1);
    const error = await waiting;
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).scope).toBe('total');
    expect(pool.stats()).toMatchObject({ queued: 0, rejected: 0 });
  });

  it('an aborted waiter leaves the queue at once, with no listener left; the others keep their order', async () => {
    const clock = new ManualClock();
    const pool = bulkhead({ maxConcurrent: 1, maxQueue: 5 });
    const policy = resilient({ clock, bulkhead: pool });
    const hold = deferred<string>();
    const started: string[] = [];
    const task = (name: string) => () => {
      started.push(name);
      return name === 'a' ? hold.promise : name;
    };
    const a = policy.execute(task('a'));
    const controller = new AbortController();
    const b = policy.execute(task('b'), { signal: controller.signal }).catch((e: unknown) => e);
    const c = policy.execute(task('c'));
    await flush();
    expect(pool.stats().queued).toBe(2);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    controller.abort('bye');
    expect(pool.stats().queued).toBe(1);
    expect(await b).toBe('bye');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    hold.resolve('a');
    expect(await a).toBe('a');
    expect(await c).toBe('c');
    expect(started).toEqual(['a', 'c']);
    expect(pool.stats()).toEqual({ inFlight: 0, queued: 0, rejected: 0 });
  });

  it('an abort that lands after the slot was handed over still gives the slot back', async () => {
    const clock = new ManualClock();
    const pool = bulkhead({ maxConcurrent: 1, maxQueue: 5 });
    const policy = resilient({ clock, bulkhead: pool });
    const hold = deferred<string>();
    const first = policy.execute(() => hold.promise);
    const controller = new AbortController();
    const task = vi.fn(() => 'second');
    const second = policy.execute(task, { signal: controller.signal }).catch((e: unknown) => e);
    await flush();
    expect(pool.stats()).toEqual({ inFlight: 1, queued: 1, rejected: 0 });
    // Registered after the pipeline's own handler: runs right after the slot was handed to `second`,
    // before `second` resumes.
    void hold.promise.then(() => controller.abort('late'));
    hold.resolve('first');
    expect(await first).toBe('first');
    expect(await second).toBe('late');
    expect(task).not.toHaveBeenCalled();
    expect(pool.stats()).toEqual({ inFlight: 0, queued: 0, rejected: 0 });
  });
});

describe('bulkhead: the slot follows fn, not its caller', () => {
  it('after a TimeoutError the slot stays taken until fn really settles (first attempt)', async () => {
    const clock = new ManualClock();
    const pool = bulkhead(1);
    const hold = deferred<string>();
    const call = resilient((p: Promise<string>) => p, { clock, bulkhead: pool, timeout: 100 });
    const slow = call(hold.promise).catch((e: unknown) => e);
    await clock.advance(100);
    expect(await slow).toBeInstanceOf(TimeoutError);
    expect(pool.stats().inFlight).toBe(1);
    expect(await call(Promise.resolve('x')).catch((e: unknown) => e)).toBeInstanceOf(
      BulkheadRejectedError,
    );
    hold.resolve('late');
    await flush();
    expect(pool.stats().inFlight).toBe(0);
    expect(await call(Promise.resolve('x'))).toBe('x');
  });

  it('the same holds for a timed-out attempt that fails later, and on the slow path (retries)', async () => {
    const clock = new ManualClock();
    const pool = bulkhead({ maxConcurrent: 2 });
    const holds = [deferred<string>(), deferred<string>()];
    let n = 0;
    const call = resilient(() => holds[n++]!.promise, {
      clock,
      bulkhead: pool,
      timeout: 100,
      retry: { maxAttempts: 2, backoff: backoff.constant(10) },
    });
    const result = call().catch((e: unknown) => e);
    await clock.advance(100); // first attempt times out
    expect(pool.stats().inFlight).toBe(1);
    await clock.advance(10); // backoff, then the second attempt starts
    expect(pool.stats().inFlight).toBe(2);
    await clock.advance(100); // second attempt times out too
    expect(await result).toBeInstanceOf(TimeoutError);
    expect(pool.stats().inFlight).toBe(2);
    holds[0]!.reject(new Error('late failure'));
    await flush();
    expect(pool.stats().inFlight).toBe(1);
    holds[1]!.resolve('late');
    await flush();
    expect(pool.stats().inFlight).toBe(0);
  });

  it('holds no slot during a backoff sleep', async () => {
    const clock = new ManualClock();
    const pool = bulkhead(1);
    const fn = vi
      .fn<() => Promise<string>>()
      .mockRejectedValueOnce(new Error('once'))
      .mockResolvedValue('ok');
    const call = resilient(fn, {
      clock,
      bulkhead: pool,
      retry: { maxAttempts: 2, backoff: backoff.constant(100) },
    });
    const result = call();
    await clock.advance(50);
    expect(pool.stats().inFlight).toBe(0);
    await clock.advance(50);
    expect(await result).toBe('ok');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('a full bulkhead is not retried by default', async () => {
    const clock = new ManualClock();
    const pool = bulkhead(1);
    const hold = deferred<string>();
    const fn = vi.fn((p: Promise<string>) => p);
    const call = resilient(fn, { clock, bulkhead: pool, retry: { maxAttempts: 5 } });
    void call(hold.promise);
    expect(await call(Promise.resolve('x')).catch((e: unknown) => e)).toBeInstanceOf(
      BulkheadRejectedError,
    );
    expect(fn).toHaveBeenCalledTimes(1);
    expect(clock.pending()).toBe(0);
  });
});

describe('bulkhead: option validation', () => {
  it.each<[string, unknown, RegExp]>([
    ['0', 0, /Expected `bulkhead` to be an integer >= 1, got `0`/],
    ['1.5', 1.5, /`bulkhead` to be an integer/],
    ['maxConcurrent 0', { maxConcurrent: 0 }, /`bulkhead.maxConcurrent`/],
    ['maxQueue -1', { maxQueue: -1 }, /`bulkhead.maxQueue`/],
    ['maxQueue 0.5', { maxQueue: 0.5 }, /`bulkhead.maxQueue`/],
    ['queueTimeout 0', { queueTimeout: 0 }, /`bulkhead.queueTimeout` to be a number > 0/],
    ['name', { name: 1 }, /`bulkhead.name`/],
    ['unknown', { max: 1 }, /Unknown option `bulkhead.max`/],
    ['string', '4', /`bulkhead` to be an options object/],
  ])('%s fails at wrap time naming the option', (_, options, message) => {
    expect(() => resilient(() => 1, { bulkhead: options as BulkheadOptions })).toThrow(TypeError);
    expect(() => resilient(() => 1, { bulkhead: options as BulkheadOptions })).toThrow(message);
    expect(() => bulkhead(options as BulkheadOptions)).toThrow(message);
  });

  it('an adaptive bulkhead refuses a store: the fleet bulkhead has a fixed maxConcurrent', () => {
    // A store that could share a bulkhead (the shape bulwark/redis's store has); never called here.
    const store = {
      forRateLimiter: () => undefined,
      forCircuit: () => undefined,
      forCache: () => undefined,
      forBulkhead: () => undefined,
    } as never;
    const message =
      /`bulkhead\.store` cannot be used with `bulkhead\.adaptive`: a fleet-wide bulkhead has a fixed `maxConcurrent`/;
    for (const adaptive of [true, 'aimd', { algorithm: 'gradient2' }] as const) {
      expect(() => bulkhead({ name: 'pool', store, adaptive })).toThrow(TypeError);
      expect(() => bulkhead({ name: 'pool', store, adaptive })).toThrow(message);
      expect(() => resilient(() => 1, { bulkhead: { name: 'pool', store, adaptive } })).toThrow(
        message,
      );
    }
  });

  // The fleet bulkhead's own options (the store-backed behaviour is tested on a real redis-server in
  // test/redis/fleet-bulkhead.test.ts; these checks need none).
  const fleetStore = (withBulkhead: boolean) =>
    ({
      forRateLimiter: () => undefined,
      forCircuit: () => undefined,
      forCache: () => undefined,
      ...(withBulkhead
        ? {
            forBulkhead: () => ({
              acquire: vi.fn(() => new Promise(() => undefined)),
              renew: vi.fn(() => Promise.resolve()),
              release: vi.fn(() => Promise.resolve()),
              subscribe: vi.fn(() => () => undefined),
            }),
          }
        : {}),
    }) as never;

  it.each<[string, (store: never) => unknown, RegExp]>([
    [
      'a name that is not a string',
      () => ({ name: 42 }),
      /Expected `bulkhead.name` to be a string, got `42`/,
    ],
    [
      'a store that cannot share bulkheads',
      () => ({ name: 'pool', store: fleetStore(false) }),
      /`bulkhead.store` to be a Store that shares bulkheads \(forBulkhead\)/,
    ],
    [
      'slotLease without a store',
      () => ({ slotLease: 1_000 }),
      /`bulkhead.slotLease` applies to a bulkhead with a `store`/,
    ],
    [
      'onStoreError without a store',
      () => ({ onStoreError: 'reject' }),
      /`bulkhead.onStoreError` applies to a bulkhead with a `store`/,
    ],
    [
      'slotLease 0',
      (store) => ({ name: 'pool', store, slotLease: 0 }),
      /`bulkhead.slotLease` to be a number > 0, got `0`/,
    ],
    [
      'slotLease -5',
      (store) => ({ name: 'pool', store, slotLease: -5 }),
      /`bulkhead.slotLease` to be a number > 0, got `-5`/,
    ],
    [
      'onStoreError not one of the three',
      (store) => ({ name: 'pool', store, onStoreError: 'explode' }),
      /`bulkhead.onStoreError`.*'local'.*'allow'.*'reject'/,
    ],
  ])('fleet options: %s fails at wrap time naming the option', (_, options, message) => {
    const given = options(fleetStore(true)) as BulkheadOptions;
    expect(() => bulkhead(given)).toThrow(TypeError);
    expect(() => bulkhead(given)).toThrow(message);
    expect(() => resilient(() => 1, { bulkhead: given })).toThrow(message);
  });

  it('fleet options: a valid fleet bulkhead is made, and describe() shows its store settings', () => {
    const pool = bulkhead({
      name: 'pool',
      maxConcurrent: 3,
      store: fleetStore(true),
      slotLease: 0.5,
      onStoreError: 'reject',
    });
    expect(pool.describe()).toEqual({
      stage: 'bulkhead',
      name: 'pool',
      maxConcurrent: 3,
      maxQueue: 0,
      queueTimeout: 'none',
      store: 'shared',
      slotLease: 0.5,
      onStoreError: 'reject',
    });
    const defaults = bulkhead({ name: 'pool', store: fleetStore(true) }).describe();
    expect(defaults).toMatchObject({ store: 'shared', slotLease: 5_000, onStoreError: 'local' });
    // In memory: no store settings at all.
    expect(bulkhead({ maxConcurrent: 3 }).describe()).not.toHaveProperty('store');
  });

  it('accepts maxQueue 0 explicitly and maxConcurrent Infinity is refused', () => {
    expect(bulkhead({ maxQueue: 0 }).maxQueue).toBe(0);
    expect(() => bulkhead({ maxConcurrent: Infinity })).toThrow(/`bulkhead.maxConcurrent`/);
  });
});
