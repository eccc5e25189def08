import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  isResilienceError,
  rateLimiter,
  resilient,
  type ResilienceEvent,
} from '../../src/index.js';
import { redisStore, StoreTimeoutError, type RedisStore } from '../../src/redis/index.js';
import { RESERVE } from '../../src/redis/scripts.js';
import { connect, gated, noRedis, RedisServer, sleep, until } from './server.js';

describe.skipIf(noRedis)('rateLimiter with a Redis store', () => {
  let server: RedisServer;
  let client: Redis;
  let store: RedisStore;
  let n = 0;
  const name = (): string => `limiter-${++n}`;

  beforeAll(async () => {
    server = await RedisServer.start();
    client = await connect(server.port);
    // Redis answers in well under 2 s even on a loaded machine: tests of what happens when it does not
    // make their own stores (or pause it).
    store = redisStore(client, { commandTimeout: 2_000, recheckAfter: 100 });
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });
  beforeEach(async () => {
    if (client.status !== 'ready') await until(() => client.status === 'ready', 5_000, 'ready');
  });

  const settle = (calls: Promise<unknown>[]): Promise<{ ok: number; limited: number }> =>
    Promise.allSettled(calls).then((results) => ({
      ok: results.filter((r) => r.status === 'fulfilled').length,
      limited: results.filter(
        (r) =>
          r.status === 'rejected' &&
          isResilienceError(r.reason) &&
          r.reason.code === 'ERR_BULWARK_RATE_LIMITED',
      ).length,
    }));

  it('holds one limit across limiters that share a name (exact: one round trip per call)', async () => {
    const shared = name();
    // A patient store: on a loaded machine a 200 ms command timeout would send some calls to the
    // local fallback (its own bound, tested below); this test is about the exact shared count.
    // 10 a minute: no token comes back while the 30 calls run, however long they take here.
    const patient = redisStore(client, { commandTimeout: 10_000 });
    const limiter = { name: shared, limit: 10, interval: 60_000, store: patient };
    const a = resilient(async () => 'a', { rateLimiter: limiter });
    const b = resilient(async () => 'b', { rateLimiter: limiter });
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 15; i++) calls.push(a(), b());
    const { ok, limited } = await settle(calls);
    expect(ok).toBe(10);
    expect(limited).toBe(20);
  });

  it('tells the retryAfter the store computed', async () => {
    // 2 a minute: the next token comes 30 s after the first call, less the time these calls take
    // (far less than 10 s, however loaded the machine).
    const limiter = rateLimiter({ name: name(), limit: 2, interval: 60_000, store });
    const fn = resilient(async () => 1, { rateLimiter: limiter });
    await fn();
    await fn();
    const error = await fn().catch((e: unknown) => e);
    expect(isResilienceError(error) && error.code).toBe('ERR_BULWARK_RATE_LIMITED');
    const retryAfter = (error as { retryAfter: number }).retryAfter;
    expect(retryAfter).toBeGreaterThan(20_000);
    expect(retryAfter).toBeLessThanOrEqual(30_000);
    expect(limiter.retryAfter(0)).toBe(retryAfter);
    expect(limiter.stats()).toMatchObject({ admitted: 2, rejected: 1 });
  });

  it('waits for a token within maxWait (the store says how long)', async () => {
    const fn = resilient(async () => Date.now(), {
      rateLimiter: { name: name(), limit: 20, burst: 1, maxWait: 500, store },
    });
    const events: ResilienceEvent[] = [];
    fn.on((e) => events.push(e));
    const start = Date.now();
    const times = await Promise.all([fn(), fn(), fn()]);
    expect(times[2] - start).toBeGreaterThanOrEqual(85);
    expect(events.filter((e) => e.type === 'rateLimitWaited')).toHaveLength(2);
  });

  it('a lease takes several tokens in one round trip and spends them locally; its size follows demand', async () => {
    const shared = name();
    // 20 a minute: a lease of 2 lasts 6 s (`lease × interval / limit`), so a loaded machine's pauses
    // between these calls do not outlast it (at 20/s it lasted 100 ms, and a late call asked again).
    const limiter = rateLimiter({ name: shared, limit: 20, interval: 60_000, lease: 5, store });
    const fn = resilient(async () => 1, { rateLimiter: limiter });
    const key = `bulwark:rl:{${shared}}`;
    await fn(); // a round trip: a first lease of 2, 1 spent
    const first = await client.get(key);
    expect(first).toMatch(/^\d+ [\d.e-]+$/);
    await fn(); // spent locally
    expect(await client.get(key)).toBe(first);
    await fn(); // both spent: the next lease is twice that, 4
    const second = await client.get(key);
    for (let i = 0; i < 3; i++) await fn(); // spent locally
    expect(await client.get(key)).toBe(second);
    await fn(); // 4 spent: the next is 5 (the most, `lease`)
    const third = await client.get(key);
    for (let i = 0; i < 4; i++) await fn();
    expect(await client.get(key)).toBe(third);
    expect(limiter.stats().admitted).toBe(11);
    expect(limiter.describe()).toMatchObject({ store: 'shared', lease: 5, onStoreError: 'local' });
  });

  it('grants part of a lease when the whole would not fit; the fleet never passes limit + lease', async () => {
    const shared = name();
    const a = rateLimiter({ name: shared, limit: 10, lease: 4, store });
    const b = rateLimiter({ name: shared, limit: 10, lease: 4, store });
    const fa = resilient(async () => 1, { rateLimiter: a });
    const fb = resilient(async () => 1, { rateLimiter: b });
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 12; i++) calls.push(fa(), fb());
    const { ok } = await settle(calls);
    expect(ok).toBeGreaterThanOrEqual(6);
    expect(ok).toBeLessThanOrEqual(10 + 4);
  });

  it('lease tokens expire after the time they take to accrue', async () => {
    const limiter = rateLimiter({ name: name(), limit: 100, lease: 5, store });
    const fn = resilient(async () => 1, { rateLimiter: limiter });
    await fn();
    await sleep(80); // 5 tokens at 100/s accrue in 50 ms: the 4 left are gone
    expect(limiter.tryAcquire(performance.now())).toBe(false);
  });

  it('a lease never strands tokens: offered load under the limit is never refused', async () => {
    // Limit 100/s, burst 50. A may lease 50 tokens (500 ms of the fleet's capacity) but calls 10
    // times a second; B calls at most 80 times a second. 90 a second in all, under the limit: leases
    // sized to what A spends, and its unspent tokens given back, leave B its share (a full lease
    // each time, 45 of them expiring unspent, would cost the fleet 90 a second for A alone).
    const shared = name();
    const a = resilient(async () => 'a', {
      rateLimiter: { name: shared, limit: 100, burst: 50, lease: 50, store },
    });
    const b = resilient(async () => 'b', {
      rateLimiter: {
        name: shared,
        limit: 100,
        burst: 50,
        store: redisStore(client, { commandTimeout: 2_000 }),
      },
    });
    const refused: string[] = [];
    const end = Date.now() + 3_000;
    const pace = async (fn: () => Promise<string>, every: number): Promise<void> => {
      while (Date.now() < end) {
        const error = await fn().then(
          () => undefined,
          (e: unknown) => (e instanceof Error ? e.message : 'not an Error'),
        );
        if (error !== undefined) refused.push(error);
        await sleep(every);
      }
    };
    await Promise.all([pace(a, 100), pace(b, 12.5)]);
    expect(refused).toEqual([]);
  }, 20_000);

  it('maxWait 0: a caller never queues behind the lease request in flight (it asks for its own token)', async () => {
    // A client whose commands wait until the test lets them go: what is asked, and when, is visible.
    await client.script('LOAD', RESERVE);
    const { client: view, held } = gated(client);
    const limiter = rateLimiter({
      name: name(),
      limit: 1_000,
      lease: 10,
      store: redisStore(view, { commandTimeout: 10_000 }),
    });
    const fn = resilient(async () => 1, { rateLimiter: limiter });
    const calls = Array.from({ length: 20 }, () => fn());
    await until(() => held.length >= 20, 2_000, 'a command per caller');
    expect(held).toHaveLength(20); // one lease request and 19 single tokens, all in flight at once
    for (const release of held) release();
    await expect(Promise.all(calls)).resolves.toHaveLength(20);
    expect(limiter.stats()).toMatchObject({ admitted: 20, rejected: 0 });
  });

  describe('precision at high limits (the arrival time is kept in exact microseconds)', () => {
    /**
     * The RESERVE script `calls` times (`count` tokens each) and a last probe (one token, no wait), in
     * one pipeline between two Redis TIME readings (µs): Redis reads them in one go and runs them in
     * order, so every reservation's clock lies in [t0, t1], and nothing else separates them.
     */
    async function hammer(
      limit: number,
      burst: number,
      count: number,
      calls: number,
      maxWait: number,
    ): Promise<{ granted: number; t0: number; t1: number; retryAfter: number }> {
      const sha = (await client.script('LOAD', RESERVE)) as string;
      const key = `bulwark:rl:{${name()}}`;
      const pipeline = client.pipeline().time();
      for (let i = 0; i < calls; i++)
        pipeline.evalsha(sha, 2, key, `${key}:procs`, limit, 1_000, burst, maxWait, count, '');
      pipeline.evalsha(sha, 2, key, `${key}:procs`, limit, 1_000, burst, 0, 1, '').time();
      const replies = ((await pipeline.exec()) ?? []).map(([error, reply]) => {
        if (error) throw error;
        return reply as [number | string, number | string];
      });
      const micros = (reply: [number | string, number | string] | undefined): number =>
        Number(reply![0]) * 1e6 + Number(reply![1]);
      let granted = 0;
      for (let i = 1; i <= calls; i++) granted += Number(replies[i]![0]);
      const probe = replies[calls + 1]!;
      return {
        granted,
        t0: micros(replies[0]),
        t1: micros(replies[calls + 2]),
        retryAfter: Number(probe[0]) === 0 ? Number(probe[1]) : 0,
      };
    }

    it.each([
      [50_000, 1, 5_000],
      [1_000_000, 50, 5_000],
    ])(
      '%d/s, %d token(s) a reservation: admits no more than GCRA allows over the measured time',
      async (limit, count, calls) => {
        const burst = 100;
        const { granted, t0, t1 } = await hammer(limit, burst, count, calls, 0);
        // burst + limit × elapsed (+ one reservation's rounding).
        const allowed = burst + (limit * (t1 - t0)) / 1e6 + count;
        expect(granted).toBeLessThanOrEqual(allowed);
        expect(granted).toBeLessThan(calls * count); // the limit did bite
      },
      60_000,
    );

    // 1.04 ms a reservation: a TAT rounded to 0.1 ms would move 1.0 ms, and the probe would find it
    // 40 ms short of what 1,000 reservations took, however long they took to arrive.
    it.each([
      [50_000, 52, 1_000],
      [1_000_000, 1_040, 1_000],
    ])(
      '%d/s, %d token(s) a reservation: every granted token moves the arrival time by exactly interval/limit',
      async (limit, count, calls) => {
        // burst 1 and a long maxWait: all granted, each into the future; a last probe with no wait
        // reads how far ahead the arrival time is: between N × step − (t1 − t0) and N × step (N
        // tokens, each reservation's clock in [t0, t1]).
        const step = 1_000 / limit; // ms
        const { granted, t0, t1, retryAfter } = await hammer(limit, 1, count, calls, 60_000);
        expect(granted).toBe(calls * count);
        const reserved = granted * step;
        expect(retryAfter).toBeLessThanOrEqual(reserved + 0.001);
        expect(retryAfter).toBeGreaterThanOrEqual(reserved - (t1 - t0) / 1_000 - 0.001);
      },
      60_000,
    );
  });

  it('validates: a store needs a name; lease needs a store and fits in burst; onStoreError', () => {
    expect(() => rateLimiter({ limit: 1, store })).toThrow(/rateLimiter\.name/);
    expect(() => rateLimiter({ limit: 1, lease: 2 })).toThrow(/rateLimiter\.lease.*store/);
    expect(() => rateLimiter({ limit: 2, lease: 3, name: 'x', store })).toThrow(/exceeds/);
    expect(() =>
      rateLimiter({ limit: 1, name: 'x', store, onStoreError: 'maybe' as 'local' }),
    ).toThrow(/onStoreError/);
    expect(() => rateLimiter({ limit: 1, name: 'x', store: {} as never })).toThrow(
      /rateLimiter\.store/,
    );
    expect(() => resilient(async () => 1, { rateLimiter: { limit: 1, store } })).toThrow(
      /rateLimiter\.name/,
    );
  });

  describe('while Redis is down', () => {
    it.each([
      ['local', 0, 5], // the local bucket starts empty: tokens come at the limit from the failure on
      ['allow', 5, 0],
      ['reject', 0, 5],
    ] as const)(
      'onStoreError %s: %d admitted, %d rejected, events fire, sharing resumes',
      async (mode, admitted, rejected) => {
        const local = await RedisServer.start();
        const c = await connect(local.port);
        const s = redisStore(c, { commandTimeout: 100, recheckAfter: 50 });
        // 3 a minute: a local bucket that starts empty gets no token while these calls run.
        const limiter = rateLimiter({
          name: name(),
          limit: 3,
          interval: 60_000,
          store: s,
          onStoreError: mode,
        });
        const fn = resilient(async () => 1, { rateLimiter: limiter });
        const events: string[] = [];
        fn.on((e) => events.push(e.type));
        await local.kill();
        await until(() => c.status !== 'ready', 2_000, 'disconnect');
        const start = Date.now();
        const down = await settle(Array.from({ length: 5 }, () => fn()));
        // Settled at once, not after reconnect attempts (a wide bound for a loaded machine).
        expect(Date.now() - start).toBeLessThan(2_000);
        expect(down).toEqual({ ok: admitted, limited: rejected });
        expect(events).toContain('storeUnavailable');
        expect(events.filter((e) => e === 'storeUnavailable')).toHaveLength(1);
        await local.launch();
        await until(() => c.status === 'ready', 5_000, 'reconnect');
        await sleep(60);
        await fn().catch(() => undefined);
        await until(() => events.includes('storeRecovered'), 2_000, 'storeRecovered');
        c.disconnect();
        await local.stop();
      },
    );

    it('a fleet that starts while Redis is down: with expectedProcesses 2, two processes admit the limit together, not twice it', async () => {
      const local = await RedisServer.start();
      const clients = [await connect(local.port), await connect(local.port)];
      await local.kill();
      for (const c of clients) await until(() => c.status !== 'ready', 2_000, 'disconnect');
      try {
        // Two processes (each its own store and health) that have never heard from Redis.
        const shared = name();
        const fleet = clients.map((c) => {
          const limiter = rateLimiter({
            name: shared,
            limit: 20,
            store: redisStore(c, { commandTimeout: 100, recheckAfter: 200 }),
            expectedProcesses: 2,
          });
          const fn = resilient(async () => 1, { rateLimiter: limiter });
          const events: string[] = [];
          fn.on((e) => events.push(e.type));
          return { limiter, fn, events };
        });
        expect(fleet[0]!.limiter.describe()).toMatchObject({ expectedProcesses: 2 });
        // Both buckets start empty when their first command goes unanswered, at or after `start`.
        const start = performance.now();
        const admitted = [0, 0];
        for (let round = 0; round < 12; round++) {
          const results = await Promise.all(
            fleet.flatMap(({ fn }, p) =>
              Array.from({ length: 8 }, () =>
                fn().then(
                  () => p,
                  () => -1,
                ),
              ),
            ),
          );
          for (const p of results) if (p >= 0) admitted[p]!++;
          await sleep(100);
        }
        const elapsed = performance.now() - start;
        for (const { events } of fleet) expect(events).toContain('storeUnavailable');
        // Each process: limit / max(1, 2) = 10 a second from its empty bucket, so at most
        // floor(10 × elapsed / 1000) each, the limit × elapsed for the fleet (without the option, each
        // process would take the whole limit: twice that).
        for (const n of admitted) expect(n).toBeLessThanOrEqual(Math.floor((10 * elapsed) / 1_000));
        expect(admitted[0]! + admitted[1]!).toBeLessThanOrEqual((20 * elapsed) / 1_000);
      } finally {
        for (const c of clients) c.disconnect();
        await local.stop();
      }
    });

    it('a stall does not release a burst per process: each earns tokens at the limit from the stall on', async () => {
      // Two processes' limiters (each its own store health), default commandTimeout (50 ms).
      const shared = name();
      const make = () => {
        const limiter = rateLimiter({ name: shared, limit: 10, store: redisStore(client) });
        return { limiter, fn: resilient(async () => 1, { rateLimiter: limiter }) };
      };
      const a = make();
      const b = make();
      // The fleet's burst is spent through Redis (by a third limiter, on a patient store: a/b's 50 ms
      // would send calls to their local buckets on a loaded machine before the stall).
      const drain = resilient(async () => 1, {
        rateLimiter: {
          name: shared,
          limit: 10,
          store: redisStore(client, { commandTimeout: 10_000 }),
        },
      });
      const drained = await settle(Array.from({ length: 12 }, () => drain()));
      expect(drained.limited).toBeGreaterThan(0);
      server.pause();
      const start = performance.now();
      const stalled = await settle(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).fn()));
      const elapsed = performance.now() - start;
      server.resume();
      // A full local bucket would admit 10 per process; an empty one admits limit × elapsed each.
      expect(stalled.ok).toBeLessThanOrEqual(2 * Math.floor((10 * elapsed) / 1_000));
      expect(stalled.ok + stalled.limited).toBe(20);
    });

    it("a caller's abort is honoured while the call waits on Redis (paused: SIGSTOP)", async () => {
      const patient = redisStore(client, { commandTimeout: 60_000 });
      const policy = resilient({ rateLimiter: { name: name(), limit: 100, store: patient } });
      await policy.execute(async () => 1); // the script is loaded
      server.pause();
      try {
        const controller = new AbortController();
        const reason = new Error('caller gave up');
        const call = policy.execute(async () => 'ran', { signal: controller.signal });
        setTimeout(() => controller.abort(reason), 10);
        // Rejected with the caller's reason while Redis is still paused (it answers nothing until
        // resumed, and the command timeout is a minute away).
        await expect(call).rejects.toBe(reason);
      } finally {
        server.resume();
      }
    });

    it('a slow Redis (paused: SIGSTOP) costs a call the command timeout, not its answer', async () => {
      const quick = redisStore(client, { commandTimeout: 200 });
      const limiter = rateLimiter({ name: name(), limit: 100, store: quick });
      const fn = resilient(async () => 1, { rateLimiter: limiter });
      const events: ResilienceEvent[] = [];
      fn.on((e) => events.push(e));
      await fn(); // the script is loaded
      server.pause();
      try {
        // Redis answers nothing until resumed: the call settles on the store's 200 ms timeout (the
        // bound has a wide margin for a loaded machine; waiting for Redis would never settle).
        const start = performance.now();
        await expect(fn()).resolves.toBe(1);
        expect(performance.now() - start).toBeLessThan(2_000);
        const unavailable = events.find((e) => e.type === 'storeUnavailable');
        expect((unavailable as { error?: unknown } | undefined)?.error).toBeInstanceOf(
          StoreTimeoutError,
        );
      } finally {
        server.resume();
      }
    });
  });
});
