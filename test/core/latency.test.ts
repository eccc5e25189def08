import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  LATENCY_REFRESH,
  LATENCY_WINDOW,
  LatencyWindow,
  samplesFor,
} from '../../src/core/latency.js';

/** The nearest-rank percentile of the last LATENCY_WINDOW values, computed the obvious way. */
function reference(values: number[], q: number): number {
  const window = values.slice(-LATENCY_WINDOW).sort((a, b) => a - b);
  return window[Math.min(window.length - 1, Math.max(0, Math.ceil(q * window.length) - 1))]!;
}

describe('LatencyWindow', () => {
  it('answers the exact nearest-rank percentile of the last 512 samples', () => {
    fc.assert(
      fc.property(
        // size 'max': lengths spread over the whole range (fast-check's default size keeps arrays near
        // minLength, which never wrapped the 512-sample ring).
        fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), {
          minLength: 100,
          maxLength: 1500,
          size: 'max',
        }),
        fc.constantFrom(0.5, 0.9, 0.95, 0.99),
        (values, q) => {
          const window = new LatencyWindow();
          for (const v of values) window.record(v);
          expect(window.percentile(q)).toBe(reference(values, q));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refreshes a percentile every 32 samples, and tracks several percentiles at once', () => {
    const window = new LatencyWindow();
    const values: number[] = [];
    for (let i = 0; i < 600; i++) {
      const v = (i * 7919) % 1000;
      values.push(v);
      window.record(v);
    }
    expect(window.percentile(0.5)).toBe(reference(values, 0.5));
    expect(window.percentile(0.99)).toBe(reference(values, 0.99));
    const before = window.percentile(0.5);
    // 31 more samples far above: the cached answer stands; the 32nd refreshes it.
    for (let i = 0; i < LATENCY_REFRESH - 1; i++) {
      values.push(1e6);
      window.record(1e6);
    }
    expect(window.percentile(0.5)).toBe(before);
    values.push(1e6);
    window.record(1e6);
    expect(window.percentile(0.5)).toBe(reference(values, 0.5));
    expect(window.percentile(0.5)).toBeGreaterThan(before);
    expect(window.percentile(0.99)).toBe(1e6);
  });

  it('says NaN until it holds enough samples for the percentile asked', () => {
    expect(samplesFor(0.5)).toBe(10);
    expect(samplesFor(0.95)).toBe(20);
    expect(samplesFor(0.99)).toBe(100);
    expect(samplesFor(0.9999)).toBe(LATENCY_WINDOW);
    const window = new LatencyWindow();
    for (let i = 0; i < 99; i++) window.record(5);
    expect(window.percentile(0.99)).toBeNaN();
    expect(window.percentile(0.95)).toBe(5);
    window.record(5);
    expect(window.percentile(0.99)).toBe(5);
    window.clear();
    expect(window.percentile(0.95)).toBeNaN();
    // Enough new samples for p95, but fewer than a refresh: the answer is not yet known (NaN) or comes from
    // the new samples; never the answer from before the clear.
    for (let i = 0; i < samplesFor(0.95); i++) window.record(7);
    const after = window.percentile(0.95);
    expect(Number.isNaN(after) || after === 7).toBe(true);
    for (let i = 0; i < LATENCY_REFRESH; i++) window.record(7);
    expect(window.percentile(0.95)).toBe(7);
  });

  it('stays linear on sorted and reversed windows (median-of-three pivots)', () => {
    const window = new LatencyWindow();
    for (let i = 0; i < LATENCY_WINDOW; i++) window.record(i);
    expect(window.percentile(0.5)).toBe(255);
    for (let i = LATENCY_WINDOW; i > 0; i--) window.record(i);
    expect(window.percentile(0.99)).toBe(507);
  });
});
