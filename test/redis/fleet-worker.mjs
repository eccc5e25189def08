// One process of a fleet, for test/redis/fleet.test.ts: it imports the built package (dist/), sets up,
// prints `ready`, waits for `go` on stdin (the barrier: every process starts together, however late
// each one was to boot), does what its role says, and prints one JSON line with what it saw.
// argv: port, role, JSON options. Times are Date.now() ms (one clock: every worker runs on this host).
import { createInterface } from 'node:readline';
import { circuitBreaker, rateLimiter, resilient } from '../../dist/index.js';
import { redisStore } from '../../dist/redis/index.js';
import { connectWorker } from './worker-client.mjs';

const [port, role, json] = process.argv.slice(2);
const options = JSON.parse(json);
const { client, close } = await connectWorker(Number(port));
// Default store settings unless the test says otherwise (commandTimeout 50 ms, recheckAfter 1 s).
const store = redisStore(client, options.store ?? {});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Tells the parent this process is ready, and resolves when the parent releases every process. */
async function barrier() {
  process.stdout.write('ready\n');
  const line = await lines.next();
  if (line.done || line.value.trim() !== 'go') throw new Error('no go');
  return Date.now();
}

let report;

if (role === 'limit') {
  // `loops` callers, each calling again at once for `duration` ms (no sleep; a rejected caller only
  // lets the event loop turn, as a caller fed by I/O would, instead of starving it in microtasks):
  // the times of the admitted calls (when each ran, and when it was made: its token was granted in
  // between, however late a busy event loop read the reply), and each stretch of time this process acted locally (store
  // unavailable), from the oldest call in flight when it noticed (the unanswered command was sent no
  // earlier), with the share of the limit it then applied (limit / processes Redis last counted).
  const limiter = rateLimiter({
    name: options.name,
    limit: options.limit,
    ...(options.lease === undefined ? {} : { lease: options.lease }),
    ...(options.maxWait === undefined ? {} : { maxWait: options.maxWait }),
    store,
  });
  const fn = resilient(async () => Date.now(), { rateLimiter: limiter });
  const loops = options.loops;
  const inFlight = new Array(loops).fill(Infinity);
  const episodes = [];
  let down;
  let share = 0;
  limiter.on((event) => {
    if (event.type === 'storeUnavailable') {
      down = Math.min(Date.now(), ...inFlight);
      share = limiter.limit / limiter.processes; // (internal: the count Redis last returned)
    }
    if (event.type === 'storeRecovered' && down !== undefined) {
      episodes.push([down, Date.now(), share]);
      down = undefined;
    }
  });
  const admitted = [];
  const made = [];
  let rejected = 0;
  const start = await barrier();
  const end = start + options.duration;
  const loop = async (i) => {
    while (Date.now() < end) {
      const at = Date.now();
      inFlight[i] = at;
      try {
        admitted.push(await fn());
        made.push(at);
      } catch {
        rejected++;
        await new Promise(setImmediate);
      }
      inFlight[i] = Infinity;
    }
  };
  await Promise.all(Array.from({ length: loops }, (_, i) => loop(i)));
  const stop = Date.now();
  if (down !== undefined) episodes.push([down, stop, share]);
  report = { start, stop, admitted, made, rejected, episodes };
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
  // The guarantees hold while Redis answers: a command unanswered within commandTimeout (a starved
  // redis-server on a loaded machine) makes this process decide alone, as documented.
  let storeTrouble = 0;
  breaker.on((event) => {
    if (event.type === 'storeUnavailable') storeTrouble++;
  });
  const probe = resilient(
    async () => {
      runs++;
      if (breaker.state === 'halfOpen') halfOpenRuns++;
      await sleep(200);
      return 'ok';
    },
    { circuitBreaker: breaker },
  );
  // (The parent releases the fleet once every breaker's message connection is subscribed.)
  const start = await barrier();
  if (role === 'open') {
    const fail = resilient(
      async () => {
        throw new Error('down');
      },
      { circuitBreaker: breaker },
    );
    for (let i = 0; i < 10; i++) await fail().catch(() => undefined);
  }
  while (breaker.state !== 'open' && Date.now() < start + 5_000) await sleep(5);
  const openedAfter = breaker.state === 'open' ? Date.now() - start : -1;
  // Past halfOpenAfter (on this process's clock too), everybody calls until the fleet is closed.
  await sleep(options.halfOpenAfter + 50);
  const rejectedWhileTrial = [];
  const end = Date.now() + 3_000;
  while (Date.now() < end) {
    const result = await probe().catch((error) => error);
    if (result !== 'ok') rejectedWhileTrial.push(result.code);
    else if (breaker.state === 'closed') break;
    await sleep(10);
  }
  await sleep(200);
  report = {
    openedAfter,
    runs,
    halfOpenRuns,
    state: breaker.state,
    rejectedWhileTrial,
    storeTrouble,
  };
}

process.stdout.write(`${JSON.stringify(report)}\n`);
await store.close();
close();
process.exit(0);
