import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Problems } from '../../src/core/validate.js';
import { AdaptiveLimit, PROBE_SAMPLES, resolveAdaptive } from '../../src/policies/adaptive.js';
import { Bulkhead, bulkhead } from '../../src/policies/bulkhead.js';
// @ts-expect-error -- a plain .mjs module shared with the benchmark, without type declarations
import { KNEE, kneeLatency, seeded } from '../../bench/lib/knee.mjs';

const knee = KNEE as number;
const latencyAt = kneeLatency as (inFlight: number, random: () => number) => number;
const seededRandom = seeded as (seed: number) => () => number;

/**
 * A closed loop of `callers` against the knee downstream, in virtual time, through a real Bulkhead: each
 * caller takes a slot (or queues), the call's latency is drawn when it starts, and its slot is completed
 * when it ends. Returns what happened in the second half of the run.
 */
function simulate(pool: Bulkhead, callers: number, duration: number, seed = 1) {
  const random = seededRandom(seed);
  let now = 0;
  let downstreamInFlight = 0;
  let maxOverLimit = 0;
  const running: { start: number; end: number }[] = [];
  const start = (): void => {
    downstreamInFlight++;
    maxOverLimit = Math.max(maxOverLimit, pool.stats().inFlight - pool.limit);
    running.push({ start: now, end: now + latencyAt(downstreamInFlight, random) });
  };
  const enter = (): void => {
    if (pool.tryAcquire()) start();
    else pool.enqueue({ grant: start });
  };
  for (let i = 0; i < callers; i++) enter();
  const latencies: number[] = [];
  const limits: number[] = [];
  let completed = 0;
  while (now < duration) {
    let k = 0;
    for (let i = 1; i < running.length; i++) if (running[i]!.end < running[k]!.end) k = i;
    const call = running.splice(k, 1)[0]!;
    now = call.end;
    downstreamInFlight--;
    pool.complete(call.start, now, false);
    if (now > duration / 2) {
      latencies.push(call.end - call.start);
      limits.push(pool.limit);
      completed++;
    }
    enter();
  }
  latencies.sort((a, b) => a - b);
  limits.sort((a, b) => a - b);
  const at = (a: number[], q: number): number =>
    a[Math.min(a.length - 1, Math.ceil(q * a.length) - 1)]!;
  return {
    p99: at(latencies, 0.99),
    limit: at(limits, 0.5),
    throughput: completed / (duration / 2000),
    maxOverLimit,
  };
}

function noLoadP99(): number {
  const random = seededRandom(99);
  const samples = Array.from({ length: 2000 }, () => latencyAt(1, random)).sort((a, b) => a - b);
  return samples[Math.ceil(0.99 * samples.length) - 1]!;
}

describe('adaptive bulkhead (virtual time, a downstream with a knee at 20 calls in flight)', () => {
  const fixed = simulate(bulkhead({ maxConcurrent: knee, maxQueue: Infinity }), 3 * knee, 60_000);

  it.each([
    ['gradient2', 5],
    ['gradient2', 200],
    ['aimd', 5],
    ['aimd', 200],
  ] as const)(
    '%s from an initial limit of %d settles near the knee under 3× its load',
    (algorithm, initialLimit) => {
      const pool = bulkhead({ adaptive: { algorithm, initialLimit }, maxQueue: Infinity });
      const run = simulate(pool, 3 * knee, 60_000);
      // Gradient2 (the default) settles within ±25% of the knee; AIMD, which only reacts once latency has
      // risen past its tolerance (1.2×), a little above it.
      const high = algorithm === 'gradient2' ? 1.25 : 1.5;
      expect(run.limit).toBeGreaterThanOrEqual(0.75 * knee);
      expect(run.limit).toBeLessThanOrEqual(high * knee);
      expect(run.p99).toBeLessThanOrEqual(2.5 * noLoadP99());
      expect(run.throughput).toBeGreaterThanOrEqual(0.8 * fixed.throughput);
    },
    60_000, // a simulation of 60 s of virtual time per case: CPU-bound, slower than the 5 s default under load
  );

  it('without a bulkhead the same load triples the latency (the problem it solves)', () => {
    const run = simulate(bulkhead({ maxConcurrent: 1000, maxQueue: Infinity }), 3 * knee, 20_000);
    expect(run.p99).toBeGreaterThan(2.5 * noLoadP99());
  });

  it('keeps its limit between minLimit and maxLimit and never admits past it (any load, any latencies)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 1, max: 120 }),
        fc.constantFrom('gradient2' as const, 'aimd' as const),
        fc.integer({ min: 1, max: 1000 }),
        (minLimit, extra, callers, algorithm, seed) => {
          const maxLimit = minLimit + extra;
          const pool = bulkhead({
            adaptive: {
              algorithm,
              minLimit,
              maxLimit,
              initialLimit: maxLimit,
              probeInterval: 2_000,
            },
            maxQueue: Infinity,
          });
          const run = simulate(pool, callers, 3_000, seed);
          const { inFlight } = pool.stats();
          const limit = pool.limit;
          expect(limit).toBeGreaterThanOrEqual(minLimit);
          expect(limit).toBeLessThanOrEqual(maxLimit);
          expect(inFlight).toBeLessThanOrEqual(Math.max(limit, callers));
          // Admission never passes the limit; a shrinking limit only lets calls in flight drain.
          expect(run.maxOverLimit).toBeLessThanOrEqual(maxLimit - minLimit);
        },
      ),
      { numRuns: 30 },
    );
  }, 60_000);
});

