import { systemClock, type Clock } from '../clock.js';
import { Problems } from '../core/validate.js';
import { Emitter, type Listener, type Unsubscribe } from '../events.js';
import { StoreHealth, storeOption, type SharedRateLimiter, type Store } from '../store.js';
import { isClock } from './circuit-breaker.js';
import { PARTITION_HERE, type PartitionRole } from './partition.js';

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
  /** Name (used by shared stores and in `describe()`). Required with a `store`. The default value is none. */
  name?: string;
  /**
   * Holds the limit across processes (`redisStore(client)` from `bulwark/redis`): every process that
   * builds a limiter with the same `name` shares one GCRA state. The default value is none (in memory).
   */
  store?: Store;
  /**
   * With a store: tokens a process reserves at once and then spends locally, with no round trip, until
   * they are used or expire (after the time they take to accrue, `lease × interval / limit` ms). Over any
   * window the fleet admits at most `lease` calls more than the limit. The default value is `1` (exact:
   * one round trip per call).
   */
  lease?: number;
  /**
   * With a store: what to do while the store is unreachable or slow. `'local'` applies this process's
   * share of the limit (`limit / N`, N the processes the store last counted, at least
   * `expectedProcesses`), starting from an empty bucket; `'allow'` admits every call; `'reject'` rejects
   * every call. The default value is `'local'`.
   */
  onStoreError?: 'local' | 'allow' | 'reject';
  /**
   * With a store: the fewest processes this process assumes share the limit while it acts locally
   * (`onStoreError: 'local'`). Its share is then `limit / max(N, expectedProcesses)` (and the burst
   * share `burst / max(N, expectedProcesses)`), N the processes the store last counted, or 1 before the
   * store ever answered: so a fleet of 20 processes that starts while Redis is down admits the limit,
   * not 20 times it, when each says `expectedProcesses: 20`. A positive integer. The default value is
   * `1` (a process that never reached the store takes the whole limit).
   */
  expectedProcesses?: number;
}

