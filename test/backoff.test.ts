import { describe, expect, it } from 'vitest';
import { backoff, type Backoff } from '../src/index.js';

/** Delays for attempts 1..n, feeding each delay back as the next call's previous delay. */
function delays(b: Backoff, n: number, random: () => number): number[] {
  const out: number[] = [];
  let previous = 0;
  for (let attempt = 1; attempt <= n; attempt++) {
    previous = b(attempt, previous, random);
    out.push(previous);
  }
  return out;
}

/** A random source returning the given values in turn. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

const half = () => 0.5;

describe('backoff.constant', () => {
  it('returns the same delay for every attempt, without reading random', () => {
    const random = () => {
      throw new Error('constant must not read random');
    };
    expect(delays(backoff.constant(250), 4, random)).toEqual([250, 250, 250, 250]);
    expect(delays(backoff.constant(0), 2, random)).toEqual([0, 0]);
  });

  it('describes itself', () => {
    expect(backoff.constant(250).description).toEqual({ type: 'constant', delay: 250 });
  });

  it.each([-1, NaN, Infinity, '5'])('rejects a delay of %s', (delay) => {
    expect(() => backoff.constant(delay as number)).toThrow(TypeError);
    expect(() => backoff.constant(delay as number)).toThrow(
      /Expected `backoff\.constant\(delay\)` to be a finite number >= 0, got/,
    );
  });
});

describe('backoff.exponential', () => {
  it('defaults to 100 ms doubling up to 10 s with full jitter', () => {
    expect(backoff.exponential().description).toEqual({
      type: 'exponential',
      initial: 100,
      factor: 2,
      max: 10_000,
      jitter: 'full',
    });
    // full jitter with random 0.5: half of 100, 200, 400, ... capped at 10 000
    expect(delays(backoff.exponential(), 9, half)).toEqual([
      50, 100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000,
    ]);
  });

  it("jitter 'none' gives initial × factor^(attempt-1), capped at max", () => {
    const b = backoff.exponential({ initial: 10, factor: 3, max: 500, jitter: 'none' });
    expect(delays(b, 6, () => 0.99)).toEqual([10, 30, 90, 270, 500, 500]);
  });

  it("jitter 'full' is uniform in [0, d]: exactly random × d", () => {
    const b = backoff.exponential({ initial: 100, jitter: 'full' });
    expect(delays(b, 3, sequence(0, 0.25, 0.999))).toEqual([0, 50, 399.6]);
  });

  it("jitter 'equal' is d/2 + uniform in [0, d/2]", () => {
    const b = backoff.exponential({ initial: 100, jitter: 'equal' });
    expect(delays(b, 3, sequence(0, 0.5, 1))).toEqual([50, 150, 400]);
  });

  it('ignores the previous delay (stateless)', () => {
    const b = backoff.exponential({ jitter: 'none' });
    expect(b(3, 0, half)).toBe(400);
    expect(b(3, 9_999, half)).toBe(400);
  });

  it('factor 1 is a constant delay; large attempt numbers stay at max', () => {
    expect(delays(backoff.exponential({ factor: 1, jitter: 'none' }), 3, half)).toEqual([
      100, 100, 100,
    ]);
    expect(backoff.exponential({ jitter: 'none' })(5_000, 0, half)).toBe(10_000);
  });

  it.each([
    [{ initial: -1 }, 'backoff.exponential.initial'],
    [{ initial: NaN }, 'backoff.exponential.initial'],
    [{ factor: 0.5 }, 'backoff.exponential.factor'],
    [{ max: -5 }, 'backoff.exponential.max'],
    [{ max: Infinity }, 'backoff.exponential.max'],
    [{ jitter: 'half' }, 'backoff.exponential.jitter'],
  ])('rejects %o naming %s', (options, name) => {
    expect(() => backoff.exponential(options as never)).toThrow(TypeError);
    expect(() => backoff.exponential(options as never)).toThrow(`\`${name}\``);
  });
});

describe('backoff.decorrelated (AWS decorrelated jitter)', () => {
  it('defaults to initial 100 and max 10 s', () => {
    expect(backoff.decorrelated().description).toEqual({
      type: 'decorrelated',
      initial: 100,
      max: 10_000,
    });
  });

  it('is min(max, uniform(initial, previous × 3)), the first retry in [initial, 3 × initial]', () => {
    const b = backoff.decorrelated({ initial: 100, max: 10_000 });
    // random 0 always gives initial
    expect(delays(b, 3, () => 0)).toEqual([100, 100, 100]);
    // random 0.5: 100 + 0.5 × (300 - 100) = 200, then 100 + 0.5 × (600 - 100) = 350, ...
    expect(delays(b, 4, half)).toEqual([200, 350, 575, 912.5]);
    // random → 1 approaches previous × 3
    expect(b(1, 0, () => 1)).toBe(300);
    expect(b(2, 300, () => 1)).toBe(900);
  });

  it('jitters the very first retry, so that clients failing together do not retry together', () => {
    const b = backoff.decorrelated({ initial: 100 });
    const first = new Set([0, 0.3, 0.7].map((r) => b(1, 0, () => r)));
    expect(first.size).toBe(3);
  });

  it('is capped at max', () => {
    const b = backoff.decorrelated({ initial: 100, max: 1_000 });
    expect(delays(b, 8, () => 0.99).at(-1)).toBe(1_000);
    expect(b(9, 5_000, () => 0.5)).toBe(1_000);
  });

  it('treats a previous delay below initial (say a retryAfter of 0) like initial', () => {
    const b = backoff.decorrelated({ initial: 100 });
    expect(b(2, 0, half)).toBe(200);
    expect(b(2, 50, half)).toBe(200);
  });

  it.each([
    [{ initial: -1 }, 'backoff.decorrelated.initial'],
    [{ max: NaN }, 'backoff.decorrelated.max'],
    [{ max: '1s' }, 'backoff.decorrelated.max'],
  ])('rejects %o naming %s', (options, name) => {
    expect(() => backoff.decorrelated(options as never)).toThrow(TypeError);
    expect(() => backoff.decorrelated(options as never)).toThrow(`\`${name}\``);
  });
});

describe('backoff object', () => {
  it('is frozen, and descriptions cannot be changed', () => {
    expect(Object.isFrozen(backoff)).toBe(true);
    expect(Object.isFrozen(backoff.constant(1).description)).toBe(true);
  });
});
