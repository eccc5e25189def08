// `npm run bench:redis`: bulwark/redis on a real redis-server, in three parts, next to
// rate-limiter-flexible (RLF) on the same server where it has an equivalent:
//
//   1. latency: what each Redis-backed policy adds to a call, against the same policy in memory;
//   2. cost per check: p50/p99 of one rate-limiter check (bulwark exact, bulwark with a lease, RLF's
//      `consume`) against a plain PING on the same connection, sequential samples;
//   3. fleet accuracy: 4 processes (bench/redis-worker.mjs, released together through a barrier) share a
//      limit of 200/s for 5 s, hammering and paced just under and just over the limit; the busiest
//      second and the total admitted, against each limiter's bound.
//
//   npm run bench:redis                      build, then all three (~1.5 min); prints the tables and
//                                            writes bench/results/local/redis.json (git-ignored)
//   npm run bench:redis -- --update          the same, then writes bench/results/redis.json and the
//                                            tables into bench/README.md (a full run only)
//   node bench/redis.mjs --rounds 3 --calls 1000 --samples 2000 --seconds 3    shorter (dist/ as it is)
//   node bench/redis.mjs --report            only rewrites the README's tables from results/redis.json
//
// It starts its own redis-server on a free loopback port (no persistence) and stops it at the end, on
// an error, and on SIGINT/SIGTERM. Redis runs on this machine: over a network, add your round trip.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { cache, circuitBreaker, rateLimiter, resilient } from '../dist/index.js';
import { redisStore } from '../dist/redis/index.js';
import {
  busiestContained,
  busiestWindow,
  fixedWindowBound,
  gcraBound,
  localAllowance,
  markdownTable,
  percentile,
  replaceSection,
  span,
} from './lib/fleet.mjs';
import { startRedisServer, track } from './lib/redis-server.mjs';
import { fmtRatio } from './lib/report.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);
const WORKER = join(BENCH, 'redis-worker.mjs');

const args = process.argv.slice(2);
const DEFAULTS = { '--rounds': 7, '--calls': 3_000, '--samples': 5_000, '--seconds': 5 };
const flag = (name) => {
  const i = args.indexOf(name);
  return i === -1 ? DEFAULTS[name] : Number(args[i + 1]);
};
const ROUNDS = flag('--rounds');
const CALLS = flag('--calls');
const SAMPLES = flag('--samples');
const SECONDS = flag('--seconds');
const UPDATE = args.includes('--update');
if (UPDATE && Object.keys(DEFAULTS).some((name) => args.includes(name))) {
  throw new Error('--update publishes a full run: it cannot be combined with shorter settings');
}

/** The fleet's limiter: the same numbers for bulwark and RLF (points = limit, duration = interval). */
const FLEET = Object.freeze({
  processes: 4,
  loops: 20, // concurrent callers per process when hammering
  limit: 200,
  interval: 1_000,
  burst: 200, // bulwark's default (= limit); RLF admits `points` at once at the start of a window
  lease: 10, // the lease mode's lease (the README's example); exact mode is lease 1
});

const LOADS = [
  {
    id: 'hammer',
    title: `hammering (${FLEET.processes} × ${FLEET.loops} callers, no pause)`,
  },
  { id: 'under', title: 'paced at 95 % of the limit', factor: 0.95 },
  { id: 'over', title: 'paced at 105 % of the limit', factor: 1.05 },
];

const LIMITERS = [
  { id: 'exact', title: 'bulwark, exact', lib: 'bulwark', lease: 1 },
  { id: 'lease', title: `bulwark, lease ${FLEET.lease}`, lib: 'bulwark', lease: FLEET.lease },
  { id: 'rlf', title: 'RLF RateLimiterRedis', lib: 'rlf', lease: 0 },
];

const T0 = performance.now();
const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  node: process.version,
  loadavg: os.loadavg(),
  loadavgMax: os.loadavg()[0],
  niceness: os.getPriority(),
};
const sampleLoad = () => (machine.loadavgMax = Math.max(machine.loadavgMax, os.loadavg()[0]));
const log = (line) => process.stderr.write(`${line}\n`);
const fmt = (us) => (us < 10 ? us.toFixed(2) : us.toFixed(1));
const int = (n) => Math.round(n).toLocaleString('en');

// ---------------------------------------------------------------------------------------------------
// Part 1: latency of each Redis-backed policy against the same policy in memory
// ---------------------------------------------------------------------------------------------------

