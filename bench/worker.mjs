// One child process of the benchmark: measures one case against the bare call, then exits.
//
//   node bench/worker.mjs '{"mode":"time","case":"bulwark:retry","quick":false}'
//   node --expose-gc --max-semi-space-size=512 --min-semi-space-size=512 --predictable bench/worker.mjs \
//     '{"mode":"alloc","case":"bulwark:retry","quick":false}'
//
// Prints one line of JSON on stdout. bench/run.mjs starts one of these per case and mode, so that
// the JIT state, timers and heap of one library never reach the measurement of another.

import { performance } from 'node:perf_hooks';
import { measureBytesPerCall } from './lib/alloc.mjs';
import { CASE_BY_ID, TARGETS, VARIANTS, observationFloor } from './cases.mjs';

const SETTINGS = {
  // --quick: shorter runs, no second calibration, smaller allocation batches, one bare baseline.
  quick: {
    runMs: 1.5,
    runs: 5,
    minRuns: 3,
    variantMs: 60,
    warmupRuns: 1,
    recalibrate: false,
    allocBatch: 5_000,
    allocBatchMs: 15,
    allocReps: 5,
    allocWarmup: 10_000,
    bareTwice: false,
  },
  full: {
    runMs: 5,
    runs: 31,
    minRuns: 7,
    variantMs: 1_000,
    warmupRuns: 3,
    recalibrate: true,
    allocBatch: 10_000,
    allocBatchMs: 150,
    allocReps: 15,
    allocWarmup: 30_000,
    bareTwice: true,
  },
};

/** The q-quantile of `values` (0 ≤ q ≤ 1), interpolating linearly between the two nearest ranks. */
function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

const median = (values) => quantile(values, 0.5);

/** Median and interquartile range of the per-run ratios `num[i] / den[i]`. */
function ratioStats(num, den) {
  const ratios = num.map((n, i) => n / den[i]);
  return { ratio: median(ratios), q1: quantile(ratios, 0.25), q3: quantile(ratios, 0.75) };
}

/**
 * A loop of `n` awaited calls with `concurrency` of them in flight, compiled from source for each
 * subject: the bare call and the case each get their own function, so one's type feedback (what
 * `call` is, what it returns) is not shared with the other's.
 */
function makeLoop(concurrency, tag) {
  const body =
    concurrency === 1
      ? `for (let i = 0; i < n; i++) {
           try { await call(); } catch (error) { state.errors++; state.error = error; }
         }`
      : `let left = n;
         const worker = async () => {
           while (left-- > 0) {
             try { await call(); } catch (error) { state.errors++; state.error = error; }
           }
         };
         const workers = [];
         for (let w = 0; w < ${concurrency}; w++) workers.push(worker());
         await Promise.all(workers);`;
  return new Function(`/* ${tag} */ return async function loop(call, n, state) { ${body} };`)();
}

function makeSubject(name, call, concurrency, rejects) {
  const loop = makeLoop(concurrency, `${name} ${concurrency} ${Math.random()}`);
  const state = { errors: 0, error: undefined };
  const check = (n) => {
    if (rejects ? state.errors !== n : state.errors !== 0) {
      const what = rejects
        ? `expected every call to reject, ${state.errors} of ${n} did`
        : `${state.errors} of ${n} calls rejected`;
      throw new Error(`${name}: ${what}${state.error ? `; last error: ${state.error}` : ''}`);
    }
    state.errors = 0;
  };
  return {
    /** Runs `n` calls; returns ns per call. */
    async run(n) {
      const t0 = performance.now();
      await loop(call, n, state);
      const ns = ((performance.now() - t0) * 1e6) / n;
      check(n);
      return ns;
    },
    n: 0,
  };
}

/**
 * Finds the number of calls that takes about `ms`, starting small (bottleneck takes ~5 ms a call).
 * The estimate is the fastest of three runs, so a run slowed down by another process does not shrink
 * every later run to a few calls.
 */
async function calibrate(subject, ms, min) {
  let n = min;
  for (;;) {
    const ns = await subject.run(n);
    if ((ns * n) / 1e6 >= ms / 2 || n >= 1 << 24) break;
    n *= 2;
  }
  const ns = Math.min(await subject.run(n), await subject.run(n), await subject.run(n));
  return Math.max(min, Math.round((ms * 1e6) / ns));
}

