import type { Clock, TimerHandle } from '../../src/clock.js';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
  unref: boolean;
}

/** Node's limit for one timer (a signed 32-bit int of ms, about 24.8 days). */
const NODE_TIMEOUT_MAX = 2 ** 31 - 1;

export interface ManualClockOptions {
  /**
   * Behave as Node's `setTimeout` does: a delay above 2³¹−1 ms (or `Infinity`) fires after 1 ms, and is
   * counted in {@link ManualClock.overflows}. Off by default.
   */
  nodeTimers?: boolean;
  /** Offer `refTimer` (as the system clock does). On by default. */
  refTimer?: boolean;
}

/**
 * A clock for tests: time moves only when the test says so. `advance(ms)` fires due timers in order of
 * their due time (then of creation), letting promise reactions run between timers, as real timers do.
 */
export class ManualClock implements Clock {
  private time: number;
  private nextId = 1;
  private readonly timers = new Map<number, Timer>();
  private readonly nodeTimers: boolean;
  /** Timers asked for longer than Node allows (with `nodeTimers`, they fired after 1 ms). */
  overflows = 0;
  /** Calls of `refTimer`. */
  refToggles = 0;
  declare refTimer?: (handle: TimerHandle, ref: boolean) => void;

  constructor(start = 0, options: ManualClockOptions = {}) {
    this.time = start;
    this.nodeTimers = options.nodeTimers === true;
    if (options.refTimer !== false) {
      this.refTimer = (handle, ref) => {
        this.refToggles++;
        const timer = this.timers.get(handle as number);
        if (timer !== undefined) timer.unref = !ref;
      };
    }
  }

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, ms: number, unref = false): TimerHandle {
    const id = this.nextId++;
    if (!(ms <= NODE_TIMEOUT_MAX)) {
      this.overflows++;
      if (this.nodeTimers) ms = 1;
    }
    this.timers.set(id, { id, at: this.time + Math.max(0, ms), callback, unref });
    return id;
  }

  clearTimer(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  /**
   * Moves time forward without firing timers or settling promises: time spent inside a synchronous
   * call (a timer would fire only after it returns).
   */
  elapse(ms: number): void {
    this.time += ms;
  }

  /** Timers still pending (all, or only those that would keep a real process alive). */
  pending(options: { refOnly?: boolean } = {}): number {
    let count = 0;
    for (const timer of this.timers.values()) if (!options.refOnly || !timer.unref) count++;
    return count;
  }

  /** Moves time forward by `ms`, firing every timer due on the way; settles promises between timers. */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    await flush();
    for (;;) {
      let next: Timer | undefined;
      for (const timer of this.timers.values()) {
        if (
          timer.at <= target &&
          (next === undefined || timer.at < next.at || (timer.at === next.at && timer.id < next.id))
        ) {
          next = timer;
        }
      }
      if (next === undefined) break;
      this.timers.delete(next.id);
      this.time = Math.max(this.time, next.at);
      next.callback();
      await flush();
    }
    this.time = target;
    await flush();
  }

  /** Fires every pending timer, however far ahead (bounded, to catch runaway timer loops). */
  async runAll(limit = 10_000): Promise<void> {
    for (let i = 0; i < limit && this.timers.size > 0; i++) {
      let next: Timer | undefined;
      for (const timer of this.timers.values())
        if (next === undefined || timer.at < next.at) next = timer;
      if (next === undefined) break;
      await this.advance(next.at - this.time);
    }
  }
}

/** Lets every queued promise reaction run (several rounds, for chains of awaits). */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
  await new Promise<void>((resolve) => setImmediate(resolve));
}
