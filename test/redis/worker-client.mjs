// The Redis client of a worker process (fleet-worker.mjs, cache-worker.mjs), of the kind this test run
// uses (see server.ts): ioredis, or node-redis (BULWARK_REDIS_CLIENT=node-redis); a Cluster client
// when BULWARK_REDIS_CLUSTER=1. Connected, with bulwark/redis's recommended options.
import { Cluster, Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';

const IOREDIS_OPTIONS = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  retryStrategy: () => 50,
  lazyConnect: true,
};

/**
 * A plain ioredis connection to the server on `port` (a Cluster client on a cluster run: a counter's key
 * may live on any master), whatever the run's client: for a worker's control channel and counters,
 * which are the test's plumbing, not what the test is about. (A message published on one cluster node
 * reaches the subscribers of every node.)
 */
export async function connectIoredis(port) {
  if (process.env.BULWARK_REDIS_CLUSTER === '1') return connectCluster(port);
  const client = new Redis({ port, host: '127.0.0.1', ...IOREDIS_OPTIONS });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * An ioredis Cluster client with every master connected. On a loaded machine the first `CLUSTER SLOTS`
 * can take longer than ioredis's default 1 s (`connect()` then fails with "None of startup nodes is
 * available"): it gets 10 s, and a failed start is tried again (this is the worker's setup, before its
 * barrier, not what any test measures).
 */
async function connectCluster(port) {
  for (let attempt = 1; ; attempt++) {
    const client = new Cluster([{ host: '127.0.0.1', port }], {
      redisOptions: IOREDIS_OPTIONS,
      enableOfflineQueue: false,
      clusterRetryStrategy: () => 50,
      slotsRefreshTimeout: 10_000,
      lazyConnect: true,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      // ioredis connects to a Cluster's nodes lazily, on their first command: every master is
      // connected before the worker says it is ready, so that no first command pays for a connection.
      while (client.nodes('master').length < 3) await new Promise((r) => setTimeout(r, 10));
      await Promise.all(client.nodes('master').map((node) => node.ping()));
      return client;
    } catch (error) {
      client.disconnect();
      if (attempt === 5) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Resolves with `{ client, close }` connected to the server (or cluster node) on `port`. */
export async function connectWorker(port) {
  const cluster = process.env.BULWARK_REDIS_CLUSTER === '1';
  if (process.env.BULWARK_REDIS_CLIENT === 'node-redis') {
    const url = `redis://127.0.0.1:${port}`;
    const socket = { reconnectStrategy: () => 50 };
    const client = cluster
      ? createCluster({ rootNodes: [{ url }], defaults: { disableOfflineQueue: true, socket } })
      : createClient({ url, disableOfflineQueue: true, socket });
    client.on('error', () => undefined);
    await client.connect();
    // close(): the commands already given (a bulkhead's fire-and-forget releases) are sent first.
    return { client, close: () => client.close() };
  }
  if (cluster) {
    const client = await connectCluster(port);
    return { client, close: () => client.quit() };
  }
  const client = new Redis({ port, host: '127.0.0.1', ...IOREDIS_OPTIONS });
  client.on('error', () => undefined);
  await client.connect();
  return { client, close: () => client.quit() };
}
