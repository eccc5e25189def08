/**
 * bulwark/testing: a manual clock to test your own policies in virtual time. It imports nothing at run
 * time (the `Clock` type only), so it adds nothing to the core bundle.
 */
import type { Clock, TimerHandle } from '../clock.js';

/** Options of {@link manualClock}. */
export interface ManualClockOptions {
  /** The time `now()` reads at first, in ms. The default value is `0`. */
  start?: number;
}

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
  unref: boolean;
}

/** Waits for one macrotask: every promise reaction queued before it, and those they queue, has run. */
function nextMacrotask(): Promise<void> {
  return new Promise<void>((resolve) => {
    if (typeof setImmediate === 'function') setImmediate(resolve);
    else setTimeout(resolve, 0);
  });
}

/**
 * A {@link Clock} for tests: time moves only when the test says so, and timers fire in virtual time.
 * Give it to a policy (`clock` option) and a retry's backoff, a timeout, a half-open delay or a
 * rate-limiter wait of any length (a 30-day `retryAfter` included) takes no real time.
 *
 * Between two timers {@link ManualClock.advance} lets every pending promise reaction run (it waits for
 * one macrotask), so `fn`'s promise, the retry loop and your own `await`s move on as they would with
 * real timers, and a timer set by a callback inside the window fires in the same `advance`. Real I/O
 * does not finish inside `advance`: a test that waits for a socket must wait for it itself.
 *
 * @example
 * const clock = manualClock();
 * const getUser = resilient(fetchUser, { retry: { maxAttempts: 3 }, timeout: 1_000, clock });
 * const user = getUser('42');
 * await clock.advance(5_000); // attempts, timeouts and backoff sleeps, in virtual time
 */
export class ManualClock implements Clock {
  private time: number;
  private nextId = 1;
  private readonly timers = new Map<number, Timer>();

  constructor(options: ManualClockOptions = {}) {
    const start = options.start ?? 0;
    if (typeof start !== 'number' || !Number.isFinite(start)) {
      throw new TypeError(`Expected \`start\` to be a finite number of ms, got ${String(start)}`);
    }
    this.time = start;
  }

  /** The virtual time, in ms. */
  now(): number {
    return this.time;
  }

  /**
   * Sets a timer due `ms` from now (a negative delay or `NaN` counts as 0, as with `setTimeout`). Any
   * length works, with no 2³¹−1 ms limit; `Infinity` never fires.
   */
  setTimer(callback: () => void, ms: number, unref = false): TimerHandle {
    const id = this.nextId++;
    const delay = ms > 0 ? ms : 0;
    this.timers.set(id, { id, at: this.time + delay, callback, unref: unref === true });
    return id;
  }

  clearTimer(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  /** Marks a pending timer as keeping a process alive or not (see {@link ManualClock.pending}). */
  refTimer(handle: TimerHandle, ref: boolean): void {
    const timer = this.timers.get(handle as number);
    if (timer !== undefined) timer.unref = !ref;
  }

  /**
   * Timers still pending: all of them, or with `refOnly` those that would keep a real process alive
   * (a test that ends with `pending({ refOnly: true }) === 0` leaves nothing that holds a process).
   */
  pending(options: { refOnly?: boolean } = {}): number {
    let count = 0;
    for (const timer of this.timers.values()) if (options.refOnly !== true || !timer.unref) count++;
    return count;
  }

  /** When the next pending timer is due (virtual ms), or `undefined` when none will ever fire. */
  nextTimerAt(): number | undefined {
    return this.next(Infinity)?.at;
  }

  /**
   * Moves time forward by `ms`: fires every timer due on the way in order of due time (then of
   * creation), each at its due time, with promise reactions run between them; timers that callbacks set
   * inside the window fire too. Ends at `now() + ms`, reactions run.
   */
  async advance(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !(ms >= 0) || ms === Infinity) {
      throw new RangeError(
        `Expected \`advance(ms)\` to get a finite number of ms >= 0, got ${String(ms)} (use runAll() to fire every timer)`,
      );
    }
    const target = this.time + ms;
    await nextMacrotask();
    for (;;) {
      const timer = this.next(target);
      if (timer === undefined) break;
      this.fire(timer);
      await nextMacrotask();
    }
    this.time = Math.max(this.time, target);
    await nextMacrotask();
  }

  /**
   * Fires every pending timer in order, however far ahead, and those their callbacks set, until none
   * is left (timers set for `Infinity` never fire). Throws after `limit` timers: a callback that always
   * sets another timer (a periodic job) would otherwise never end; use `advance` for those.
   */
  async runAll(limit = 10_000): Promise<void> {
    await nextMacrotask();
    for (let fired = 0; ; fired++) {
      const timer = this.next(Infinity);
      if (timer === undefined) return;
      if (fired >= limit) {
        throw new Error(
          `runAll() fired ${limit} timers and more are pending: a callback that always sets another timer? Use advance(ms)`,
        );
      }
      this.fire(timer);
      await nextMacrotask();
    }
  }

  /** Lets every pending promise reaction run, without moving time. */
  flush(): Promise<void> {
    return nextMacrotask();
  }

  /**
   * Moves time forward without firing timers or running reactions: the time a synchronous call takes
   * (a timer fires only after it returns). The next `advance` fires what became due.
   */
  elapse(ms: number): void {
    this.time += ms;
  }

  /** The earliest timer due at or before `until` (finite due times only). */
  private next(until: number): Timer | undefined {
    let next: Timer | undefined;
    for (const timer of this.timers.values()) {
      if (timer.at <= until && timer.at !== Infinity && (next === undefined || timer.at < next.at))
        next = timer; // Map order is creation order: the first of equal due times wins
    }
    return next;
  }

  private fire(timer: Timer): void {
    this.timers.delete(timer.id);
    if (timer.at > this.time) this.time = timer.at;
    timer.callback();
  }
}

/**
 * Makes a {@link ManualClock}: a clock whose time moves only when the test calls `advance(ms)` or
 * `runAll()`.
 *
 * @example
 * import { manualClock } from 'bulwark/testing';
 * const clock = manualClock();
 * const call = resilient(fn, { retry: true, clock })();
 * await clock.runAll();
 */
export function manualClock(options: ManualClockOptions = {}): ManualClock {
  return new ManualClock(options);
}
