/**
 * A backoff: the delay in milliseconds before the next attempt.
 *
 * @param attempt - the number of the attempt that just failed (1 for the first call).
 * @param previousDelay - the delay used before that attempt (0 after the first call).
 * @param random - a uniform random number source in [0, 1) (injectable through `random`).
 */
export type Backoff = ((attempt: number, previousDelay: number, random: () => number) => number) & {
  /** How `describe()` shows the backoff. */
  readonly description?: BackoffDescription;
};

export type BackoffDescription =
  | { readonly type: 'constant'; readonly delay: number }
  | {
      readonly type: 'exponential';
      readonly initial: number;
      readonly factor: number;
      readonly max: number;
      readonly jitter: Jitter;
    }
  | { readonly type: 'decorrelated'; readonly initial: number; readonly max: number }
  | { readonly type: 'custom' };

/**
 * How exponential delays are randomized: `'none'`, `'full'` (uniform in [0, d]) or `'equal'`
 * (d/2 + uniform in [0, d/2]). Full jitter spreads retries best (AWS Architecture Blog).
 */
export type Jitter = 'none' | 'full' | 'equal';

export interface ExponentialOptions {
  /** Delay before the first retry, in ms. The default value is `100`. */
  initial?: number;
  /** Multiplier per attempt. The default value is `2`. */
  factor?: number;
  /** Upper bound of any delay, in ms. The default value is `10_000`. */
  max?: number;
  /** Randomization. The default value is `'full'`. */
  jitter?: Jitter;
}

export interface DecorrelatedOptions {
  /** Base delay in ms. The default value is `100`. */
  initial?: number;
  /** Upper bound of any delay, in ms. The default value is `10_000`. */
  max?: number;
}

export const EXPONENTIAL_DEFAULTS = Object.freeze({
  initial: 100,
  factor: 2,
  max: 10_000,
  jitter: 'full',
});

function describe<T extends Backoff>(fn: T, description: BackoffDescription): T {
  Object.defineProperty(fn, 'description', { value: Object.freeze(description) });
  return fn;
}

function check(name: string, value: number, min: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new TypeError(
      `Expected \`${name}\` to be a finite number >= ${min}, got \`${String(value)}\` (${typeof value})`,
    );
  }
}

/**
 * Delay builders for `retry.backoff`.
 *
 * @example
 * resilient(fn, { retry: { backoff: backoff.exponential({ initial: 50, max: 2_000 }) } });
 */
export const backoff = Object.freeze({
  /** The same delay before every retry. */
  constant(delay: number): Backoff {
    check('backoff.constant(delay)', delay, 0);
    return describe(() => delay, { type: 'constant', delay });
  },

  /** `initial × factor^(attempt-1)`, capped at `max`, then jittered. */
  exponential(options: ExponentialOptions = {}): Backoff {
    const initial = options.initial ?? EXPONENTIAL_DEFAULTS.initial;
    const factor = options.factor ?? EXPONENTIAL_DEFAULTS.factor;
    const max = options.max ?? EXPONENTIAL_DEFAULTS.max;
    const jitter = options.jitter ?? EXPONENTIAL_DEFAULTS.jitter;
    check('backoff.exponential.initial', initial, 0);
    check('backoff.exponential.factor', factor, 1);
    check('backoff.exponential.max', max, 0);
    if (jitter !== 'none' && jitter !== 'full' && jitter !== 'equal') {
      throw new TypeError(
        `Expected \`backoff.exponential.jitter\` to be one of 'none', 'full', 'equal', got \`${String(jitter)}\``,
      );
    }
    return describe(
      (attempt, _previous, random) => {
        const base = Math.min(max, initial * Math.pow(factor, attempt - 1));
        if (jitter === 'none') return base;
        if (jitter === 'full') return random() * base;
        return base / 2 + (random() * base) / 2;
      },
      { type: 'exponential', initial, factor, max, jitter },
    );
  },

  /**
   * AWS "decorrelated jitter": `min(max, uniform(initial, max(initial, previous) × 3))`. Spreads retries
   * of many clients apart while growing like exponential backoff. As in AWS's algorithm the first retry
   * (no previous delay yet) is already jittered, in [initial, 3 × initial].
   */
  decorrelated(options: DecorrelatedOptions = {}): Backoff {
    const initial = options.initial ?? EXPONENTIAL_DEFAULTS.initial;
    const max = options.max ?? EXPONENTIAL_DEFAULTS.max;
    check('backoff.decorrelated.initial', initial, 0);
    check('backoff.decorrelated.max', max, 0);
    return describe(
      (_attempt, previous, random) => {
        const upper = Math.max(initial, previous) * 3;
        return Math.min(max, initial + random() * (upper - initial));
      },
      { type: 'decorrelated', initial, max },
    );
  },
});
