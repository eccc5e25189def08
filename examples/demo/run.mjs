// bulwark live demo: `npm run demo` (about 20 s) or `npm run demo -- --fast` (about 4 s, also DEMO_FAST=1).
//
// A flaky inventory service runs on 127.0.0.1: latency spikes, error bursts, a latency storm and an
// outage. Two clients send it the same traffic at the same time: one through `resilient()` (retry,
// timeout, circuit breaker, rate limiter, bulkhead, fallback and cache), one with a plain `fetch`. The
// status block shows what each stage does; the summary compares what the callers got.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const FAST = process.argv.includes('--fast') || process.env.DEMO_FAST === '1';
const DURATION = FAST ? 4_000 : 20_000;
const RATE = 100; // calls per second, for each client
const BULKHEAD = 16; // calls in flight at once through bulwark
const TTY = process.stdout.isTTY === true && process.env.DEMO_PLAIN !== '1';

// ---- the package, built -------------------------------------------------------------------------

const root = fileURLToPath(new URL('../..', import.meta.url));
if (!existsSync(new URL('../../dist/index.js', import.meta.url))) {
  console.log('dist/ is missing: running `npm run build` first');
  const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
}
const { backoff, resilient } = await import('../../dist/index.js');

// ---- deterministic randomness: both clients send the same calls ----------------------------------

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// 40% of the calls ask for one of 10 popular products, the rest for one of 300.
const keysRandom = mulberry32(42);
const KEYS = Array.from({ length: Math.ceil((RATE * DURATION) / 1_000) }, () =>
  keysRandom() < 0.4
    ? `p${Math.floor(keysRandom() * 10)}`
    : `p${10 + Math.floor(keysRandom() * 300)}`,
);

// ---- the flaky service ---------------------------------------------------------------------------

/** Phases, as fractions of the run. */
const PHASES = [
  { until: 0.15, name: 'calm', note: '2% errors, a few latency spikes' },
  { until: 0.3, name: 'error burst', note: 'half of the requests fail with 503' },
  { until: 0.45, name: 'calm', note: '2% errors, a few latency spikes' },
  { until: 0.6, name: 'latency storm', note: '40% of requests take 300-900 ms' },
  { until: 0.8, name: 'outage', note: 'every request hangs, then fails with 503' },
  { until: 1, name: 'recovered', note: '2% errors, a few latency spikes' },
];

let startedAt = 0;
const elapsed = () => performance.now() - startedAt;
const phaseAt = (ms) => PHASES.find((p) => ms / DURATION < p.until) ?? PHASES[PHASES.length - 1];

const serviceRandom = mulberry32(7);
const service = { requests: 0, errors: 0, slow: 0, protected: 0, unprotected: 0 };

/** How the service answers one request now: status and delay. */
function behave() {
  const r = serviceRandom();
  const fast = 5 + serviceRandom() * 20;
  switch (phaseAt(elapsed()).name) {
    case 'error burst':
      return r < 0.5 ? { status: 503, delay: fast } : { status: 200, delay: fast };
    case 'latency storm':
      return r < 0.4
        ? { status: 200, delay: 300 + serviceRandom() * 600 }
        : { status: 200, delay: fast };
    case 'outage':
      return { status: 503, delay: FAST ? 200 : 1_000 };
    default:
      if (r < 0.02) return { status: 500, delay: fast };
      if (r < 0.04) return { status: 200, delay: 200 + serviceRandom() * 400 };
      return { status: 200, delay: fast };
  }
}