const value = { id: 42, name: 'Ada Lovelace', roles: ['admin', 'author'] };
const fetchUser = async (id) => (id === undefined ? value : value);
// A limit the benchmark never reaches; a lease lasts as long as its tokens take to accrue (100 µs for 100).
const huge = 1_000_000;

/** [policy, variant, make(store)] — make returns the function to call; every call uses key 1. */
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
    (store) =>
      resilient(fetchUser, {
        rateLimiter: rateLimiter({ name: 'bench-rl-1', limit: huge, store }),
      }),
  ],
  [
    'rateLimiter',
    'Redis, lease 100',
    (store) =>
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
    (store) =>
      resilient(fetchUser, { circuitBreaker: circuitBreaker({ name: 'bench-cb', store }) }),
  ],
  ['cache', 'in memory, hit', () => resilient(fetchUser, { cache: cache({ ttl: 600_000 }) })],
  [
    'cache',
    'Redis, hit',
    (store) => resilient(fetchUser, { cache: cache({ name: 'bench-cache', ttl: 600_000, store }) }),
  ],
];

async function round(fn) {
  const start = performance.now();
  for (let i = 0; i < CALLS; i++) await fn(1);
  return ((performance.now() - start) * 1_000) / CALLS; // µs per call
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function latency(store) {
  const results = [];
  for (const [policy, variant, make] of CASES) {
    const fn = make(store);
    await round(fn); // warm-up: JIT, the cache's first fill, the limiter's first lease
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) rounds.push(await round(fn));
    results.push({ policy, variant, us: median(rounds) });
    log(`${policy} / ${variant}: ${median(rounds).toFixed(2)} µs`);
  }
  return results;
}

