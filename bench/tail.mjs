// `npm run bench:tail`: what hedging and adaptive concurrency do to a misbehaving downstream, in real time.
//
//   npm run bench:tail                 build, then both parts; prints the tables
//   npm run bench:tail -- --update     the same, then writes the tables into bench/README.md
//   node bench/tail.mjs --calls 2000   fewer hedging calls (uses dist/ as it is)
//
// Part 1, hedging: a simulated downstream with a heavy tail (seeded: 95% of calls take 2–5 ms, 5% take
// 100–300 ms), called through bare calls, retry with an attempt timeout, and hedging at a fixed delay and
// at the 95th percentile. Reports p50/p99/p99.9 of what the caller waited and the extra calls sent.
//
// Part 2, adaptive concurrency: a simulated downstream with a capacity knee (bench/lib/knee.mjs: latency flat
// at a seeded 8–12 ms up to 20 calls in flight, then growing in proportion to the overload), offered 3× the
// knee's load (60 callers in a closed loop, queueing in the bulkhead). Reports where the limit settles, the
// downstream's own p99 latency against its no-load p99, and throughput against a fixed bulkhead at the knee.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bulkhead, resilient } from '../dist/index.js';
import { KNEE, kneeLatency, seeded } from './lib/knee.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const CALLS = flag('--calls', 6_000);
const CONCURRENCY = 8;
const SECONDS = flag('--seconds', 8);
const CALLERS = 3 * KNEE;

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });

function percentile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

const ms = (v) => (Number.isNaN(v) ? '–' : v < 10 ? v.toFixed(2) : v.toFixed(1));

// ---------------------------------------------------------------------------------------------------
// Part 1: hedging
// ---------------------------------------------------------------------------------------------------

/** The heavy-tailed downstream: each call draws its latency from one seeded stream, in call order. */
function tailDownstream(seed) {
  const random = seeded(seed);
  const downstream = {
    sent: 0,
    call(signal) {
      downstream.sent++;
      const slow = random() < 0.05;
      const latency = slow ? 100 + 200 * random() : 2 + 3 * random();
      return sleep(latency, signal).then(() => 'ok');
    },
  };
  return downstream;
}