describe('AdaptiveLimit', () => {
  const resolve = (value: unknown) => {
    const problems = new Problems();
    const resolved = resolveAdaptive(value, 'bulkhead.adaptive', problems);
    problems.throwIfAny();
    return resolved!;
  };

  it('starts with a probe at minLimit, measures the no-load latency as the median of its samples, then uses initialLimit', () => {
    const limit = new AdaptiveLimit(resolve({ minLimit: 3, initialLimit: 40 }));
    expect(limit.limit).toBe(3);
    expect(limit.isProbing).toBe(true);
    for (let i = 0; i < PROBE_SAMPLES - 1; i++) limit.sample(i, i + 10 + (i % 3), false);
    expect(limit.isProbing).toBe(true);
    expect(limit.sample(100, 111, false)).toBe(true);
    expect(limit.isProbing).toBe(false);
    expect(limit.noLoadLatency).toBe(11);
    expect(limit.limit).toBe(40);
  });

  it('ignores, during a probe, calls that started before it (they ran at the old concurrency)', () => {
    const limit = new AdaptiveLimit(resolve({ probeInterval: 1_000 }));
    for (let i = 0; i < PROBE_SAMPLES; i++) limit.sample(0, 10, false);
    expect(limit.isProbing).toBe(false);
    // The next sample after probeInterval starts a probe at t = 2000.
    limit.sample(1_990, 2_000, false);
    expect(limit.isProbing).toBe(true);
    for (let i = 0; i < 100; i++) limit.sample(1_500, 2_050, false);
    expect(limit.isProbing).toBe(true);
    for (let i = 0; i < PROBE_SAMPLES; i++) limit.sample(2_000 + i, 2_020 + i, false);
    expect(limit.isProbing).toBe(false);
    expect(limit.noLoadLatency).toBe(20);
  });

  it('aimd backs off by 10% when a call times out, and grows by one per busy window', () => {
    const limit = new AdaptiveLimit(resolve({ algorithm: 'aimd', initialLimit: 50 }));
    for (let i = 0; i < PROBE_SAMPLES; i++) limit.sample(0, 10, false);
    expect(limit.limit).toBe(50);
    limit.started(50);
    for (let i = 0; i < 49; i++) limit.sample(0, 10, false);
    expect(limit.sample(0, 10, false)).toBe(true);
    expect(limit.limit).toBe(51);
    limit.started(51);
    for (let i = 0; i < 50; i++) limit.sample(0, 10, false);
    limit.sample(0, 10, true);
    expect(limit.limit).toBe(Math.round(51 * 0.9));
  });

  /** A limit past its first probe, which measured a no-load latency of `noLoad` ms. */
  const probed = (options: object, noLoad = 10) => {
    const limit = new AdaptiveLimit(resolve(options));
    for (let i = 0; i < PROBE_SAMPLES; i++) limit.sample(0, noLoad, false);
    return limit;
  };

  it('the no-load latency of an even number of probe samples is the mean of the middle two', () => {
    const limit = new AdaptiveLimit(resolve({}));
    for (let i = 0; i < PROBE_SAMPLES; i++) limit.sample(i, i + (i % 2 === 0 ? 10 : 20), false);
    expect(PROBE_SAMPLES % 2).toBe(0);
    expect(limit.noLoadLatency).toBe(15);
  });

  it('gradient2: latency twice the no-load value moves the limit by the documented formula', () => {
    const limit = probed({ initialLimit: 20 });
    expect(limit.limit).toBe(20);
    limit.started(20); // busy
    const before = limit.adjustments;
    // The window is max(16, limit) samples: 20 here; the 20th adjusts.
    for (let i = 0; i < 19; i++) expect(limit.sample(0, 20, false)).toBe(false);
    expect(limit.adjustments).toBe(before);
    expect(limit.sample(0, 20, false)).toBe(true);
    // gradient = 10 / 20 = 0.5; 0.8 × 20 + 0.2 × (20 × 0.5 + √20 / 4) = 18.22…
    expect(limit.limit).toBe(Math.round(0.8 * 20 + 0.2 * (20 * 0.5 + Math.sqrt(20) / 4)));
    expect(limit.limit).toBe(18);
  });

  it('gradient2: the gradient is clamped at 0.5 however slow the calls, and 1 at no-load latency or below', () => {
    const slow = probed({ initialLimit: 100 });
    slow.started(100);
    for (let i = 0; i < 100; i++) slow.sample(0, 1_000, false); // 100× the no-load latency
    expect(slow.limit).toBe(Math.round(0.8 * 100 + 0.2 * (100 * 0.5 + Math.sqrt(100) / 4)));
    const fast = probed({ initialLimit: 100 });
    fast.started(100);
    for (let i = 0; i < 100; i++) fast.sample(0, 0, false); // instant calls: no gradient below 1
    expect(fast.limit).toBe(Math.round(0.8 * 100 + 0.2 * (100 + Math.sqrt(100) / 4)));
  });

  it('gradient2: a window that used at most half the limit never raises it', () => {
    const limit = probed({ initialLimit: 100 });
    limit.started(50); // exactly half: not busy
    for (let i = 0; i < 100; i++) limit.sample(0, 10, false);
    expect(limit.limit).toBe(100);
    limit.started(51);
    for (let i = 0; i < 100; i++) limit.sample(0, 10, false);
    expect(limit.limit).toBe(Math.round(0.8 * 100 + 0.2 * (100 + Math.sqrt(100) / 4)));
  });

  it('aimd backs off when the median latency exceeds tolerance × no-load, not at it', () => {
    const at = probed({ algorithm: 'aimd', initialLimit: 20 }); // tolerance 1.2: 12 ms
    at.started(20);
    for (let i = 0; i < 20; i++) at.sample(0, 12, false);
    expect(at.limit).toBe(21);
    const above = probed({ algorithm: 'aimd', initialLimit: 20 });
    above.started(20);
    for (let i = 0; i < 20; i++) above.sample(0, 12.5, false);
    expect(above.limit).toBe(18);
  });

  it('probes again once probeInterval has passed (at it, not after), at minLimit; never with Infinity', () => {
    const limit = probed({ minLimit: 2, initialLimit: 20, probeInterval: 1_000 }); // probe ended at 10
    limit.sample(500, 1_009, false);
    expect(limit.isProbing).toBe(false);
    expect(limit.sample(1_000, 1_010, false)).toBe(true);
    expect(limit.isProbing).toBe(true);
    expect(limit.limit).toBe(2);
    const never = probed({ initialLimit: 20, probeInterval: Infinity });
    never.sample(0, 1e12, false);
    expect(never.isProbing).toBe(false);
  });

  it('the limit stays within minLimit and maxLimit whatever the estimate', () => {
    const up = probed({ algorithm: 'aimd', minLimit: 2, initialLimit: 10, maxLimit: 10 });
    up.started(10);
    for (let i = 0; i < 16; i++) up.sample(0, 10, false);
    expect(up.limit).toBe(10);
    const down = probed({ algorithm: 'aimd', minLimit: 9, initialLimit: 10, maxLimit: 20 });
    for (let i = 0; i < 16; i++) down.sample(0, 10, true);
    expect(down.limit).toBe(9);
  });

  it('does not grow while the service uses less than half of its limit', () => {
    const limit = new AdaptiveLimit(resolve({ algorithm: 'aimd', initialLimit: 50 }));
    for (let i = 0; i < PROBE_SAMPLES; i++) limit.sample(0, 10, false);
    limit.started(10);
    for (let i = 0; i < 200; i++) limit.sample(0, 10, false);
    expect(limit.limit).toBe(50);
  });
});

