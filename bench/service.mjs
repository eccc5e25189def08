// `npm run bench:service`: what a wrapper costs a real HTTP service, and what it saves it when the
// downstream misbehaves. See bench/README.md ("A service under load").
//
//   npm run bench:service                  under 5 minutes: prints the table, writes results/local/
//   npm run bench:service -- --update      the same, then updates results/service.json and the table
//                                          in bench/README.md
//   npm run bench:service -- --quick       about 1 minute, one round (never published)
//   npm run bench:service -- --report      no measuring: the table and promises of results/service.json
//                                          again, into bench/README.md (after a change to how they read)
//   npm run bench:service -- --rounds 5 --duration 6 --connections 16
//
// Three processes: a downstream (node:http on 127.0.0.1, a free port), the service (node:http on
// 127.0.0.1, whose route calls the downstream with `fetch` through the wrapper under test), and this
// driver, which runs autocannon against the service at a fixed number of connections. A fresh service
// process per measurement, so that no wrapper inherits another's JIT state, sockets or circuit.

import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { lowerBeyondNoise, pooledShare, shareBeats } from './lib/compare.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);
const SELF = fileURLToPath(import.meta.url);

/** The wrappers' common configuration: the same numbers for every library that has the stage. */
const CONFIG = Object.freeze({
  attemptTimeout: 500, // ms per attempt
  attempts: 3, // calls in all (bulwark's maxAttempts: 3; cockatiel's maxAttempts: 2 retries)
  backoff: 5, // ms, constant
  failureRate: 0.5, // the circuit opens at 50 % failures...
  minimumCalls: 20, // ...once 20 calls are in the window
  window: 100, // calls (opossum: a 10 s rolling window, its only kind)
  halfOpenAfter: 5_000, // ms
  maxConcurrent: 100, // bulkhead (opossum: capacity), no queue
});

/** bulwark's tail-cutting option, for the `bulwark, hedged` row only (no peer has it). */
const HEDGE = Object.freeze({ delay: 50 }); // ms: a tenth of the attempt timeout; maxHedgedAttempts 1

const SCENARIOS = [
  { id: 'healthy', title: 'Healthy downstream', fail: 0, hang: 0 },
  { id: 'failing', title: 'Downstream failing 20 % (HTTP 500)', fail: 0.2, hang: 0 },
  { id: 'hanging', title: 'Downstream hanging 5 % (no answer)', fail: 0, hang: 0.05 },
];

const WRAPPERS = [
  { id: 'none', title: 'no wrapper', config: '`await fetch(url)`' },
  {
    // The same work as the wrappers that cancel `fetch`, done by hand: handing `fetch` a signal is
    // not free (Node 20's fetch registers a listener, a WeakRef and a FinalizationRegistry entry per
    // signal), so a wrapper that passes one is compared with this row, not with the bare `fetch`.
    id: 'timeout',
    title: 'no wrapper, fetch timeout',
    config: '`await fetch(url, { signal: AbortSignal.timeout(500) })`',
    reference: true,
  },
  {
    id: 'bulwark',
    title: 'bulwark',
    config:
      '`resilient({ retry: { maxAttempts: 3, backoff: constant(5) }, circuitBreaker, timeout: 500, bulkhead: { maxConcurrent: 100 }, fallback })` and `execute(({ signal }) => …)`',
    retries: true,
  },
  {
    id: 'cockatiel',
    title: 'cockatiel',
    config:
      '`wrap(fallback, retry({ maxAttempts: 2, ConstantBackoff(5) }), circuitBreaker(CountBreaker), bulkhead(100, 0), timeout(500, Aggressive))`',
    retries: true,
  },
  {
    id: 'opossum',
    title: 'opossum',
    config:
      '`new CircuitBreaker(fn, { timeout: 500, errorThresholdPercentage: 50, volumeThreshold: 20, resetTimeout: 5000, capacity: 100 })` + `fallback`',
    retries: false,
  },
  {
    // Not configured alike: bulwark's row above plus an option no peer has. Shown for what a user gets
    // by turning it on, and compared by a promise of its own, never in the alike comparisons.
    id: 'hedged',
    title: 'bulwark, hedged',
    config:
      'the bulwark row plus `hedge: { delay: 50 }`: an attempt still running after 50 ms gets a second one in parallel (the first success wins, the other is aborted)',
    ours: true,
    extra: true,
  },
];

