// Soak test: a million calls through the full pipeline of the BUILT package, with a seeded mix of
// failures, slow calls, timeouts, caller aborts and concurrency bursts, on the real system clock.
//
//   node --expose-gc test/soak/run.mjs       1,000,000 calls (npm run soak)
//   node --expose-gc test/soak/run.mjs --quick 50,000 calls (npm run soak:quick, CI)
//   options: --calls N  --seed S  --json (print only the summary line)
//
// It asserts that every call settles exactly once and the outcome counts add up to the calls made, that
// no rejection goes unhandled, that the heap after a forced GC stays flat between the end of the first
// quarter and the end of the run, and that no timer, handle or abort listener is left at the end. It
// prints a summary, then `SOAK_SUMMARY <json>` on its own line, and exits 1 if any check failed.
import { execFileSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

// ------------------------------------------------------------------------------------------------
// Arguments and limits
// ------------------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? Number(argv[i + 1]) : fallback;
};
const QUICK = flag('--quick');
const CALLS = value('--calls', QUICK ? 50_000 : 1_000_000);
const SEED = value('--seed', 0x5eed);
/** The bound on heap growth between the end of the first quarter and the end of the run. */
const HEAP_DRIFT_BOUND = 2 * 1024 * 1024;

if (typeof globalThis.gc !== 'function') {
  console.error('soak: run with node --expose-gc');
  process.exit(2);
}

// ------------------------------------------------------------------------------------------------
// Accounting set up before anything else runs: unhandled rejections and a ledger of every timer
// (getActiveResourcesInfo() does not list unref'ed timers, and the shared timeout timer is unref'ed
// whenever no call waits on it).
// ------------------------------------------------------------------------------------------------

let unhandled = 0;
const unhandledSamples = [];
process.on('unhandledRejection', (reason) => {
  unhandled++;
  if (unhandledSamples.length < 5) unhandledSamples.push(String(reason?.stack ?? reason));
});

const liveTimers = new Set();
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
globalThis.setTimeout = function setTimeout(callback, ms, ...args) {
  const handle = realSetTimeout(() => {
    liveTimers.delete(handle);
    callback(...args);
  }, ms);
  liveTimers.add(handle);
  return handle;
};
globalThis.clearTimeout = function clearTimeout(handle) {
  liveTimers.delete(handle);
  realClearTimeout(handle);
};
const sleep = (ms) => new Promise((resolve) => realSetTimeout(resolve, ms));

if (!existsSync(join(root, 'dist/index.js'))) {
  console.error('soak: dist/ missing, building it (npm run build)');
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
}
const bulwark = await import(pathToFileURL(join(root, 'dist/index.js')).href);
const {
  resilient,
  backoff,
  retryBudget,
  circuitBreaker,
  rateLimiter,
  bulkhead,
  TimeoutError,
  CircuitOpenError,
  RateLimitedError,
  BulkheadRejectedError,
} = bulwark;

// Baseline after loading the package and before any pipeline exists.
await sleep(5);
const baselineResources = process.getActiveResourcesInfo().sort();

// ------------------------------------------------------------------------------------------------
// Seeded randomness (mulberry32)
// ------------------------------------------------------------------------------------------------

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
const rand = mulberry32(SEED);
// The phase schedule has its own generator: it depends on the call count only, never on timing.
const phaseRand = mulberry32(SEED ^ 0x9e3779b9);
const between = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

// ------------------------------------------------------------------------------------------------
// The downstream: a function whose behaviour is drawn per call from the current phase's fault mix
// ------------------------------------------------------------------------------------------------

