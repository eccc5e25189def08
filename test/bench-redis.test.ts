/**
 * The pure helpers of `npm run bench:redis` (bench/lib/fleet.mjs): the figures it publishes next to
 * rate-limiter-flexible are only as right as these.
 */
import { describe, expect, it } from 'vitest';
import * as fleet from '../bench/lib/fleet.mjs';

describe('busiestWindow', () => {
  it('slides: the window starts anywhere, not on a clock boundary', () => {
    // Aligned to whole seconds the busiest second holds 3 calls; from 900 on it holds 5.
    expect(fleet.busiestWindow([0, 500, 900, 1_000, 1_100, 1_500, 1_899, 2_500], 1_000)).toBe(5);
  });

  it('counts calls less than a window apart together, and calls a window apart not', () => {
    expect(fleet.busiestWindow([0, 999], 1_000)).toBe(2);
    expect(fleet.busiestWindow([0, 1_000], 1_000)).toBe(1);
    expect(fleet.busiestWindow([5, 5, 5], 1_000)).toBe(3);
  });

  it('needs no sorted input and leaves its input alone', () => {
    const times = [1_500, 0, 900, 1_100];
    expect(fleet.busiestWindow(times, 1_000)).toBe(3);
    expect(times).toEqual([1_500, 0, 900, 1_100]);
  });

  it('counts only times from `from` on (the busiest second after the first)', () => {
    const burst = Array.from({ length: 200 }, () => 0);
    const steady = Array.from({ length: 20 }, (_, i) => 500 + i * 100); // 500, 600, … 2,400
    expect(fleet.busiestWindow([...burst, ...steady], 1_000)).toBe(205);
    expect(fleet.busiestWindow([...burst, ...steady], 1_000, 1_000)).toBe(10);
  });

  it('is 0 for no calls', () => {
    expect(fleet.busiestWindow([], 1_000)).toBe(0);
  });
});

describe('busiestContained', () => {
  it('counts only calls whose round trip lies wholly inside one window', () => {
    const calls: [number, number][] = [
      [0, 10],
      [100, 950],
      [500, 1_050], // admitted after 1,000: outside [0, 1000), inside [500, 1500)
      [900, 1_400],
      [1_200, 1_300],
    ];
    expect(fleet.busiestContained(calls, 1_000)).toBe(3);
    expect(
      fleet.busiestWindow(
        calls.map(([, at]) => at),
        1_000,
      ),
    ).toBe(4);
  });

  it('starts a window at a send time shared by several calls', () => {
    expect(
      fleet.busiestContained(
        [
          [0, 1],
          [7, 8],
          [7, 9],
          [7, 1_006],
        ],
        1_000,
      ),
    ).toBe(3);
  });
});

describe('bounds', () => {
  it('span counts both ends in whole milliseconds', () => {
    expect(fleet.span([])).toBe(0);
    expect(fleet.span([42])).toBe(1);
    expect(fleet.span([3_000, 1_000, 2_000])).toBe(2_001);
  });

  it('gcraBound is burst + limit × t / interval + lease (+ what processes acting locally add)', () => {
    const limit = { burst: 200, limit: 200, interval: 1_000, lease: 10 };
    expect(fleet.gcraBound(limit, 1_000)).toBe(410);
    expect(fleet.gcraBound(limit, 5_000)).toBe(1_210);
    expect(fleet.gcraBound({ ...limit, lease: 1 }, 500, 12.5)).toBe(313.5);
  });

  it('localAllowance adds each process’s share for as long as it acted locally', () => {
    expect(fleet.localAllowance([], 1_000)).toBe(0);
    // 50/s for 200 ms (both ends included: 201 ms) and 100/s for 100 ms.
    expect(
      fleet.localAllowance(
        [
          [1_000, 1_200, 50],
          [3_000, 3_099, 100],
        ],
        1_000,
      ),
    ).toBeCloseTo(10.05 + 10, 10);
  });

  it('fixedWindowBound counts the windows that t ms of timestamps can touch', () => {
    const rlf = { points: 200, duration: 1_000 };
    expect(fleet.fixedWindowBound(rlf, 0)).toBe(0);
    expect(fleet.fixedWindowBound(rlf, 1)).toBe(200);
    expect(fleet.fixedWindowBound(rlf, 2)).toBe(400); // the last ms of one window, the first of the next
    expect(fleet.fixedWindowBound(rlf, 1_000)).toBe(400);
    expect(fleet.fixedWindowBound(rlf, 1_001)).toBe(400);
    expect(fleet.fixedWindowBound(rlf, 1_002)).toBe(600);
    expect(fleet.fixedWindowBound(rlf, 5_000)).toBe(1_200);
  });
});

describe('percentile', () => {
  it('is the nearest rank', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(fleet.percentile(sorted, 0.5)).toBe(50);
    expect(fleet.percentile(sorted, 0.99)).toBe(99);
    expect(fleet.percentile(sorted, 1)).toBe(100);
    expect(fleet.percentile([7], 0.99)).toBe(7);
    expect(fleet.percentile([], 0.5)).toBeNaN();
  });
});

describe('Markdown', () => {
  it('markdownTable aligns columns and escapes pipes', () => {
    expect(
      fleet.markdownTable(
        [
          ['name', 'l'],
          ['µs', 'r'],
        ],
        [['a | b', 1.5]],
      ),
    ).toBe('| name | µs |\n| :-- | --: |\n| a \\| b | 1.5 |');
  });

  it('replaceSection replaces what lies between the markers, and only that', () => {
    const text = 'before\n<!-- redis:start -->\nold\n<!-- redis:end -->\nafter\n';
    expect(fleet.replaceSection(text, 'redis', 'new\n\n')).toBe(
      'before\n<!-- redis:start -->\nnew\n<!-- redis:end -->\nafter\n',
    );
    expect(() => fleet.replaceSection('no markers', 'redis', 'x')).toThrow(/redis:start/);
    expect(() =>
      fleet.replaceSection('<!-- redis:end --> <!-- redis:start -->', 'redis', 'x'),
    ).toThrow();
  });
});
