/** Types of alloc.mjs, for TypeScript callers such as test/alloc-budget.test.ts. */

/** The flags a process needs for {@link measureBytesPerCall}. */
export declare const NODE_FLAGS: readonly string[];

/** Throws unless this process runs with `--expose-gc`. */
export declare function assertAllocFlags(): void;

export interface MeasureOptions {
  /** Calls per batch. The default value is `10_000`. */
  batch?: number;
  /**
   * Batches to keep; one during which a GC ran is discarded and run again (at most `4 * reps` in all).
   * The default value is `15`.
   */
  reps?: number;
  /** Calls before the first batch (one gc() and one more batch follow). The default value is one batch. */
  warmup?: number;
  /** Whether `call` is expected to reject. The default value is `false`. */
  rejects?: boolean;
}

export interface MeasureResult {
  /** Median bytes per call of the kept batches (NaN if every batch saw a GC). */
  bytesPerCall: number;
  kept: number;
  reps: number;
  batch: number;
  /** Bytes per call of each kept batch. */
  samples: number[];
  /** Bytes per call of each discarded batch. */
  discarded: number[];
}

/** Bytes allocated per awaited call of `call` (ARCHITECTURE.md section 3). */
export declare function measureBytesPerCall(
  call: () => unknown,
  options?: MeasureOptions,
): Promise<MeasureResult>;