export const RATE_LIMITER_DEFAULTS = Object.freeze({
  interval: 1_000,
  maxWait: 0,
  lease: 1,
  onStoreError: 'local' as const,
  expectedProcesses: 1,
});

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
  /** The shared state, when a `store` was given. */
  readonly shared: SharedRateLimiter | undefined;
  readonly lease: number;
  readonly onStoreError: 'local' | 'allow' | 'reject';
  /** With a store: the fewest processes assumed to share the limit while acting locally. */
  readonly expectedProcesses: number;
  /** @internal (one emitter shared by every partition of a partitioned limiter) */
  events = new Emitter();
  /** @internal */
  clock: Clock | undefined;
  /** @internal the partition key, when this limiter is one partition of a partitioned stage. */
  partition: string | undefined = undefined;
  private readonly health: StoreHealth | undefined;
  // Lease: tokens reserved in the store, spent here from `leaseFrom` until `leaseUntil`.
  private leaseLeft = 0;
  // The current lease's size, and the size of the next request: twice what the last lease spent.
  private leaseGranted = 0;
  private leaseSize: number;
  private leaseFrom = 0;
  private leaseUntil = 0;
  private leasing: Promise<unknown> | undefined = undefined;
  private sharedRetryAfter = 0;
  // While the store is unavailable: this process's share of the limit (GCRA in ms, from empty), among
  // max(the processes the store last counted, expectedProcesses).
  private processes: number;
  private localTat = -Infinity;
  private tat = -Infinity;
  private admitted = 0;
  private rejected = 0;
  private waited = 0;

  constructor(
    options: RateLimiterOptions,
    path = 'rateLimiter',
    /** @internal a partition of a partitioned stage (see options.ts). */
    role?: PartitionRole,
  ) {
    const problems = new Problems();
    const o =
      problems.object(path, options, [
        'limit',
        'interval',
        'burst',
        'maxWait',
        'clock',
        'name',
        'store',
        'lease',
        'onStoreError',
        'expectedProcesses',
        'partition',
      ]) ?? {};
    if (o.partition !== undefined) problems.raw(PARTITION_HERE(path));
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
    const store = o.store;
    const sharedIn = storeOption(problems, path, store, o.name, 'limiter');
    this.lease = problems.number(`${path}.lease`, o.lease, RATE_LIMITER_DEFAULTS.lease, {
      min: 1,
      integer: true,
    });
    if (o.lease !== undefined && store === undefined)
      problems.raw(`\`${path}.lease\` applies to a limiter with a \`store\``);
    if (this.lease > this.burst)
      problems.raw(
        `\`${path}.lease\` (${this.lease}) exceeds \`${path}.burst\` (${this.burst}): a lease can never be granted`,
      );
    this.onStoreError = problems.oneOf(
      `${path}.onStoreError`,
      o.onStoreError,
      ['local', 'allow', 'reject'],
      RATE_LIMITER_DEFAULTS.onStoreError,
    );
    this.expectedProcesses = problems.number(
      `${path}.expectedProcesses`,
      o.expectedProcesses,
      RATE_LIMITER_DEFAULTS.expectedProcesses,
      { min: 1, integer: true },
    );
    if (o.expectedProcesses !== undefined && store === undefined)
      problems.raw(`\`${path}.expectedProcesses\` applies to a limiter with a \`store\``);
    this.processes = this.expectedProcesses;
    problems.throwIfAny(path === 'rateLimiter' ? 'Invalid rateLimiter options' : undefined);
    this.leaseSize = Math.min(this.lease, 2);
    this.clock = isClock(o.clock) ? o.clock : undefined;
    this.name = typeof o.name === 'string' ? o.name : undefined;
    if (typeof role === 'object') {
      this.partition = role.key;
      this.events = role.events;
    }
    if (sharedIn !== undefined) {
      const partition = this.partition;
      this.shared =
        partition === undefined
          ? sharedIn.forRateLimiter(this.name!)
          : sharedIn.forRateLimiter(this.name!, partition);
      this.health = new StoreHealth(
        sharedIn,
        this.events,
        'rateLimiter',
        this.name!,
        () => (this.clock ?? systemClock).now(),
        partition,
      );
    } else {
      this.shared = undefined;
      this.health = undefined;
    }
  }

  /** Listens to this limiter's store events (`storeUnavailable`, `storeRecovered`). */
  on(listener: Listener): Unsubscribe {
    return this.events.on(listener);
  }

  /** @internal */
  adoptClock(clock: Clock): void {
    this.clock ??= clock;
  }

  /**
   * @internal True when forgetting this limiter at `now` admits nothing it would refuse: its bucket is
   * full again (no token spent or reserved within the last `burst` tokens' worth of time). With a
   * store, the bucket is the store's (a fresh partition finds it as it is): this process holds no lease
   * it could still spend, asks for none, and its own share, used while the store is unavailable, is
   * full again.
   */
  atRest(now: number): boolean {
    if (this.shared === undefined) return this.tat <= now * this.limit;
    return (
      (this.leaseLeft === 0 || now >= this.leaseUntil) &&
      this.leasing === undefined &&
      this.localTat <= now
    );
  }

  /** Takes a token at `now` if one is free; never waits. */
  tryAcquire(now: number): boolean {
    if (this.shared !== undefined) return this.tryShared(now);
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

  /**
   * With a store, the fast path: a token from the lease, or the local policy while the store is
   * unavailable; otherwise false, and the pipeline asks the store on its slow path.
   */
  private tryShared(now: number): boolean {
    if (this.leaseLeft > 0 && now >= this.leaseFrom && now < this.leaseUntil) {
      this.leaseLeft--;
      this.admitted++;
      return true;
    }
    const health = this.health!;
    if (health.available || health.recheckDue() || this.onStoreError === 'reject') return false;
    if (this.onStoreError === 'allow') {
      this.admitted++;
      return true;
    }
    if (this.reserveLocal(now, 0) === 0) return true;
    this.rejected--; // counted once, on the slow path that follows
    return false;
  }

  /**
   * @internal With a store: reserves a token (a lease of them when `lease` > 1) within `maxWait` ms.
   * Returns the wait in ms, or -1. Falls back to `onStoreError` when the store fails or is slow.
   */
  async reserveShared(now: number, maxWait: number): Promise<number> {
    const clock = this.clock!;
    for (;;) {
      if (this.leaseLeft > 0 && now < this.leaseUntil) {
        const wait = Math.max(0, this.leaseFrom - now);
        if (wait <= maxWait) {
          this.leaseLeft--;
          this.admitted++;
          if (wait > 0) this.waited++;
          return wait;
        }
      }
      // One lease request at a time: callers that may wait take its tokens when it lands; a caller
      // that may not wait (maxWait 0) asks for its own token at once instead of queueing behind it.
      if (this.leasing === undefined || maxWait <= 0) break;
      await this.leasing;
      now = clock.now();
    }
    const health = this.health!;
    if (!health.usable()) return this.storeFallback(now, maxWait);
    const leasing = this.lease > 1 && this.leasing === undefined;
    // Tokens of the last lease that this process will not spend (expired, or not usable in time) go
    // back to the fleet in the same command: a lease never strands tokens the others could use.
    const giveBack = leasing ? this.leaseLeft : 0;
    if (leasing) {
      // Sized to demand: twice what the last lease spent, from 2 (a quiet process holds few of the fleet's
      // tokens; a busy one doubles up to `lease`).
      if (this.leaseGranted > 0)
        this.leaseSize = Math.min(
          this.lease,
          Math.max(2, 2 * (this.leaseGranted - this.leaseLeft)),
        );
      this.leaseLeft = 0;
      this.leaseGranted = 0;
    }
    const request = this.shared!.reserve({
      limit: this.limit,
      interval: this.interval,
      burst: this.burst,
      maxWait,
      count: leasing ? this.leaseSize : 1,
      giveBack,
    });
    if (leasing) this.leasing = request.then(noop, noop);
    let reservation;
    try {
      reservation = await request;
    } catch (error) {
      // Acting locally from now on: the fleet's tokens were not this process's to spend, so the local
      // bucket starts empty when the unanswered command was sent, and fills at this process's share
      // of the limit from there.
      if (health.available) this.emptyLocalBucket(now);
      health.failed(error);
      // Decided when the command gave up: the tokens earned meanwhile count, the time spent does too.
      const later = clock.now();
      return this.storeFallback(later, Math.max(0, maxWait - (later - now)));
    } finally {
      if (leasing) this.leasing = undefined;
    }
    health.succeeded();
    const processes = reservation.processes;
    if (processes !== undefined && processes >= 1)
      this.processes = Math.max(processes, this.expectedProcesses);
    if ('retryAfter' in reservation) {
      // A lease that landed meanwhile may hold a token for this caller.
      now = clock.now();
      if (this.leaseLeft > 0 && now < this.leaseUntil && this.leaseFrom - now <= maxWait) {
        const wait = Math.max(0, this.leaseFrom - now);
        this.leaseLeft--;
        this.admitted++;
        if (wait > 0) this.waited++;
        return wait;
      }
      this.sharedRetryAfter = reservation.retryAfter;
      this.rejected++;
      return -1;
    }
    const wait = reservation.wait;
    if (reservation.granted > 1) {
      // Usable from when the whole batch conforms (measured after the reply: never early), and for
      // as long as the batch takes to accrue, measured from the request (never late).
      this.leaseGranted = reservation.granted;
      this.leaseLeft = reservation.granted - 1;
      this.leaseFrom = clock.now() + wait;
      this.leaseUntil = now + wait + (reservation.granted * this.interval) / this.limit;
    }
    this.admitted++;
    if (wait > 0) this.waited++;
    return wait;
  }

  /** This process's share while the store is unavailable: ms per token, and tokens at most at once. */
  private get localStep(): number {
    return (this.interval * this.processes) / this.limit;
  }

  private get localBurst(): number {
    return Math.max(1, this.burst / this.processes);
  }

  /** The local bucket holds no token at `now` (GCRA: the arrival time a full burst ahead). */
  private emptyLocalBucket(now: number): void {
    const empty = now + this.localBurst * this.localStep;
    if (this.localTat < empty) this.localTat = empty;
  }

  /** {@link RateLimiter.reserve} on this process's share of the limit (the store is unavailable). */
  private reserveLocal(now: number, maxWait: number): number {
    const step = this.localStep;
    const next = (this.localTat > now ? this.localTat : now) + step;
    const wait = next - now - this.localBurst * step;
    if (wait > maxWait) {
      this.rejected++;
      return -1;
    }
    this.localTat = next;
    this.admitted++;
    if (wait > 0) this.waited++;
    return wait > 0 ? wait : 0;
  }

  private storeFallback(now: number, maxWait: number): number {
    if (this.onStoreError === 'allow') {
      this.admitted++;
      return 0;
    }
    if (this.onStoreError === 'reject') {
      this.sharedRetryAfter = 0;
      this.rejected++;
      return -1;
    }
    return this.reserveLocal(now, maxWait);
  }

  /** ms until a token is free at `now`. */
  retryAfter(now: number): number {
    if (this.shared !== undefined) {
      const health = this.health!;
      if (health.available) return this.sharedRetryAfter;
      // 'reject': no token comes before the store is asked again (the local bucket is not in use).
      if (this.onStoreError === 'reject') return health.recheckIn();
      const step = this.localStep;
      const next = (this.localTat > now ? this.localTat : now) + step;
      return Math.max(0, next - now - this.localBurst * step);
    }
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
    this.admitted--;
    // A shared token goes back to the lease (an exact one stays spent in the store).
    if (this.shared !== undefined) {
      if (this.lease > 1) this.leaseLeft++;
      return;
    }
    this.tat -= this.interval;
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
      ...(this.shared === undefined
        ? {}
        : {
            store: 'shared',
            lease: this.lease,
            onStoreError: this.onStoreError,
            expectedProcesses: this.expectedProcesses,
          }),
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

function noop(): void {
  // nothing to do: waiters only need to know the lease request settled
}
