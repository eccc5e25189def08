// One process of a fleet sharing a cache, for test/redis/cache-fleet.test.ts. It imports the built
// package (dist/), prints {"ready":true} once connected, then for each stdin line `go <phase>` calls the
// cached function for every key at once and prints what it computed; `exit` ends it.
// argv: port, JSON options { name, keys, ttl, lockTimeout, computeMs, hang }.
import { createInterface } from 'node:readline';
import { resilient } from '../../dist/index.js';
import { redisStore } from '../../dist/redis/index.js';
import { connectWorker } from './worker-client.mjs';

const [port, json] = process.argv.slice(2);
const options = JSON.parse(json);
const { client, close } = await connectWorker(Number(port));
// A generous command timeout: a busy machine must not look like a Redis outage here.
const store = redisStore(client, { commandTimeout: 2_000 });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const print = (report) => process.stdout.write(`${JSON.stringify(report)}\n`);

let computed = {};
const unavailable = [];
const fn = resilient(
  async (key) => {
    computed[key] = (computed[key] ?? 0) + 1;
    if (options.hang) {
      print({ computing: key, at: Date.now() });
      await new Promise(() => undefined); // killed while computing
    }
    await sleep(options.computeMs);
    return `${key}@${process.pid}`;
  },
  {
    cache: {
      name: options.name,
      store,
      ttl: options.ttl,
      ...(options.lockTimeout === undefined ? {} : { lockTimeout: options.lockTimeout }),
    },
  },
);
fn.on((event) => {
  if (event.type === 'storeUnavailable') unavailable.push(String(event.error));
});

print({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  const [command, phase] = line.trim().split(' ');
  if (command === 'exit') break;
  if (command !== 'go') continue;
  computed = {};
  const values = await Promise.all(options.keys.map((key) => fn(key)));
  print({ phase, computed, values, unavailable, done: Date.now() });
}
await store.close();
close();