async function timeVariant(kase, variant, settings) {
  const fn = TARGETS[variant.target]();
  const { call } = await kase.setup(fn);
  const subjects = [
    makeSubject('bare', fn, variant.concurrency, false),
    makeSubject(kase.id, call, variant.concurrency, kase.rejects === true),
  ];
  // The observation floor, `fn().then(ok, err)` with handlers made once, is measured in the same
  // process as every row of the sequential variant: the targets are stated against it.
  if (variant.floor) {
    subjects.push(makeSubject('floor', observationFloor(fn), variant.concurrency, false));
  }
  // At least one call per worker in flight, and a few calls per run even for the slowest peer.
  const min = Math.max(4, variant.concurrency);
  for (const s of subjects) s.n = await calibrate(s, settings.runMs, min);
  for (let r = 0; r < settings.warmupRuns; r++) for (const s of subjects) await s.run(s.n);
  // Once more, now that the JIT has settled: the first estimate was made on colder code.
  if (settings.recalibrate) {
    for (const s of subjects) s.n = await calibrate(s, settings.runMs, s.n);
  }
  // A very slow case (bottleneck: milliseconds per call, 100 calls a run when 100 are in flight) gets
  // fewer runs, so that one variant takes at most about variantMs.
  let roundMs = 0;
  for (const s of subjects) roundMs += (s.n * (await s.run(s.n))) / 1e6;
  const runs = Math.max(
    settings.minRuns,
    Math.min(settings.runs, Math.floor(settings.variantMs / roundMs)),
  );
  const ns = subjects.map(() => []);
  for (let r = 0; r < runs; r++) {
    // Rotate which goes first (and reverse every other round), so that a drift in machine speed
    // favours none of them.
    const order = subjects.map((_, i) => (i + r) % subjects.length);
    if (r % 2 === 1) order.reverse();
    for (const i of order) ns[i].push(await subjects[i].run(subjects[i].n));
  }
  const [bareNs, caseNs, floorNs] = ns;
  const vsBare = ratioStats(caseNs, bareNs);
  const vsFloor = floorNs === undefined ? undefined : ratioStats(caseNs, floorNs);
  return {
    ns: median(caseNs),
    bareNs: median(bareNs),
    ratio: vsBare.ratio,
    // Interquartile range of the per-run ratios: how far this row moves between runs.
    q1: vsBare.q1,
    q3: vsBare.q3,
    ...(vsFloor === undefined
      ? {}
      : {
          floorNs: median(floorNs),
          floorRatio: vsFloor.ratio,
          floorQ1: vsFloor.q1,
          floorQ3: vsFloor.q3,
          // The floor itself against the bare call, in this process.
          floorVsBare: ratioStats(floorNs, bareNs).ratio,
        }),
    // The fastest run of each, for a reader who prefers best-of-N on a noisy machine.
    minNs: Math.min(...caseNs),
    minBareNs: Math.min(...bareNs),
    runs,
    calls: subjects[1].n,
  };
}

/** ns per call of `call`, from a short run (which also warms it up). */
/** The largest of 20, 50, 100, 200, 500, 1,000, … that is at most `n` (20 at least). */
function step(n) {
  let best = 20;
  for (let decade = 10; decade <= n; decade *= 10) {
    for (const m of [1, 2, 5]) if (m * decade <= n && m * decade >= 20) best = m * decade;
  }
  return best;
}

async function roughNs(call, rejects) {
  const subject = makeSubject('alloc', call, 1, rejects);
  await subject.run(50);
  return subject.run(200);
}

async function allocCase(kase, settings) {
  const fn = TARGETS.async();
  const { call } = await kase.setup(fn);
  const rejects = kase.rejects === true;
  // The same batch size for the bare call and the case, so that one batch of the slower of the two
  // takes about allocBatchMs (up to 3x that), rounded down to a step of 1-2-5 from three times what
  // the time says; warm-up of three batches (at most allocWarmup calls). `ns` comes from 200 calls of
  // a cold process, so it moves with the machine, and counts that moved with it moved the figure: the
  // all-seven row measured +388 B in batches of 5,837 on a loaded machine and +408 B in batches of
  // 10,000 on a quiet one, the same code (its bytes depend on the JIT's history as well as on the
  // cache's generations of 500 calls). Every bulwark row now gets batches of 10,000 and 30,000 calls
  // of warm-up unless a cold call takes 45 µs.
  const ns = Math.max(await roughNs(fn, false), await roughNs(call, rejects));
  const batch = Math.min(settings.allocBatch, step((3 * settings.allocBatchMs * 1e6) / ns));
  const warmup = Math.max(batch, Math.min(settings.allocWarmup, 3 * batch));
  const options = { batch, reps: settings.allocReps, warmup };
  // Bare before and after the case (after setup, so the library's lazy initialisation is not counted
  // against the bare call); the lower of the two is the baseline.
  const bareBefore = settings.bareTwice ? await measureBytesPerCall(fn, options) : undefined;
  const measured = await measureBytesPerCall(call, { ...options, rejects });
  const bareAfter = await measureBytesPerCall(fn, options);
  const bareBytes = Math.min(bareBefore?.bytesPerCall ?? Infinity, bareAfter.bytesPerCall);
  return {
    bytes: measured.bytesPerCall,
    bareBytes,
    extraBytes: measured.bytesPerCall - bareBytes,
    bareBefore: bareBefore?.bytesPerCall,
    bareAfter: bareAfter.bytesPerCall,
    kept: measured.kept,
    reps: measured.reps,
    batch,
    samples: measured.samples,
    discarded: measured.discarded.length,
  };
}

async function main() {
  const config = JSON.parse(process.argv[2] ?? '{}');
  const kase = CASE_BY_ID.get(config.case);
  if (kase === undefined) throw new Error(`unknown case ${config.case}`);
  const settings = config.quick ? SETTINGS.quick : SETTINGS.full;
  let result;
  if (config.mode === 'alloc') {
    result = await allocCase(kase, settings);
  } else {
    result = {};
    const variants = config.variants ?? VARIANTS.map((v) => v.id);
    for (const variant of VARIANTS) {
      if (variants.includes(variant.id))
        result[variant.id] = await timeVariant(kase, variant, settings);
    }
  }
  process.stdout.write(
    `${JSON.stringify({ ok: true, case: kase.id, mode: config.mode, result })}\n`,
  );
}

main().then(
  // Some peers keep timers (opossum's rolling window, mollitia's cache sweep): exit explicitly.
  () => process.exit(0),
  (error) => {
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: String(error?.stack ?? error) })}\n`,
    );
    process.exit(1);
  },
);
