import type { Clock } from '../clock.js';
import { Problems } from '../core/validate.js';
import { isClock } from './circuit-breaker.js';

/** Options of the rate limiter (GCRA: exact, one number of state, no timer). */
export interface RateLimiterOptions {
  /** Calls allowed per `interval`. Required. */
  limit: number;
  /** The interval `limit` applies to, in ms. The default value is `1_000`. */
  interval?: number;
  /** Calls allowed at once after a quiet period. The default value is `limit`. */
  burst?: number;
  /**
   * How long a call may wait for a token, in ms (FIFO); a longer wait rejects with
   * `RateLimitedError`. The default value is `0` (never wait).
   */
  maxWait?: number;
  /** The clock; by default the clock of the first pipeline that uses the limiter. */
  clock?: Clock;
  /** Name (used by shared stores and in `describe()`). The default value is none. */
  name?: string;
}

export const RATE_LIMITER_DEFAULTS = Object.freeze({ interval: 1_000, maxWait: 0 });

/**
 * A rate limiter using the Generic Cell Rate Algorithm. Its state is one number, the theoretical
 * arrival time (TAT), kept in units of `ms × limit` so that integer clocks give exact results.
 * Waiting callers reserve their token up front, so they are served in FIFO order.
 *
 * @example
 * const limiter = rateLimiter({ limit: 100, interval: 1_000, maxWait: 250 });
 */
export class RateLimiter {
  readonly name: string | undefined;
  readonly limit: number;
  readonly interval: number;
  readonly burst: number;
  readonly maxWait: number;
  /** @internal */
  clock: Clock | undefined;
  private tat = -Infinity;
  private admitted = 0;
  private rejected = 0;
  private waited = 0;

  constructor(options: RateLimiterOptions, path = 'rateLimiter') {
    const problems = new Problems();
    const o =
      problems.object(path, options, ['limit', 'interval', 'burst', 'maxWait', 'clock', 'name']) ??
      {};
    if (o.limit === undefined)
      problems.add(`${path}.limit`, o.limit, 'a number > 0 (calls per interval)');
    this.limit = problems.number(`${path}.limit`, o.limit, 1, { min: 0, exclusiveMin: true });
    this.interval = problems.number(
      `${path}.interval`,
      o.interval,
      RATE_LIMITER_DEFAULTS.interval,
      {
        min: 0,
        exclusiveMin: true,
      },
    );
    this.burst = problems.number(`${path}.burst`, o.burst, Math.max(1, Math.ceil(this.limit)), {
      min: 1,
      integer: true,
    });
    this.maxWait = problems.number(`${path}.maxWait`, o.maxWait, RATE_LIMITER_DEFAULTS.maxWait, {
      min: 0,
      infinity: true,
    });
    if (o.clock !== undefined && !isClock(o.clock))
      problems.add(`${path}.clock`, o.clock, 'a Clock { now, setTimer, clearTimer }');
    if (o.name !== undefined && typeof o.name !== 'string')
      problems.add(`${path}.name`, o.name, 'a string');
    problems.throwIfAny(path === 'rateLimiter' ? 'Invalid rateLimiter options' : undefined);
    this.clock = isClock(o.clock) ? o.clock : undefined;
    this.name = typeof o.name === 'string' ? o.name : undefined;
  }

  /** @internal */
  adoptClock(clock: Clock): void {
    this.clock ??= clock;
  }

  /** Takes a token at `now` if one is free; never waits. */
  tryAcquire(now: number): boolean {
    const scaled = now * this.limit;
    const next = (this.tat > scaled ? this.tat : scaled) + this.interval;
    if (next - scaled > this.burst * this.interval) return false;
    this.tat = next;
    this.admitted++;
    return true;
  }

  /**
   * Reserves a token at `now` if it is free within `maxWait` ms: returns the wait in ms (0 = now),
   * or -1 without reserving anything.
   */
  reserve(now: number, maxWait: number): number {
    const scaled = now * this.limit;
    const next = (this.tat > scaled ? this.tat : scaled) + this.interval;
    const wait = (next - scaled - this.burst * this.interval) / this.limit;
    if (wait > maxWait) {
      this.rejected++;
      return -1;
    }
    this.tat = next;
    this.admitted++;
    if (wait > 0) this.waited++;
    return wait > 0 ? wait : 0;
  }

  /** ms until a token is free at `now`. */
  retryAfter(now: number): number {
    const scaled = now * this.limit;
    const next = (this.tat > scaled ? this.tat : scaled) + this.interval;
    return Math.max(0, (next - scaled - this.burst * this.interval) / this.limit);
  }

  /**
   * Gives back the token just taken (an undone fast-path admission, or an aborted wait that was the
   * latest reservation). Exact only for the latest reservation; older ones stay spent.
   * @internal
   */
  refund(): void {
    this.tat -= this.interval;
    this.admitted--;
  }

  /** @internal the reservation end a waiter must match for {@link RateLimiter.refund} to be exact. */
  get reservationEnd(): number {
    return this.tat;
  }

  /** @internal counts a rejection made outside {@link RateLimiter.reserve}. */
  countRejection(): void {
    this.rejected++;
  }

  stats(): { admitted: number; rejected: number; waited: number; retryAfter: number } {
    return {
      admitted: this.admitted,
      rejected: this.rejected,
      waited: this.waited,
      retryAfter: this.clock === undefined ? 0 : this.retryAfter(this.clock.now()),
    };
  }

  describe(): Record<string, unknown> {
    return {
      stage: 'rateLimiter',
      name: this.name ?? 'none',
      limit: this.limit,
      interval: this.interval,
      burst: this.burst,
      maxWait: this.maxWait,
    };
  }
}

/**
 * Makes a standalone {@link RateLimiter} to share between functions.
 *
 * @example
 * const limiter = rateLimiter({ limit: 50 }); // 50 calls per second
 */
export function rateLimiter(options: RateLimiterOptions): RateLimiter {
  return new RateLimiter(options);
}
