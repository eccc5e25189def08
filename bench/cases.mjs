// The benchmark cases: bulwark's stages, the closest peer equivalent of each, and reference rows.
//
// Every case has a `setup(fn)` that wraps the target `fn` and returns `{ call }`, where `call()` makes
// one call and returns its promise. Libraries are imported inside `setup`, so a child process loads
// only the library of the case it measures (no JIT feedback or timers from the others).
//
// Happy-path settings everywhere: circuits closed, a bulkhead wider than the 100 calls in flight, a
// rate limit that never binds, timeouts (10 s) that never fire. Rejection cases use a shared policy
// put into the rejecting state before measuring; bulwark's use `stackTraces: false`.

const BULWARK_URL = process.env.BULWARK_DIST ?? new URL('../dist/index.js', import.meta.url).href;

const bulwark = () => import(BULWARK_URL);
const cockatiel = () => import('cockatiel');
const mollitia = () => import('mollitia');
const opossum = async () => (await import('opossum')).default;
const bottleneck = async () => (await import('bottleneck')).default;

const CONCURRENCY = 100;

/** The targets: every case wraps the same function. */
export const TARGETS = {
  async: () => async () => 42,
  immediate: () => async () => {
    await new Promise((resolve) => setImmediate(resolve));
    return 42;
  },
};

/**
 * The observation floor: what any stage that must see `fn`'s outcome (to retry, count, fall back or
 * time it) pays at least, one `.then` with handlers made once. Every target below is stated against it,
 * measured in the same process as the row.
 */
export function observationFloor(fn) {
  const ok = (value) => value;
  const err = (error) => {
    throw error;
  };
  return () => fn().then(ok, err);
}

/** The timing variants, in the order of the table's columns. `floor`: also time the floor. */
export const VARIANTS = [
  { id: 'seq', target: 'async', concurrency: 1, floor: true },
  { id: 'conc', target: 'async', concurrency: CONCURRENCY },
  { id: 'seqImmediate', target: 'immediate', concurrency: 1 },
  { id: 'concImmediate', target: 'immediate', concurrency: CONCURRENCY },
];

const TIMEOUT = 10_000;
const WIDE = 1_000; // bulkhead width: more than the 100 calls in flight
const HUGE_LIMIT = 1e12; // calls per second: a rate limit that never binds

/**
 * Categories in display order. `target` is the promise bulwark's row keeps (Node 20 and 24, sequential
 * calls of the async target):
 * - `floor`: time per call at most this multiple of the observation floor;
 * - `bare`: time per call at most this multiple of the bare call (a stage that watches nothing);
 * - `extraBytes`: bytes allocated per call beyond the bare call, at most;
 * - `faster`: at least `times` faster than the peer row `id` (ratios to the bare call compared).
 * `what` names the row in the sentence that states the promise.
 */
