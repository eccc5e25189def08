// `npm run bench:redis`: the latency each Redis-backed policy adds to a call, against the same policy
// in memory. Starts its own redis-server on a free loopback port (no persistence) and stops it after.
//
//   npm run bench:redis                 build, then 7 rounds of 3,000 sequential calls per case
//   node bench/redis.mjs --rounds 3     fewer rounds (uses dist/ as it is)
//
// Each case awaits its calls one after another (latency, not throughput) through one resilient()
// function; a round's mean is its time / calls, and the table shows the median round. Redis runs on
// this machine: over a network, add your round-trip time to every case that makes a round trip.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { cache, circuitBreaker, rateLimiter, resilient } from '../dist/index.js';
import { redisStore } from '../dist/redis/index.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const ROUNDS = flag('--rounds', 7);
const CALLS = flag('--calls', 3_000);

const port = await new Promise((resolve, reject) => {
  const server = createServer();
  server.once('error', reject);
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    server.close(() => resolve(port));
  });
});
const redis = spawn(
  'redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
await new Promise((resolve, reject) => {
  let out = '';
  redis.once('error', reject);
  redis.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
  redis.stdout.on('data', (chunk) => {
    out += chunk;
    if (out.includes('Ready to accept connections')) resolve();
  });
});
redis.stdout.resume();

const client = new Redis({
  port,
  host: '127.0.0.1',
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  lazyConnect: true,
});
await client.connect();
const store = redisStore(client, { commandTimeout: 1_000 });

const value = { id: 42, name: 'Ada Lovelace', roles: ['admin', 'author'] };
const fetchUser = async (id) => (id === undefined ? value : value);
// A limit the benchmark never reaches; a lease lasts as long as its tokens take to accrue (100 µs for 100).
const huge = 1_000_000;

/** [policy, variant, make()] — make returns the function to call; every call uses key 1. */
const CASES = [
  ['none', 'bare resilient()', () => resilient(fetchUser, {})],
  [
    'rateLimiter',
    'in memory',
    () => resilient(fetchUser, { rateLimiter: rateLimiter({ limit: huge }) }),
  ],
  [
    'rateLimiter',
    'Redis, exact (lease 1)',
    () =>
      resilient(fetchUser, {
        rateLimiter: rateLimiter({ name: 'bench-rl-1', limit: huge, store }),
      }),
  ],
  [
    'rateLimiter',
    'Redis, lease 100',
    () =>
      resilient(fetchUser, {
        rateLimiter: rateLimiter({ name: 'bench-rl-100', limit: huge, lease: 100, store }),
      }),
  ],
  [
    'circuitBreaker',
    'in memory',
    () => resilient(fetchUser, { circuitBreaker: circuitBreaker({}) }),
  ],
  [
    'circuitBreaker',
    'Redis (closed, batched flushes)',
    () => resilient(fetchUser, { circuitBreaker: circuitBreaker({ name: 'bench-cb', store }) }),
  ],
  ['cache', 'in memory, hit', () => resilient(fetchUser, { cache: cache({ ttl: 600_000 }) })],
  [
    'cache',
    'Redis, hit',
    () => resilient(fetchUser, { cache: cache({ name: 'bench-cache', ttl: 600_000, store }) }),
  ],
];

async function round(fn) {
  const start = performance.now();
  for (let i = 0; i < CALLS; i++) await fn(1);
  return ((performance.now() - start) * 1_000) / CALLS; // µs per call
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = [];
for (const [policy, variant, make] of CASES) {
  const fn = make();
  await round(fn); // warm-up: JIT, the cache's first fill, the limiter's first lease
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) rounds.push(await round(fn));
  results.push({ policy, variant, us: median(rounds) });
  process.stderr.write(`${policy} / ${variant}: ${median(rounds).toFixed(2)} µs\n`);
}

const memory = Object.fromEntries(
  results.filter((r) => r.variant.startsWith('in memory')).map((r) => [r.policy, r.us]),
);
const fmt = (us) => (us < 10 ? us.toFixed(2) : us.toFixed(1));
const lines = [
  `Node ${process.version}, redis-server on loopback, ${ROUNDS} rounds × ${CALLS.toLocaleString('en')} sequential calls, median round.`,
  '',
  '| policy | variant | µs per call | added vs in memory |',
  '| --- | --- | ---: | ---: |',
  ...results.map(({ policy, variant, us }) => {
    const base = memory[policy];
    const added =
      base === undefined || variant.startsWith('in memory')
        ? ''
        : `${us >= base ? '+' : '−'}${fmt(Math.abs(us - base))}`;
    return `| ${policy} | ${variant} | ${fmt(us)} | ${added} |`;
  }),
];
process.stdout.write(`${lines.join('\n')}\n`);

await store.close();
client.disconnect();
redis.removeAllListeners('exit');
redis.kill('SIGTERM');