async function drive(call) {
  const latencies = [];
  let next = 0;
  let failures = 0;
  async function worker() {
    while (next < CALLS) {
      next++;
      const start = performance.now();
      try {
        await call();
      } catch {
        failures++;
      }
      latencies.push(performance.now() - start);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  latencies.sort((a, b) => a - b);
  return { latencies, failures };
}

const HEDGE_CASES = [
  { id: 'bare', label: 'bare call', make: (d) => () => d.call(undefined) },
  {
    id: 'retry',
    label: 'retry with a 10 ms attempt timeout (2 attempts)',
    make: (d) => {
      const policy = resilient({ timeout: 10, retry: { maxAttempts: 2, backoff: () => 0 } });
      return () => policy.execute(({ signal }) => d.call(signal));
    },
  },
  {
    id: 'hedge-fixed',
    label: 'hedge after 10 ms',
    make: (d) => {
      const policy = resilient({ hedge: { delay: 10 } });
      return () => policy.execute(({ signal }) => d.call(signal));
    },
  },
  {
    id: 'hedge-p95',
    label: 'hedge at p95 (max 50 ms)',
    make: (d) => {
      const policy = resilient({ hedge: { delay: { percentile: 0.95, max: 50 } } });
      return () => policy.execute(({ signal }) => d.call(signal));
    },
  },
];

async function hedging() {
  const rows = [];
  for (const c of HEDGE_CASES) {
    const downstream = tailDownstream(7);
    const { latencies, failures } = await drive(c.make(downstream));
    rows.push({
      id: c.id,
      label: c.label,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      p999: percentile(latencies, 0.999),
      extra: downstream.sent / CALLS - 1,
      failures,
    });
    process.stderr.write(`[tail] ${c.id} done\n`);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------
// Part 2: adaptive concurrency
// ---------------------------------------------------------------------------------------------------

function kneeDownstream() {
  const random = seeded(11);
  const downstream = {
    inFlight: 0,
    latencies: [],
    completed: 0,
    async call() {
      downstream.inFlight++;
      const start = performance.now();
      await sleep(kneeLatency(downstream.inFlight, random));
      downstream.inFlight--;
      downstream.completed++;
      if (downstream.measuring) downstream.latencies.push(performance.now() - start);
    },
    measuring: false,
  };
  return downstream;
}

const ADAPTIVE_CASES = [
  { id: 'none', label: 'no bulkhead', options: undefined },
  { id: 'fixed-100', label: 'fixed bulkhead of 100', options: { maxConcurrent: 100 } },
  {
    id: 'fixed-knee',
    label: `fixed bulkhead of ${KNEE} (the knee)`,
    options: { maxConcurrent: KNEE },
  },
  {
    id: 'gradient2-5',
    label: 'adaptive (gradient2) from 5',
    options: { adaptive: { initialLimit: 5 } },
  },
  {
    id: 'gradient2-200',
    label: 'adaptive (gradient2) from 200',
    options: { adaptive: { initialLimit: 200 } },
  },
  {
    id: 'aimd-5',
    label: 'adaptive (aimd) from 5',
    options: { adaptive: { algorithm: 'aimd', initialLimit: 5 } },
  },
  {
    id: 'aimd-200',
    label: 'adaptive (aimd) from 200',
    options: { adaptive: { algorithm: 'aimd', initialLimit: 200 } },
  },
];

async function noLoadP99() {
  const downstream = kneeDownstream();
  downstream.measuring = true;
  for (let i = 0; i < 300; i++) await downstream.call();
  return percentile(
    downstream.latencies.sort((a, b) => a - b),
    0.99,
  );
}

async function adaptive() {
  const noLoad = await noLoadP99();
  const rows = [];
  for (const c of ADAPTIVE_CASES) {
    const downstream = kneeDownstream();
    const pool =
      c.options === undefined ? undefined : bulkhead({ ...c.options, maxQueue: Infinity });
    const call =
      pool === undefined
        ? () => downstream.call()
        : resilient(() => downstream.call(), { bulkhead: pool });
    const end = performance.now() + SECONDS * 1000;
    const half = performance.now() + (SECONDS * 1000) / 2;
    const limits = [];
    let completedAtHalf = 0;
    const sampler = setInterval(() => {
      if (performance.now() < half) return;
      if (!downstream.measuring) {
        downstream.measuring = true;
        completedAtHalf = downstream.completed;
      }
      if (pool !== undefined) limits.push(pool.stats().limit ?? pool.maxConcurrent);
    }, 10);
    const callers = Array.from({ length: CALLERS }, async () => {
      while (performance.now() < end) await call();
    });
    await Promise.all(callers);
    clearInterval(sampler);
    const measured = downstream.completed - completedAtHalf;
    limits.sort((a, b) => a - b);
    downstream.latencies.sort((a, b) => a - b);
    rows.push({
      id: c.id,
      label: c.label,
      limit: limits.length === 0 ? undefined : percentile(limits, 0.5),
      limitRange:
        limits.length === 0 ? undefined : [percentile(limits, 0.05), percentile(limits, 0.95)],
      p99: percentile(downstream.latencies, 0.99),
      p99Ratio: percentile(downstream.latencies, 0.99) / noLoad,
      throughput: measured / (SECONDS / 2),
    });
    process.stderr.write(`[tail] ${c.id} done\n`);
  }
  const knee = rows.find((r) => r.id === 'fixed-knee').throughput;
  for (const r of rows) r.throughputRatio = r.throughput / knee;
  return { noLoad, rows };
}

// ---------------------------------------------------------------------------------------------------

function hedgeTable(rows) {
  const bare = rows.find((r) => r.id === 'bare');
  const lines = [
    '| case | p50 ms | p99 ms | p99.9 ms | p99 cut | extra calls |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.label} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.p999)} | ${(bare.p99 / r.p99).toFixed(1)}× | ${(100 * r.extra).toFixed(1)}% |`,
    );
  return lines.join('\n');
}

function adaptiveTable({ noLoad, rows }) {
  const lines = [
    `No-load p99 of the downstream: ${ms(noLoad)} ms; knee: ${KNEE} calls in flight; offered: ${CALLERS} callers.`,
    '',
    '| case | limit (median, 5–95%) | downstream p99 | vs no-load | calls/s | vs fixed at knee |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.label} | ${r.limit === undefined ? '–' : `${r.limit} (${r.limitRange[0]}–${r.limitRange[1]})`} | ${ms(r.p99)} ms | ${r.p99Ratio.toFixed(2)}× | ${Math.round(r.throughput)} | ${(100 * r.throughputRatio).toFixed(0)}% |`,
    );
  return lines.join('\n');
}

function verdicts(hedge, adapt) {
  const bare = hedge.find((r) => r.id === 'bare');
  const p95 = hedge.find((r) => r.id === 'hedge-p95');
  const out = [];
  const cut = bare.p99 / p95.p99;
  out.push(
    `${cut >= 5 && p95.extra <= 0.1 ? 'met' : 'MISSED'}: hedging at p95 cuts p99 ${cut.toFixed(1)}× (promise: ≥ 5×) for ${(100 * p95.extra).toFixed(1)}% extra calls (promise: ≤ 10%)`,
  );
  for (const id of ['gradient2-5', 'gradient2-200']) {
    const r = adapt.rows.find((x) => x.id === id);
    const settled = r.limit >= 0.75 * KNEE && r.limit <= 1.25 * KNEE;
    const ok = settled && r.p99Ratio <= 2.5 && r.throughputRatio >= 0.8;
    out.push(
      `${ok ? 'met' : 'MISSED'}: ${r.label}: limit ${r.limit} (promise: ${0.75 * KNEE}–${1.25 * KNEE}), downstream p99 ${r.p99Ratio.toFixed(2)}× no-load (promise: ≤ 2.5×), throughput ${(100 * r.throughputRatio).toFixed(0)}% of the fixed knee bulkhead (promise: ≥ 80%)`,
    );
  }
  return out;
}

const hedgeRows = await hedging();
const adapt = await adaptive();
const text = [
  `Node ${process.version}, ${CALLS} calls at concurrency ${CONCURRENCY} (hedging); ${SECONDS} s per case, the second half measured (adaptive).`,
  '',
  '### Hedging: a downstream with a heavy tail (95%: 2–5 ms, 5%: 100–300 ms)',
  '',
  hedgeTable(hedgeRows),
  '',
  '### Adaptive concurrency: a downstream with a capacity knee, offered 3× its load',
  '',
  adaptiveTable(adapt),
  '',
  ...verdicts(hedgeRows, adapt).map((v) => `- ${v}`),
].join('\n');
console.log(text);

if (args.includes('--update')) {
  const file = join(here, 'README.md');
  const readme = readFileSync(file, 'utf8');
  const start = '<!-- tail:start -->';
  const endMark = '<!-- tail:end -->';
  const block = `${start}\n<!-- generated by \`npm run bench:tail -- --update\`; edits here are overwritten -->\n${text}\n${endMark}`;
  const next = readme.includes(start)
    ? readme.replace(new RegExp(`${start}[\\s\\S]*?${endMark}`), block)
    : `${readme.trimEnd()}\n\n## Tail latency and adaptive concurrency\n\n${block}\n`;
  writeFileSync(file, next);
  console.log('\n(bench/README.md updated)');
}