const server = createServer((request, response) => {
  const [, client, , id] = (request.url ?? '').split('/'); // /{client}/stock/{id}
  service.requests++;
  if (client === 'protected') service.protected++;
  else service.unprotected++;
  const { status, delay } = behave();
  if (status !== 200) service.errors++;
  if (delay >= 200) service.slow++;
  const timer = setTimeout(() => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(status === 200 ? { id, available: 7 } : { error: 'unavailable' }));
  }, delay);
  response.on('close', () => clearTimeout(timer));
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}`;

// ---- the two clients -----------------------------------------------------------------------------

async function fetchStock(client, id) {
  const response = await fetch(`${base}/${client}/stock/${id}`);
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`inventory answered ${response.status}`);
  }
  return response.json();
}

const scaled = (ms) => (FAST ? ms / 5 : ms);

const getStock = resilient((id) => fetchStock('protected', id), {
  name: 'inventory',
  fallback: (_error, id) => ({ id, available: null, degraded: true }),
  cache: { ttl: scaled(1_000), staleIfError: scaled(10_000), maxEntries: 1_000 },
  retry: { maxAttempts: 3, backoff: backoff.exponential({ initial: 25, max: 200 }) },
  timeout: { attempt: 150, total: 500 },
  circuitBreaker: {
    // High enough that retries ride out an error burst; an outage opens it.
    failureRateThreshold: 0.8,
    minimumCalls: 10,
    window: { type: 'count', size: 20 },
    halfOpenAfter: scaled(1_000),
  },
  rateLimiter: { limit: 100, interval: 1_000, burst: 20, maxWait: 50 },
  bulkhead: { maxConcurrent: BULKHEAD, maxQueue: 16, queueTimeout: 100 },
});

function outcomes() {
  return { calls: 0, ok: 0, fallback: 0, failed: 0, latencies: [] };
}
const protectedSide = outcomes();
const unprotectedSide = outcomes();

async function timed(side, call) {
  const start = performance.now();
  let outcome;
  try {
    const result = await call();
    outcome = result.degraded === true ? 'fallback' : 'ok';
  } catch {
    outcome = 'failed';
  }
  side[outcome]++;
  side.latencies.push(performance.now() - start);
}

// ---- what each stage does, from the events -------------------------------------------------------

const counts = {};
const recent = [];
const note = (text) => {
  const line = `${(elapsed() / 1_000).toFixed(2).padStart(5)}s  ${text}`;
  recent.push(line);
  if (recent.length > 4) recent.shift();
  if (!TTY) console.log(line);
};
getStock.on((event) => {
  const key = event.type === 'callRejected' ? `rejected:${event.reason}` : event.type;
  counts[key] = (counts[key] ?? 0) + 1;
  if (event.type === 'circuitOpened') {
    note(`circuit opened (failure rate ${percent(event.failureRate)}): calls fail fast`);
  } else if (event.type === 'circuitHalfOpened') {
    note('circuit half-open: one trial call goes through');
  } else if (event.type === 'circuitClosed') {
    note('circuit closed: the service answers again');
  }
});
const count = (type) => counts[type] ?? 0;

// ---- the display ---------------------------------------------------------------------------------

const percent = (x) => `${(x * 100).toFixed(1)}%`;
const ms = (x) => (Number.isFinite(x) ? `${Math.round(x)} ms` : '-');

function quantile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

function sideLine(label, side) {
  const done = side.ok + side.fallback + side.failed;
  return (
    `${label.padEnd(12)} calls ${String(side.calls).padStart(5)}  ok ${String(side.ok).padStart(5)}` +
    `  fallback ${String(side.fallback).padStart(4)}  failed ${String(side.failed).padStart(4)}` +
    `  success ${done === 0 ? '-' : percent(side.ok / done)}`
  );
}

function statusLines() {
  const t = elapsed();
  const phase = phaseAt(Math.min(t, DURATION));
  const stats = getStock.stats();
  const breaker = stats.circuitBreaker;
  const bulk = stats.bulkhead;
  const state = breaker.state === 'closed' ? 'closed' : breaker.state.toUpperCase();
  return [
    `bulwark demo  ${(Math.min(t, DURATION) / 1_000).toFixed(1)}s / ${DURATION / 1_000}s` +
      `  phase: ${phase.name} (${phase.note})${FAST ? '  [fast]' : ''}`,
    `service      requests ${service.requests}  (from bulwark ${service.protected}, plain ${service.unprotected})  errors ${service.errors}  slow ${service.slow}`,
    sideLine('protected', protectedSide),
    sideLine('unprotected', unprotectedSide),
    `retry        scheduled ${count('retryScheduled')}  exhausted ${count('retriesExhausted')}  abandoned (deadline) ${count('retryAbandoned')}`,
    `timeout      timed out ${count('timedOut')}`,
    `circuit      ${state.padEnd(9)} failure rate ${percent(breaker.failureRate)}  opened ${count('circuitOpened')}x  closed ${count('circuitClosed')}x  rejected ${count('rejected:circuitOpen')}`,
    `rate limit   waited ${count('rateLimitWaited')}  rejected ${count('rejected:rateLimited')}`,
    `bulkhead     in flight ${String(bulk.inFlight).padStart(2)}/${BULKHEAD}  queued ${bulk.queued}  rejected ${count('rejected:bulkheadFull') + count('rejected:bulkheadQueueTimeout')}`,
    `cache        hits ${count('cacheHit')}  misses ${count('cacheMiss')}  joined ${count('cacheJoined')}  stale served ${count('staleServed')}`,
    `fallback     used ${count('fallbackUsed')}`,
    ...(TTY ? ['recent:', ...recent.map((line) => `  ${line}`)] : []),
  ];
}

let drawn = 0;
let lastPlain = 0;
function render() {
  if (TTY) {
    // Lines cut to the terminal's width: a wrapped line would throw off the redraw.
    const width = process.stdout.columns || 200;
    const lines = statusLines().map((line) => line.slice(0, width));
    // Back to the top of the previous block, clear to the end of the screen, redraw.
    process.stdout.write(
      (drawn > 0 ? `\x1b[${drawn}A\x1b[J` : '') + lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n',
    );
    drawn = lines.length;
  } else {
    // A status line every second (every 0.5 s in fast mode).
    if (elapsed() - lastPlain >= (FAST ? 500 : 1_000)) {
      lastPlain = elapsed();
      const [, , p, u] = statusLines();
      console.log(`       ${p}\n       ${u}`);
    }
  }
}

// ---- the run -------------------------------------------------------------------------------------

const hideCursor = () => TTY && process.stdout.write('\x1b[?25l');
const showCursor = () => TTY && process.stdout.write('\x1b[?25h');
process.once('SIGINT', () => {
  showCursor();
  process.exit(130);
});

console.log(
  `A flaky service on ${base}; ${RATE} calls/s for ${DURATION / 1_000}s, the same calls sent twice:` +
    ' through bulwark, and with a plain fetch.\n',
);
// Warm up: open connections and let the JIT see the code paths, so that the first calls of the run
// are not slow for reasons of their own.
startedAt = performance.now() + 1e9; // "calm" while warming up
for (let round = 0; round < 5; round++) {
  await Promise.all(
    Array.from({ length: 16 }, () => fetchStock('warmup', 'p0').catch(() => undefined)),
  );
}
Object.assign(service, { requests: 0, errors: 0, slow: 0, protected: 0, unprotected: 0 });

hideCursor();
// How late this process ran its timers: on a machine too busy to keep up, the timeouts fire on the wall
// clock while the work waits for the CPU, and the comparison below says more about the machine than
// about bulwark. The summary prints it so that the numbers can be judged (test/demo.test.ts does).
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
startedAt = performance.now();
const inFlight = new Set();
const track = (promise) => {
  inFlight.add(promise);
  void promise.finally(() => inFlight.delete(promise));
};
let sent = 0;
let phase;
let allSent;
const traffic = setInterval(() => {
  const now = phaseAt(elapsed());
  if (now !== phase) note(`phase: ${now.name} (${now.note})`);
  phase = now;
  const due = Math.min(KEYS.length, Math.floor((elapsed() * RATE) / 1_000));
  for (; sent < due; sent++) {
    const id = KEYS[sent];
    protectedSide.calls++;
    unprotectedSide.calls++;
    track(timed(protectedSide, () => getStock(id)));
    track(timed(unprotectedSide, () => fetchStock('unprotected', id)));
  }
  if (sent === KEYS.length) allSent?.();
}, 5);
const display = setInterval(render, 250);
render();

await new Promise((resolve) => {
  allSent = resolve;
});
clearInterval(traffic);
while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
clearInterval(display);
loopDelay.disable();
render();
showCursor();
server.closeAllConnections();
await new Promise((resolve) => server.close(resolve));

// ---- the summary ---------------------------------------------------------------------------------

function row(label, side, requests) {
  const done = side.ok + side.fallback + side.failed;
  return [
    label.padEnd(16),
    String(side.calls).padStart(6),
    String(side.ok).padStart(6),
    String(side.fallback).padStart(9),
    String(side.failed).padStart(7),
    percent(side.ok / done).padStart(8),
    ms(quantile(side.latencies, 0.5)).padStart(8),
    ms(quantile(side.latencies, 0.99)).padStart(8),
    String(requests).padStart(10),
  ].join('');
}

console.log(
  [
    '',
    `Summary: ${protectedSide.calls} calls each, the same traffic against the same flaky service.`,
    'success = real data (live or cached); fallback = a degraded answer; latency as the caller saw it;',
    'requests = requests that reached the service.',
    '',
    `${'client'.padEnd(16)}${'calls'.padStart(6)}${'ok'.padStart(6)}${'fallback'.padStart(9)}${'failed'.padStart(7)}${'success'.padStart(8)}${'p50'.padStart(8)}${'p99'.padStart(8)}${'requests'.padStart(10)}`,
    row('with bulwark', protectedSide, service.protected),
    row('without bulwark', unprotectedSide, service.unprotected),
    '',
    `bulwark: ${count('retryScheduled')} retries, ${count('timedOut')} timeouts, circuit opened ${count('circuitOpened')}x,` +
      ` ${count('rejected:circuitOpen')} calls failed fast, ${count('rejected:rateLimited')} rate-limited,` +
      ` ${count('rejected:bulkheadFull') + count('rejected:bulkheadQueueTimeout')} bulkhead rejections,` +
      ` ${count('cacheHit')} cache hits, ${count('staleServed')} stale answers, ${count('fallbackUsed')} fallbacks.`,
    `event loop: timers ran up to ${Math.round(loopDelay.max / 1e6)} ms late (p99 ${Math.round(loopDelay.percentile(99) / 1e6)} ms);` +
      ' far beyond ~50 ms, the machine was too busy for the comparison to mean much.',
  ].join('\n'),
);