/** Phases change every few thousand calls: normal traffic, error storms, slow spells and bursts. */
const PHASES = {
  normal: { weight: 6, concurrency: 48, fail: 0.05, slow: 0.02, hang: 0.004, abort: 0.02 },
  storm: { weight: 1, concurrency: 48, fail: 0.7, slow: 0.01, hang: 0.004, abort: 0.02 },
  slow: { weight: 1, concurrency: 96, fail: 0.05, slow: 0.15, hang: 0.02, abort: 0.05 },
  burst: { weight: 1, concurrency: 1_500, fail: 0.05, slow: 0.05, hang: 0.005, abort: 0.03 },
};
const PHASE_NAMES = Object.keys(PHASES);
const PHASE_TOTAL = PHASE_NAMES.reduce((sum, name) => sum + PHASES[name].weight, 0);
function pickPhase() {
  let r = phaseRand() * PHASE_TOTAL;
  for (const name of PHASE_NAMES) {
    r -= PHASES[name].weight;
    if (r < 0) return name;
  }
  return 'normal';
}
let phaseName = 'normal';
let phase = PHASES.normal;
const phasesSeen = Object.fromEntries(PHASE_NAMES.map((name) => [name, 0]));

const faults = {
  rejectError: 0,
  rejectString: 0,
  rejectUndefined: 0,
  throwSync: 0,
  plainValue: 0,
  slow: 0,
  overAttemptTimeout: 0,
  callerAbort: 0,
  burstPhases: 0,
  stormPhases: 0,
};
let fnCalls = 0;
let fnRunning = 0;

class DownstreamError extends Error {
  name = 'DownstreamError';
}
const STRING_REASON = 'downstream said no';

/**
 * One downstream call. `signal` is the attempt's signal when run through `execute` (honoured by slow
 * and hanging calls, as `fetch` would), undefined when called as a wrapped function.
 */
function downstream(result, signal) {
  fnCalls++;
  const r = rand();
  let edge = phase.fail;
  if (r < edge) {
    const kind = rand();
    if (kind < 0.55) {
      faults.rejectError++;
      return Promise.reject(new DownstreamError('boom'));
    }
    if (kind < 0.75) {
      faults.rejectString++;
      return Promise.reject(STRING_REASON);
    }
    if (kind < 0.85) {
      faults.rejectUndefined++;
      return Promise.reject(undefined);
    }
    faults.throwSync++;
    throw new DownstreamError('thrown synchronously');
  }
  edge += phase.slow;
  if (r < edge) {
    faults.slow++;
    return delayed(result, between(1, 4), signal);
  }
  edge += phase.hang;
  if (r < edge) {
    faults.overAttemptTimeout++;
    return delayed(result, between(25, 40), signal);
  }
  if (r < edge + 0.1) {
    faults.plainValue++;
    return result; // not a promise at all
  }
  return Promise.resolve(result);
}

