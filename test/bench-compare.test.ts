/**
 * The comparisons of `npm run bench:service` (bench/lib/compare.mjs): its "best success rate" and
 * "best p99" promises must not turn a chance difference of one call or two milliseconds into a
 * verdict, and must still catch a wrapper that loses calls or is slower in every round.
 */
import { describe, expect, it } from 'vitest';
import { lowerBeyondNoise, pooledShare, shareBeats } from '../bench/lib/compare.mjs';

describe('pooledShare', () => {
  it('adds up the successes and calls of every round', () => {
    const row = {
      successRate: 0.99,
      rounds: [
        { answered: 2_000, successRate: 1 },
        { answered: 1_000, successRate: 0.99 },
      ],
    };
    expect(pooledShare(row)).toEqual({ successes: 2_990, calls: 3_000 });
  });

  it('reads `requests` in results recorded before `answered`, and the row without rounds', () => {
    expect(pooledShare({ successRate: 0.5, rounds: [{ requests: 10, successRate: 0.5 }] })).toEqual(
      { successes: 5, calls: 10 },
    );
    expect(pooledShare({ successRate: 0.75, requests: 4 })).toEqual({ successes: 3, calls: 4 });
  });

  it('skips a round that measured nothing', () => {
    const row = {
      successRate: 1,
      rounds: [
        { answered: 0, successRate: Number.NaN },
        { answered: 100, successRate: 1 },
      ],
    };
    expect(pooledShare(row)).toEqual({ successes: 100, calls: 100 });
  });
});

describe('shareBeats', () => {
  it('one call lost in 6,000 against none is a tie (the published flip: 100.0 % against 100.0 %)', () => {
    const ours = { successes: 5_999, calls: 6_000 };
    const cockatiel = { successes: 6_100, calls: 6_100 };
    expect(shareBeats(cockatiel, ours)).toBe(false);
  });

  it('a few calls of difference on a few thousand is a tie, either way round', () => {
    const a = { successes: 5_940, calls: 6_000 }; // 99.0 %
    const b = { successes: 5_950, calls: 6_000 }; // 99.17 %
    expect(shareBeats(b, a)).toBe(false);
    expect(shareBeats(a, b)).toBe(false);
  });

  it('catches a real loss: 98 % against 99.1 % of 6,000 calls, and 95.6 % against 100 %', () => {
    expect(shareBeats({ successes: 5_946, calls: 6_000 }, { successes: 5_880, calls: 6_000 })).toBe(
      true,
    );
    expect(shareBeats({ successes: 6_000, calls: 6_000 }, { successes: 5_736, calls: 6_000 })).toBe(
      true,
    );
  });

  it('never lets a lower or equal share beat ours', () => {
    const ours = { successes: 90, calls: 100 };
    expect(shareBeats({ successes: 90, calls: 100 }, ours)).toBe(false);
    expect(shareBeats({ successes: 10, calls: 100 }, ours)).toBe(false);
  });

  it('a side without calls beats nothing and is beaten by nothing', () => {
    expect(shareBeats({ successes: 0, calls: 0 }, { successes: 1, calls: 10 })).toBe(false);
    expect(shareBeats({ successes: 10, calls: 10 }, { successes: 0, calls: 0 })).toBe(false);
  });

  it('is the two-proportion z-test: about 2.3 % of ties between like wrappers read as beaten', () => {
    // Two wrappers with the same true share of 99 %, 6,000 calls each, drawn from a fixed-seed PRNG
    // (mulberry32, as the bench's downstream uses).
    let a = 7;
    const random = () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
    const draw = () => {
      let s = 0;
      for (let i = 0; i < 6_000; i++) if (random() < 0.99) s++;
      return { successes: s, calls: 6_000 };
    };
    let beaten = 0;
    const runs = 400;
    for (let i = 0; i < runs; i++) if (shareBeats(draw(), draw())) beaten++;
    expect(beaten / runs).toBeGreaterThan(0.002);
    expect(beaten / runs).toBeLessThan(0.06);
  });
});

describe('lowerBeyondNoise', () => {
  it('overlapping rounds are a tie (the published flip: 511 against 509 ms, rounds 510-512 both)', () => {
    expect(lowerBeyondNoise([509, 512, 510], [511, 510, 512])).toBe(false);
    expect(lowerBeyondNoise([510, 512, 512], [510, 512, 510])).toBe(false);
  });

  it('a peer lower in every round than ours in any beats us', () => {
    expect(lowerBeyondNoise([20, 21, 22], [23, 25, 24])).toBe(true);
    expect(lowerBeyondNoise([23, 25, 24], [20, 21, 22])).toBe(false);
  });

  it('with one round each it is a plain comparison; equal is no win', () => {
    expect(lowerBeyondNoise([509], [511])).toBe(true);
    expect(lowerBeyondNoise([511], [511])).toBe(false);
  });

  it('ignores rounds that measured nothing, and nothing beats or is beaten by no rounds', () => {
    expect(lowerBeyondNoise([Number.NaN, 20], [25])).toBe(true);
    expect(lowerBeyondNoise([], [25])).toBe(false);
    expect(lowerBeyondNoise([20], [Number.NaN])).toBe(false);
  });
});