export const CATEGORIES = [
  { id: 'reference', title: 'Reference' },
  {
    id: 'retry',
    title: 'Retry',
    what: 'Retry alone',
    target: { floor: 1.5, extraBytes: 100 },
  },
  {
    id: 'circuitBreaker',
    title: 'Circuit breaker',
    what: 'A circuit breaker alone',
    target: { floor: 1.5, extraBytes: 100 },
  },
  {
    id: 'timeout',
    title: 'Timeout',
    what: 'A timeout alone',
    target: { floor: 2, extraBytes: 400 },
  },
  {
    id: 'fallback',
    title: 'Fallback',
    what: 'A fallback alone',
    target: { floor: 1.5, extraBytes: 100 },
  },
  {
    id: 'bulkhead',
    title: 'Bulkhead',
    what: 'A bulkhead alone',
    target: { floor: 1.5, extraBytes: 100 },
  },
  {
    id: 'rateLimiter',
    title: 'Rate limiter',
    what: 'A rate limiter alone',
    target: { floor: 1.5, extraBytes: 100 },
  },
  {
    id: 'cacheHit',
    title: 'Cache hit',
    what: 'A cache hit',
    target: { bare: 1, extraBytes: 0 },
  },
  {
    id: 'cacheMiss',
    title: 'Cache miss',
    what: 'A cache miss (every miss evicts)',
    target: { floor: 5, extraBytes: 200 },
  },
  {
    id: 'allButTimeout',
    title: 'All but timeout (retry, breaker, limiter, bulkhead, fallback)',
    what: 'A call through retry, breaker, rate limiter, bulkhead and fallback',
    target: { floor: 2.5, extraBytes: 120 },
  },
  {
    id: 'allSeven',
    title: 'All seven (cache on the miss path)',
    what: 'A call through all seven stages (cache on the miss path)',
    target: {
      floor: 6,
      extraBytes: 500,
      faster: { id: 'opossum:timeout', name: "opossum's `new CircuitBreaker(fn)`", times: 3 },
    },
  },
  {
    id: 'telemetry',
    title:
      'OpenTelemetry on: all but timeout, instrument() with the SDK (see the rows above for off)',
  },
  {
    id: 'partitioned',
    title:
      'Partitioned by tenant: breaker, limiter and bulkhead, without and with `partition` (an existing partition, a key the caller holds)',
  },
  // A local rejection: at most 19x the observation floor, which is the 1 µs first promised, at the
  // floor of 53 ns of the machine it was promised on. Stated in microseconds it was kept or broken by
  // the machine a run landed on (0.74-1.58 µs in one day's runs, at 13.5-18.1x the floor throughout).
  {
    id: 'rejectCircuitOpen',
    title: 'Rejection: open circuit',
    what: 'A rejection by an open circuit',
    target: { floor: 19 },
  },
  {
    id: 'rejectBulkheadFull',
    title: 'Rejection: full bulkhead',
    what: 'A rejection by a full bulkhead',
    target: { floor: 19 },
  },
  {
    id: 'rejectRateLimited',
    title: 'Rejection: rate limited',
    what: 'A rejection by a spent rate limit',
    target: { floor: 19 },
  },
];

// --- helpers ------------------------------------------------------------------------------------

/** A call that never settles: it holds a bulkhead slot for the whole run. */
const never = () =>
  new Promise(() => {
    // never settles
  });

async function cockatielBreaker() {
  const { circuitBreaker, handleAll, CountBreaker } = await cockatiel();
  // CountBreaker: a failure rate over the last N calls, like bulwark's default window.
  return circuitBreaker(handleAll, {
    halfOpenAfter: 10_000,
    breaker: new CountBreaker({ threshold: 0.5, size: 100 }),
  });
}

async function mollitiaCircuit(fn, makeModules) {
  const m = await mollitia();
  const circuit = new m.Circuit({ func: fn, options: { modules: makeModules(m) } });
  return circuit;
}

function bulwarkCase(id, category, label, options, extra = {}) {
  return {
    id: `bulwark:${id}`,
    lib: 'bulwark',
    category,
    label,
    ...extra,
    async setup(fn) {
      const { resilient } = await bulwark();
      const wrapped = resilient(fn, options());
      if (extra.keyed) {
        let key = 0;
        return { call: () => wrapped(key++) };
      }
      if (extra.arg !== undefined) return { call: () => wrapped(extra.arg) };
      if (extra.hit) await wrapped(1);
      return { call: extra.hit ? () => wrapped(1) : wrapped };
    },
  };
}

/**
 * All stages but timeout, instrumented by bulwark/otel with the OpenTelemetry SDK: a MeterProvider
 * whose reader is never collected during the run (measurements are recorded, not exported), and with
 * `tracing`, a BasicTracerProvider with no span processor (a span per call is made and ended). The
 * otel module is imported from the repository's dist/ so that `@opentelemetry/api` resolves.
 */
