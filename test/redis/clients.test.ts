import { createClient, createCluster } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cache, circuitBreaker, rateLimiter, resilient } from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { CLIENT, CLUSTER, connect, noRedis, RedisServer, until } from './server.js';

/**
 * What the client-parametrised suites cannot show: a policy name that would break the hash tag, and
 * node-redis inside the ioredis runs (createCluster, which the suites do not run on as a whole).
 */
describe.skipIf(noRedis)('Redis clients and hash tags', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('refuses a policy name with { or } for every policy: it is the hash tag of its keys', async () => {
    const client = await connect(server.port);
    const store = redisStore(client);
    for (const name of ['a{b', 'a}b', '{x}']) {
      expect(() => rateLimiter({ name, limit: 1, store })).toThrow(/no `\{` or `\}`/);
      expect(() => circuitBreaker({ name, store })).toThrow(/no `\{` or `\}`/);
      expect(() => cache({ name, store })).toThrow(/no `\{` or `\}`/);
    }
    client.disconnect();
  });

  // In the ioredis runs: node-redis too (createClient on a server, createCluster on the cluster), so that
  // a run on one client still covers the other's adapter.
  it.runIf(CLIENT === 'ioredis')(
    `node-redis ${CLUSTER ? 'createCluster' : 'createClient'}: limiter, breaker messages, cache single flight`,
    async () => {
      const url = `redis://127.0.0.1:${server.port}`;
      const socket = { reconnectStrategy: () => 50 };
      const cluster = CLUSTER
        ? createCluster({ rootNodes: [{ url }], defaults: { disableOfflineQueue: true, socket } })
        : createClient({ url, disableOfflineQueue: true, socket });
      cluster.on('error', () => undefined);
      await cluster.connect();
      const store = redisStore(cluster, { commandTimeout: 2_000 });
      // Limiter: one Lua script, routed by its key.
      const limited = resilient(async () => 1, {
        rateLimiter: rateLimiter({ name: 'nr-cluster', limit: 2, store }),
      });
      const results = await Promise.allSettled([limited(), limited(), limited()]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
      // Breaker: an open in one "process" reaches the other through pub/sub.
      const a = circuitBreaker({ name: 'nr-cluster', store, minimumCalls: 2 });
      const b = circuitBreaker({ name: 'nr-cluster', store, minimumCalls: 2 });
      await until(
        async () => {
          // subscribed: b hears an isolate from a
          a.isolate();
          await new Promise((resolve) => setTimeout(resolve, 50));
          return b.state === 'isolated';
        },
        10_000,
        'a message on the cluster',
      );
      a.reset();
      await until(() => b.state === 'closed', 5_000, 'closed everywhere');
      // Cache: one computation for two "processes".
      let computed = 0;
      const make = () =>
        resilient(
          async (id: string) => {
            computed++;
            await new Promise((resolve) => setTimeout(resolve, 100));
            return id;
          },
          { cache: { name: 'nr-cluster', store } },
        );
      expect(await Promise.all([make()('k'), make()('k')])).toEqual(['k', 'k']);
      expect(computed).toBe(1);
      await store.close();
      cluster.destroy();
    },
  );
});
