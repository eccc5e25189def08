// Child process of test/alloc-budget.test.ts: measures bytes per call of the built package's hot paths
// against the bare call, in one process, and prints them as JSON. Run with bench/lib/alloc.mjs's
// NODE_FLAGS (--expose-gc, a 512 MB young generation, --predictable).
import { measureBytesPerCall } from '../../bench/lib/alloc.mjs';
import { resilient, resilientSync } from '../../dist/index.js';

const target = async () => 42;
const syncTarget = () => 42;
const never = { limit: 1e12 }; // a limiter that always has a token

/** Async cases: the wrapped function and the options that built it. */
const cases = {
  retry: { retry: true },
  circuitBreaker: { circuitBreaker: {} },
  rateLimiter: { rateLimiter: never },
  bulkhead: { bulkhead: 10 },
  fallback: { fallback: 0 },
  allButTimeout: {
    retry: true,
    circuitBreaker: {},
    rateLimiter: never,
    bulkhead: 10,
    fallback: 0,
  },
  timeout: { timeout: 60_000 },
  cacheHit: { cache: true },
  // Chaos configured but switched off by a flag function: one check per call.
  chaosDisabled: {
    retry: true,
    circuitBreaker: {},
    chaos: {
      fault: { rate: 1, error: new Error('x') },
      latency: { rate: 1, delay: 1_000 },
      enabled: () => false,
    },
  },
  // Chaos on, faults and results drawn but not injected (rate 0): still the fast path.
  chaosDrawn: {
    retry: true,
    circuitBreaker: {},
    chaos: { fault: { rate: 0, error: new Error('x') }, result: { rate: 0, value: 1 } },
  },
};

/** Cases called with a new key each time: every call misses (and, once full, evicts). */
const keyedCases = {
  cacheMiss: { cache: true },
  allSeven: {
    retry: true,
    circuitBreaker: {},
    rateLimiter: never,
    bulkhead: 1_000,
    fallback: 0,
    timeout: 60_000,
    cache: true,
  },
};

const batch = 10_000;
const reps = 12;
const out = { async: {}, sync: {} };
out.async.bare = (await measureBytesPerCall(() => target(), { batch, reps })).bytesPerCall;
for (const [name, options] of Object.entries(cases)) {
  const wrapped = resilient(target, options);
  out.async[name] = (
    await measureBytesPerCall(() => wrapped(), { batch, reps, warmup: 5 * batch })
  ).bytesPerCall;
}
for (const [name, options] of Object.entries(keyedCases)) {
  const wrapped = resilient(target, options);
  let key = 0;
  // Warm-up of several cache generations, so that evicted entries are being reused.
  out.async[name] = (
    await measureBytesPerCall(() => wrapped(key++), { batch, reps, warmup: 3 * batch })
  ).bytesPerCall;
}

// Partitioned stages, called with a string key the caller already holds, on a partition that exists:
// the key function and a Map lookup, no allocation (compared with the same stages unpartitioned).
const byTenant = { by: (tenant) => tenant };
const tenantCases = {
  threeStages: { circuitBreaker: {}, rateLimiter: never, bulkhead: 10 },
  threePartitioned: {
    circuitBreaker: { partition: byTenant },
    rateLimiter: { ...never, partition: byTenant },
    bulkhead: { maxConcurrent: 10, partition: byTenant },
  },
};
const tenant = 'tenant-42';
for (const [name, options] of Object.entries(tenantCases)) {
  const wrapped = resilient(async (t) => t.length, options);
  out.async[name] = (
    await measureBytesPerCall(() => wrapped(tenant), { batch, reps })
  ).bytesPerCall;
}

const syncCases = {
  retry: { retry: true },
  circuitBreaker: { circuitBreaker: {} },
  fallback: { fallback: 0 },
  cacheHit: { cache: true },
  allButLimiter: { retry: true, circuitBreaker: {}, fallback: 0 },
};
let sink = 0;
function measureSync(fn) {
  for (let i = 0; i < batch; i++) sink += fn();
  const samples = [];
  for (let r = 0; r < reps; r++) {
    globalThis.gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < batch; i++) sink += fn();
    samples.push((process.memoryUsage().heapUsed - before) / batch);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}
out.sync.bare = measureSync(syncTarget);
for (const [name, options] of Object.entries(syncCases)) {
  out.sync[name] = measureSync(resilientSync(syncTarget, options));
}
out.sink = sink > 0;
process.stdout.write(JSON.stringify(out));