const FALLBACK = Object.freeze({ value: null, degraded: true });

// --- downstream ---------------------------------------------------------------------------------

/** A small deterministic PRNG (mulberry32): every run sees the same sequence of failures. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function downstream() {
  let mode = { fail: 0, hang: 0 };
  let random = prng(1);
  const hanging = new Set();
  const body = JSON.stringify({ value: 42, items: ['a', 'b', 'c'] });
  const failBody = JSON.stringify({ error: 'internal' });
  const server = http.createServer((req, res) => {
    req.resume();
    const r = random();
    if (r < mode.fail) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(failBody);
      return;
    }
    if (r >= 1 - mode.hang) {
      // No answer until the caller gives up (closes the socket) or the scenario ends.
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('message', (message) => {
    if (message.mode !== undefined) {
      mode = message.mode;
      random = prng(1);
      for (const res of hanging) res.destroy();
      hanging.clear();
      process.send({ ready: true });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// --- service ------------------------------------------------------------------------------------

async function makeCall(wrapper, url) {
  const callDownstream = async (signal) => {
    const response = await fetch(url, signal === undefined ? undefined : { signal });
    if (!response.ok) {
      await response.arrayBuffer();
      throw new Error(`downstream answered ${response.status}`);
    }
    return response.json();
  };
  const c = CONFIG;
  switch (wrapper) {
    case 'none':
      return () => callDownstream(undefined);
    case 'timeout':
      return () => callDownstream(AbortSignal.timeout(c.attemptTimeout));
    case 'bulwark':
    case 'hedged': {
      const { resilient, backoff } = await import(
        process.env.BULWARK_DIST ?? pathToFileURL(join(ROOT, 'dist', 'index.js')).href
      );
      const policy = resilient({
        retry: { maxAttempts: c.attempts, backoff: backoff.constant(c.backoff) },
        circuitBreaker: {
          failureRateThreshold: c.failureRate,
          minimumCalls: c.minimumCalls,
          window: { type: 'count', size: c.window },
          halfOpenAfter: c.halfOpenAfter,
        },
        timeout: c.attemptTimeout,
        bulkhead: { maxConcurrent: c.maxConcurrent, maxQueue: 0 },
        fallback: FALLBACK,
        ...(wrapper === 'hedged' ? { hedge: HEDGE } : {}),
      });
      const task = ({ signal }) => callDownstream(signal);
      return () => policy.execute(task);
    }
    case 'cockatiel': {
      const {
        wrap,
        retry,
        fallback,
        bulkhead,
        timeout,
        circuitBreaker,
        handleAll,
        ConstantBackoff,
        CountBreaker,
        TimeoutStrategy,
      } = await import('cockatiel');
      const policy = wrap(
        fallback(handleAll, FALLBACK),
        retry(handleAll, {
          maxAttempts: c.attempts - 1,
          backoff: new ConstantBackoff(c.backoff),
        }),
        circuitBreaker(handleAll, {
          halfOpenAfter: c.halfOpenAfter,
          breaker: new CountBreaker({
            threshold: c.failureRate,
            size: c.window,
            minimumNumberOfCalls: c.minimumCalls,
          }),
        }),
        bulkhead(c.maxConcurrent, 0),
        timeout(c.attemptTimeout, TimeoutStrategy.Aggressive),
      );
      const task = ({ signal }) => callDownstream(signal);
      return () => policy.execute(task);
    }
    case 'opossum': {
      const CircuitBreaker = (await import('opossum')).default;
      // No signal: opossum's `abortController` option is one controller per breaker, aborted on any
      // timeout, which would cancel every call in flight; a timed-out fetch runs on.
      const breaker = new CircuitBreaker(() => callDownstream(undefined), {
        timeout: c.attemptTimeout,
        errorThresholdPercentage: c.failureRate * 100,
        volumeThreshold: c.minimumCalls,
        resetTimeout: c.halfOpenAfter,
        capacity: c.maxConcurrent,
      });
      breaker.fallback(() => FALLBACK);
      return () => breaker.fire();
    }
    default:
      throw new Error(`unknown wrapper ${wrapper}`);
  }
}

async function service(wrapper, downstreamPort) {
  const call = await makeCall(wrapper, `http://127.0.0.1:${downstreamPort}/`);
  const counts = { ok: 0, degraded: 0, failed: 0 };
  const server = http.createServer((req, res) => {
    req.resume();
    call().then(
      (value) => {
        if (value === FALLBACK) counts.degraded++;
        else counts.ok++;
        const body = JSON.stringify(value);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      },
      () => {
        counts.failed++;
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":"unavailable"}');
      },
    );
  });
  server.keepAliveTimeout = 60_000;
  let cpu;
  process.on('message', (message) => {
    if (message === 'start') {
      counts.ok = counts.degraded = counts.failed = 0;
      cpu = process.cpuUsage();
      process.send({ started: true });
    } else if (message === 'stop') {
      const used = process.cpuUsage(cpu);
      process.send({ counts: { ...counts }, cpuUs: used.user + used.system });
    }
  });
  process.on('disconnect', () => process.exit(0));
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}

// --- driver -------------------------------------------------------------------------------------

function parseArgs(argv) {
  // 6 rows × 3 scenarios × 3 rounds = 54 cells of 0.5 s warm-up + 3.5 s measured + about 1 s to start a
  // service process: under 5 minutes with the build (was 1 + 4 s per cell with 5 rows).
  const args = {
    quick: false,
    update: false,
    report: false,
    rounds: 3,
    duration: 3.5,
    warmup: 0.5,
    connections: 16,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined || !(Number(v) > 0)) throw new Error(`${a} needs a positive number`);
      return Number(v);
    };
    if (a === '--quick') Object.assign(args, { quick: true, rounds: 1, duration: 2 });
    else if (a === '--update') args.update = true;
    else if (a === '--report') args.report = true;
    else if (a.startsWith('--rounds')) args.rounds = value();
    else if (a.startsWith('--duration')) args.duration = value();
    else if (a.startsWith('--connections')) args.connections = value();
    else if (a === '--help' || a === '-h') {
      console.log(readFileSync(SELF, 'utf8').split('\n\n')[0]);
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  if (args.update && args.quick) throw new Error('--update publishes a full run, not --quick');
  return args;
}

/** Starts a child of this file in `role`; resolves with the child and its first message. */
function start(role, extra = []) {
  const child = fork(SELF, [`--role=${role}`, ...extra], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return new Promise((resolve, reject) => {
    child.once('message', (message) => resolve({ child, port: message.port }));
    child.once('exit', (code) =>
      reject(new Error(`${role} exited with ${code} before it started`)),
    );
  });
}

function ask(child, message, key) {
  return new Promise((resolve) => {
    const on = (reply) => {
      if (reply[key] === undefined) return;
      child.off('message', on);
      resolve(reply);
    };
    child.on('message', on);
    child.send(message);
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill();
  });
}

async function load(autocannon, port, seconds, connections) {
  return autocannon({
    url: `http://127.0.0.1:${port}/`,
    connections,
    duration: seconds,
    timeout: 10,
  });
}

const median = (values) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function measureOne(autocannon, args, wrapper, downstreamPort) {
  const { child, port } = await start('service', [
    `--wrapper=${wrapper}`,
    `--down=${downstreamPort}`,
  ]);
  try {
    await load(autocannon, port, args.warmup, args.connections);
    await ask(child, 'start', 'started');
    const result = await load(autocannon, port, args.duration, args.connections);
    const { counts, cpuUs } = await ask(child, 'stop', 'counts');
    const answered = counts.ok + counts.degraded + counts.failed;
    const sent = result.requests.total + result.errors + result.timeouts;
    return {
      rps: result.requests.total / result.duration,
      p50: result.latency.p50,
      p99: result.latency.p99,
      p999: result.latency.p99_9,
      // Not a 2xx: the service answered 503, or the request failed or timed out at the client.
      errorRate: (result.non2xx + result.errors + result.timeouts) / Math.max(1, sent),
      // Answered with the downstream's data (not the fallback, not an error).
      successRate: counts.ok / Math.max(1, answered),
      degradedRate: counts.degraded / Math.max(1, answered),
      cpuUsPerRequest: cpuUs / Math.max(1, answered),
      requests: result.requests.total,
      answered,
    };
  } finally {
    await stop(child);
  }
}

const pct = (x) =>
  Number.isFinite(x) ? `${(x * 100).toFixed(x > 0 && x < 0.001 ? 3 : 1)} %` : '—';
const ms = (x) => (Number.isFinite(x) ? `${x < 10 ? x.toFixed(2) : x.toFixed(0)} ms` : '—');
const num = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—');

/**
 * `row`'s requests/s against `base`'s in the same scenario: the median of the per-round ratios. A
 * round measures every wrapper back to back, so a drift in the machine's speed (other processes, a
 * 2-core machine shared by the service, the downstream and the load generator) hits both sides of a
 * ratio; the ratio of two medians taken from different moments does not have that protection.
 */
function rpsRatio(row, base) {
  const n = Math.min(row.rounds?.length ?? 0, base.rounds?.length ?? 0);
  if (n === 0) return row.rps / base.rps;
  return median(Array.from({ length: n }, (_, i) => row.rounds[i].rps / base.rounds[i].rps));
}

const signedPct = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;

function tableRows(results) {
  const out = [];
  for (const scenario of SCENARIOS) {
    const rows = results.rows.filter((r) => r.scenario === scenario.id);
    const none = rows.find((r) => r.wrapper === 'none');
    out.push({ header: scenario.title });
    for (const r of rows) {
      const w = WRAPPERS.find((x) => x.id === r.wrapper);
      const vsNone = none && r !== none ? rpsRatio(r, none) - 1 : undefined;
      out.push({
        cells: [
          w.title,
          num(r.rps),
          vsNone === undefined ? '' : signedPct(vsNone),
          ms(r.p50),
          ms(r.p99),
          ms(r.p999),
          pct(r.successRate),
          pct(r.degradedRate),
          pct(r.errorRate),
          `${r.cpuUsPerRequest.toFixed(0)} µs`,
        ],
        ours: r.wrapper === 'bulwark' || w.ours === true,
      });
    }
  }
  return out;
}

const HEAD = [
  'wrapper',
  'requests/s',
  'vs none',
  'p50',
  'p99',
  'p99.9',
  'downstream data',
  'fallback',
  'errors',
  'CPU/request',
];

function markdown(results) {
  const m = results.machine;
  const lines = [
    `${results.date.slice(0, 16).replace('T', ' ')} UTC · ${m.cpu} · ${m.cores} cores · Node ${m.node} · bulwark ${results.commit ?? '?'} · ${results.settings.connections} connections, ${results.settings.rounds} rounds of ${results.settings.duration} s per cell (medians) · load average ${m.loadavg.map((l) => l.toFixed(1)).join(' ')} at start, peak ${m.loadavgMax.toFixed(1)}${m.niceness ? ` · service at nice ${m.niceness}` : ''}`,
    '',
    `| ${HEAD.join(' | ')} |`,
    `| :-- | ${HEAD.slice(1)
      .map(() => '--:')
      .join(' | ')} |`,
  ];
  for (const row of tableRows(results)) {
    if (row.header) lines.push(`| **${row.header}** |${' |'.repeat(HEAD.length - 1)}`);
    else {
      const cells = [...row.cells];
      if (row.ours) cells[0] = `**${cells[0]}**`;
      lines.push(`| ${cells.join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

function terminal(results, color) {
  const bold = (s) => (color ? `\x1b[1m${s}\x1b[22m` : s);
  const blue = (s) => (color ? `\x1b[36m${s}\x1b[39m` : s);
  const rows = tableRows(results);
  const widths = HEAD.map((h, i) =>
    Math.max(h.length, ...rows.filter((r) => r.cells).map((r) => r.cells[i].length)),
  );
  const line = (cs) =>
    cs.map((s, i) => (i === 0 ? s.padEnd(widths[i]) : s.padStart(widths[i]))).join('  ');
  const out = [bold(line(HEAD))];
  for (const row of rows) {
    if (row.header) out.push(bold(`── ${row.header}`));
    else out.push(row.ours ? blue(line(row.cells)) : line(row.cells));
  }
  return out.join('\n');
}

const title = (row) => WRAPPERS.find((w) => w.id === row.wrapper)?.title ?? row.wrapper;

/**
 * Whether `ours` has the best success rate of `peers`: no peer beats it by more than sampling noise
 * (bench/lib/compare.mjs; a strict comparison of 100.0 % with 100.0 % flipped from run to run). The
 * text names the calls without data when the shares differ within the noise.
 */
function bestShare(ours, peers) {
  const mine = pooledShare(ours);
  const beaten = peers.filter((r) => shareBeats(pooledShare(r), mine));
  const lost = (r) => {
    const s = pooledShare(r);
    return `${num(s.calls - s.successes)} of ${num(s.calls)}`;
  };
  const best = Math.max(...peers.map((r) => r.successRate));
  const tie =
    beaten.length === 0 && ours.successRate < best
      ? `; within sampling noise: calls without data ${title(ours)} ${lost(ours)}, ${peers.map((r) => `${title(r)} ${lost(r)}`).join(', ')}`
      : '';
  return {
    met: mine.calls > 0 && beaten.length === 0,
    text: `${pct(ours.successRate)} (${peers.map((r) => `${title(r)} ${pct(r.successRate)}`).join(', ')}${tie})`,
  };
}

/**
 * Whether `ours` has the best p99 of `peers`: no peer's rounds all lie below ours (bench/lib/compare.mjs;
 * a strict comparison of the medians read 511 against 509 ms as Not kept, and the rounds overlapped).
 * The text gives the rounds' range when the medians differ within that noise.
 */
function bestP99(ours, peers) {
  const rounds = (r) => (r.rounds?.length ? r.rounds.map((x) => x.p99) : [r.p99]);
  const beaten = peers.filter((r) => lowerBeyondNoise(rounds(r), rounds(ours)));
  const range = (r) => {
    const v = rounds(r);
    const lo = Math.min(...v);
    const hi = Math.max(...v);
    return lo === hi ? ms(lo) : `${ms(lo).replace(' ms', '')}–${ms(hi)}`;
  };
  const best = Math.min(...peers.map((r) => r.p99));
  const tie =
    beaten.length === 0 && ours.p99 > best
      ? `; the rounds overlap: ${title(ours)} ${range(ours)}, ${peers.map((r) => `${title(r)} ${range(r)}`).join(', ')}`
      : '';
  return {
    met: Number.isFinite(ours.p99) && beaten.length === 0,
    text: `${ms(ours.p99)} (${peers.map((r) => `${title(r)} ${ms(r.p99)}`).join(', ')}${tie})`,
  };
}

/**
 * bulwark's promises for the service: throughput when healthy; configured alike, the best p99 of the
 * wrappers that retry and the best success rate of all when the downstream misbehaves; with hedging,
 * the best p99 of all when it hangs.
 */
function promises(results) {
  const get = (scenario, wrapper) =>
    results.rows.find((r) => r.scenario === scenario && r.wrapper === wrapper);
  const out = [];
  const none = get('healthy', 'none');
  // The unwrapped service doing the same work: its fetch is timed out and cancelled by a signal.
  const same = get('healthy', 'timeout');
  const ours = get('healthy', 'bulwark');
  if (none && same && ours) {
    const loss = 1 - rpsRatio(ours, same);
    out.push({
      promise:
        'Healthy: bulwark serves within 3 % of the unwrapped service that times out its fetch (`AbortSignal.timeout`, the same cancellation by hand)',
      met: loss <= 0.03,
      text: `${signedPct(-loss)} requests/s; against a bare \`fetch(url)\` that nothing can cancel: ${signedPct(rpsRatio(ours, none) - 1)}`,
    });
  }
  // The wrappers configured alike: every row but the unwrapped references and bulwark's extra rows.
  const alike = new Set(
    WRAPPERS.filter((w) => w.id !== 'none' && !w.reference && !w.extra).map((w) => w.id),
  );
  const retrying = new Set(WRAPPERS.filter((w) => w.retries === true).map((w) => w.id));
  for (const scenario of SCENARIOS.filter((s) => s.id !== 'healthy')) {
    const rows = results.rows.filter((r) => r.scenario === scenario.id);
    const b = rows.find((r) => r.wrapper === 'bulwark');
    if (!b) continue;
    // p99 among the wrappers that retry: a wrapper that does not (opossum) answers the failed calls
    // with its fallback at once, so its p99 is that of one attempt, bought with the failures it hands
    // on; bulwark's and cockatiel's retries turn those into answers and pay a second request for it.
    const retryPeers = rows.filter((r) => r !== b && retrying.has(r.wrapper));
    if (retryPeers.length > 0) {
      out.push({
        promise: `${scenario.title}: bulwark's p99 is the best of the wrappers that retry (configured alike)`,
        ...bestP99(b, retryPeers),
      });
    }
    const peers = rows.filter((r) => r !== b && alike.has(r.wrapper));
    if (peers.length > 0) {
      out.push({
        promise: `${scenario.title}: bulwark's success rate (answers with the downstream's data) is the best of the wrappers (configured alike)`,
        ...bestShare(b, peers),
      });
    }
  }
  // Hedging cuts the tail of a downstream that hangs: the hedged row against every wrapper's row,
  // including those that give up with a fallback.
  const hanging = results.rows.filter((r) => r.scenario === 'hanging');
  const h = hanging.find((r) => r.wrapper === 'hedged');
  const others = hanging.filter((r) => r !== h && alike.has(r.wrapper));
  if (h && others.length > 0) {
    out.push({
      promise: `${SCENARIOS.find((s) => s.id === 'hanging').title}, with hedging (\`hedge: { delay: 50 }\`): bulwark's p99 is the best of every wrapper, those that answer with a fallback included`,
      ...bestP99(h, others),
    });
    out.push({
      promise: `${SCENARIOS.find((s) => s.id === 'hanging').title}, with hedging: bulwark's success rate stays the best of every wrapper`,
      ...bestShare(h, others),
    });
  }
  return out;
}

function updateReadme(results) {
  const path = join(BENCH, 'README.md');
  const readme = readFileSync(path, 'utf8');
  const startMark = '<!-- service:start -->';
  const endMark = '<!-- service:end -->';
  const i = readme.indexOf(startMark);
  const j = readme.indexOf(endMark);
  if (i < 0 || j < i) throw new Error(`bench/README.md has no ${startMark} … ${endMark} section`);
  const body = [
    '<!-- generated by `npm run bench:service -- --update` from results/service.json; edits here are overwritten -->',
    '',
    markdown(results),
    '',
    ...promises(results).map(
      (p) => `- ${p.met ? 'Kept' : '**Not kept**'}: ${p.promise} (${p.text}).`,
    ),
    '',
  ].join('\n');
  writeFileSync(path, `${readme.slice(0, i + startMark.length)}\n${body}${readme.slice(j)}`);
}

async function driver() {
  const args = parseArgs(process.argv.slice(2));
  if (args.report) {
    const file = join(BENCH, 'results', 'service.json');
    const results = JSON.parse(readFileSync(file, 'utf8'));
    console.log(terminal(results, process.stdout.isTTY === true));
    console.log('\nPromises:');
    for (const p of promises(results))
      console.log(`  ${p.met ? 'Kept    ' : 'Not kept'}  ${p.promise}: ${p.text}`);
    updateReadme(results);
    console.log(`\nwrote the table of ${relative(ROOT, file)} in bench/README.md`);
    return;
  }
  const dist = join(ROOT, 'dist', 'index.js');
  if (!existsSync(dist)) throw new Error('dist/index.js is missing: run `npm run build` first');
  const autocannon = (await import('autocannon')).default;
  const cpus = os.cpus();
  let commit;
  try {
    const { execFileSync } = await import('node:child_process');
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
  } catch {
    commit = undefined;
  }
  const began = performance.now();
  const results = {
    date: new Date().toISOString(),
    commit,
    settings: { ...args, config: CONFIG },
    machine: {
      cpu: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      node: process.version,
      loadavg: os.loadavg(),
      loadavgMax: os.loadavg()[0],
      niceness: os.getPriority(),
    },
    rows: [],
  };
  const cells = SCENARIOS.length * WRAPPERS.length * args.rounds;
  process.stderr.write(
    `bench:service · ${WRAPPERS.length} wrappers × ${SCENARIOS.length} scenarios × ${args.rounds} rounds of ${args.warmup} + ${args.duration} s at ${args.connections} connections (about ${Math.ceil((cells * (args.warmup + args.duration + 0.6)) / 60)} min)\n`,
  );
  const { child: down, port: downPort } = await start('downstream');
  let done = 0;
  try {
    for (const scenario of SCENARIOS) {
      const samples = new Map(WRAPPERS.map((w) => [w.id, []]));
      for (let round = 0; round < args.rounds; round++) {
        // Rotate the order from round to round: a drift in machine speed favours no wrapper.
        const order = WRAPPERS.map((_, i) => WRAPPERS[(i + round) % WRAPPERS.length]);
        for (const w of order) {
          await ask(down, { mode: { fail: scenario.fail, hang: scenario.hang } }, 'ready');
          const sample = await measureOne(autocannon, args, w.id, downPort);
          samples.get(w.id).push(sample);
          results.machine.loadavgMax = Math.max(results.machine.loadavgMax, os.loadavg()[0]);
          done++;
          process.stderr.write(
            `[${done}/${cells}] ${scenario.id} ${w.id}: ${num(sample.rps)} req/s, p99 ${ms(sample.p99)}\n`,
          );
        }
      }
      for (const w of WRAPPERS) {
        const s = samples.get(w.id);
        const row = { scenario: scenario.id, wrapper: w.id, rounds: s };
        for (const key of [
          'rps',
          'p50',
          'p99',
          'p999',
          'errorRate',
          'successRate',
          'degradedRate',
          'cpuUsPerRequest',
        ]) {
          row[key] = median(s.map((x) => x[key]));
        }
        results.rows.push(row);
      }
    }
  } finally {
    await stop(down);
  }
  results.machine.loadavgEnd = os.loadavg();
  results.seconds = Math.round((performance.now() - began) / 1000);

  const color = process.stdout.isTTY === true;
  console.log(
    `\nbulwark service bench · Node ${process.version} · ${results.machine.cpu} × ${results.machine.cores} · ${args.connections} connections · medians of ${args.rounds} rounds of ${args.duration} s`,
  );
  console.log(
    "downstream data: answered with the downstream's data; fallback: answered with the fallback value;\nerrors: not a 2xx (503 from the service, or a client error/timeout); CPU/request: the service process only\n",
  );
  console.log(terminal(results, color));
  console.log('\nConfiguration (the same numbers for every wrapper that has the stage):');
  for (const w of WRAPPERS) console.log(`  ${w.title}: ${w.config.replaceAll('`', '')}`);
  console.log('\nPromises:');
  for (const p of promises(results))
    console.log(`  ${p.met ? 'Kept    ' : 'Not kept'}  ${p.promise}: ${p.text}`);
  const peak = results.machine.loadavgMax;
  if (peak > results.machine.cores * 0.75 * 2) {
    console.log(
      `\nWarning: the load average reached ${peak.toFixed(1)} on ${results.machine.cores} cores (this bench accounts for about 2: the load generator and the service); other processes competed for the CPU, so small differences are noise.`,
    );
  }
  const dir = args.update ? join(BENCH, 'results') : join(BENCH, 'results', 'local');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, args.quick ? 'service-quick.json' : 'service.json');
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(
    `\nwrote ${relative(ROOT, file)} (the measurements took ${Math.floor(results.seconds / 60)} min ${results.seconds % 60} s)`,
  );
  if (args.update) {
    updateReadme(results);
    console.log('wrote the table in bench/README.md');
  }
}

// --- entry --------------------------------------------------------------------------------------

const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
if (role === 'downstream') downstream();
else if (role === 'service') await service(arg('wrapper'), Number(arg('down')));
else
  await driver().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
