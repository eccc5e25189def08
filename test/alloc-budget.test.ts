import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../bench/lib/alloc.mjs';

/**
 * Allocation budgets of the hot path, measured on the built package (dist/, made by `npm test`'s
 * pretest build) in a child process with a 512 MB young generation and V8's predictable mode (its
 * optimisation and GCs do not depend on the machine's load), so that a change that adds a
 * closure, an object or an async frame to the happy path fails CI. Bytes are counted beyond the bare
 * `await fn()` measured in the same process. A deterministic count, not a timing: speed lives in bench/.
 */
const root = fileURLToPath(new URL('..', import.meta.url));

interface Measured {
  async: Record<string, number>;
  sync: Record<string, number>;
}

let measured: Measured;

beforeAll(() => {
  if (!existsSync(`${root}dist/index.js`)) {
    throw new Error('dist/ is missing: run `npm run build` (npm test runs it as pretest)');
  }
  const output = execFileSync(
    process.execPath,
    [...NODE_FLAGS, `${root}test/alloc/measure.mjs`],
    // Seconds on a quiet machine; minutes at a load average of 30 on 2 cores.
    { encoding: 'utf8', timeout: 300_000 },
  );
  measured = JSON.parse(output) as Measured;
}, 320_000);

const extra = (name: string): number => {
  const value = measured.async[name];
  const bare = measured.async.bare;
  if (value === undefined || bare === undefined || Number.isNaN(value)) {
    throw new Error(`no measurement for ${name}`);
  }
  return value - bare;
};

describe('allocation budget of the async happy path (bytes per call beyond the bare call)', () => {
  it('measures the bare call', () => {
    expect(measured.async.bare).toBeGreaterThan(0);
  });

  it.each(['retry', 'circuitBreaker', 'rateLimiter', 'bulkhead', 'fallback'])(
    '%s alone: at most 100 bytes',
    (name) => {
      expect(extra(name)).toBeLessThanOrEqual(100);
    },
  );

  it('all stages but timeout together: at most 120 bytes (one .then)', () => {
    expect(extra('allButTimeout')).toBeLessThanOrEqual(120);
  });

  it('timeout: at most 400 bytes (no timer per call)', () => {
    expect(extra('timeout')).toBeLessThanOrEqual(400);
  });

  it('chaos configured but disabled by a flag function: at most 100 bytes (one check)', () => {
    expect(extra('chaosDisabled')).toBeLessThanOrEqual(100);
  });

  it('chaos on, faults and results drawn but not injected: at most 140 bytes (still the fast path)', () => {
    // A draw from `random` is a double returned through a call V8 does not inline: 16 B each.
    expect(extra('chaosDrawn')).toBeLessThanOrEqual(140);
  });

  it('cache hit: nothing beyond the bare call', () => {
    expect(extra('cacheHit')).toBeLessThanOrEqual(0);
  });

  it('cache miss (a new key each call, every miss evicts): at most 200 bytes', () => {
    expect(extra('cacheMiss')).toBeLessThanOrEqual(200);
  });

  it('all seven stages on a cache miss: at most 500 bytes', () => {
    expect(extra('allSeven')).toBeLessThanOrEqual(500);
  });
});

describe('allocation budget of partitioned stages', () => {
  it('breaker, limiter and bulkhead partitioned by a string key the caller holds: 0 bytes more than unpartitioned', () => {
    const partitioned = measured.async.threePartitioned;
    const plain = measured.async.threeStages;
    if (partitioned === undefined || plain === undefined) throw new Error('no measurement');
    // An existing partition costs the key function and one Map lookup: no allocation (under 2 bytes
    // amortized, the noise of the measurement).
    expect(partitioned - plain).toBeLessThan(2);
    expect(extra('threeStages')).toBeLessThanOrEqual(120);
  });
});

describe('allocation budget of resilientSync', () => {
  it.each(['retry', 'circuitBreaker', 'fallback', 'cacheHit', 'allButLimiter'])(
    '%s: no allocation per call (under 2 bytes amortized)',
    (name) => {
      expect(measured.sync[name]).toBeLessThan(2);
    },
  );
});
