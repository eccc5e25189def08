import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  bulkhead,
  BulkheadRejectedError,
  RateLimitedError,
  rateLimiter,
  resilient,
  type RateLimiter,
  type RateLimiterOptions,
  type ResilienceEvent,
} from '../../src/index.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';
import { MemoryLimiterStore } from '../helpers/memory-limiter.js';

/**
 * The store-backed rate limiter's own logic (exact reservations, leases, the fallbacks while the store is
 * out of reach) in virtual time, against a fleet state held in memory. The same behaviour against a real
 * redis-server is in test/redis/; these tests pin the decisions the limiter takes on what the store says.
 */
function fleet(clock = new ManualClock()) {
  const store = new MemoryLimiterStore(clock);
  /** One process's limiter and the function it guards. */
  const member = (options: Partial<RateLimiterOptions> = {}) => {
    const limiter = rateLimiter({ clock, name: 'api', limit: 10, store, ...options });
    const started: number[] = [];
    const fn = vi.fn(() => {
      started.push(clock.now());
      return Promise.resolve('ok');
    });
    const call = resilient(fn, { clock, rateLimiter: limiter });
    const events: ResilienceEvent[] = [];
    call.on((event) => events.push(event));
    const settle = (): Promise<unknown> =>
      call().then(
        (value) => value,
        (error: unknown) => error,
      );
    return { limiter, fn, call, settle, started, events };
  };
  return { clock, store, member };
}

const many = <T>(n: number, f: () => Promise<T>): Promise<T[]> =>
  Promise.all(Array.from({ length: n }, f));

/**
 * A function behind `limiter` and a one-slot bulkhead, whose calls run until `release()`: a second call
 * while one runs takes a token, then the bulkhead refuses it.
 */
function behindOneSlot(clock: ManualClock, limiter: RateLimiter) {
  const pending: (() => void)[] = [];
  const call = resilient(() => new Promise<void>((resolve) => pending.push(resolve)), {
    clock,
    rateLimiter: limiter,
    bulkhead: bulkhead({ maxConcurrent: 1 }),
  });
  const release = (): void => {
    for (const resolve of pending.splice(0)) resolve();
  };
  return { call, release };
}

describe('rate limiter with a store: exact reservations (lease 1)', () => {
  it('asks the store for one token per call with the limit, and admits what it grants', async () => {
    const { store, member } = fleet();
    const p = member({ limit: 3, interval: 500, burst: 2, maxWait: 0 });
    const results = await many(3, () => p.settle());
    expect(results.slice(0, 2)).toEqual(['ok', 'ok']);
    expect(results[2]).toBeInstanceOf(RateLimitedError);
    expect(store.requests.map((r) => r.count)).toEqual([1, 1, 1]);
    expect(store.requests[0]).toMatchObject({
      name: 'api',
      limit: 3,
      interval: 500,
      burst: 2,
      maxWait: 0,
      count: 1,
      giveBack: 0,
    });
    expect(p.limiter.stats()).toMatchObject({ admitted: 2, rejected: 1, waited: 0 });
  });

  it("a refusal carries the store's retryAfter, also in retryAfter() and stats()", async () => {
    const { clock, member } = fleet();
    const p = member({ limit: 4, burst: 1 }); // a token every 250 ms
    await p.call();
    await clock.advance(100);
    const error = await p.settle();
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfter).toBe(150);
    expect(p.limiter.retryAfter(clock.now())).toBe(150);
    expect(p.limiter.stats().retryAfter).toBe(150);
  });

  it("waits the store's wait when it is within maxWait, and counts it", async () => {
    const { clock, member } = fleet();
    const p = member({ limit: 2, burst: 1, maxWait: 600 }); // a token every 500 ms
    await p.call();
    const second = p.call();
    await flush();
    expect(p.started).toEqual([0]);
    await clock.advance(500);
    await expect(second).resolves.toBe('ok');
    expect(p.started).toEqual([0, 500]);
    expect(p.events.filter((e) => e.type === 'rateLimitWaited')).toEqual([
      expect.objectContaining({ wait: 500 }),
    ]);
    expect(p.limiter.stats()).toMatchObject({ admitted: 2, waited: 1 });
  });

  it('two processes share one limit through the store', async () => {
    const { clock, member } = fleet();
    const a = member({ limit: 6 });
    const b = member({ limit: 6 });
    const both = await Promise.all([many(4, () => a.settle()), many(4, () => b.settle())]);
    expect(both.flat().filter((r) => r === 'ok')).toHaveLength(6);
    await clock.advance(500); // half the interval: 3 more tokens for the fleet
    const later = await Promise.all([many(4, () => a.settle()), many(4, () => b.settle())]);
    expect(later.flat().filter((r) => r === 'ok')).toHaveLength(3);
  });

  it('an exact token is not given back to the store: a call the bulkhead refuses still spent it', async () => {
    const { store, clock, member } = fleet();
    const limiter = member({ limit: 2, burst: 2 }).limiter;
    const { call, release } = behindOneSlot(clock, limiter);
    const first = call();
    await flush();
    await expect(call()).rejects.toBeInstanceOf(BulkheadRejectedError);
    release();
    await first;
    // The refused call's token counted in the store: the fleet's burst of 2 is spent.
    await expect(call()).rejects.toBeInstanceOf(RateLimitedError);
    expect(store.requests).toHaveLength(3);
    expect(limiter.stats().admitted).toBe(1);
  });
});

