/**
 * The README's "Many processes" example, as pasted (with the test server's port), run at once after
 * the client is made: a connection still being established is not an outage. On the cluster run, the
 * same with the Cluster clients the README's client table shows (ioredis `new Cluster(...)`, node-redis
 * `createCluster(...)`).
 */
import { Cluster, Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cache, circuitBreaker, rateLimiter, resilient } from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { CLUSTER, noRedis, RedisServer, until } from './server.js';

/** The README's client (`new Redis(options)`), or on a cluster run the Cluster client of its table. */
function ioredis(port: number, options: { retryStrategy?: () => number } = {}): Redis {
  if (!CLUSTER)
    return new Redis({ port, enableOfflineQueue: false, maxRetriesPerRequest: 1, ...options });
  return new Cluster([{ host: '127.0.0.1', port }], {
    enableOfflineQueue: false,
    redisOptions: { maxRetriesPerRequest: 1 },
    ...(options.retryStrategy === undefined ? {} : { clusterRetryStrategy: options.retryStrategy }),
  }) as unknown as Redis;
}

describe.skipIf(noRedis)('the README example (Many processes)', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('runs as pasted: the first calls wait for the connection, no false storeUnavailable', async () => {
    const fetchUser = async (id: number) => ({ id, name: 'Ada' });
    const errors: string[] = [];

    // No offline queue: while Redis is unreachable a command fails at once instead of queueing to run late.
    // (While the first connection is being made, the store's commands wait for it, within commandTimeout.)
    const redis = CLUSTER
      ? ioredis(server.port)
      : new Redis({
          port: server.port, // (the test server's port)
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
        });
    // Without a listener, ioredis logs every connection error; the policies report outages as events.
    redis.on('error', (error) => errors.push(error.message));
    // (commandTimeout raised from 50 ms: a loaded CI machine may take longer than that to connect.)
    const store = redisStore(redis, { prefix: 'checkout:', commandTimeout: 2_000 });

    const getUser = resilient(fetchUser, {
      circuitBreaker: circuitBreaker({ name: 'users-api', store, failureRateThreshold: 0.5 }),
      rateLimiter: rateLimiter({ name: 'users-api', limit: 200, lease: 10, store }),
      cache: cache({ name: 'users', ttl: 30_000, staleIfError: 300_000, store }),
    });
    const events: string[] = [];
    getUser.on((event) => events.push(event.type));

    expect(redis.status).not.toBe('ready'); // called right away, as a short script would
    await expect(getUser(1)).resolves.toEqual({ id: 1, name: 'Ada' });
    await expect(getUser(1)).resolves.toEqual({ id: 1, name: 'Ada' });
    expect(events).not.toContain('storeUnavailable');
    expect(await redis.exists('checkout:rl:{users-api}')).toBe(1);

    // On shutdown: the store's message connection, then your client.
    await store.close();
    redis.disconnect();
    expect(errors).toEqual([]);
  });

  it('node-redis: a connect() not awaited yet is waited for, not an outage', async () => {
    const url = `redis://127.0.0.1:${server.port}`;
    const client = CLUSTER
      ? createCluster({ rootNodes: [{ url }], defaults: { disableOfflineQueue: true } })
      : createClient({ url, disableOfflineQueue: true });
    client.on('error', () => undefined);
    const connecting = client.connect();
    const store = redisStore(client, { commandTimeout: 2_000 });
    const limited = resilient(async () => 'ok', {
      rateLimiter: rateLimiter({ name: 'node-redis-first', limit: 10, store }),
    });
    const events: string[] = [];
    limited.on((event) => events.push(event.type));
    if (!CLUSTER) expect(client.isReady).toBe(false);
    else expect(client.masters).toHaveLength(0); // not connected yet
    await expect(limited()).resolves.toBe('ok');
    expect(events).not.toContain('storeUnavailable');
    await connecting;
    await store.close();
    client.destroy();
  });

  it('after the first connection, a reconnection is an outage again: commands fail at once', async () => {
    const local = await RedisServer.start();
    const redis = ioredis(local.port, { retryStrategy: () => 50 });
    redis.on('error', () => undefined);
    const store = redisStore(redis, { commandTimeout: 60_000 });
    const limiter = rateLimiter({ name: 'reconnect', limit: 10, store });
    const limited = resilient(async () => 'ok', { rateLimiter: limiter });
    const events: string[] = [];
    limited.on((event) => events.push(event.type));
    try {
      await expect(limited()).resolves.toBe('ok'); // waited for the first connection
      expect(events).not.toContain('storeUnavailable');
      await local.kill();
      // (A Cluster stays `ready` while its nodes reconnect: its masters tell.)
      const down = (): boolean =>
        CLUSTER
          ? (redis as unknown as Cluster).nodes('master').some((node) => node.status !== 'ready')
          : redis.status !== 'ready';
      await until(down, 5_000, 'disconnected');
      // Not a 60 s wait for a connection that may never come: the store is unavailable at once (the
      // limiter then acts locally, from an empty bucket: this call may be refused).
      const started = performance.now();
      await limited().catch(() => undefined);
      expect(performance.now() - started).toBeLessThan(30_000);
      expect(events).toContain('storeUnavailable');
    } finally {
      redis.disconnect();
      await store.close();
      await local.stop();
    }
  });
});
