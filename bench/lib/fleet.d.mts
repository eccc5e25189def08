/** Types of fleet.mjs, for TypeScript callers such as test/bench-redis.test.ts. */

/** The most timestamps (whole ms) in any sliding window of `window` ms; only those ≥ `from` count. */
export declare function busiestWindow(times: number[], window: number, from?: number): number;

/** The most `[sent, admitted]` calls lying wholly inside one window of `window` ms. */
export declare function busiestContained(calls: [number, number][], window: number): number;

/** The span of whole-ms timestamps, both ends included (1 for one call, 0 for none). */
export declare function span(times: number[]): number;

export interface GcraLimit {
  burst: number;
  limit: number;
  interval: number;
  lease: number;
}

/** `burst + limit × t / interval + lease + local`: bulwark's documented bound over `t` ms. */
export declare function gcraBound(limit: GcraLimit, t: number, local?: number): number;

/** What processes acting locally may add: Σ share × (to − from + 1) / interval. */
export declare function localAllowance(
  episodes: [from: number, to: number, share: number][],
  interval: number,
): number;

/** A fixed-window limiter's bound over `t` ms: `points` per window touched. */
export declare function fixedWindowBound(
  limit: { points: number; duration: number },
  t: number,
): number;

/** The nearest-rank percentile `q` (0–1) of ascending `sorted` (NaN when empty). */
export declare function percentile(sorted: number[], q: number): number;

/** A Markdown table; `columns` are `[title, 'l' | 'r']`. */
export declare function markdownTable(
  columns: [string, 'l' | 'r'][],
  rows: (string | number)[][],
): string;

/** `text` with the lines between `<!-- name:start -->` and `<!-- name:end -->` replaced by `body`. */
export declare function replaceSection(text: string, name: string, body: string): string;