describe('rate limiter with a store: leases', () => {
  it('sizes each lease to demand: 2 first, then twice what the last lease spent, up to `lease`', async () => {
    const { store, member } = fleet();
    const p = member({ limit: 1_000, lease: 10 });
    for (let i = 0; i < 2 + 4 + 8 + 10 + 10; i++) await p.call();
    expect(store.requests.map((r) => r.count)).toEqual([2, 4, 8, 10, 10]);
    expect(store.requests.every((r) => r.giveBack === 0)).toBe(true);
    expect(p.fn).toHaveBeenCalledTimes(34);
    expect(p.limiter.stats().admitted).toBe(34);
  });

  it('spends leased tokens without asking the store, then asks again', async () => {
    const { store, member } = fleet();
    const p = member({ limit: 1_000, lease: 4 });
    await p.call();
    expect(store.requests).toHaveLength(1);
    await p.call(); // the lease's second token
    expect(store.requests).toHaveLength(1);
    await p.call();
    expect(store.requests).toHaveLength(2);
  });

  it('a lease expires after the time its tokens take to accrue; what is left goes back to the store', async () => {
    const { clock, store, member } = fleet();
    const p = member({ limit: 100, lease: 8 }); // 10 ms a token
    await p.call(); // lease of 2
    await p.call();
    await p.call(); // lease of 4, granted at 0: usable until 40 ms
    expect(store.requests.map((r) => r.count)).toEqual([2, 4]);
    await clock.advance(39);
    await p.call(); // still within the lease
    expect(store.requests).toHaveLength(2);
    await clock.advance(1); // 40 ms: expired, with 2 tokens unspent
    await p.call();
    expect(store.requests).toHaveLength(3);
    // Twice what the last lease spent (2 of 4), and its 2 unspent tokens handed back.
    expect(store.requests[2]).toMatchObject({ count: 4, giveBack: 2 });
  });

  it("given-back tokens are the fleet's again: another process can spend them", async () => {
    const { clock, store, member } = fleet();
    const a = member({ limit: 10, burst: 4, lease: 4 }); // 100 ms a token
    const b = member({ limit: 10, burst: 4, lease: 4 });
    await a.call(); // lease of 2 (1 left)
    await a.call();
    await a.call(); // lease of 2 again (4 spent in the fleet's burst of 4), 1 left, unused
    expect(await b.settle()).toBeInstanceOf(RateLimitedError);
    await clock.advance(200); // a's lease (2 tokens: 200 ms) has expired unspent: 2 tokens accrued
    await a.call(); // gives its unspent token back while taking a new lease
    expect(store.requests.at(-1)).toMatchObject({ giveBack: 1 });
    // b finds the fleet's bucket with the given-back token in it.
    expect(await b.settle()).toBe('ok');
  });

  it('a lease that must wait is usable from when the whole batch conforms, and no earlier', async () => {
    const { clock, member } = fleet();
    const p = member({ limit: 10, burst: 2, lease: 2, maxWait: 1_000 }); // 100 ms a token
    await p.call(); // lease of 2 at once: the burst
    await p.call();
    const third = p.call(); // a new lease of 2: conforms at 200 ms
    const fourth = p.call(); // waits for that lease
    await clock.advance(199);
    expect(p.started).toEqual([0, 0]);
    await clock.advance(1);
    await Promise.all([third, fourth]);
    expect(p.started).toEqual([0, 0, 200, 200]);
  });

  it('callers that may wait share the lease request in flight; maxWait 0 callers ask on their own', async () => {
    const { clock, store, member } = fleet();
    store.latency = 5;
    const waiting = member({ limit: 100, lease: 8, maxWait: 50 }); // a lease of 2 lasts 20 ms
    const all = many(3, () => waiting.call());
    await clock.advance(10);
    await all;
    // One lease of 2 serves the first two; the third asks for the next lease when the first landed.
    expect(store.requests.map((r) => [r.at, r.count])).toEqual([
      [0, 2],
      [5, 4],
    ]);
    expect(waiting.started).toEqual([5, 5, 10]);

    const { clock: clock2, store: store2, member: member2 } = fleet();
    store2.latency = 5;
    const eager = member2({ limit: 100, lease: 8, maxWait: 0 });
    const now = many(3, () => eager.call());
    await clock2.advance(5);
    await now;
    // None of them queues behind the lease request: each asks for its own token at once.
    expect(store2.requests.map((r) => [r.at, r.count])).toEqual([
      [0, 2],
      [0, 1],
      [0, 1],
    ]);
    expect(eager.started).toEqual([5, 5, 5]);
  });

  it('a refusal from the store is overruled by a lease that landed meanwhile', async () => {
    const { clock, store, member } = fleet();
    const other = member({ limit: 10, burst: 10 });
    await many(8, () => other.call()); // 2 tokens left in the fleet's bucket
    store.latency = 10;
    const p = member({ limit: 10, burst: 10, lease: 4 });
    const leased = p.settle(); // asks for a lease of 2: granted (the last two tokens)
    const own = p.settle(); // maxWait 0: asks for its own token: refused, the bucket is empty
    await clock.advance(10);
    // The lease landed first: its second token serves the refused caller.
    expect(await Promise.all([leased, own])).toEqual(['ok', 'ok']);
    expect(store.requests.map((r) => r.count).slice(-2)).toEqual([2, 1]);
    expect(p.limiter.stats()).toMatchObject({ admitted: 2, rejected: 0 });
  });

  it('a leased token a refused call did not use goes back to the lease', async () => {
    const { clock, store, member } = fleet();
    const limiter = member({ limit: 1_000, lease: 4 }).limiter;
    const { call, release } = behindOneSlot(clock, limiter);
    const first = call(); // lease of 2: one token left
    await flush();
    await expect(call()).rejects.toBeInstanceOf(BulkheadRejectedError); // took it, gave it back
    release();
    await first;
    const again = call(); // spends the given-back token: no new request
    await flush();
    expect(store.requests).toHaveLength(1);
    release();
    await again;
    expect(limiter.stats().admitted).toBe(2);
  });
});