function telemetryCase(id, label, tracing) {
  return {
    id: `bulwark:${id}`,
    lib: 'bulwark',
    category: 'telemetry',
    label,
    async setup(fn) {
      const { resilient } = await bulwark();
      const { instrument } = await import(new URL('../dist/otel/index.js', import.meta.url).href);
      const {
        MeterProvider,
        InMemoryMetricExporter,
        PeriodicExportingMetricReader,
        AggregationTemporality,
      } = await import('@opentelemetry/sdk-metrics');
      const reader = new PeriodicExportingMetricReader({
        exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
        exportIntervalMillis: 3_600_000,
      });
      const meter = new MeterProvider({ readers: [reader] }).getMeter('bench');
      let tracer;
      if (tracing) {
        const { BasicTracerProvider } = await import('@opentelemetry/sdk-trace-base');
        tracer = new BasicTracerProvider().getTracer('bench');
      }
      const wrapped = resilient(fn, {
        retry: true,
        circuitBreaker: {},
        rateLimiter: { limit: HUGE_LIMIT, interval: 1_000 },
        bulkhead: WIDE,
        fallback: 0,
      });
      const instrumented = instrument(wrapped, tracing ? { meter, tracer } : { meter });
      return { call: instrumented };
    },
  };
}

// --- the cases ----------------------------------------------------------------------------------

/** @type {Array<{ id: string, lib: string, category: string, label: string, rejects?: boolean,
 *   setup: (fn: () => Promise<number>) => Promise<{ call: () => Promise<unknown> }> }>} */
