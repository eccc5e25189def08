/**
 * A fixed-memory record of recent latencies and their percentiles: the source of hedging delays and
 * latency-percentile timeouts.
 *
 * It keeps the last {@link LATENCY_WINDOW} samples in a ring (a `Float64Array`, allocated once) and answers a
 * percentile exactly over that window. Answers are cached: a percentile is computed again (a copy into a
 * scratch array and a quickselect, O(window)) only after {@link LATENCY_REFRESH} new samples, so on average a
 * sample costs a few ns and nothing is allocated after construction.
 *
 * Accuracy: the answer is the exact percentile of the last 512 samples as they were at most 31 samples ago
 * (nearest rank: the smallest sample with at least `q` of the window at or below it).
 */
export const LATENCY_WINDOW = 512;
export const LATENCY_REFRESH = 32;

export class LatencyWindow {
  private readonly samples = new Float64Array(LATENCY_WINDOW);
  private readonly scratch = new Float64Array(LATENCY_WINDOW);
  private next = 0;
  /** Samples recorded so far, capped at the window. */
  size = 0;
  /** Samples recorded since the percentiles were last computed. */
  private stale = 0;
  // Made once per window, at wrap time.
  // eslint-disable-next-line no-restricted-syntax
  private readonly quantiles: number[] = [];
  // eslint-disable-next-line no-restricted-syntax
  private readonly values: number[] = [];

  /** Adds one latency in ms. */
  record(ms: number): void {
    this.samples[this.next] = ms;
    this.next = this.next + 1 === LATENCY_WINDOW ? 0 : this.next + 1;
    if (this.size < LATENCY_WINDOW) this.size++;
    this.stale++;
  }

  /**
   * Adds a latency known only to be at least `ms` (an attempt that timed out), and has the next answer
   * computed afresh: a slowdown moves the percentiles at once instead of after the next 32 samples.
   */
  recordAtLeast(ms: number): void {
    this.record(ms);
    this.stale = LATENCY_REFRESH;
  }

  /**
   * The `q`-th percentile (0 < q < 1) of the window, or `NaN` while the window holds fewer than
   * {@link samplesFor}`(q)` samples.
   */
  percentile(q: number): number {
    if (this.size < samplesFor(q)) return NaN;
    let i = this.quantiles.indexOf(q);
    if (i === -1) {
      i = this.quantiles.length;
      this.quantiles.push(q);
      this.values.push(NaN);
      this.stale = LATENCY_REFRESH;
    }
    if (this.stale >= LATENCY_REFRESH) {
      this.stale = 0;
      for (let k = 0; k < this.quantiles.length; k++)
        this.values[k] = this.compute(this.quantiles[k]!);
    }
    return this.values[i]!;
  }

  /** Forgets every sample. */
  clear(): void {
    this.size = 0;
    this.next = 0;
    this.stale = 0;
    for (let k = 0; k < this.values.length; k++) this.values[k] = NaN;
  }

  private compute(q: number): number {
    const n = this.size;
    const a = this.scratch;
    a.set(n === LATENCY_WINDOW ? this.samples : this.samples.subarray(0, n));
    // Nearest rank, 0-based.
    const rank = Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1));
    return select(a, n, rank);
  }
}

/**
 * Samples a percentile needs before it is trusted: enough that the top `1 − q` of the window holds at
 * least a few samples (p50: 10, p95: 20, p99: 100), capped by the window.
 */
export function samplesFor(q: number): number {
  return Math.min(LATENCY_WINDOW, Math.max(10, Math.ceil(1 / (1 - q))));
}

/** The `k`-th smallest of `a[0..n)` (Hoare's quickselect, median of three; reorders `a`). */
function select(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // Median of three as the pivot: sorted or reversed windows stay O(n).
    if (a[mid]! < a[lo]!) swap(a, mid, lo);
    if (a[hi]! < a[lo]!) swap(a, hi, lo);
    if (a[hi]! < a[mid]!) swap(a, hi, mid);
    const pivot = a[mid]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}
