// One process of a fleet, for test/redis/fleet.test.ts: it imports the built package (dist/), does
// what its role says from `startAt` (Date.now() ms) on, and prints one JSON line with what it saw.
// argv: port, role, JSON options.
import { Redis } from 'ioredis';
import { circuitBreaker, rateLimiter, resilient } from '../../dist/index.js';
import { redisStore } from '../../dist/redis/index.js';

const [port, role, json] = process.argv.slice(2);
const options = JSON.parse(json);
const client = new Redis({
  port: Number(port),
  host: '127.0.0.1',
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  retryStrategy: () => 50,
  lazyConnect: true,
});
client.on('error', () => undefined);
await client.connect();
const store = redisStore(client, { commandTimeout: 200 });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const untilStart = () => sleep(Math.max(0, options.startAt - Date.now()));
let report;

if (role === 'limit') {
  // As many calls as it can for `duration` ms, 4 at a time; the times of the admitted ones.
  const fn = resilient(async () => Date.now(), {
    rateLimiter: rateLimiter({
      name: options.name,
      limit: options.limit,
      lease: options.lease,
      store,
    }),
  });
  const admitted = [];
  let rejected = 0;
  await untilStart();
  const end = options.startAt + options.duration;
  const loop = async () => {
    while (Date.now() < end) {
      try {
        admitted.push(await fn());
      } catch {
        rejected++;
        await sleep(2);
      }
    }
  };
  await Promise.all([loop(), loop(), loop(), loop()]);
  report = { admitted, rejected };
} else if (role === 'open' || role === 'watch') {
  // `open` fails calls until its breaker opens; `watch` makes no call and waits to hear of it. Then,
  // past halfOpenAfter, every process calls a slow function that counts the runs made half-open.
  const breaker = circuitBreaker({
    name: options.name,
    store,
    minimumCalls: 10,
    halfOpenAfter: options.halfOpenAfter,
  });
  let halfOpenRuns = 0;
  let runs = 0;
  const probe = resilient(
    async () => {
      runs++;
      if (breaker.state === 'halfOpen') halfOpenRuns++;
      await sleep(200);
      return 'ok';
    },
    { circuitBreaker: breaker },
  );
  await sleep(100); // subscribed
  await untilStart();
  if (role === 'open') {
    const fail = resilient(
      async () => {
        throw new Error('down');
      },
      { circuitBreaker: breaker },
    );
    for (let i = 0; i < 10; i++) await fail().catch(() => undefined);
  }
  while (breaker.state !== 'open' && Date.now() < options.startAt + 3_000) await sleep(5);
  const openedAfter = breaker.state === 'open' ? Date.now() - options.startAt : -1;
  // Past halfOpenAfter (on this process's clock too), everybody calls until the fleet is closed.
  await sleep(options.halfOpenAfter + 50);
  const rejectedWhileTrial = [];
  const end = Date.now() + 1_500;
  while (Date.now() < end) {
    const result = await probe().catch((error) => error);
    if (result !== 'ok') rejectedWhileTrial.push(result.code);
    else if (breaker.state === 'closed') break;
    await sleep(10);
  }
  await sleep(200);
  report = { openedAfter, runs, halfOpenRuns, state: breaker.state, rejectedWhileTrial };
}

process.stdout.write(`${JSON.stringify(report)}\n`);
await store.close();
client.disconnect();
