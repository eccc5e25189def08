import { backoff as backoffs, type Backoff, type BackoffDescription } from '../backoff.js';
import type { Clock } from '../clock.js';
import { isLocalRejection } from '../errors.js';
import { Problems } from '../core/validate.js';

/** Options of the retry stage. */
export interface RetryOptions {
  /**
   * How many calls in all, the first one included (resilience4j's meaning, not cockatiel's).
   * The default value is `3`.
   */
  maxAttempts?: number;
  /**
   * The delay before each retry. An error with a numeric `retryAfter` (ms) overrides it.
   * The default value is `backoff.exponential()` (100 ms doubling to 10 s, full jitter).
   */
  backoff?: Backoff;
  /**
   * Whether to retry after `error` from attempt number `attempt`.
   * The default value retries any error except the library's local rejections (open circuit,
   * rate limited, full bulkhead) and a caller abort (never retried, whatever this returns).
   */
  retryOn?: (error: unknown, attempt: number) => boolean;
  /**
   * Whether a successful result should be retried (for example a `Response` with status 503).
   * After the last attempt that result is returned as is. The default value is none.
   */
  retryOnResult?: (result: unknown, attempt: number) => boolean;
  /** A shared {@link RetryBudget} that stops retry storms. The default value is none. */
  budget?: RetryBudget;
  /**
   * The longest `retryAfter` hint (ms) waited for. An error asking for a longer wait (`Infinity` too)
   * is not retried: the call fails with that error, as it would after its last attempt. A negative or
   * NaN hint is ignored (the backoff applies). The default value is `300_000` (5 minutes).
   */
  maxRetryAfter?: number;
}

export const RETRY_DEFAULTS = Object.freeze({
  maxAttempts: 3,
  maxRetryAfter: 300_000,
  backoff: backoffs.exponential(),
  retryOn: (error: unknown): boolean => !isLocalRejection(error),
});

export interface ResolvedRetry {
  readonly maxAttempts: number;
  readonly backoff: Backoff;
  readonly retryOn: (error: unknown, attempt: number) => boolean;
  readonly retryOnResult: ((result: unknown, attempt: number) => boolean) | undefined;
  readonly budget: RetryBudget | undefined;
  readonly maxRetryAfter: number;
}

const RETRY_KEYS = [
  'maxAttempts',
  'backoff',
  'retryOn',
  'retryOnResult',
  'budget',
  'maxRetryAfter',
] as const;

export function resolveRetry(value: unknown, problems: Problems): ResolvedRetry | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) value = {};
  if (typeof value === 'number') {
    // `retry: 3`: a count where options belong, the commonest mistake of all.
    const calls = Number.isInteger(value) && value >= 1 ? value : 3;
    problems.add(
      'retry',
      value,
      '`true` or an options object',
      `did you mean \`retry: { maxAttempts: ${calls} }\` (${calls} calls in all, the first included) or \`retry: true\` (the defaults)?`,
    );
    return undefined;
  }
  const o = problems.object('retry', value, RETRY_KEYS);
  if (o === undefined) return undefined;
  const budget = o.budget;
  if (budget !== undefined && !(budget instanceof RetryBudget)) {
    problems.add('retry.budget', budget, 'a RetryBudget made by retryBudget()');
  }
  return {
    maxAttempts: problems.number('retry.maxAttempts', o.maxAttempts, RETRY_DEFAULTS.maxAttempts, {
      min: 1,
      integer: true,
    }),
    backoff: problems.func('retry.backoff', o.backoff, RETRY_DEFAULTS.backoff),
    retryOn: problems.func('retry.retryOn', o.retryOn, RETRY_DEFAULTS.retryOn),
    retryOnResult: problems.func('retry.retryOnResult', o.retryOnResult, undefined),
    budget: budget instanceof RetryBudget ? budget : undefined,
    maxRetryAfter: problems.number(
      'retry.maxRetryAfter',
      o.maxRetryAfter,
      RETRY_DEFAULTS.maxRetryAfter,
      { min: 0, infinity: true },
    ),
  };
}

export function describeRetry(r: ResolvedRetry): Record<string, unknown> {
  const description: BackoffDescription = r.backoff.description ?? { type: 'custom' };
  return {
    stage: 'retry',
    maxAttempts: r.maxAttempts,
    backoff: description,
    retryOn: r.retryOn === RETRY_DEFAULTS.retryOn ? 'default' : 'custom',
    retryOnResult: r.retryOnResult === undefined ? 'none' : 'custom',
    budget: r.budget?.describe() ?? 'none',
    maxRetryAfter: r.maxRetryAfter,
  };
}