describe('rate limiter with a store: while the store is out of reach', () => {
  it("'allow' admits every call, 'reject' refuses every call; both until the store answers again", async () => {
    for (const onStoreError of ['allow', 'reject'] as const) {
      const { clock, store, member } = fleet();
      const p = member({ limit: 4, onStoreError }); // locally a token every 250 ms: not used
      store.mode = 'fail';
      const results: unknown[] = [];
      for (let i = 0; i < 4; i++) results.push(await p.settle());
      await clock.advance(400);
      results.push(await p.settle());
      if (onStoreError === 'allow') expect(results).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
      else {
        expect(results.every((r) => r instanceof RateLimitedError)).toBe(true);
        // Nothing is admitted before the store is probed again (recheckAfter: 1 s after the failure).
        expect((results[0] as RateLimitedError).retryAfter).toBe(1_000);
        expect((results[4] as RateLimitedError).retryAfter).toBe(600);
        expect(p.limiter.retryAfter(clock.now())).toBe(600);
      }
      // One probe a recheckAfter (1 s): the other calls do not ask.
      expect(store.requests).toHaveLength(1);
      expect(p.limiter.stats()).toMatchObject(
        onStoreError === 'allow' ? { admitted: 5, rejected: 0 } : { admitted: 0, rejected: 5 },
      );
      store.mode = 'answer';
      await clock.advance(599);
      await p.settle();
      expect(store.requests).toHaveLength(1);
      await clock.advance(1);
      expect(await p.settle()).toBe('ok'); // the probe: the store grants
      expect(await p.settle()).toBe('ok'); // and every call asks it again
      expect(store.requests).toHaveLength(3);
      const types = p.events.map((e) => e.type);
      expect(types.filter((t) => t === 'storeUnavailable')).toHaveLength(1);
      expect(types.filter((t) => t === 'storeRecovered')).toHaveLength(1);
      expect(types.indexOf('storeUnavailable')).toBeLessThan(types.indexOf('storeRecovered'));
    }
  });

  it('a local refusal counts once in stats', async () => {
    const { store, member } = fleet();
    const p = member({ limit: 10 });
    store.mode = 'fail';
    await many(3, () => p.settle()); // the local bucket starts empty: all refused
    expect(p.limiter.stats()).toMatchObject({ admitted: 0, rejected: 3 });
  });

  it('a command that fails late decides locally when it failed, with the wait left', async () => {
    const { clock, store, member } = fleet();
    const p = member({ limit: 10, maxWait: 250 }); // locally a token every 100 ms, from empty at 0
    store.mode = 'fail';
    store.latency = 300;
    const call = p.settle();
    await clock.advance(300);
    // Failed at 300: three tokens accrued since the command was sent, so no wait.
    expect(await call).toBe('ok');
    expect(p.started).toEqual([300]);

    const late = fleet();
    const q = late.member({ limit: 10, burst: 10, maxWait: 250 });
    late.store.mode = 'fail';
    late.store.latency = 300;
    await late.clock.advance(1_000);
    const slow = q.settle();
    await late.clock.advance(300);
    expect(await slow).toBe('ok');
    expect(q.started).toEqual([1_300]);
  });

  it('uses the latest process count the store reported, also when it drops back to 1', async () => {
    const { clock, store, member } = fleet();
    const p = member({ limit: 40 });
    store.processes = 4;
    await p.call();
    store.processes = 1;
    await p.call();
    store.mode = 'fail';
    await p.settle(); // unavailable from here, the local bucket empty
    await clock.advance(250);
    // The share is the whole limit again (40/s: 10 tokens in 250 ms), not a quarter of it.
    const results = await many(12, () => p.settle());
    expect(results.filter((r) => r === 'ok')).toHaveLength(10);
  });

  it('a process count of 0 (a store that did not count) keeps the last one', async () => {
    const { clock, store, member } = fleet();
    const p = member({ limit: 40 });
    store.processes = 4;
    await p.call();
    store.processes = 0;
    await p.call();
    store.mode = 'fail';
    await p.settle();
    await clock.advance(250);
    const results = await many(12, () => p.settle());
    expect(results.filter((r) => r === 'ok')).toHaveLength(2); // 10/s for this process
  });

  it("a caller's abort while the store has not answered rejects at once with the signal's reason", async () => {
    const { clock, store, member } = fleet();
    const { limiter } = member({ limit: 10 });
    const policy = resilient({ clock, rateLimiter: limiter });
    const events: ResilienceEvent[] = [];
    policy.on((event) => events.push(event));
    store.mode = 'hang';
    const controller = new AbortController();
    const task = vi.fn(() => Promise.resolve('ok'));
    const call = policy
      .execute(task, { signal: controller.signal })
      .catch((error: unknown) => error);
    await flush();
    const reason = new Error('caller gave up');
    controller.abort(reason);
    expect(await call).toBe(reason);
    expect(task).not.toHaveBeenCalled();
    store.release(); // the command fails late: recorded as the store's trouble
    await flush();
    expect(events.map((e) => e.type)).toContain('storeUnavailable');
  });

  it('describes its store settings', () => {
    const { member } = fleet();
    expect(member({ lease: 5, onStoreError: 'reject' }).limiter.describe()).toEqual({
      stage: 'rateLimiter',
      name: 'api',
      limit: 10,
      interval: 1_000,
      burst: 10,
      maxWait: 0,
      store: 'shared',
      lease: 5,
      onStoreError: 'reject',
      expectedProcesses: 1,
    });
  });

  it.each([
    [
      'lease without a store',
      { limit: 5, lease: 2 },
      /`rateLimiter.lease` applies to a limiter with a `store`/,
    ],
    [
      'lease above burst',
      { limit: 5, burst: 3, lease: 4, name: 'a' },
      /`rateLimiter.lease` \(4\) exceeds `rateLimiter.burst` \(3\)/,
    ],
    ['lease 0', { limit: 5, lease: 0, name: 'a' }, /`rateLimiter.lease`/],
    ['lease not an integer', { limit: 5, lease: 1.5, name: 'a' }, /`rateLimiter.lease`/],
    [
      'unknown onStoreError',
      { limit: 5, onStoreError: 'drop', name: 'a' },
      /`rateLimiter.onStoreError`/,
    ],
    ['a store without a name', { limit: 5 }, /`rateLimiter.name`/],
  ])('%s fails at construction, naming the option', (_, options, message) => {
    const store = new MemoryLimiterStore(new ManualClock());
    const withStore = _ === 'lease without a store' ? options : { ...options, store };
    expect(() => rateLimiter(withStore as RateLimiterOptions)).toThrow(TypeError);
    expect(() => rateLimiter(withStore as RateLimiterOptions)).toThrow(message);
  });
});

