import type { Problems } from '../core/validate.js';

/** A delay that follows the policy's own latency: the given percentile of recent successful attempts. */
export interface LatencyPercentile {
  /** The percentile, in (0, 1): `0.95` is the 95th percentile. */
  percentile: number;
  /** The lowest value used, in ms. The default value is `0`. */
  min?: number;
  /**
   * The highest value used, in ms, and the value used until enough latencies are known (20 for the 95th
   * percentile, 100 for the 99th). The default value is none: no hedging until then.
   */
  max?: number;
}

/**
 * Options of hedging: when an attempt is slow, start another in parallel and take the first success.
 *
 * @example
 * resilient(fetchProfile, { hedge: { delay: { percentile: 0.95, max: 200 } } });
 */
export interface HedgeOptions {
  /**
   * How long an attempt may run before the next one starts, in ms, or a percentile of this function's
   * recent successful latencies. A failure before then starts the next one at once.
   */
  delay: number | LatencyPercentile;
  /** Attempts added to the first one. The default value is `1`. */
  maxHedgedAttempts?: number;
}

export const HEDGE_DEFAULTS = Object.freeze({ maxHedgedAttempts: 1 });

/** @internal */
export interface ResolvedHedge {
  /** The fixed delay, or NaN when it follows a percentile. */
  readonly delay: number;
  readonly percentile: number;
  readonly min: number;
  readonly max: number;
  readonly maxHedgedAttempts: number;
}

/** @internal validates `{ percentile, min, max }` (hedge delays and attempt timeouts share it). */
export function resolvePercentile(
  path: string,
  value: Record<string, unknown>,
  problems: Problems,
  keys: readonly string[],
  maxRequired: boolean,
): { percentile: number; min: number; max: number } | undefined {
  const o = problems.object(path, value, keys);
  if (o === undefined) return undefined;
  const raw = o.percentile;
  const valid = typeof raw === 'number' && raw > 0 && raw < 1;
  if (!valid) problems.add(`${path}.percentile`, raw, 'a number in (0, 1), such as 0.95');
  const percentile = valid ? raw : Number.NaN;
  const min = problems.number(`${path}.min`, o.min, 0, { min: 0 });
  if (maxRequired && o.max === undefined)
    problems.add(
      `${path}.max`,
      undefined,
      'a number of ms (used until enough latencies are known)',
    );
  const max = problems.number(`${path}.max`, o.max, Infinity, {
    min: 0,
    exclusiveMin: true,
    infinity: !maxRequired,
  });
  if (max < min) problems.add(`${path}.max`, max, `at least \`${path}.min\` (${min})`);
  return { percentile, min, max };
}

/** @internal validates the `hedge` option. */
export function resolveHedge(value: unknown, problems: Problems): ResolvedHedge | undefined {
  if (value === undefined) return undefined;
  const o = problems.object('hedge', value, ['delay', 'maxHedgedAttempts']);
  if (o === undefined) return undefined;
  const maxHedgedAttempts = problems.number(
    'hedge.maxHedgedAttempts',
    o.maxHedgedAttempts,
    HEDGE_DEFAULTS.maxHedgedAttempts,
    { min: 1, integer: true },
  );
  const delay = o.delay;
  if (typeof delay === 'number') {
    const fixed = problems.number('hedge.delay', delay, 0, { min: 0 });
    return { delay: fixed, percentile: Number.NaN, min: 0, max: Infinity, maxHedgedAttempts };
  }
  if (typeof delay !== 'object' || delay === null) {
    problems.add('hedge.delay', delay, 'a number of ms or { percentile, min?, max? }');
    return undefined;
  }
  const p = resolvePercentile(
    'hedge.delay',
    delay as Record<string, unknown>,
    problems,
    ['percentile', 'min', 'max'],
    false,
  );
  if (p === undefined) return undefined;
  return { delay: Number.NaN, ...p, maxHedgedAttempts };
}

/** @internal what `describe()` shows of hedging. */
export function describeHedge(h: ResolvedHedge): Record<string, unknown> {
  return {
    stage: 'hedge',
    delay: Number.isNaN(h.delay)
      ? { percentile: h.percentile, min: h.min, max: h.max === Infinity ? 'none' : h.max }
      : h.delay,
    maxHedgedAttempts: h.maxHedgedAttempts,
  };
}
