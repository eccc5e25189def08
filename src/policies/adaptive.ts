import type { Problems } from '../core/validate.js';

/** How an adaptive bulkhead moves its limit. */
export type AdaptiveAlgorithm = 'gradient2' | 'aimd';

/** Options of an adaptive bulkhead (`bulkhead: { adaptive: ... }`); a string is the algorithm. */
export interface AdaptiveOptions {
  /**
   * `'gradient2'`: the limit follows the ratio of the no-load latency to the current latency (Netflix's
   * Gradient2 law). `'aimd'`: +1 per window while latency stays low, ×0.9 when it rises or a call times out.
   * The default value is `'gradient2'`.
   */
  algorithm?: AdaptiveAlgorithm;
  /** The lowest limit, also the concurrency of a latency probe. The default value is `4`. */
  minLimit?: number;
  /** The highest limit. The default value is `1000`. */
  maxLimit?: number;
  /** The limit before the first adjustment. The default value is `20`. */
  initialLimit?: number;
  /**
   * How much slower than the no-load latency the downstream may answer before the limit shrinks: `1.5`
   * lets latency rise 50%. The default value is `1.2` for `'aimd'` and `1` for `'gradient2'` (whose queue
   * allowance already lets a little latency build up).
   */
  tolerance?: number;
  /** How often the no-load latency is measured again, in ms. The default value is `30_000`. */
  probeInterval?: number;
}

export const ADAPTIVE_DEFAULTS = Object.freeze({
  algorithm: 'gradient2',
  minLimit: 4,
  maxLimit: 1000,
  initialLimit: 20,
  probeInterval: 30_000,
});

/** Samples a probe collects (calls that started during the probe) before it sets the no-load latency. */
export const PROBE_SAMPLES = 50;
/** Smoothing of Gradient2's limit: the weight of a new estimate. */
const SMOOTHING = 0.2;
/** AIMD's decrease factor. */
const BACKOFF = 0.9;

/** @internal the resolved options. */
export interface ResolvedAdaptive {
  readonly algorithm: AdaptiveAlgorithm;
  readonly minLimit: number;
  readonly maxLimit: number;
  readonly initialLimit: number;
  readonly tolerance: number;
  readonly probeInterval: number;
}

/** @internal validates `bulkhead.adaptive`. */
export function resolveAdaptive(
  value: unknown,
  path: string,
  problems: Problems,
): ResolvedAdaptive | undefined {
  if (value === undefined || value === false) return undefined;
  let o: Record<string, unknown>;
  if (value === true) o = {};
  else if (typeof value === 'string') o = { algorithm: value };
  else {
    const checked = problems.object(path, value, [
      'algorithm',
      'minLimit',
      'maxLimit',
      'initialLimit',
      'tolerance',
      'probeInterval',
    ]);
    if (checked === undefined) return undefined;
    o = checked;
  }
  let algorithm: AdaptiveAlgorithm = ADAPTIVE_DEFAULTS.algorithm;
  if (o.algorithm !== undefined) {
    if (o.algorithm === 'gradient2' || o.algorithm === 'aimd') algorithm = o.algorithm;
    else
      problems.add(
        typeof value === 'string' ? path : `${path}.algorithm`,
        o.algorithm,
        "'gradient2' or 'aimd'",
      );
  }
  const limit = { min: 1, integer: true };
  const minLimit = problems.number(
    `${path}.minLimit`,
    o.minLimit,
    ADAPTIVE_DEFAULTS.minLimit,
    limit,
  );
  const maxLimit = problems.number(
    `${path}.maxLimit`,
    o.maxLimit,
    ADAPTIVE_DEFAULTS.maxLimit,
    limit,
  );
  const initialLimit = problems.number(
    `${path}.initialLimit`,
    o.initialLimit,
    Math.min(maxLimit, Math.max(minLimit, ADAPTIVE_DEFAULTS.initialLimit)),
    limit,
  );
  const tolerance = problems.number(
    `${path}.tolerance`,
    o.tolerance,
    algorithm === 'aimd' ? 1.2 : 1,
    { min: 1 },
  );
  const probeInterval = problems.number(
    `${path}.probeInterval`,
    o.probeInterval,
    ADAPTIVE_DEFAULTS.probeInterval,
    { min: 0, exclusiveMin: true, infinity: true },
  );
  if (maxLimit < minLimit)
    problems.add(`${path}.maxLimit`, maxLimit, `at least \`${path}.minLimit\` (${minLimit})`);
  else if (initialLimit < minLimit || initialLimit > maxLimit)
    problems.add(
      `${path}.initialLimit`,
      initialLimit,
      `between \`minLimit\` (${minLimit}) and \`maxLimit\` (${maxLimit})`,
    );
  return { algorithm, minLimit, maxLimit, initialLimit, tolerance, probeInterval };
}

