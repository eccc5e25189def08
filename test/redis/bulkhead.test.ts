/**
 * #11.16: a bulkhead whose slots are shared through Redis. Several stores on their own connections
 * stand for several processes (the kill -9 case, with real processes, is in fleet-bulkhead.test.ts).
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bulkhead,
  BulkheadRejectedError,
  resilient,
  resilientSync,
  type ResilienceEvent,
} from '../../src/index.js';
import { redisStore, type RedisStore } from '../../src/redis/index.js';
import { connect, noRedis, RedisServer, sleep, until } from './server.js';

/** A promise and its resolver. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe.skipIf(noRedis)('bulkhead with a Redis store', () => {
  let server: RedisServer;
  const clients: Redis[] = [];
  const stores: RedisStore[] = [];
  let n = 0;
  const name = (): string => `pool-${++n}`;

  beforeAll(async () => {
    server = await RedisServer.start();
    for (let i = 0; i < 3; i++) {
      const client = await connect(server.port);
      clients.push(client);
      stores.push(redisStore(client, { commandTimeout: 500 }));
    }
  });
  afterAll(async () => {
    for (const store of stores) await store.close();
    for (const client of clients) client.disconnect();
    await server?.stop();
  });

  const queueKey = (pool: string): string => `bulwark:bh:{${pool}}:queue`;
  const slotsKey = (pool: string): string => `bulwark:bh:{${pool}}:slots`;

  it('at most maxConcurrent calls run across processes; every queued call runs', async () => {
    const pool = name();
    let running = 0;
    let most = 0;
    const work = async (): Promise<void> => {
      running++;
      most = Math.max(most, running);
      await sleep(5 + Math.random() * 10);
      running--;
    };
    const fns = stores.map((store) =>
      resilient(work, {
        bulkhead: bulkhead({ name: pool, store, maxConcurrent: 3, maxQueue: 100 }),
      }),
    );
    await Promise.all(Array.from({ length: 60 }, (_, i) => fns[i % 3]!()));
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(0);
    // Each slot is given back fire-and-forget as its call ends (node-redis writes it a turn later, on
    // a connection other than the one that looks): every one arrives.
    await until(async () => (await clients[0]!.zcard(slotsKey(pool))) === 0, 2_000, 'all back');
    expect(await clients[0]!.zcard(queueKey(pool))).toBe(0);
  });

  it('queued callers get slots in FIFO order across processes', async () => {
    const pool = name();
    const pools = stores.map((store) =>
      bulkhead({ name: pool, store, maxConcurrent: 1, maxQueue: 10 }),
    );
    const holder = deferred();
    const order: number[] = [];
    const first = resilient(() => holder.promise, { bulkhead: pools[0]! })();
    await until(async () => (await clients[0]!.zcard(slotsKey(pool))) === 1, 2_000, 'held');
    // Callers queue one after another, from processes 1, 0, 2, 1, 0: their fleet-wide order.
    const who = [1, 0, 2, 1, 0];
    const calls: Promise<void>[] = [];
    for (let i = 0; i < who.length; i++) {
      calls.push(
        resilient(
          async () => {
            order.push(i);
            await sleep(5);
          },
          { bulkhead: pools[who[i]!]! },
        )(),
      );
      await until(async () => (await clients[0]!.zcard(queueKey(pool))) === i + 1, 2_000, 'queued');
    }
    holder.resolve();
    await first;
    await Promise.all(calls);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });

  it('full without a queue: BulkheadRejectedError full; queueTimeout and abort leave the queue', async () => {
    const pool = name();
    const holder = deferred();
    const fleet = bulkhead({ name: pool, store: stores[0]!, maxConcurrent: 1 });
    const held = resilient(() => holder.promise, { bulkhead: fleet })();
    await until(async () => (await clients[0]!.zcard(slotsKey(pool))) === 1, 2_000, 'held');
    const other = resilient(async () => 'ran', {
      bulkhead: bulkhead({ name: pool, store: stores[1]!, maxConcurrent: 1 }),
    });
    const full = await other().catch((e: unknown) => e);
    expect(full).toBeInstanceOf(BulkheadRejectedError);
    expect((full as BulkheadRejectedError).reason).toBe('full');

    const queued = bulkhead({
      name: pool,
      store: stores[2]!,
      maxConcurrent: 1,
      maxQueue: 5,
      queueTimeout: 100,
    });
    const timedOut = await resilient(async () => 'ran', { bulkhead: queued })().catch(
      (e: unknown) => e,
    );
    expect((timedOut as BulkheadRejectedError).reason).toBe('queueTimeout');
    await until(async () => (await clients[0]!.zcard(queueKey(pool))) === 0, 2_000, 'left');

    const controller = new AbortController();
    const policy = resilient({
      bulkhead: bulkhead({ name: pool, store: stores[1]!, maxConcurrent: 1, maxQueue: 5 }),
    });
    const aborted = policy.execute(async () => 'ran', { signal: controller.signal });
    await until(async () => (await clients[0]!.zcard(queueKey(pool))) === 1, 2_000, 'queued');
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await expect(aborted).rejects.toBe(reason);
    await until(async () => (await clients[0]!.zcard(queueKey(pool))) === 0, 2_000, 'left');
    expect(queued.stats().rejected).toBe(1);
    holder.resolve();
    await held;
    await until(async () => (await clients[0]!.zcard(slotsKey(pool))) === 0, 2_000, 'given back');
  });

  it('a slot nobody renews comes back after slotLease', async () => {
    const pool = name();
    // A process that died holding a slot: its entry, and no one renewing it. Its lease ends 300 ms after
    // `start`, read before the entry is written: a stall anywhere below only makes the wait shorter than
    // 300 ms from `start` if the slot came back early.
    const start = Date.now();
    await clients[0]!.zadd(slotsKey(pool), start + 300, 'dead:1');
    const fleet = bulkhead({ name: pool, store: stores[1]!, maxConcurrent: 1, maxQueue: 5 });
    await expect(resilient(async () => 'ran', { bulkhead: fleet })()).resolves.toBe('ran');
    expect(Date.now() - start).toBeGreaterThanOrEqual(250);
  });

  it('a running call keeps its slot past slotLease (renewed)', async () => {
    const pool = name();
    const fleet = bulkhead({ name: pool, store: stores[0]!, maxConcurrent: 1, slotLease: 150 });
    const holder = deferred();
    const held = resilient(() => holder.promise, { bulkhead: fleet })();
    await sleep(500);
    const other = bulkhead({ name: pool, store: stores[1]!, maxConcurrent: 1 });
    const full = await resilient(async () => 'ran', { bulkhead: other })().catch((e: unknown) => e);
    expect(full).toBeInstanceOf(BulkheadRejectedError);
    holder.resolve();
    await held;
  });

  it('while Redis is down: onStoreError local (default), allow, reject; events', async () => {
    const local = await RedisServer.start();
    const c = await connect(local.port);
    const s = redisStore(c, { commandTimeout: 100, recheckAfter: 50 });
    try {
      const pool = name();
      const events: ResilienceEvent[] = [];
      const make = (onStoreError?: 'allow' | 'reject') =>
        resilient(async () => 'ran', {
          bulkhead: bulkhead({
            name: pool,
            store: s,
            maxConcurrent: 1,
            ...(onStoreError === undefined ? {} : { onStoreError }),
          }),
        });
      const localMode = make();
      localMode.on((e) => events.push(e));
      await local.kill();
      await until(() => c.status !== 'ready', 2_000, 'disconnected');
      await expect(localMode()).resolves.toBe('ran');
      await until(() => events.some((e) => e.type === 'storeUnavailable'), 2_000, 'event');
      await expect(localMode()).resolves.toBe('ran');
      await expect(make('allow')()).resolves.toBe('ran');
      const rejected = await make('reject')().catch((e: unknown) => e);
      expect(rejected).toBeInstanceOf(BulkheadRejectedError);
      await local.launch();
      await until(() => c.status === 'ready', 5_000, 'reconnected');
      await sleep(60);
      await until(
        async () => {
          await localMode();
          return events.some((e) => e.type === 'storeRecovered');
        },
        3_000,
        'storeRecovered',
      );
    } finally {
      await s.close();
      c.disconnect();
      await local.stop();
    }
  });

  it('validates its options at wrap time; describe() shows the shared settings', () => {
    expect(() => bulkhead({ store: stores[0]! })).toThrow(/bulkhead\.name/);
    expect(() =>
      bulkhead({ name: 'x', store: stores[0]!, slotLease: 0, onStoreError: 'maybe' as never }),
    ).toThrow(/bulkhead\.slotLease[\s\S]*bulkhead\.onStoreError/);
    expect(() => bulkhead({ slotLease: 1_000 })).toThrow(
      /slotLease` applies to a bulkhead with a `store`/,
    );
    expect(() => bulkhead({ onStoreError: 'allow' })).toThrow(/onStoreError` applies/);
    const noBulkheads = { forRateLimiter() {}, forCircuit() {}, forCache() {} };
    expect(() => bulkhead({ name: 'x', store: noBulkheads as never })).toThrow(/forBulkhead/);
    const fleet = bulkhead({ name: 'described', store: stores[0]!, maxConcurrent: 50 });
    expect(fleet.describe()).toEqual({
      stage: 'bulkhead',
      name: 'described',
      maxConcurrent: 50,
      maxQueue: 0,
      queueTimeout: 'none',
      store: 'shared',
      slotLease: 5_000,
      onStoreError: 'local',
    });
    expect(JSON.stringify(resilient(async () => 1, { bulkhead: fleet }).describe())).toContain(
      '"store":"shared"',
    );
    expect(() => resilientSync(() => 1, { bulkhead: 1 } as never)).toThrow();
  });
});
