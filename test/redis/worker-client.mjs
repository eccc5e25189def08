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
 * A plain ioredis connection to the server on `port`, whatever the run's client: for a worker's control
 * channel and counters, which are the test's plumbing, not what the test is about.
 */
export async function connectIoredis(port) {
  const client = new Redis({ port, host: '127.0.0.1', ...IOREDIS_OPTIONS });
  client.on('error', () => undefined);
  await client.connect();
  return client;
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
    return { client, close: () => client.destroy() };
  }
  const options = IOREDIS_OPTIONS;
  const client = cluster
    ? new Cluster([{ host: '127.0.0.1', port }], {
        redisOptions: options,
        enableOfflineQueue: false,
        clusterRetryStrategy: () => 50,
        lazyConnect: true,
      })
    : new Redis({ port, host: '127.0.0.1', ...options });
  client.on('error', () => undefined);
  await client.connect();
  if (cluster) {
    // ioredis connects to a Cluster's nodes lazily, on their first command: every master is connected
    // before the worker says it is ready, so that no first command pays for a connection.
    while (client.nodes('master').length < 3) await new Promise((r) => setTimeout(r, 10));
    await Promise.all(client.nodes('master').map((node) => node.ping()));
  }
  return { client, close: () => client.disconnect() };
}
