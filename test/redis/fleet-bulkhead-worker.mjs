// One process of a fleet sharing a bulkhead, for test/redis/fleet-bulkhead.test.ts: it imports the
// built package (dist/), waits at a barrier ('go:<role>' on the control channel), and prints one
// JSON line.
// A `worker` makes `calls` calls, 8 at a time, each running 20-40 ms, and reports when each ran. A
// `victim` starts `hold` calls that never end (it is killed with SIGKILL while they run).
// argv: port, JSON options { name, id, role, maxConcurrent, slotLease, calls, hold }.
import { bulkhead, resilient } from '../../dist/index.js';
import { redisStore } from '../../dist/redis/index.js';
import { connectIoredis, connectWorker } from './worker-client.mjs';

const [port, json] = process.argv.slice(2);
const options = JSON.parse(json);
// The store's client is of the run's kind (ioredis, node-redis or Cluster: see worker-client.mjs); the
// control channel and the counters are plain ioredis connections.
const { client, close } = await connectWorker(Number(port));
const control = await connectIoredis(Number(port));
const counters = await connectIoredis(Number(port));
// A slow answer on a busy 2-core machine is not an outage: this test is about the fleet's slots.
const store = redisStore(client, { commandTimeout: 1_000 });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const { name } = options;

const pool = bulkhead({
  name,
  store,
  maxConcurrent: options.maxConcurrent,
  maxQueue: 1_000,
  slotLease: options.slotLease,
});
let storeUnavailable = 0;
pool.on((event) => {
  if (event.type === 'storeUnavailable') storeUnavailable++;
});
let go;
const started = new Promise((resolve) => (go = resolve));
control.on('message', (_channel, message) => {
  if (message === `go:${options.role}`) go();
});
await control.subscribe(`${name}:control`);
await counters.incr(`${name}:ready`);
await started;

if (options.role === 'victim') {
  const hang = resilient(
    async () => {
      await counters.incr(`${name}:victim`);
      await new Promise(() => undefined);
    },
    { bulkhead: pool },
  );
  for (let i = 0; i < options.hold; i++) void hang();
  await new Promise(() => undefined); // until killed
}

const runs = [];
let rejected = 0;
const work = resilient(
  async () => {
    const start = Date.now();
    await sleep(20 + Math.random() * 20);
    runs.push([start, Date.now()]);
    await counters.incr(`${name}:done`);
  },
  { bulkhead: pool },
);
let left = options.calls;
const loop = async () => {
  while (left > 0) {
    left--;
    await work().catch(() => rejected++);
  }
};
await Promise.all(Array.from({ length: 8 }, loop));
process.stdout.write(`${JSON.stringify({ runs, rejected, storeUnavailable })}\n`);
await store.close();
close();
control.disconnect();
counters.disconnect();