describe('adaptive bulkhead options', () => {
  it.each([
    [
      { adaptive: 'fast' },
      "Expected `bulkhead.adaptive` to be 'gradient2' or 'aimd', got `\"fast\"` (string)",
    ],
    [
      { adaptive: { algorithm: 'vegas' } },
      "Expected `bulkhead.adaptive.algorithm` to be 'gradient2' or 'aimd'",
    ],
    [
      { adaptive: { minLimit: 0 } },
      'Expected `bulkhead.adaptive.minLimit` to be an integer >= 1, got `0`',
    ],
    [
      { adaptive: { minLimit: 10, maxLimit: 5 } },
      'Expected `bulkhead.adaptive.maxLimit` to be at least `bulkhead.adaptive.minLimit` (10), got `5`',
    ],
    [
      { adaptive: { initialLimit: 2000 } },
      'Expected `bulkhead.adaptive.initialLimit` to be between `minLimit` (4) and `maxLimit` (1000), got `2000`',
    ],
    [{ adaptive: { tolerance: 0.5 } }, 'Expected `bulkhead.adaptive.tolerance`'],
    [{ adaptive: { probeInterval: 0 } }, 'Expected `bulkhead.adaptive.probeInterval`'],
    [{ adaptive: { limit: 3 } }, 'Unknown option `bulkhead.adaptive.limit`'],
    [{ adaptive: 5 }, 'Expected `bulkhead.adaptive` to be an options object'],
    [
      { adaptive: { maxLimit: 0 } },
      'Expected `bulkhead.adaptive.maxLimit` to be an integer >= 1, got `0`',
    ],
    [
      { adaptive: { initialLimit: 2.5 } },
      'Expected `bulkhead.adaptive.initialLimit` to be an integer >= 1, got `2.5`',
    ],
    [
      { adaptive: { minLimit: 5, initialLimit: 4 } },
      'Expected `bulkhead.adaptive.initialLimit` to be between `minLimit` (5) and `maxLimit` (1000), got `4`',
    ],
    [{ adaptive: true, maxConcurrent: 5 }, 'no `maxConcurrent` with `bulkhead.adaptive`'],
  ])('%j is refused with a message naming the option', (options, message) => {
    expect(() => bulkhead(options as never)).toThrow(message);
  });

  it('adaptive: false is no adaptive limit (a plain bulkhead)', () => {
    expect(bulkhead({ adaptive: false, maxConcurrent: 5 }).describe()).toMatchObject({
      maxConcurrent: 5,
    });
    expect(bulkhead({ adaptive: false, maxConcurrent: 5 }).describe().adaptive).toBeUndefined();
    expect(bulkhead({ adaptive: { probeInterval: Infinity } }).describe()).toMatchObject({
      adaptive: { probeInterval: Infinity },
    });
  });

  it('accepts true, an algorithm name or options, and describes them', () => {
    expect(bulkhead({ adaptive: true }).describe()).toMatchObject({
      maxConcurrent: 'adaptive',
      adaptive: {
        algorithm: 'gradient2',
        minLimit: 4,
        maxLimit: 1000,
        initialLimit: 20,
        tolerance: 1,
        probeInterval: 30_000,
      },
    });
    expect(bulkhead({ adaptive: 'aimd' }).describe()).toMatchObject({
      adaptive: { algorithm: 'aimd', tolerance: 1.2 },
    });
    expect(bulkhead({ adaptive: { initialLimit: 8, minLimit: 2 } }).stats()).toEqual({
      inFlight: 0,
      queued: 0,
      rejected: 0,
      limit: 2,
    });
  });

  it('reports a changed limit as a concurrencyLimitChanged event', () => {
    const pool = bulkhead({ adaptive: { minLimit: 2, initialLimit: 8 } });
    const events: unknown[] = [];
    pool.on((event) => events.push(event));
    for (let i = 0; i < PROBE_SAMPLES; i++) {
      expect(pool.tryAcquire()).toBe(true);
      pool.complete(i, i + 10, false);
    }
    expect(events).toEqual([
      { type: 'concurrencyLimitChanged', limit: 8, previous: 2, noLoadLatency: 10, probing: false },
    ]);
  });
});