export const CASES = [
  // Reference
  {
    id: 'bare',
    lib: 'bare',
    category: 'reference',
    label: 'await fn()',
    setup: async (fn) => ({ call: fn }),
  },
  {
    id: 'floor',
    lib: 'observation floor',
    category: 'reference',
    label: 'fn().then(ok, err), handlers made once',
    setup: async (fn) => ({ call: observationFloor(fn) }),
  },
  {
    id: 'async-wrapper',
    lib: 'plain async',
    category: 'reference',
    label: 'async (...a) => await fn(...a)',
    setup: async (fn) => {
      const wrapped = async (...a) => await fn(...a);
      return { call: wrapped };
    },
  },

  {
    id: 'reject-floor',
    lib: 'bare reject',
    category: 'reference',
    label: 'await Promise.reject(error), error made once',
    rejects: true,
    setup: async () => {
      const error = new Error('made once');
      return { call: () => Promise.reject(error) };
    },
  },

  // Retry
  bulwarkCase('retry', 'retry', '{ retry: true }', () => ({ retry: true })),
  {
    id: 'cockatiel:retry',
    lib: 'cockatiel',
    category: 'retry',
    label: 'retry(handleAll, { maxAttempts: 2 })',
    setup: async (fn) => {
      const { retry, handleAll } = await cockatiel();
      const policy = retry(handleAll, { maxAttempts: 2 });
      return { call: () => policy.execute(fn) };
    },
  },
  {
    id: 'p-retry',
    lib: 'p-retry',
    category: 'retry',
    label: 'pRetry(fn, { retries: 2 })',
    setup: async (fn) => {
      const pRetry = (await import('p-retry')).default;
      const options = { retries: 2 };
      return { call: () => pRetry(fn, options) };
    },
  },
  {
    id: 'async-retry',
    lib: 'async-retry',
    category: 'retry',
    label: 'retry(fn, { retries: 2 })',
    setup: async (fn) => {
      const retry = (await import('async-retry')).default;
      const options = { retries: 2 };
      return { call: () => retry(fn, options) };
    },
  },
  {
    id: 'mollitia:retry',
    lib: 'mollitia',
    category: 'retry',
    label: 'Circuit + Retry({ attempts: 2 })',
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [new m.Retry({ attempts: 2 })]);
      return { call: () => circuit.execute() };
    },
  },

  // Circuit breaker
  bulwarkCase('circuitBreaker', 'circuitBreaker', '{ circuitBreaker: {} }', () => ({
    circuitBreaker: {},
  })),
  {
    id: 'cockatiel:circuitBreaker',
    lib: 'cockatiel',
    category: 'circuitBreaker',
    label: 'circuitBreaker(handleAll, CountBreaker)',
    setup: async (fn) => {
      const policy = await cockatielBreaker();
      return { call: () => policy.execute(fn) };
    },
  },
  {
    id: 'opossum',
    lib: 'opossum',
    category: 'circuitBreaker',
    label: 'new CircuitBreaker(fn, { timeout: false })',
    setup: async (fn) => {
      const CircuitBreaker = await opossum();
      const breaker = new CircuitBreaker(fn, { timeout: false });
      return { call: () => breaker.fire() };
    },
  },
  {
    id: 'mollitia:breaker',
    lib: 'mollitia',
    category: 'circuitBreaker',
    label: 'Circuit + SlidingCountBreaker',
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [new m.SlidingCountBreaker({})]);
      return { call: () => circuit.execute() };
    },
  },

  // Timeout
  bulwarkCase('timeout', 'timeout', `{ timeout: ${TIMEOUT} }`, () => ({ timeout: TIMEOUT })),
  {
    id: 'cockatiel:timeout',
    lib: 'cockatiel',
    category: 'timeout',
    label: 'timeout(10_000, Aggressive)',
    setup: async (fn) => {
      const { timeout, TimeoutStrategy } = await cockatiel();
      const policy = timeout(TIMEOUT, TimeoutStrategy.Aggressive);
      return { call: () => policy.execute(fn) };
    },
  },
  {
    id: 'p-timeout',
    lib: 'p-timeout',
    category: 'timeout',
    label: 'pTimeout(fn(), { milliseconds: 10_000 })',
    setup: async (fn) => {
      const pTimeout = (await import('p-timeout')).default;
      const options = { milliseconds: TIMEOUT };
      return { call: () => pTimeout(fn(), options) };
    },
  },
  {
    id: 'opossum:timeout',
    lib: 'opossum',
    category: 'timeout',
    label: 'new CircuitBreaker(fn) (default 10 s timeout)',
    setup: async (fn) => {
      const CircuitBreaker = await opossum();
      const breaker = new CircuitBreaker(fn);
      return { call: () => breaker.fire() };
    },
  },
  {
    id: 'mollitia:timeout',
    lib: 'mollitia',
    category: 'timeout',
    label: 'Circuit + Timeout({ delay: 10_000 })',
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [new m.Timeout({ delay: TIMEOUT })]);
      return { call: () => circuit.execute() };
    },
  },

  // Fallback
  bulwarkCase('fallback', 'fallback', '{ fallback: 0 }', () => ({ fallback: 0 })),
  {
    id: 'cockatiel:fallback',
    lib: 'cockatiel',
    category: 'fallback',
    label: 'fallback(handleAll, 0)',
    setup: async (fn) => {
      const { fallback, handleAll } = await cockatiel();
      const policy = fallback(handleAll, 0);
      return { call: () => policy.execute(fn) };
    },
  },
  {
    id: 'mollitia:fallback',
    lib: 'mollitia',
    category: 'fallback',
    label: 'Circuit + Fallback',
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [new m.Fallback({ callback: () => 0 })]);
      return { call: () => circuit.execute() };
    },
  },

  // Bulkhead
  bulwarkCase('bulkhead', 'bulkhead', `{ bulkhead: ${WIDE} }`, () => ({ bulkhead: WIDE })),
  {
    id: 'cockatiel:bulkhead',
    lib: 'cockatiel',
    category: 'bulkhead',
    label: `bulkhead(${WIDE})`,
    setup: async (fn) => {
      const { bulkhead } = await cockatiel();
      const policy = bulkhead(WIDE);
      return { call: () => policy.execute(fn) };
    },
  },
  {
    id: 'p-limit',
    lib: 'p-limit',
    category: 'bulkhead',
    label: `pLimit(${WIDE})`,
    setup: async (fn) => {
      const pLimit = (await import('p-limit')).default;
      const limit = pLimit(WIDE);
      return { call: () => limit(fn) };
    },
  },
  {
    id: 'bottleneck:bulkhead',
    lib: 'bottleneck',
    category: 'bulkhead',
    label: `new Bottleneck({ maxConcurrent: ${WIDE} })`,
    setup: async (fn) => {
      const Bottleneck = await bottleneck();
      const limiter = new Bottleneck({ maxConcurrent: WIDE });
      return { call: () => limiter.schedule(fn) };
    },
  },
  {
    id: 'mollitia:bulkhead',
    lib: 'mollitia',
    category: 'bulkhead',
    label: `Circuit + Bulkhead({ concurrentSize: ${WIDE} })`,
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [
        new m.Bulkhead({ concurrentSize: WIDE, queueSize: 0 }),
      ]);
      return { call: () => circuit.execute() };
    },
  },

  // Rate limiter
  bulwarkCase('rateLimiter', 'rateLimiter', '{ rateLimiter: { limit: 1e12 } }', () => ({
    rateLimiter: { limit: HUGE_LIMIT, interval: 1_000 },
  })),
  {
    id: 'bottleneck',
    lib: 'bottleneck',
    category: 'rateLimiter',
    label: 'new Bottleneck() (no limit binds)',
    setup: async (fn) => {
      const Bottleneck = await bottleneck();
      const limiter = new Bottleneck();
      return { call: () => limiter.schedule(fn) };
    },
  },
  {
    id: 'mollitia:ratelimit',
    lib: 'mollitia',
    category: 'rateLimiter',
    label: 'Circuit + Ratelimit({ limitPeriod: 1000 })',
    setup: async (fn) => {
      // limitForPeriod defaults to Infinity (never binds); any finite limit makes each call splice an array.
      const circuit = await mollitiaCircuit(fn, (m) => [new m.Ratelimit({ limitPeriod: 1_000 })]);
      return { call: () => circuit.execute() };
    },
  },

  // Cache
  bulwarkCase('cacheHit', 'cacheHit', '{ cache: true }, same key', () => ({ cache: true }), {
    hit: true,
  }),
  {
    id: 'mollitia:cacheHit',
    lib: 'mollitia',
    category: 'cacheHit',
    label: 'Circuit + Cache({ ttl: 60_000 }), same key',
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [new m.Cache({ ttl: 60_000 })]);
      await circuit.execute(1);
      return { call: () => circuit.execute(1) };
    },
  },
  bulwarkCase(
    'cacheMiss',
    'cacheMiss',
    '{ cache: true }, a new key each call',
    () => ({
      cache: true,
    }),
    { keyed: true },
  ),
  {
    id: 'mollitia:cacheMiss',
    lib: 'mollitia',
    category: 'cacheMiss',
    label: 'Circuit + Cache({ ttl: 60_000 }), a new key each call',
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [new m.Cache({ ttl: 60_000 })]);
      let key = 0;
      return { call: () => circuit.execute(key++) };
    },
  },

  // All stages but timeout
  bulwarkCase(
    'allButTimeout',
    'allButTimeout',
    'retry, circuitBreaker, rateLimiter, bulkhead, fallback',
    () => ({
      retry: true,
      circuitBreaker: {},
      rateLimiter: { limit: HUGE_LIMIT, interval: 1_000 },
      bulkhead: WIDE,
      fallback: 0,
    }),
  ),
  {
    id: 'cockatiel:wrap4',
    lib: 'cockatiel',
    category: 'allButTimeout',
    label: 'wrap(fallback, retry, breaker, bulkhead)',
    setup: async (fn) => {
      const { wrap, retry, fallback, bulkhead, handleAll } = await cockatiel();
      const policy = wrap(
        fallback(handleAll, 0),
        retry(handleAll, { maxAttempts: 2 }),
        await cockatielBreaker(),
        bulkhead(WIDE),
      );
      return { call: () => policy.execute(fn) };
    },
  },
  {
    id: 'mollitia:all5',
    lib: 'mollitia',
    category: 'allButTimeout',
    label: 'Circuit + Fallback, Retry, Breaker, Ratelimit, Bulkhead',
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [
        new m.Fallback({ callback: () => 0 }),
        new m.Retry({ attempts: 2 }),
        new m.SlidingCountBreaker({}),
        new m.Ratelimit({ limitPeriod: 1_000 }),
        new m.Bulkhead({ concurrentSize: WIDE, queueSize: 0 }),
      ]);
      return { call: () => circuit.execute() };
    },
  },

  // All seven
  bulwarkCase(
    'allSeven',
    'allSeven',
    'all seven, timeout 10 s, cache miss',
    () => ({
      retry: true,
      circuitBreaker: {},
      rateLimiter: { limit: HUGE_LIMIT, interval: 1_000 },
      bulkhead: WIDE,
      fallback: 0,
      timeout: TIMEOUT,
      cache: true,
    }),
    { keyed: true },
  ),
  {
    id: 'cockatiel:wrap5',
    lib: 'cockatiel',
    category: 'allSeven',
    label: 'wrap(fallback, retry, breaker, bulkhead, timeout)',
    setup: async (fn) => {
      const { wrap, retry, fallback, bulkhead, timeout, handleAll, TimeoutStrategy } =
        await cockatiel();
      const policy = wrap(
        fallback(handleAll, 0),
        retry(handleAll, { maxAttempts: 2 }),
        await cockatielBreaker(),
        bulkhead(WIDE),
        timeout(TIMEOUT, TimeoutStrategy.Aggressive),
      );
      return { call: () => policy.execute(fn) };
    },
  },
  {
    id: 'opossum:full',
    lib: 'opossum',
    category: 'allSeven',
    label: 'new CircuitBreaker(fn, { capacity }) + fallback (10 s timeout)',
    setup: async (fn) => {
      const CircuitBreaker = await opossum();
      const breaker = new CircuitBreaker(fn, { capacity: WIDE });
      breaker.fallback(() => 0);
      return { call: () => breaker.fire() };
    },
  },
  {
    id: 'mollitia:all7',
    lib: 'mollitia',
    category: 'allSeven',
    label: 'Circuit + all seven modules, cache miss',
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [
        new m.Fallback({ callback: () => 0 }),
        new m.Cache({ ttl: 60_000 }),
        new m.Retry({ attempts: 2 }),
        new m.SlidingCountBreaker({}),
        new m.Ratelimit({ limitPeriod: 1_000 }),
        new m.Bulkhead({ concurrentSize: WIDE, queueSize: 0 }),
        new m.Timeout({ delay: TIMEOUT }),
      ]);
      let key = 0;
      return { call: () => circuit.execute(key++) };
    },
  },

  // OpenTelemetry on
  telemetryCase('otel-metrics', 'all but timeout + instrument({ meter })', false),
  telemetryCase(
    'otel-traces',
    'all but timeout + instrument({ meter, tracer }): a span per call',
    true,
  ),

  // Partitioned stages: the same three stages, one state for all calls and one per tenant
  bulwarkCase(
    'threeStages',
    'partitioned',
    'circuitBreaker, rateLimiter, bulkhead (one state)',
    () => ({
      circuitBreaker: {},
      rateLimiter: { limit: HUGE_LIMIT, interval: 1_000 },
      bulkhead: WIDE,
    }),
    { arg: 'tenant-42' },
  ),
  bulwarkCase(
    'threePartitioned',
    'partitioned',
    'the same, each with partition: { by: (tenant) => tenant }',
    () => {
      const partition = { by: (tenant) => tenant };
      return {
        circuitBreaker: { partition },
        rateLimiter: { limit: HUGE_LIMIT, interval: 1_000, partition },
        bulkhead: { maxConcurrent: WIDE, partition },
      };
    },
    { arg: 'tenant-42' },
  ),

  // Rejections
  {
    id: 'bulwark:rejectCircuitOpen',
    lib: 'bulwark',
    category: 'rejectCircuitOpen',
    label: 'circuitBreaker.isolate(), stackTraces: false',
    rejects: true,
    setup: async (fn) => {
      const { resilient, circuitBreaker } = await bulwark();
      const breaker = circuitBreaker();
      breaker.isolate();
      return { call: resilient(fn, { circuitBreaker: breaker, stackTraces: false }) };
    },
  },
  {
    id: 'cockatiel:rejectCircuitOpen',
    lib: 'cockatiel',
    category: 'rejectCircuitOpen',
    label: 'breaker.isolate()',
    rejects: true,
    setup: async (fn) => {
      const policy = await cockatielBreaker();
      policy.isolate();
      return { call: () => policy.execute(fn) };
    },
  },
  {
    id: 'opossum:rejectCircuitOpen',
    lib: 'opossum',
    category: 'rejectCircuitOpen',
    label: 'breaker.open()',
    rejects: true,
    setup: async (fn) => {
      const CircuitBreaker = await opossum();
      const breaker = new CircuitBreaker(fn, { timeout: false, resetTimeout: 1e9 });
      breaker.open();
      return { call: () => breaker.fire() };
    },
  },
  {
    id: 'mollitia:rejectCircuitOpen',
    lib: 'mollitia',
    category: 'rejectCircuitOpen',
    label: 'breaker.open()',
    rejects: true,
    setup: async (fn) => {
      const m = await mollitia();
      const breaker = new m.SlidingCountBreaker({ openStateDelay: 1e9 });
      await breaker.open();
      const circuit = new m.Circuit({ func: fn, options: { modules: [breaker] } });
      return { call: () => circuit.execute() };
    },
  },
  {
    id: 'bulwark:rejectBulkheadFull',
    lib: 'bulwark',
    category: 'rejectBulkheadFull',
    label: 'bulkhead(1) held, stackTraces: false',
    rejects: true,
    setup: async (fn) => {
      const { resilient, bulkhead } = await bulwark();
      const shared = bulkhead({ maxConcurrent: 1 });
      void resilient(never, { bulkhead: shared })();
      return { call: resilient(fn, { bulkhead: shared, stackTraces: false }) };
    },
  },
  {
    id: 'cockatiel:rejectBulkheadFull',
    lib: 'cockatiel',
    category: 'rejectBulkheadFull',
    label: 'bulkhead(1) held',
    rejects: true,
    setup: async (fn) => {
      const { bulkhead } = await cockatiel();
      const policy = bulkhead(1);
      void policy.execute(never);
      return { call: () => policy.execute(fn) };
    },
  },
  {
    id: 'mollitia:rejectBulkheadFull',
    lib: 'mollitia',
    category: 'rejectBulkheadFull',
    label: 'Bulkhead({ concurrentSize: 1, queueSize: 0 }) held',
    rejects: true,
    setup: async (fn) => {
      const m = await mollitia();
      const shared = new m.Bulkhead({ concurrentSize: 1, queueSize: 0 });
      void new m.Circuit({ func: never, options: { modules: [shared] } }).execute();
      const circuit = new m.Circuit({ func: fn, options: { modules: [shared] } });
      return { call: () => circuit.execute() };
    },
  },
  {
    id: 'bulwark:rejectRateLimited',
    lib: 'bulwark',
    category: 'rejectRateLimited',
    label: 'rateLimiter({ limit: 1 }) spent, stackTraces: false',
    rejects: true,
    setup: async (fn) => {
      const { resilient, rateLimiter } = await bulwark();
      const limiter = rateLimiter({ limit: 1, interval: 1e9 });
      const wrapped = resilient(fn, { rateLimiter: limiter, stackTraces: false });
      await wrapped();
      return { call: wrapped };
    },
  },
  {
    id: 'mollitia:rejectRateLimited',
    lib: 'mollitia',
    category: 'rejectRateLimited',
    label: 'Ratelimit({ limitForPeriod: 1 }) spent',
    rejects: true,
    setup: async (fn) => {
      const circuit = await mollitiaCircuit(fn, (m) => [
        new m.Ratelimit({ limitPeriod: 1e9, limitForPeriod: 1 }),
      ]);
      await circuit.execute();
      return { call: () => circuit.execute() };
    },
  },
  {
    id: 'bottleneck:rejectRateLimited',
    lib: 'bottleneck',
    category: 'rejectRateLimited',
    label: 'reservoir 0, highWater 0, OVERFLOW',
    rejects: true,
    setup: async (fn) => {
      const Bottleneck = await bottleneck();
      const limiter = new Bottleneck({
        reservoir: 0,
        highWater: 0,
        strategy: Bottleneck.strategy.OVERFLOW,
      });
      return { call: () => limiter.schedule(fn) };
    },
  },
];

export const CASE_BY_ID = new Map(CASES.map((c) => [c.id, c]));
