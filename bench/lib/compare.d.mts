/** Types of compare.mjs, for TypeScript callers such as test/bench-compare.test.ts. */

/** Standard errors by which a share must beat another to count. */
export declare const Z: number;

export interface Share {
  successes: number;
  calls: number;
}

export interface RoundLike {
  answered?: number;
  requests?: number;
  successRate: number;
}

/** Successes and calls of a row, pooled over its rounds. */
export declare function pooledShare(row: {
  rounds?: RoundLike[];
  successRate: number;
  requests?: number;
}): Share;

/** Whether `other`'s share beats `ours` by more than sampling noise (a one-sided z-test at Z). */
export declare function shareBeats(other: Share, ours: Share): boolean;

/** Whether `other`'s per-round values (lower is better) all lie below all of `ours`. */
export declare function lowerBeyondNoise(other: number[], ours: number[]): boolean;
