import type { Problems } from '../core/validate.js';
import { resolvePercentile } from './hedge.js';

/**
 * An attempt timeout that follows this function's observed latency: `percentile × multiplier` of its
 * recent successful attempts, bounded by `min` and `max`.
 *
 * @example
 * resilient(fetchProfile, { timeout: { attempt: { percentile: 0.99, multiplier: 1.5, min: 50, max: 2_000 } } });
 */
export interface LatencyTimeout {
  /** The percentile, in (0, 1): `0.99` is the 99th percentile. */
  percentile: number;
  /** The percentile is multiplied by it. The default value is `1.5`. */
  multiplier?: number;
  /** The shortest timeout, in ms. The default value is `0`. */
  min?: number;
  /** The longest timeout, in ms, and the one used until enough latencies are known (100 for p99). */
  max: number;
}

/** @internal */
export interface ResolvedLatencyTimeout {
  readonly percentile: number;
  readonly multiplier: number;
  readonly min: number;
  readonly max: number;
}

/** Options of the timeout stage: a number is the per-attempt limit. */
export interface TimeoutOptions {
  /**
   * Limit of one attempt (one call of `fn`), in ms, or one that follows the observed latency
   * (`{ percentile, multiplier?, min?, max }`). The default value is none.
   */
  attempt?: number | LatencyTimeout;
  /**
   * Limit of the whole call across attempts and backoff sleeps, in ms. A retry whose backoff would
   * end past it is not started. The default value is none.
   */
  total?: number;
}

export interface ResolvedTimeout {
  /** The attempt limit; with a latency timeout, its `max`. */
  readonly attempt: number;
  readonly total: number;
  /** A latency-percentile attempt timeout. */
  readonly latency?: ResolvedLatencyTimeout | undefined;
}

export function resolveTimeout(value: unknown, problems: Problems): ResolvedTimeout | undefined {
  if (value === undefined) return undefined;
  const rule = { min: 0, exclusiveMin: true, infinity: true };
  if (typeof value === 'number') {
    const attempt = problems.number('timeout', value, Infinity, rule);
    return { attempt, total: Infinity };
  }
  if (typeof value !== 'object' || value === null) {
    problems.add('timeout', value, 'a number of ms or { attempt, total }');
    return undefined;
  }
  const o = problems.object('timeout', value, ['attempt', 'total']);
  if (o === undefined) return undefined;
  if (o.attempt === undefined && o.total === undefined) {
    problems.add('timeout', value, 'an object with `attempt`, `total` or both');
    return undefined;
  }
  if (typeof o.attempt === 'object' && o.attempt !== null) {
    const attempt = o.attempt as Record<string, unknown>;
    const p = resolvePercentile(
      'timeout.attempt',
      attempt,
      problems,
      ['percentile', 'multiplier', 'min', 'max'],
      true,
    );
    const multiplier = problems.number('timeout.attempt.multiplier', attempt.multiplier, 1.5, {
      min: 0,
      exclusiveMin: true,
    });
    const total = problems.number('timeout.total', o.total, Infinity, rule);
    if (p === undefined) return undefined;
    return { attempt: p.max, total, latency: { ...p, multiplier } };
  }
  return {
    attempt: problems.number('timeout.attempt', o.attempt, Infinity, rule),
    total: problems.number('timeout.total', o.total, Infinity, rule),
  };
}