function latencyTable(results, { rounds, calls }) {
  const memory = Object.fromEntries(
    results.filter((r) => r.variant.startsWith('in memory')).map((r) => [r.policy, r.us]),
  );
  return [
    `${rounds} rounds × ${calls.toLocaleString('en')} sequential calls, median round.`,
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
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Part 2: cost per check, against a PING on the same connection
// ---------------------------------------------------------------------------------------------------

/**
 * The cost part's limit: no check is refused (the burst, = limit, is more than the checks made), and a
 * lease of 10 lasts 1 ms (leased tokens expire after the time they take to accrue), many local checks.
 */
const COST_LIMIT = 10_000;
const BLOCK = 500;
/** The commands a client sends for a check (the commands a script runs inside Redis are counted apart). */
const SENT = ['ping', 'evalsha', 'eval', 'evalsha_ro', 'eval_ro'];

/** Redis's counters: every command run (those inside scripts too), and those the clients sent. */
async function redisCounters(client) {
  const info = await client.call('INFO', 'stats', 'commandstats');
  const calls = (name) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  return {
    commands: Number(/total_commands_processed:(\d+)/.exec(info)[1]),
    sent: SENT.reduce((sum, name) => sum + calls(name), 0),
  };
}

async function checkCost(client, store) {
  const rlf = new RateLimiterRedis({
    storeClient: client,
    keyPrefix: 'bench-cost-rlf',
    points: COST_LIMIT,
    duration: 1,
  });
  const limited = (lease) =>
    resilient(async () => 0, {
      rateLimiter: rateLimiter({
        name: `bench-cost-${lease}`,
        limit: COST_LIMIT,
        ...(lease > 1 ? { lease } : {}),
        store,
      }),
    });
  const subjects = [
    { title: 'PING', config: '`client.ping()`', call: () => client.ping() },
    {
      title: 'bulwark, exact',
      config: `\`rateLimiter({ limit: ${int(COST_LIMIT)}, store })\``,
      call: limited(1),
    },
    {
      title: `bulwark, lease ${FLEET.lease}`,
      config: `\`rateLimiter({ limit: ${int(COST_LIMIT)}, lease: ${FLEET.lease}, store })\``,
      call: limited(FLEET.lease),
    },
    {
      title: 'RLF consume',
      config: `\`new RateLimiterRedis({ points: ${int(COST_LIMIT)}, duration: 1 }).consume(key)\``,
      call: () => rlf.consume('k'),
    },
  ];
  for (const s of subjects) {
    s.samples = [];
    s.commands = 0;
    s.sent = 0;
    for (let i = 0; i < BLOCK; i++) await s.call(); // warm-up
  }
  // Blocks of BLOCK checks, the subjects' order rotating from block to block (a drift in machine
  // speed hits them all); each check timed on its own. Redis's counters around each block (minus the
  // INFO that reads them) say what a check costs Redis.
  for (let b = 0; b < Math.ceil(SAMPLES / BLOCK); b++) {
    for (let k = 0; k < subjects.length; k++) {
      const s = subjects[(b + k) % subjects.length];
      const before = await redisCounters(client);
      for (let i = 0; i < BLOCK; i++) {
        const t0 = performance.now();
        await s.call();
        s.samples.push((performance.now() - t0) * 1_000);
      }
      const after = await redisCounters(client);
      s.commands += after.commands - before.commands - 1;
      s.sent += after.sent - before.sent;
    }
  }
  return subjects.map(({ title, config, samples, commands, sent }) => {
    const sorted = samples.sort((a, b) => a - b);
    return {
      title,
      config,
      samples: sorted.length,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      commands: commands / sorted.length,
      roundTrips: sent / sorted.length,
    };
  });
}

function costTable(rows) {
  const ping = rows[0];
  return markdownTable(
    [
      ['check', 'l'],
      ['configuration', 'l'],
      ['p50 µs', 'r'],
      ['p99 µs', 'r'],
      ['p50 × PING', 'r'],
      ['p99 × PING', 'r'],
      ['round trips per check', 'r'],
      ['Redis commands per check', 'r'],
    ],
    rows.map((r) => [
      r.title,
      r.config,
      fmt(r.p50),
      fmt(r.p99),
      fmtRatio(r.p50 / ping.p50),
      fmtRatio(r.p99 / ping.p99),
      r.roundTrips.toFixed(2),
      r.commands.toFixed(1),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------------
// Part 3: fleet accuracy
// ---------------------------------------------------------------------------------------------------

/**
 * The fleet's processes (bench/redis-worker.mjs), started once. `run(list)` hands each process its
 * options, waits until every one has printed `ready`, then releases them together with `go` (a barrier:
 * a slow process delays the run instead of eating into it), and resolves with their reports.
 */
function startFleet(port, size) {
  const workers = Array.from({ length: size }, () => {
    const child = track(
      spawn(process.execPath, [WORKER, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] }),
    );
    child.stdin.on('error', () => undefined); // a worker that died: its exit reports it
    let err = '';
    child.stderr.on('data', (chunk) => (err += chunk));
    const lines = [];
    const waiting = [];
    let failed;
    createInterface({ input: child.stdout }).on('line', (line) => {
      const waiter = waiting.shift();
      if (waiter === undefined) lines.push(line);
      else waiter.resolve(line);
    });
    const exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        failed = new Error(`a fleet worker exited with ${code}:\n${err}`);
        for (const waiter of waiting.splice(0)) waiter.reject(failed);
        resolve();
      }),
    );
    const next = () => {
      if (lines.length > 0) return Promise.resolve(lines.shift());
      if (failed !== undefined) return Promise.reject(failed);
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    };
    return { child, next, exited };
  });
  return {
    async run(list) {
      // A worker that hangs is killed (its exit rejects the run) rather than hanging the bench.
      const timer = setTimeout(
        () => workers.forEach((w) => w.child.kill('SIGKILL')),
        list[0].duration + 60_000,
      );
      try {
        workers.forEach((w, i) => w.child.stdin.write(`${JSON.stringify(list[i])}\n`));
        for (const w of workers) {
          const line = await w.next();
          if (line !== 'ready') throw new Error(`a fleet worker said ${line}`);
        }
        for (const w of workers) w.child.stdin.write('go\n');
        return await Promise.all(workers.map(async (w) => JSON.parse(await w.next())));
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      for (const w of workers) w.child.stdin.end();
      await Promise.all(workers.map((w) => w.exited));
    },
  };
}

async function fleetRun(workers, load, limiter) {
  const { processes, limit, interval } = FLEET;
  const duration = SECONDS * 1_000;
  const name = `bench-fleet-${load.id}-${limiter.id}`;
  const rate = load.factor === undefined ? undefined : (load.factor * limit) / processes;
  const reports = await workers.run(
    Array.from({ length: processes }, (_, p) => ({
      lib: limiter.lib,
      name,
      limit,
      interval,
      lease: limiter.lease,
      duration,
      ...(rate === undefined
        ? { loops: FLEET.loops }
        : // Each process sends every 1/rate s; the processes take turns, evenly apart.
          { rate, phase: (p * 1_000) / rate / processes }),
    })),
  );
  const calls = reports.flatMap((r) => r.admitted);
  const admitted = calls.map(([, at]) => at);
  const sum = (key) => reports.reduce((n, r) => n + r[key], 0);
  const local = localAllowance(
    reports.flatMap((r) => r.episodes),
    interval,
  );
  const t = span(admitted);
  const first = Math.min(...admitted);
  const bound = (window) =>
    limiter.lib === 'bulwark'
      ? gcraBound({ burst: FLEET.burst, limit, interval, lease: limiter.lease }, window, local)
      : fixedWindowBound({ points: limit, duration: interval }, window);
  const row = {
    load: load.id,
    limiter: limiter.id,
    offered: sum('offered'),
    rejected: sum('rejected'),
    errors: sum('errors'),
    events: sum('events'),
    local,
    t,
    total: admitted.length,
    totalBound: bound(t),
    busiest: busiestWindow(admitted, interval),
    busiestBound: bound(interval),
    steady: busiestWindow(admitted, interval, first + interval),
    contained: busiestContained(calls, interval),
    perProcess: reports.map((r) => r.admitted.length),
  };
  row.kept = row.total <= row.totalBound && row.busiest <= row.busiestBound;
  return row;
}

async function fleet(port) {
  const rows = [];
  const processes = startFleet(port, FLEET.processes);
  try {
    for (const load of LOADS) {
      for (const limiter of LIMITERS) {
        const row = await fleetRun(processes, load, limiter);
        sampleLoad();
        rows.push(row);
        log(
          `[${((performance.now() - T0) / 1_000).toFixed(0)} s] fleet ${load.id} / ${limiter.id}: ${row.total} admitted (bound ${row.totalBound.toFixed(0)}), busiest second ${row.busiest} (bound ${row.busiestBound.toFixed(0)}), ${row.events} store events`,
        );
      }
    }
  } finally {
    await processes.close();
  }
  return rows;
}

const pct = (part, whole) => (whole === 0 ? '–' : `${((100 * part) / whole).toFixed(1)} %`);

function fleetTable(rows, seconds) {
  const title = (list, id) => list.find((x) => x.id === id).title;
  return markdownTable(
    [
      ['load', 'l'],
      ['limiter', 'l'],
      ['calls', 'r'],
      ['refused', 'r'],
      [`admitted in ${seconds} s`, 'r'],
      ['bound', 'r'],
      ['busiest 1 s', 'r'],
      ['bound', 'r'],
      ['sent and admitted in 1 s', 'r'],
      ['busiest 1 s after the first', 'r'],
      ['store events', 'r'],
      ['within bound', 'l'],
    ],
    rows.map((r) => {
      const local = r.local > 0 ? ` (${int(r.local)} local)` : '';
      return [
        title(LOADS, r.load),
        title(LIMITERS, r.limiter),
        int(r.offered),
        `${pct(r.rejected, r.offered)}${r.errors > 0 ? ` + ${int(r.errors)} errors` : ''}`,
        int(r.total),
        `${int(Math.floor(r.totalBound))}${local}`,
        int(r.busiest),
        `${int(Math.floor(r.busiestBound))}${local}`,
        int(r.contained),
        int(r.steady),
        r.limiter === 'rlf' ? '–' : int(r.events),
        r.kept ? 'yes' : '**no**',
      ];
    }),
  );
}

/**
 * Sentences on bulwark's runs: each run that exceeded its documented bound (or one that says none did),
 * and each run that kept it only with the allowance for processes acting locally.
 */
function verdicts(rows, { lease }) {
  const ours = rows.filter((r) => r.limiter !== 'rlf');
  const out = ours
    .filter((r) => !r.kept)
    .map(
      (r) =>
        `bulwark EXCEEDED its bound: ${r.limiter}, ${r.load}: ${r.total} admitted in ${r.t} ms (bound ${r.totalBound.toFixed(1)}), busiest second ${r.busiest} (bound ${r.busiestBound.toFixed(1)}); the most calls both sent and admitted within one second: ${r.contained}${r.contained <= r.busiestBound ? ' (within the bound: admissions bunched up after the answers, as when a busy process reads its replies late)' : ''}.`,
    );
  if (out.length === 0) {
    out.push(
      `bulwark stayed within its documented bound in all ${ours.length} fleet runs (exact and lease ${lease}, every load).`,
    );
  }
  for (const r of ours) {
    const total = r.totalBound - r.local;
    const second = r.busiestBound - r.local;
    if (r.kept && (r.total > total || r.busiest > second)) {
      out.push(
        `${r.limiter}, ${r.load}: within the bound only with the allowance for acting locally: ${r.events} command${r.events === 1 ? '' : 's'} timed out, and each process concerned applied its share of the limit locally until Redis answered again (${int(r.local)} calls' worth in all); ${int(r.total)} admitted (bound ${int(Math.floor(total))} without the allowance), busiest second ${r.busiest} (bound ${int(Math.floor(second))} without).`,
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------------

function commit() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' })
      .trim()
      .concat(
        execFileSync('git', ['status', '--porcelain', 'src'], { cwd: ROOT, encoding: 'utf8' })
          ? ' (with uncommitted src changes)'
          : '',
      );
  } catch {
    return '?';
  }
}

function warnings() {
  const out = [];
  // Parts 1 and 2 use about one core; part 3 keeps the whole machine busy on its own, by design.
  if (machine.loadavg[0] > machine.cores * 0.75) {
    out.push(
      `The load average was ${machine.loadavg[0].toFixed(2)} on ${machine.cores} cores before the bench started: other processes competed for the CPU, so the latency and cost figures are noisy (compare ratios to PING, not µs). The fleet bounds must hold on a loaded machine all the same.`,
    );
  }
  return out;
}

function report(results) {
  const m = results.machine;
  const { seconds, samples, fleet: f } = results.settings;
  return [
    `${results.date.slice(0, 16).replace('T', ' ')} UTC · ${m.cpu} · ${m.cores} cores · Node ${m.node} · redis-server ${results.redisVersion} on loopback · bulwark ${results.commit} · load average ${m.loadavg.map((l) => l.toFixed(2)).join(' ')} at start, peak ${m.loadavgMax.toFixed(2)}, ${m.loadavgEnd.map((l) => l.toFixed(2)).join(' ')} at the end${m.niceness ? ` · nice ${m.niceness}` : ''}`,
    '',
    `#### Fleet accuracy: ${f.processes} processes, limit ${f.limit}/s, ${seconds} s`,
    '',
    fleetTable(results.fleet, seconds),
    '',
    ...verdicts(results.fleet, f).map((v) => `- ${v}`),
    '',
    `#### Cost per check: ${int(samples)} sequential checks each, in blocks of ${BLOCK}, order rotating`,
    '',
    costTable(results.cost),
    '',
    '#### Latency per policy, against the same policy in memory',
    '',
    latencyTable(results.latency, results.settings),
    ...(results.warnings.length > 0 ? ['', ...results.warnings.map((w) => `> ${w}`)] : []),
  ].join('\n');
}

/** Writes the tables into bench/README.md, between its redis markers. */
function updateReadme(text) {
  const readme = join(BENCH, 'README.md');
  const block = `<!-- generated by \`npm run bench:redis -- --update\` from results/redis.json; edits here are overwritten -->\n\n${text}\n`;
  writeFileSync(readme, replaceSection(readFileSync(readme, 'utf8'), 'redis', block));
  console.log('wrote the tables in bench/README.md');
}

if (args.includes('--report')) {
  // Only the README's tables again, from the published results (no Redis, no measurement).
  updateReadme(report(JSON.parse(readFileSync(join(BENCH, 'results', 'redis.json'), 'utf8'))));
  process.exit(0);
}

const server = await startRedisServer();
let exitCode = 0;
try {
  log(
    `bench:redis · redis-server on 127.0.0.1:${server.port} · ~${Math.ceil(20 + LOADS.length * LIMITERS.length * (SECONDS + 2) + SAMPLES / 250)} s · load average ${machine.loadavg.map((l) => l.toFixed(2)).join(' ')}`,
  );
  const client = new Redis({
    port: server.port,
    host: '127.0.0.1',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
  });
  await client.connect();
  // A generous command timeout: parts 1 and 2 measure round trips, not the local fallback.
  const store = redisStore(client, { commandTimeout: 1_000 });
  const redisVersion = /redis_version:(\S+)/.exec(await client.info('server'))[1];
  const latencyResults = await latency(store);
  sampleLoad();
  const cost = await checkCost(client, store);
  sampleLoad();
  await store.close();
  client.disconnect();
  const fleetRows = await fleet(server.port);
  machine.loadavgEnd = os.loadavg();
  const results = {
    date: new Date().toISOString(),
    commit: commit(),
    redisVersion,
    machine,
    settings: { rounds: ROUNDS, calls: CALLS, samples: SAMPLES, seconds: SECONDS, fleet: FLEET },
    latency: latencyResults,
    cost,
    fleet: fleetRows,
    warnings: warnings(),
  };
  const text = report(results);
  console.log(`\n${text}`);
  const dir = UPDATE ? join(BENCH, 'results') : join(BENCH, 'results', 'local');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'redis.json');
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${relative(ROOT, file)}`);
  if (UPDATE) updateReadme(text);
} catch (error) {
  console.error(error);
  exitCode = 1;
} finally {
  await server.stop();
}
process.exit(exitCode);
