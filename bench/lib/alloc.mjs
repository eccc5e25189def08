// Bytes allocated per awaited call: the method of ARCHITECTURE.md section 3.
//
// Dependency-free on purpose: the allocation-budget test imports this file from a child process that
// it spawns with NODE_FLAGS, and bench/worker.mjs uses it for the `bytes/call` column.
//
//   node --expose-gc --max-semi-space-size=512 --min-semi-space-size=512 --predictable script.mjs
//
//   import { measureBytesPerCall } from '../bench/lib/alloc.mjs';
//   const { bytesPerCall } = await measureBytesPerCall(() => wrapped(), { batch: 10_000, reps: 15 });
//
// Method: with the young generation held open (semi-space 512 MB, so a batch of calls fits without a
// scavenge), run gc(), read `heapUsed`, run a batch of awaited calls, read `heapUsed` again and divide
// by the batch size. A batch during which a GC ran is discarded: a PerformanceObserver on 'gc' records
// the start time of every GC, and a batch is kept only if no GC started inside its [t0, t1] window.
// The observer's callback is delivered asynchronously (after the batch), so the GC entries are
// matched to batch windows after the fact, never with a flag reset after gc(). The explicit gc()
// before each batch finishes before t0 is read, so it never discards a batch. The result is the
// median of the kept batches.
//
// Two things would otherwise let the machine's load into a byte count. The first batch after the first
// explicit gc() allocates more than the steady state (up to +90 B per call on the cache-miss rows,
// whatever the warm-up), so one gc() and batch belong to the warm-up. And V8 starts GCs on timers
// (the memory reducer) and compiles on a background thread, so on a loaded machine more batches are
// discarded and optimised code arrives later: a loaded CI run reported +208 B for a path that
// allocates +171 B (a median of two kept batches, 171 and that outlier, is 208; the log kept no
// samples, so that is the likely story, not a certain one). Hence NODE_FLAGS has --predictable
// (one thread, no memory reducer: optimisation and GC happen at the same call in every run), and
// batches are run until `reps` of them are kept (at most 4 * reps batches).

import { PerformanceObserver, performance } from 'node:perf_hooks';

/** The flags a process needs for {@link measureBytesPerCall}. */
export const NODE_FLAGS = Object.freeze([
  '--expose-gc',
  '--max-semi-space-size=512',
  '--min-semi-space-size=512',
  '--predictable',
]);

/** Throws unless this process runs with `--expose-gc` (the semi-space flags cannot be checked). */
export function assertAllocFlags() {
  if (typeof globalThis.gc !== 'function') {
    throw new Error(
      `measureBytesPerCall needs a node started with ${NODE_FLAGS.join(' ')} (gc() is not exposed)`,
    );
  }
}

let measurements = 0;

function median(values) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function nextMacrotask() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Measures the bytes allocated per awaited call of `call`.
 *
 * @param {() => unknown} call - makes one call; its result is awaited. A rejection is caught and
 *   counted as a call (set `rejects: true` to say that rejections are expected; otherwise the first
 *   unexpected rejection is rethrown after the measurement).
 * @param {object} [options]
 * @param {number} [options.batch=10000] - calls per batch; the byte count is divided by it.
 * @param {number} [options.reps=15] - batches to keep; one during which a GC ran is discarded and
 *   run again (at most 4 * reps batches in all).
 * @param {number} [options.warmup=batch] - calls before the first batch (lets the JIT settle and lazy
 *   state, such as pools, fill up); one gc() and one more batch follow it.
 * @param {boolean} [options.rejects=false] - whether `call` is expected to reject.
 * @returns {Promise<{ bytesPerCall: number, kept: number, reps: number, batch: number,
 *   samples: number[], discarded: number[] }>} `bytesPerCall` is the median of the kept batches
 *   (NaN if every batch saw a GC); `samples` are the kept batches' bytes per call, `discarded` those
 *   of the batches that were thrown away.
 */
export async function measureBytesPerCall(call, options = {}) {
  assertAllocFlags();
  const batch = options.batch ?? 10_000;
  const reps = options.reps ?? 15;
  const warmup = options.warmup ?? batch;
  const rejects = options.rejects ?? false;
  if (!(Number.isInteger(batch) && batch > 0)) throw new TypeError('batch must be an integer > 0');
  if (!(Number.isInteger(reps) && reps > 0)) throw new TypeError('reps must be an integer > 0');

  // The loop is compiled from source for each measurement, so that its type feedback (which `call`
  // it sees, what that returns) is its own: measuring the bare call and then a wrapper in one process
  // gives each the same, monomorphic loop.
  const state = { rejects, failed: false, error: undefined };
  const run = new Function(
    `/* measureBytesPerCall ${++measurements} */
    return async function run(call, n, state) {
      for (let i = 0; i < n; i++) {
        try {
          await call();
        } catch (error) {
          if (!state.rejects && !state.failed) {
            state.failed = true;
            state.error = error;
          }
        }
      }
    };`,
  )();

  const gcStarts = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcStarts.push(entry.startTime);
  });
  observer.observe({ entryTypes: ['gc'] });

  const windows = [];
  try {
    // Warm up in batch-sized runs: the same entry into `run` as the measured batches.
    for (let done = 0; done < warmup; done += batch) await run(call, batch, state);
    globalThis.gc();
    await run(call, batch, state);
    // Rounds of the batches still missing, until `reps` are kept or 4 * reps have run.
    for (let round = reps; round > 0 && windows.length < 4 * reps;) {
      for (let r = 0; r < round; r++) {
        globalThis.gc();
        const t0 = performance.now();
        const before = process.memoryUsage().heapUsed;
        await run(call, batch, state);
        const after = process.memoryUsage().heapUsed;
        const t1 = performance.now();
        windows.push({ t0, t1, bytes: (after - before) / batch });
      }
      // Let the observer deliver the entries of the last batch (its callback runs on a later tick).
      await nextMacrotask();
      await nextMacrotask();
      for (const entry of observer.takeRecords()) gcStarts.push(entry.startTime);
      const kept = windows.filter((w) => !sawGc(w)).length;
      round = Math.min(reps - kept, 4 * reps - windows.length);
    }
  } finally {
    observer.disconnect();
  }
  if (state.failed) throw state.error;

  const samples = [];
  const discarded = [];
  for (const w of windows) (sawGc(w) ? discarded : samples).push(w.bytes);
  return { bytesPerCall: median(samples), kept: samples.length, reps, batch, samples, discarded };

  function sawGc(w) {
    return gcStarts.some((start) => start >= w.t0 && start <= w.t1);
  }
}