describe('rate limiter with a store: partitions at rest', () => {
  it('a partition holding a lease it can still spend is kept; once its lease expired it is evicted', async () => {
    const clock = new ManualClock();
    const store = new MemoryLimiterStore(clock);
    const call = resilient((tenant: string) => Promise.resolve(tenant), {
      clock,
      rateLimiter: {
        name: 'api',
        limit: 100, // 10 ms a token: a lease of 2 lasts 20 ms
        lease: 4,
        store,
        partition: { by: (tenant: string) => tenant, maxPartitions: 1 },
      },
    });
    await call('a'); // a lease of 2, one token left
    await call('b');
    expect(call.stats().partitions?.rateLimiter).toMatchObject({ count: 2, kept: 1 });
    await call('a'); // its leased token: no new request
    expect(store.requests.map((r) => r.name)).toEqual(['api:p:a', 'api:p:b']);
    await clock.advance(20); // both leases expired
    await call('c');
    expect(call.stats().partitions?.rateLimiter?.count).toBe(1);
  });
});

describe('rate limiter with a store: the fleet bound', () => {
  it('property: over any window the fleet admits at most burst + limit·t/interval + lease (processes, leases, waits)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          processes: fc.integer({ min: 1, max: 4 }),
          limit: fc.integer({ min: 1, max: 50 }),
          burstExtra: fc.integer({ min: 0, max: 10 }),
          lease: fc.integer({ min: 1, max: 8 }),
          maxWait: fc.constantFrom(0, 50, 300),
          latency: fc.constantFrom(0, 3, 20),
          steps: fc.array(
            fc.record({
              who: fc.nat(),
              calls: fc.integer({ min: 1, max: 6 }),
              after: fc.integer({ min: 0, max: 120 }),
            }),
            { minLength: 1, maxLength: 40 },
          ),
        }),
        async ({ processes, limit, burstExtra, lease: leaseWanted, maxWait, latency, steps }) => {
          const interval = 1_000;
          const burst = limit + burstExtra;
          const lease = Math.min(leaseWanted, burst);
          const { clock, store, member } = fleet();
          store.latency = latency;
          const members = Array.from({ length: processes }, () =>
            member({ limit, interval, burst, lease, maxWait }),
          );
          const pending: Promise<unknown>[] = [];
          for (const step of steps) {
            const p = members[step.who % processes]!;
            for (let i = 0; i < step.calls; i++) pending.push(p.settle());
            await clock.advance(step.after);
          }
          await clock.advance(2_000);
          await Promise.all(pending);
          const starts = members.flatMap((m) => m.started).sort((a, b) => a - b);
          // Every window that starts at an admission: the admissions in [t, t + w].
          for (let i = 0; i < starts.length; i++) {
            for (let j = i; j < starts.length; j++) {
              const w = starts[j]! - starts[i]!;
              const allowed = burst + (limit * w) / interval + lease;
              if (j - i + 1 > allowed + 1e-9)
                throw new Error(
                  `${j - i + 1} admitted in ${w} ms (from ${starts[i]}), bound ${allowed.toFixed(2)}`,
                );
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
