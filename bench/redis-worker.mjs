// One process of the fleet of bench/redis.mjs (fleet accuracy). argv: the redis-server's port. It runs one
// fleet run per line of JSON on stdin:
//   { lib: 'bulwark' | 'rlf', name, limit, interval, lease, duration, loops } (hammering), or with
//   `rate` (calls per second from this process) and `phase` (ms) instead of `loops` (paced).
// For each, it builds its limiter, prints `ready`, waits for `go` (the barrier: the fleet starts together
// however late each process is), calls for `duration` ms, and prints one JSON line: `[sent, admitted]`
// for every admitted call (Date.now() when the call was made and when the limited function ran), counts,
// and the stretches of time it acted locally (bulwark's storeUnavailable … storeRecovered). It exits
// when stdin closes.
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { rateLimiter, resilient } from '../dist/index.js';
import { redisStore } from '../dist/redis/index.js';

// The client the README recommends; each run's store has the default settings (commandTimeout 50 ms).
const client = new Redis({
  port: Number(process.argv[2]),
  host: '127.0.0.1',
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  lazyConnect: true,
});
client.on('error', () => undefined);
await client.connect();
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function run(options) {
  const admitted = [];
  let rejected = 0;
  let errors = 0;
  let events = 0;
  const episodes = [];
  /** The calls in flight, each as `{ sent }` (two may share a millisecond). */
  const inFlight = new Set();
  let call;
  let store;
  let closeEpisode = () => undefined;

  if (options.lib === 'bulwark') {
    store = redisStore(client);
    const limiter = rateLimiter({
      name: options.name,
      limit: options.limit,
      interval: options.interval,
      ...(options.lease > 1 ? { lease: options.lease } : {}),
      store,
    });
    // While this process acts locally: from its oldest call in flight when it noticed (the unanswered
    // command was sent no earlier) until the answer that brings it back, at the share it then applied.
    let down;
    let share = 0;
    limiter.on((event) => {
      if (event.type === 'storeUnavailable') {
        events++;
        down = Math.min(Date.now(), ...[...inFlight].map((c) => c.sent));
        share = limiter.limit / limiter.processes; // (internal: the count Redis last returned)
      } else if (event.type === 'storeRecovered' && down !== undefined) {
        episodes.push([down, Date.now(), share]);
        down = undefined;
      }
    });
    call = resilient(async () => Date.now(), { rateLimiter: limiter });
    closeEpisode = () => {
      if (down !== undefined) episodes.push([down, Date.now(), share]);
    };
  } else {
    // rate-limiter-flexible: `points` calls per `duration` seconds, a fixed window per key.
    const rlf = new RateLimiterRedis({
      storeClient: client,
      keyPrefix: options.name,
      points: options.limit,
      duration: options.interval / 1_000,
    });
    call = async () => {
      await rlf.consume('fleet');
      return Date.now();
    };
  }

  /** One call: its times when admitted; a rejection (a limit) or an error (anything else) counted. */
  async function attempt() {
    const sent = { sent: Date.now() };
    inFlight.add(sent);
    try {
      admitted.push([sent.sent, await call()]);
      return true;
    } catch (error) {
      // bulwark rejects with RateLimitedError, rate-limiter-flexible with a RateLimiterRes (no Error).
      if (error?.code === 'ERR_BULWARK_RATE_LIMITED' || !(error instanceof Error)) rejected++;
      else errors++;
      return false;
    } finally {
      inFlight.delete(sent);
    }
  }

  process.stdout.write('ready\n');
  const go = await lines.next();
  if (go.done || go.value.trim() !== 'go') throw new Error('no go');
  const start = Date.now();
  const end = start + options.duration;
  let offered = 0;

  if (options.rate === undefined) {
    // Hammering: `loops` callers, each calling again at once (a rejected caller lets the event loop
    // turn once, as a caller fed by I/O would, instead of starving it in microtasks).
    const loop = async () => {
      while (Date.now() < end) {
        offered++;
        if (!(await attempt())) await new Promise(setImmediate);
      }
    };
    await Promise.all(Array.from({ length: options.loops }, loop));
  } else {
    // Paced (open loop): call k is sent at start + phase + k × period, whether or not earlier calls
    // have been answered; a late timer sends the calls that are due at once.
    const period = 1_000 / options.rate;
    const pending = [];
    for (;;) {
      const due = start + options.phase + offered * period;
      if (due >= end) break;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
      offered++;
      pending.push(attempt());
    }
    await Promise.all(pending);
  }
  const stop = Date.now();
  closeEpisode();
  await store?.close();
  return { start, stop, offered, admitted, rejected, errors, events, episodes };
}

for (;;) {
  const line = await lines.next();
  if (line.done) break;
  process.stdout.write(`${JSON.stringify(await run(JSON.parse(line.value)))}\n`);
}
client.disconnect();
process.exit(0);