/**
 * The moving limit of an adaptive bulkhead. Fed one sample per finished call (its latency, and whether it
 * timed out), it adjusts the limit once per window of samples:
 *
 * - **No-load latency** is measured, not guessed: a *probe* lowers the limit to `minLimit` until
 *   {@link PROBE_SAMPLES} calls that started during the probe have finished, and takes their median (as
 *   Envoy's adaptive concurrency filter does). A probe runs first, and again every `probeInterval`. Without
 *   it, Gradient2 compares latency with its own long-term average, which under sustained overload drifts up
 *   to the overloaded latency: started high, the limit never comes down.
 * - **gradient2**: `gradient = clamp(tolerance × noLoad / latency, 0.5, 1)`,
 *   `limit ← 0.8 × limit + 0.2 × (limit × gradient + √limit / 4)`: the √limit / 4 allowance lets the limit grow
 *   while latency stays at its no-load value, and settles it where the queue it causes costs that much.
 * - **aimd**: `limit ← limit + 1` while the window's median latency stays within `tolerance × noLoad` and
 *   no call timed out; `limit ← limit × 0.9` otherwise.
 *
 * The limit grows only while the window used more than half of it (an idle service learns nothing about
 * its downstream's capacity).
 */
export class AdaptiveLimit {
  /** The current limit (an integer between `minLimit` and `maxLimit`). */
  limit: number;
  /** The no-load latency in ms, measured by the last probe (NaN before the first). */
  noLoadLatency = Number.NaN;
  private estimate: number;
  private probing = true;
  private probeStart = Number.NEGATIVE_INFINITY;
  private probeCount = 0;
  private nextProbeAt = Number.POSITIVE_INFINITY;
  private readonly probeSamples = new Float64Array(PROBE_SAMPLES);
  private readonly window: Float64Array;
  private windowCount = 0;
  private windowDrops = 0;
  private windowPeak = 0;
  /** Adjustments so far (for tests and stats). */
  adjustments = 0;

  constructor(readonly options: ResolvedAdaptive) {
    this.estimate = options.initialLimit;
    this.limit = options.minLimit;
    this.window = new Float64Array(Math.max(16, Math.min(256, options.maxLimit)));
  }

  /** A call took a slot: `inFlight` now counts it. */
  started(inFlight: number): void {
    if (inFlight > this.windowPeak) this.windowPeak = inFlight;
  }

  /**
   * A call that took its slot at `start` finished at `now` (`timedOut`: its attempt timed out). Returns
   * true when the limit changed.
   */
  sample(start: number, now: number, timedOut: boolean): boolean {
    const latency = now - start;
    if (this.probing) {
      if (start < this.probeStart) return false;
      if (this.probeStart === Number.NEGATIVE_INFINITY) this.probeStart = start;
      this.probeSamples[this.probeCount++] = latency;
      if (this.probeCount < PROBE_SAMPLES) return false;
      this.noLoadLatency = median(this.probeSamples, PROBE_SAMPLES);
      this.probing = false;
      this.nextProbeAt = now + this.options.probeInterval;
      this.resetWindow();
      return this.set(this.estimate);
    }
    if (now >= this.nextProbeAt) {
      this.probing = true;
      this.probeStart = now;
      this.probeCount = 0;
      return this.set(this.options.minLimit, true);
    }
    this.window[this.windowCount++] = latency;
    if (timedOut) this.windowDrops++;
    if (this.windowCount < Math.min(this.window.length, Math.max(16, this.limit))) return false;
    const current = median(this.window, this.windowCount);
    const busy = this.windowPeak * 2 > this.limit;
    const drops = this.windowDrops;
    this.resetWindow();
    const { tolerance, algorithm } = this.options;
    let next: number;
    if (algorithm === 'aimd') {
      if (drops > 0 || current > tolerance * this.noLoadLatency) next = this.estimate * BACKOFF;
      else next = busy ? this.estimate + 1 : this.estimate;
    } else {
      const gradient = Math.max(
        0.5,
        Math.min(1, current > 0 ? (tolerance * this.noLoadLatency) / current : 1),
      );
      next = this.estimate * gradient + Math.sqrt(this.estimate) / 4;
      next = this.estimate * (1 - SMOOTHING) + next * SMOOTHING;
      if (!busy && next > this.estimate) next = this.estimate;
    }
    return this.set(next);
  }

  get isProbing(): boolean {
    return this.probing;
  }

  private set(estimate: number, probe = false): boolean {
    const { minLimit, maxLimit } = this.options;
    if (!probe) this.estimate = Math.max(minLimit, Math.min(maxLimit, estimate));
    const limit = probe
      ? minLimit
      : Math.max(minLimit, Math.min(maxLimit, Math.round(this.estimate)));
    this.adjustments++;
    if (limit === this.limit) return false;
    this.limit = limit;
    return true;
  }

  private resetWindow(): void {
    this.windowCount = 0;
    this.windowDrops = 0;
    this.windowPeak = 0;
  }
}

/** The median of `a[0..n)` (sorts that part of `a` in place; n ≤ 256). */
function median(a: Float64Array, n: number): number {
  const part = a.subarray(0, n);
  part.sort();
  return n % 2 === 1 ? part[n >> 1]! : (part[(n >> 1) - 1]! + part[n >> 1]!) / 2;
}
