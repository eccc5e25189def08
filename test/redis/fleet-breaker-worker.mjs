// One busy process of a fleet sharing a circuit breaker, for test/redis/fleet-breaker.test.ts. It
// imports the built package (dist/), waits at a barrier, hammers the downstream, and prints one JSON
// line with what it saw. The test drives it through the control channel:
//   'go' (start), 'down:<id>' or 'down:all' (the downstream fails), 'stop' (report and exit).
// A call made while this process's breaker is half-open is a trial: it is logged in one Redis list
// (`<name>:trials`), and fails until `trialsToFail` trials have run fleet-wide.
// argv: port, JSON options { name, id, halfOpenAfter, breaker, trialsToFail }.
import { circuitBreaker, isResilienceError, resilient } from '../../dist/index.js';
import { redisStore } from '../../dist/redis/index.js';
import { connectIoredis, connectWorker } from './worker-client.mjs';

const [port, json] = process.argv.slice(2);
const options = JSON.parse(json);
// The store's client is of the run's kind (ioredis, node-redis or Cluster: see worker-client.mjs); the
// control channel and the counters are plain ioredis connections.
const { client, close } = await connectWorker(Number(port));
const control = await connectIoredis(Number(port));
const counters = await connectIoredis(Number(port));
// A slow answer on a busy 2-core machine is not an outage: this test is about the fleet's logic, not
// the (documented) local fallback while Redis is unreachable.
const store = redisStore(client, { commandTimeout: 1_000 });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const { id, name } = options;

const breaker = circuitBreaker({
  name,
  store,
  halfOpenAfter: options.halfOpenAfter,
  ...options.breaker,
});
let firstOpenAt;
let storeUnavailable = 0;
breaker.on((event) => {
  if (event.type === 'circuitOpened') firstOpenAt ??= Date.now();
  if (event.type === 'storeUnavailable') storeUnavailable++;
});

let down = false;
let stopped = false;
let started;
const go = new Promise((resolve) => (started = resolve));
let stop;
const stopping = new Promise((resolve) => (stop = resolve));
control.on('message', (_channel, message) => {
  if (message === 'go') started();
  else if (message === 'down:all' || message === `down:${id}`) down = true;
  else if (message === 'stop') {
    stopped = true;
    stop();
  }
});
await control.subscribe(`${name}:control`);

let calls = 0;
let successes = 0;
let rejections = 0;
let firstRejectAt;
const fn = resilient(
  async () => {
    calls++;
    if (breaker.state === 'halfOpen') {
      const n = await counters.rpush(`${name}:trials`, `${id}:${Date.now()}`);
      if (n <= options.trialsToFail) throw new Error('down (trial)');
      return 'ok';
    }
    if (down) throw new Error('down');
    return 'ok';
  },
  { circuitBreaker: breaker },
);

await sleep(50); // the breaker's subscription is up
await counters.incr(`${name}:ready`);
await go;
const loop = async () => {
  while (!stopped) {
    try {
      await fn();
      if (++successes === 150) await counters.incr(`${name}:warm`);
    } catch (error) {
      if (isResilienceError(error) && error.code === 'ERR_BULWARK_CIRCUIT_OPEN') {
        rejections++;
        firstRejectAt ??= Date.now();
      }
    }
    await sleep(1);
  }
};
await Promise.all([loop(), loop(), stopping]);
process.stdout.write(
  `${JSON.stringify({ id, calls, successes, rejections, firstOpenAt, firstRejectAt, storeUnavailable })}\n`,
);
await store.close();
close();
control.disconnect();
counters.disconnect();