function delayed(result, ms, signal) {
  fnRunning++;
  return new Promise((resolve, reject) => {
    let onAbort;
    const timer = setTimeout(() => {
      fnRunning--;
      signal?.removeEventListener('abort', onAbort);
      resolve(result);
    }, ms);
    if (signal !== undefined) {
      onAbort = () => {
        fnRunning--;
        clearTimeout(timer);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}

// ------------------------------------------------------------------------------------------------
// The pipeline: shared breaker, limiter and bulkhead; two policies over them (one with a long-lived
// shutdown signal), a cached wrapped function on each, and `execute` for calls a caller may abort.
// ------------------------------------------------------------------------------------------------

const FALLBACK = Object.freeze({ fallback: true });
/** Keys divisible by 7 have a fallback that rethrows: those calls can reject. */
const rethrows = (key) => typeof key === 'number' && key % 7 === 0;
const fallback = (error, key) => {
  if (rethrows(key)) throw error;
  return FALLBACK;
};

const breaker = circuitBreaker({
  failureRateThreshold: 0.5,
  minimumCalls: 20,
  window: { type: 'count', size: 50 },
  halfOpenAfter: 20,
  halfOpenMaxCalls: 2,
});
const limiter = rateLimiter({ limit: 400, interval: 10, burst: 600, maxWait: 3 });
const pool = bulkhead({ maxConcurrent: 64, maxQueue: 256, queueTimeout: 30 });
const budget = retryBudget({ ratio: 0.3, minPerSecond: 200, window: 1_000 });
const shared = {
  retry: { maxAttempts: 3, backoff: backoff.exponential({ initial: 1, max: 8 }), budget },
  timeout: { attempt: 15, total: 45 },
  circuitBreaker: breaker,
  rateLimiter: limiter,
  bulkhead: pool,
  fallback,
  cache: { ttl: 20, maxEntries: 500 },
  stackTraces: false,
};
const shutdown = new AbortController();
const policy = resilient({ ...shared, name: 'soak' });
const guarded = resilient({
  ...shared,
  signal: shutdown.signal,
  name: 'soak-with-shutdown-signal',
});
const valueOf = (key) => key * 2 + 1;
const cached = policy((key) => downstream(valueOf(key)));
const cachedGuarded = guarded((key) => downstream(valueOf(key)));

// ------------------------------------------------------------------------------------------------
// The driver
// ------------------------------------------------------------------------------------------------

const settled = new Uint8Array(CALLS);
const outcomes = { resolved: 0, fallback: 0, rejected: 0 };
const rejections = {};
const failures = [];
const fail = (message) => {
  if (failures.length < 20) failures.push(message);
};
const expected = new Float64Array(CALLS);
const startedAt = new Float64Array(CALLS);
/** Call latencies in 1 ms buckets (the last bucket holds everything slower). */
const latencies = new Uint32Array(1_001);
let maxLatency = 0;
/**
 * Every call must settle within its total timeout plus this much, plus twice the worst event-loop delay
 * seen during the run (a timer cannot fire before the loop gets to it, and the settlement then waits for
 * the loop once more): on a loaded machine the loop itself stalls for seconds.
 */
const LATENCY_BOUND = 1_000;
const abortReasons = new Map();
let callerSignalsLeftWithListeners = 0;
let callerSignalsChecked = 0;
const EXECUTE = -1;

function classify(error) {
  if (error instanceof TimeoutError) return `TimeoutError(${error.scope})`;
  if (error instanceof CircuitOpenError) return 'CircuitOpenError';
  if (error instanceof RateLimitedError) return 'RateLimitedError';
  if (error instanceof BulkheadRejectedError) return `BulkheadRejectedError(${error.reason})`;
  if (error instanceof DownstreamError) return 'DownstreamError';
  if (error === STRING_REASON) return 'string';
  if (error === undefined) return 'undefined';
  return undefined;
}

let launched = 0;
let inFlight = 0;
let pumpScheduled = false;
let pausedAt = -1;
let onDrained;

function launch() {
  const id = launched++;
  if (id % 2_000 === 0) {
    phaseName = pickPhase();
    phase = PHASES[phaseName];
    phasesSeen[phaseName]++;
    if (phaseName === 'burst') faults.burstPhases++;
    if (phaseName === 'storm') faults.stormPhases++;
  }
  inFlight++;
  startedAt[id] = performance.now();
  let promise;
  let key = EXECUTE;
  let controller;
  let abortTimer;
  const r = rand();
  if (r < phase.abort) {
    // A caller that may abort: before the call, during it, or never.
    faults.callerAbort++;
    controller = new AbortController();
    const reason = new Error(`caller ${id} gave up`);
    abortReasons.set(id, reason);
    const when = rand();
    if (when < 0.2) controller.abort(reason);
    else abortTimer = setTimeout(() => controller.abort(reason), between(0, 20));
    expected[id] = id;
    promise = policy.execute(({ signal }) => downstream(id, signal), { signal: controller.signal });
  } else {
    key = between(0, 1_999);
    expected[id] = valueOf(key);
    promise = r < 0.85 ? cached(key) : cachedGuarded(key);
  }
  promise.then(
    (result) => finish(id, key, controller, abortTimer, true, result),
    (error) => finish(id, key, controller, abortTimer, false, error),
  );
}

function finish(id, key, controller, abortTimer, ok, result) {
  if (settled[id]++ !== 0) fail(`call ${id} settled twice`);
  inFlight--;
  const latency = performance.now() - startedAt[id];
  latencies[Math.min(1_000, Math.floor(latency))]++;
  if (latency > maxLatency) maxLatency = latency;
  if (abortTimer !== undefined) clearTimeout(abortTimer);
  if (ok) {
    if (result === FALLBACK) {
      outcomes.fallback++;
      if (rethrows(key))
        fail(`call ${id}: key ${key} got the fallback value, its fallback rethrows`);
    } else {
      outcomes.resolved++;
      if (result !== expected[id]) fail(`call ${id} resolved to ${String(result)}`);
    }
  } else {
    outcomes.rejected++;
    const abortReason = abortReasons.get(id);
    const kind = result === abortReason ? 'callerAbort' : classify(result);
    rejections[kind ?? 'unexpected'] = (rejections[kind ?? 'unexpected'] ?? 0) + 1;
    if (kind === undefined) fail(`call ${id} rejected with an unexpected ${String(result)}`);
    else if (kind !== 'callerAbort' && !rethrows(key))
      fail(`call ${id} rejected with ${kind} although its fallback does not rethrow`);
  }
  if (controller !== undefined) {
    abortReasons.delete(id);
    callerSignalsChecked++;
    if (getEventListeners(controller.signal, 'abort').length !== 0)
      callerSignalsLeftWithListeners++;
  }
  schedulePump();
}

function schedulePump() {
  if (pumpScheduled) return;
  pumpScheduled = true;
  setImmediate(pump);
}

function pump() {
  pumpScheduled = false;
  while (inFlight < phase.concurrency && launched < CALLS && launched !== pausedAt) launch();
  if (inFlight === 0 && (launched === CALLS || launched === pausedAt)) onDrained?.();
}

/** Runs calls up to `until`, then waits until every call settled and every downstream call ended. */
async function runUntil(until) {
  pausedAt = until;
  await new Promise((resolve) => {
    onDrained = resolve;
    schedulePump();
  });
  onDrained = undefined;
  while (fnRunning > 0) await sleep(5);
}

/** Heap after a forced GC, in a quiet moment (every call settled, caches expired). */
async function settledHeap() {
  await sleep(60); // past the cache ttl, the timeouts and the breaker's halfOpenAfter
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await sleep(0);
  }
  return process.memoryUsage().heapUsed;
}

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const started = performance.now();
const heaps = [];
for (let quarter = 1; quarter <= 4; quarter++) {
  await runUntil(Math.round((CALLS * quarter) / 4));
  heaps.push(await settledHeap());
}
const seconds = (performance.now() - started) / 1000;
loopDelay.disable();
const latencyBound = shared.timeout.total + LATENCY_BOUND + (2 * loopDelay.max) / 1e6;

// ------------------------------------------------------------------------------------------------
// End checks
// ------------------------------------------------------------------------------------------------

await sleep(100);
let unsettled = 0;
let multiple = 0;
for (let i = 0; i < CALLS; i++) {
  if (settled[i] === 0) unsettled++;
  else if (settled[i] > 1) multiple++;
}
const total = outcomes.resolved + outcomes.fallback + outcomes.rejected;
const resourcesLeft = diff(process.getActiveResourcesInfo().sort(), baselineResources);
const timersLeft = liveTimers.size;
const shutdownListeners = getEventListeners(shutdown.signal, 'abort').length;
const heapDrift = heaps[3] - heaps[0];
const stats = { ...policy.stats(), cache: cached.stats().cache };

function diff(now, before) {
  const left = [...now];
  for (const item of before) {
    const i = left.indexOf(item);
    if (i >= 0) left.splice(i, 1);
  }
  return left;
}

const checks = {
  everyCallSettledOnce: unsettled === 0 && multiple === 0,
  countsAddUp: total === CALLS && launched === CALLS,
  noUnhandledRejection: unhandled === 0,
  heapFlat: Math.abs(heapDrift) < HEAP_DRIFT_BOUND,
  noHandleLeft: resourcesLeft.length === 0,
  noTimerLeft: timersLeft === 0,
  noListenerLeft: shutdownListeners === 0 && callerSignalsLeftWithListeners === 0,
  pipelineIdle: stats.bulkhead.inFlight === 0 && stats.bulkhead.queued === 0,
  outcomesAsExpected: failures.length === 0,
  latencyBounded: maxLatency < latencyBound,
};
const ok = Object.values(checks).every(Boolean);
function percentile(p) {
  let seen = 0;
  for (let ms = 0; ms < latencies.length; ms++) {
    seen += latencies[ms];
    if (seen >= p * CALLS) return ms;
  }
  return latencies.length;
}
const mb = (bytes) => Math.round((bytes / 1024 / 1024) * 100) / 100;
const summary = {
  ok,
  mode: QUICK ? 'quick' : 'full',
  seed: SEED,
  calls: CALLS,
  seconds: Math.round(seconds * 10) / 10,
  outcomes,
  rejections,
  downstreamCalls: fnCalls,
  faults,
  faultsTotal:
    faults.rejectError +
    faults.rejectString +
    faults.rejectUndefined +
    faults.throwSync +
    faults.plainValue +
    faults.slow +
    faults.overAttemptTimeout +
    faults.callerAbort,
  phases: phasesSeen,
  latencyMs: { p50: percentile(0.5), p99: percentile(0.99), max: Math.round(maxLatency) },
  eventLoopDelayMs: {
    p99: Math.round(loopDelay.percentile(99) / 1e6),
    max: Math.round(loopDelay.max / 1e6),
  },
  cache: stats.cache,
  bulkhead: stats.bulkhead,
  rateLimiter: stats.rateLimiter,
  heapMB: heaps.map(mb),
  heapDriftMB: mb(heapDrift),
  heapDriftBoundMB: mb(HEAP_DRIFT_BOUND),
  handlesLeft: resourcesLeft,
  timersLeft,
  listenersLeft: {
    shutdownSignal: shutdownListeners,
    callerSignals: callerSignalsLeftWithListeners,
  },
  callerSignalsChecked,
  unhandledRejections: unhandled,
  unsettled,
  settledMoreThanOnce: multiple,
  checks,
  failures: [...failures, ...unhandledSamples],
};

if (!flag('--json')) {
  const line = (label, text) => console.log(`${label.padEnd(22)}${text}`);
  console.log(`bulwark soak (${summary.mode}, seed ${SEED}, Node ${process.version})`);
  line('calls', `${CALLS.toLocaleString('en')} in ${summary.seconds} s`);
  line(
    'outcomes',
    `${outcomes.resolved} resolved, ${outcomes.fallback} fallback, ${outcomes.rejected} rejected (sum ${total})`,
  );
  line('rejections', JSON.stringify(rejections));
  line('downstream calls', String(fnCalls));
  line('faults injected', `${summary.faultsTotal} ${JSON.stringify(faults)}`);
  line('phases', JSON.stringify(phasesSeen));
  line(
    'latency (ms)',
    `p50 ${summary.latencyMs.p50}, p99 ${summary.latencyMs.p99}, max ${summary.latencyMs.max} (bound ${Math.round(latencyBound)})`,
  );
  line(
    'event-loop delay',
    `p99 ${summary.eventLoopDelayMs.p99} ms, max ${summary.eventLoopDelayMs.max} ms`,
  );
  line('cache', JSON.stringify(stats.cache));
  line('heap after GC (MB)', `${summary.heapMB.join(' → ')} (quarters)`);
  line(
    'heap drift',
    `${summary.heapDriftMB} MB, Q1 end → Q4 end (bound ±${summary.heapDriftBoundMB} MB)`,
  );
  line('handles left', `${resourcesLeft.length} ${JSON.stringify(resourcesLeft)} (vs baseline)`);
  line('timers left', `${timersLeft} (ref'ed and unref'ed)`);
  line(
    'listeners left',
    `${shutdownListeners} on the shutdown signal, ${callerSignalsLeftWithListeners} of ${callerSignalsChecked} caller signals`,
  );
  line('unhandled rejections', String(unhandled));
  for (const [name, passed] of Object.entries(checks)) line(passed ? '  ok' : '  FAILED', name);
  for (const message of summary.failures) console.log(`  ! ${message}`);
}
console.log(`SOAK_SUMMARY ${JSON.stringify(summary)}`);
process.exitCode = ok ? 0 : 1;