/** Options of {@link retryBudget}. */
export interface RetryBudgetOptions {
  /** Retries allowed as a fraction of calls in the window. The default value is `0.2`. */
  ratio?: number;
  /** Retries always allowed per second, whatever the ratio. The default value is `10`. */
  minPerSecond?: number;
  /** The sliding window in ms. The default value is `10_000`. */
  window?: number;
  /** The clock. The default value is the system clock (set by the first pipeline that uses it). */
  clock?: Clock;
}

export const RETRY_BUDGET_DEFAULTS = Object.freeze({
  ratio: 0.2,
  minPerSecond: 10,
  window: 10_000,
});

const BUCKETS = 10;

/** The ring slot of a bucket number, also for negative numbers. */
function bucketOf(epoch: number): number {
  return ((epoch % BUCKETS) + BUCKETS) % BUCKETS;
}

/**
 * A shared cap on retries (Finagle's and gRPC's retry budget): a retry is allowed only while retries in
 * the window stay under `ratio × calls + minPerSecond × window/1000`. Share one budget between every
 * function that calls the same downstream, so that an outage does not multiply its load.
 */
export class RetryBudget {
  readonly ratio: number;
  readonly minPerSecond: number;
  readonly window: number;
  private clock: Clock | undefined;
  private readonly bucketSize: number;
  private readonly calls = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private callTotal = 0;
  private retryTotal = 0;
  private epoch = NaN;

  constructor(options: RetryBudgetOptions = {}) {
    const problems = new Problems();
    const o = problems.object('retryBudget', options, ['ratio', 'minPerSecond', 'window', 'clock']);
    this.ratio = problems.number('retryBudget.ratio', o?.ratio, RETRY_BUDGET_DEFAULTS.ratio, {
      min: 0,
    });
    this.minPerSecond = problems.number(
      'retryBudget.minPerSecond',
      o?.minPerSecond,
      RETRY_BUDGET_DEFAULTS.minPerSecond,
      { min: 0 },
    );
    this.window = problems.number('retryBudget.window', o?.window, RETRY_BUDGET_DEFAULTS.window, {
      min: 0,
      exclusiveMin: true,
    });
    problems.throwIfAny('Invalid retryBudget options');
    this.clock = o?.clock as Clock | undefined;
    this.bucketSize = this.window / BUCKETS;
  }

  /** @internal the first pipeline gives the budget its clock when the user did not. */
  adoptClock(clock: Clock): void {
    this.clock ??= clock;
  }

  private rotate(now: number): number {
    const epoch = Math.floor(now / this.bucketSize);
    if (epoch !== this.epoch) {
      // A clock may read negative times (a custom or manual clock): hence the NaN sentinel for "no
      // bucket yet" and a modulo that never yields a negative slot (a Float64Array ignores those).
      const steps = Number.isNaN(this.epoch) ? BUCKETS : Math.min(BUCKETS, epoch - this.epoch);
      for (let i = 1; i <= steps; i++) {
        const slot = bucketOf(epoch - steps + i);
        this.callTotal -= this.calls[slot]!;
        this.retryTotal -= this.retries[slot]!;
        this.calls[slot] = 0;
        this.retries[slot] = 0;
      }
      this.epoch = epoch;
    }
    return bucketOf(epoch);
  }

  /** @internal counts one call (not a retry). */
  recordCall(now: number): void {
    const slot = this.rotate(now);
    this.calls[slot]! += 1;
    this.callTotal++;
  }

  /** @internal takes one retry from the budget if it allows one. */
  tryRetry(now: number): boolean {
    const slot = this.rotate(now);
    const allowed = this.ratio * this.callTotal + (this.minPerSecond * this.window) / 1000;
    if (this.retryTotal + 1 > allowed) return false;
    this.retries[slot]! += 1;
    this.retryTotal++;
    return true;
  }

  /** Calls and retries counted in the current window. */
  stats(): { calls: number; retries: number; allowed: number } {
    if (this.clock !== undefined) this.rotate(this.clock.now());
    return {
      calls: this.callTotal,
      retries: this.retryTotal,
      allowed: this.ratio * this.callTotal + (this.minPerSecond * this.window) / 1000,
    };
  }

  describe(): Record<string, unknown> {
    return { ratio: this.ratio, minPerSecond: this.minPerSecond, window: this.window };
  }
}

/**
 * Makes a {@link RetryBudget} to share between retry stages.
 *
 * @example
 * const budget = retryBudget({ ratio: 0.1 });
 * const getUser = resilient(fetchUser, { retry: { budget } });
 */
export function retryBudget(options: RetryBudgetOptions = {}): RetryBudget {
  return new RetryBudget(options);
}
