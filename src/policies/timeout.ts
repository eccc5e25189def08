import type { Problems } from '../core/validate.js';

/** Options of the timeout stage: a number is the per-attempt limit. */
export interface TimeoutOptions {
  /** Limit of one attempt (one call of `fn`), in ms. The default value is none. */
  attempt?: number;
  /**
   * Limit of the whole call across attempts and backoff sleeps, in ms. A retry whose backoff would
   * end past it is not started. The default value is none.
   */
  total?: number;
}

export interface ResolvedTimeout {
  readonly attempt: number;
  readonly total: number;
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
  return {
    attempt: problems.number('timeout.attempt', o.attempt, Infinity, rule),
    total: problems.number('timeout.total', o.total, Infinity, rule),
  };
}
