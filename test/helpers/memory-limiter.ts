import type {
  RateLimitRequest,
  RateLimitReservation,
  SharedRateLimiter,
  Store,
} from '../../src/store.js';
import type { ManualClock } from './manual-clock.js';

/** How the fake store answers its next commands. */
export type LimiterStoreMode =
  | 'answer' // at once (after `latency` ms of the manual clock, when set)
  | 'fail' // rejects (Redis down; after `latency` ms: a command timeout)
  | 'hang'; // never answers until `release()`

/**
 * A fleet's rate limit in memory, enough of a {@link Store} for store-backed limiters in virtual time:
 * the same GCRA as the Redis script (`src/redis/scripts.ts` RESERVE: `count` tokens at once, fewer when
 * fewer fit within `maxWait`, unspent lease tokens given back first), time from the manual clock, and
 * every limiter built on it with the same name shares one state, as processes share one Redis key. It
 * records each request, can fail, hang or answer late, and reports a process count when told to.
 */
export class MemoryLimiterStore implements Store {
  readonly requests: (RateLimitRequest & { name: string; at: number })[] = [];
  mode: LimiterStoreMode = 'answer';
  /** ms of the manual clock before an answer arrives. */
  latency = 0;
  /** The process count each reply carries (`undefined`: none, as a store that does not count). */
  processes: number | undefined = undefined;
  readonly recheckAfter: number;
  /** Keeps each partition of a limiter apart (its own state), as `redisStore` does. */
  readonly partitioned = true;
  /** Per name: how far ahead of now the bucket is, as an absolute time (GCRA's TAT), in ms. */
  private readonly tat = new Map<string, number>();
  private readonly hanging: (() => void)[] = [];

  constructor(
    private readonly clock: ManualClock,
    options: { recheckAfter?: number } = {},
  ) {
    this.recheckAfter = options.recheckAfter ?? 1_000;
  }

  forRateLimiter(name: string, partition?: string): SharedRateLimiter {
    const key = partition === undefined ? name : `${name}:p:${partition}`;
    return { reserve: (request) => this.reserve(key, request) };
  }

  forCircuit(): never {
    throw new Error('not used');
  }

  forCache(): never {
    throw new Error('not used');
  }

  /** Answers every hanging command with a failure (a timeout, seen late). */
  release(): void {
    for (const fail of this.hanging.splice(0)) fail();
  }

  private reserve(name: string, request: RateLimitRequest): Promise<RateLimitReservation> {
    this.requests.push({ ...request, name, at: this.clock.now() });
    if (this.mode === 'fail') {
      if (this.latency <= 0) return Promise.reject(new Error('store down'));
      return new Promise((_, reject) => {
        this.clock.setTimer(() => reject(new Error('store timed out')), this.latency);
      });
    }
    if (this.mode === 'hang')
      return new Promise((_, reject) => {
        this.hanging.push(() => reject(new Error('store timed out')));
      });
    if (this.latency <= 0) return Promise.resolve(this.decide(name, request));
    return new Promise((resolve) => {
      this.clock.setTimer(() => resolve(this.decide(name, request)), this.latency);
    });
  }

  /** The Redis script's decision, at the time the command runs (when its answer is sent). */
  private decide(name: string, r: RateLimitRequest): RateLimitReservation {
    const now = this.clock.now();
    const step = r.interval / r.limit;
    let ahead = Math.max(0, (this.tat.get(name) ?? now) - now);
    const back = r.giveBack ?? 0;
    if (back > 0) ahead = Math.max(0, ahead - back * step);
    const fit = Math.min(r.count, Math.floor((r.maxWait + r.burst * step - ahead) / step + 1e-9));
    const processes = this.processes === undefined ? {} : { processes: this.processes };
    if (fit < 1) {
      this.tat.set(name, now + ahead);
      return { granted: 0, retryAfter: Math.max(0, ahead + step - r.burst * step), ...processes };
    }
    const next = ahead + fit * step;
    this.tat.set(name, now + next);
    return { granted: fit, wait: Math.max(0, next - r.burst * step), ...processes };
  }
}
