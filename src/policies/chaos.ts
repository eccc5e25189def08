import { callWith } from '../core/call.js';
import type { Problems } from '../core/validate.js';

/**
 * Injected faults: `fn` is not called, the attempt fails with `error`.
 *
 * @example
 * chaos: { fault: { rate: 0.1, error: () => new Error('injected') } }
 */
export interface ChaosFaultOptions<A extends readonly unknown[] = unknown[]> {
  /** The share of attempts that fail, in [0, 1]. Required. */
  rate: number;
  /**
   * The error, or a function called with the call's `this` and arguments that returns one (a fresh error
   * per injection: its stack shows the call, and nothing marks one error object for all calls). Required.
   */
  error: Error | ((this: unknown, ...args: A) => Error);
}

/**
 * Injected latency: the attempt waits `delay` ms before `fn` runs. The wait is part of the attempt: its
 * timeout counts it, and a timeout or an abort ends it at once (then `fn` is not called).
 *
 * @example
 * chaos: { latency: { rate: 0.05, delay: 2_000 } }
 */
export interface ChaosLatencyOptions {
  /** The share of attempts that wait, in [0, 1]. Required. */
  rate: number;
  /** How long, in ms (> 0); `Infinity` is a hang that only the attempt's timeout or an abort ends. Required. */
  delay: number;
}

/**
 * Injected results: `fn` is not called, the attempt succeeds with `value`.
 *
 * @example
 * chaos: { result: { rate: 0.1, value: null } }
 */
export interface ChaosResultOptions<R = unknown> {
  /** The share of attempts that return `value`, in [0, 1]. Required. */
  rate: number;
  /** What the attempt returns (the same value each time). The default value is `undefined`. */
  value?: R;
}

/**
 * Chaos for game days (after Polly's Simmy): faults, latency and substitute results injected right around
 * `fn`, inside every other stage, so retries, the breaker, the timeout and the fallback react to them as
 * to the real thing. Draws come from the pipeline's `random` option: seed it and a run is reproducible.
 *
 * @example
 * resilient(fetchUser, {
 *   retry: true,
 *   chaos: { fault: { rate: 0.2, error: () => new Error('injected') }, enabled: () => flags.chaos },
 * });
 */
export interface ChaosOptions<A extends readonly unknown[] = unknown[]> {
  /** Failures instead of `fn`'s outcome. The default value is none. */
  fault?: ChaosFaultOptions<A>;
  /** A wait before `fn` runs. The default value is none. */
  latency?: ChaosLatencyOptions;
  /** A result instead of `fn`'s outcome. The default value is none. */
  result?: ChaosResultOptions;
  /**
   * Whether chaos applies: a boolean, or a function called once per call with the call's `this` and
   * arguments (a feature flag, one route, one percent of traffic) that returns `true` to inject; the
   * call's retries follow its answer. A function that throws counts as `false`.
   * The default value is `true`.
   */
  enabled?: boolean | ((this: unknown, ...args: A) => boolean);
}

export const CHAOS_DEFAULTS = Object.freeze({ enabled: true });

/** @internal */
export interface ResolvedChaos {
  /** `true`, `false`, or the user's function (called through {@link chaosEnabled}). */
  readonly enabled: boolean | ((...args: unknown[]) => unknown);
  readonly fault:
    { readonly rate: number; readonly error: unknown; readonly generated: boolean } | undefined;
  readonly latency: { readonly rate: number; readonly delay: number } | undefined;
  readonly result: { readonly rate: number; readonly value: unknown } | undefined;
}

const KEYS = ['fault', 'latency', 'result', 'enabled'] as const;

function rate(path: string, value: unknown, problems: Problems): number {
  if (typeof value === 'number' && value >= 0 && value <= 1) return value;
  problems.add(
    path,
    value,
    'a number in [0, 1] (the share of attempts injected)',
    value === undefined ? 'it is required' : undefined,
  );
  return 0;
}

/** @internal validates the `chaos` option. */
export function resolveChaos(value: unknown, problems: Problems): ResolvedChaos | undefined {
  if (value === undefined || value === false) return undefined;
  const o = problems.object('chaos', value, KEYS);
  if (o === undefined) return undefined;
  let fault: ResolvedChaos['fault'];
  let latency: ResolvedChaos['latency'];
  let result: ResolvedChaos['result'];
  if (o.fault !== undefined) {
    const f = problems.object('chaos.fault', o.fault, ['rate', 'error']);
    if (f !== undefined) {
      const error = f.error;
      if (!(error instanceof Error) && typeof error !== 'function')
        problems.add(
          'chaos.fault.error',
          error,
          'an Error, or a function (...args) => Error',
          error === undefined ? 'it is required' : undefined,
        );
      fault = {
        rate: rate('chaos.fault.rate', f.rate, problems),
        error,
        generated: typeof error === 'function',
      };
    }
  }
  if (o.latency !== undefined) {
    const l = problems.object('chaos.latency', o.latency, ['rate', 'delay']);
    if (l !== undefined) {
      const r = rate('chaos.latency.rate', l.rate, problems);
      if (l.delay === undefined)
        problems.add('chaos.latency.delay', undefined, 'a number of ms > 0');
      const delay = problems.number('chaos.latency.delay', l.delay, 0, {
        min: 0,
        exclusiveMin: true,
        infinity: true,
      });
      latency = { rate: r, delay };
    }
  }
  if (o.result !== undefined) {
    const r = problems.object('chaos.result', o.result, ['rate', 'value']);
    if (r !== undefined)
      result = { rate: rate('chaos.result.rate', r.rate, problems), value: r.value };
  }
  const enabled = o.enabled ?? CHAOS_DEFAULTS.enabled;
  if (typeof enabled !== 'boolean' && typeof enabled !== 'function')
    problems.add('chaos.enabled', enabled, 'a boolean or a function (...args) => boolean');
  if (o.fault === undefined && o.latency === undefined && o.result === undefined)
    problems.add('chaos', value, 'an object with at least one of `fault`, `latency`, `result`');
  return {
    enabled: typeof enabled === 'function' ? (enabled as () => unknown) : enabled !== false,
    fault,
    latency,
    result,
  };
}

/** @internal whether chaos applies to this call: `enabled` read once, with the call's `this` and arguments. */
export function chaosEnabled(
  chaos: ResolvedChaos,
  thisArg: unknown,
  argc: number,
  a0: unknown,
  a1: unknown,
  a2: unknown,
  a3: unknown,
  rest: unknown[] | undefined,
): boolean {
  const enabled = chaos.enabled;
  if (typeof enabled === 'boolean') return enabled;
  try {
    return callWith(enabled, thisArg, argc, a0, a1, a2, a3, rest) === true;
  } catch {
    // A broken flag must not break the calls it was meant to observe: chaos stays off.
    return false;
  }
}

/** @internal what `describe()` shows of chaos. */
export function describeChaos(c: ResolvedChaos): Record<string, unknown> {
  return {
    stage: 'chaos',
    active: typeof c.enabled === 'function' ? 'per call' : c.enabled,
    fault:
      c.fault === undefined
        ? 'none'
        : { rate: c.fault.rate, error: c.fault.generated ? 'function' : 'error' },
    latency: c.latency === undefined ? 'none' : { rate: c.latency.rate, delay: c.latency.delay },
    result: c.result === undefined ? 'none' : { rate: c.result.rate },
  };
}
