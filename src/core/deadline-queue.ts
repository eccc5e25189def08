import { clearTimer, refTimer, setTimer, type Clock, type TimerHandle } from '../clock.js';

/** @internal an entry of a {@link DeadlineQueue}: intrusive links, so queueing allocates nothing. */
export interface DeadlineEntry {
  deadline: number;
  prev: DeadlineEntry | undefined;
  next: DeadlineEntry | undefined;
  queued: boolean;
}

/**
 * Deadlines of one fixed duration, in a FIFO: with one duration and a monotonic clock, insertion order is
 * deadline order. One timer serves the whole queue and is re-armed only when it fires, so a call that
 * finishes in time costs two pointer updates instead of a `setTimeout` and a `clearTimeout`.
 *
 * The timer keeps the process alive while an entry waits on it: a script whose only pending work is a
 * call waiting for its timeout runs to that timeout, and one whose calls all settled can exit. When the
 * queue empties, the timer is `unref`ed (or, on a clock without `refTimer`, cleared) at the end of that
 * turn of the event loop (in a `setImmediate`), unless an entry came back meanwhile: calls made one after
 * another would otherwise pay a native `ref()` and `unref()` each, more than the rest of the stage.
 */
export class DeadlineQueue<E extends DeadlineEntry> {
  private head: E | undefined = undefined;
  private tail: E | undefined = undefined;
  private timer: TimerHandle = undefined;
  /** Whether the armed timer holds the process (it does from `arm` until `release`). */
  private held = false;
  /** A check at the end of this event-loop turn is scheduled. */
  private checking = false;
  private readonly fire = (): void => this.expire();
  private readonly check = (): void => {
    this.checking = false;
    if (this.head === undefined && this.timer !== undefined && this.held) this.release();
  };

  constructor(
    private readonly clock: Clock,
    private readonly onExpire: (entry: E) => void,
  ) {}

  /**
   * Queues an entry; its deadline (given, or already set on it: the hot path sets it, since a float
   * argument to a method V8 did not inline is boxed) is later than every queued one's.
   */
  push(entry: E, deadline?: number): void {
    if (deadline !== undefined) entry.deadline = deadline;
    entry.queued = true;
    entry.next = undefined;
    entry.prev = this.tail;
    if (this.tail === undefined) {
      this.head = entry;
      // The first waiter: the timer left armed by earlier calls holds the process again.
      if (this.timer !== undefined && !this.held) {
        refTimer(this.clock, this.timer, true);
        this.held = true;
      }
    } else {
      this.tail.next = entry;
    }
    this.tail = entry;
    if (this.timer === undefined) this.arm(entry.deadline);
  }

  remove(entry: E): void {
    if (!entry.queued) return;
    entry.queued = false;
    const { prev, next } = entry;
    if (prev === undefined) this.head = next as E | undefined;
    else prev.next = next;
    if (next === undefined) this.tail = prev as E | undefined;
    else next.prev = prev;
    entry.prev = undefined;
    entry.next = undefined;
    if (this.head === undefined && this.timer !== undefined && !this.checking) {
      this.checking = true;
      releaseSoon(this.check);
    }
  }

  /** No entry waits any more: the timer must not hold the process. */
  private release(): void {
    this.held = false;
    if (refTimer(this.clock, this.timer, false)) return;
    clearTimer(this.clock, this.timer);
    this.timer = undefined;
  }

  /** True while a timer is armed (at most one per queue). */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  private arm(deadline: number): void {
    this.timer = setTimer(this.clock, this.fire, Math.max(0, deadline - this.clock.now()));
    this.held = true;
  }

  private expire(): void {
    this.timer = undefined;
    this.held = false;
    const now = this.clock.now();
    let entry = this.head;
    while (entry !== undefined && entry.deadline <= now) {
      this.remove(entry);
      this.onExpire(entry);
      entry = this.head;
    }
    if (entry !== undefined && this.timer === undefined) this.arm(entry.deadline);
  }
}

/** Runs `callback` at the end of this turn of the event loop (where there is no `setImmediate`: soon). */
function releaseSoon(callback: () => void): void {
  if (typeof setImmediate === 'function') setImmediate(callback);
  else setTimeout(callback, 0);
}
