import { clearTimer, refTimer, setTimer, type Clock, type TimerHandle } from '../clock.js';
import { atTurnEnd } from './turn.js';

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
 *
 * With a `duration` (lazy stamping, for a clock whose time moves on its own: the system clock), `push`
 * reads no clock. The entries queued during one turn of the event loop get their deadline `duration`
 * after one clock read at the end of that turn (the `setImmediate` above), or at the timer's firing if
 * that comes first. So a deadline is never early; it is late by at most the time from the call to the
 * event loop's next check phase (the rest of the turn; the loop does not wait for I/O while an
 * immediate is pending). In a loop of calls, `performance.now()` per call (30–40 ns on a VM, about a
 * bare async call) was most of the stage's cost. A manual clock gets the exact stamp: its time moves
 * within a turn (`advance`), so a read at the end of the turn could be far too late.
 */
export class DeadlineQueue<E extends DeadlineEntry> {
  private head: E | undefined = undefined;
  private tail: E | undefined = undefined;
  private timer: TimerHandle = undefined;
  /** Whether the armed timer holds the process (it does from `arm` until `release`). */
  private held = false;
  /** A check at the end of this event-loop turn is scheduled. */
  private checking = false;
  /** Lazy stamping: the first queued entry without a deadline yet (every later one has none either). */
  private unstamped: E | undefined = undefined;
  private readonly fire = (): void => this.expire();
  private readonly check = (): void => {
    this.checking = false;
    if (this.unstamped !== undefined) this.stamp(this.clock.now());
    if (this.head === undefined && this.timer !== undefined && this.held) this.release();
  };

  /** @param duration every entry's deadline is this long after its turn's clock read (lazy stamping). */
  constructor(
    private readonly clock: Clock,
    private readonly onExpire: (entry: E) => void,
    private readonly duration?: number,
  ) {}

  /**
   * Queues an entry; its deadline (given, or already set on it: the hot path sets it, since a float
   * argument to a method V8 did not inline is boxed) is later than every queued one's. With lazy
   * stamping, the deadline is neither given nor set: the queue stamps it (see the class).
   */
  push(entry: E, deadline?: number): void {
    if (deadline !== undefined) entry.deadline = deadline;
    entry.queued = true;
    entry.next = undefined;
    entry.prev = this.tail;
    if (this.tail === undefined) {
      this.head = entry;
      // The first waiter: the timer left armed by earlier calls holds the process again.
      if (this.timer !== undefined && !this.held) this.hold();
    } else {
      this.tail.next = entry;
    }
    this.tail = entry;
    if (this.duration !== undefined && this.unstamped === undefined) this.firstOfTurn(entry);
    if (this.timer === undefined) this.armForHead();
  }

  /** Lazy stamping: the first entry of this turn; the turn's end stamps it and every later one. */
  private firstOfTurn(entry: E): void {
    this.unstamped = entry;
    if (!this.checking) this.scheduleCheck();
  }

  /**
   * No timer: the queue was empty, or an expiry handler pushed while the timer was being re-armed;
   * either way the head is due first. Out of `push`, which stays small enough for V8 to inline.
   */
  private armForHead(): void {
    const head = this.head!;
    if (head !== this.unstamped) return this.arm(head.deadline, this.clock.now());
    // An entry of this turn: due no earlier than `duration` from now.
    this.timer = setTimer(this.clock, this.fire, this.duration!);
    this.held = true;
  }

  /** Lazy stamping: every entry from `unstamped` on gets its deadline, from `now`. */
  private stamp(now: number): void {
    const deadline = now + this.duration!;
    for (let e = this.unstamped; e !== undefined; e = e.next as E | undefined)
      e.deadline = deadline;
    this.unstamped = undefined;
  }

  private scheduleCheck(): void {
    this.checking = true;
    atTurnEnd(this.check);
  }

  remove(entry: E): void {
    if (!entry.queued) return;
    entry.queued = false;
    const { prev, next } = entry;
    if (entry === this.unstamped) this.unstamped = next as E | undefined;
    if (prev === undefined) this.head = next as E | undefined;
    else prev.next = next;
    if (next === undefined) this.tail = prev as E | undefined;
    else next.prev = prev;
    entry.prev = undefined;
    entry.next = undefined;
    if (this.head === undefined && this.timer !== undefined && !this.checking) this.scheduleCheck();
  }

  /** The timer left armed by earlier calls holds the process again. */
  private hold(): void {
    refTimer(this.clock, this.timer, true);
    this.held = true;
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

  private arm(deadline: number, now: number): void {
    // Rounded up: host timers count whole ms (Node truncates 237.6 to 237), and a timer that fires
    // before the head's deadline only re-arms for the rest, which costs the expiry another timer and
    // another turn of the event loop (on a busy service, a turn is milliseconds).
    this.timer = setTimer(this.clock, this.fire, Math.max(0, Math.ceil(deadline - now)));
    this.held = true;
  }

  private expire(): void {
    this.timer = undefined;
    this.held = false;
    const now = this.clock.now();
    // Entries queued in this turn before the timer fired (lazy stamping): stamped now, never early.
    if (this.unstamped !== undefined) this.stamp(now);
    let entry = this.head;
    while (entry !== undefined && entry.deadline <= now) {
      this.remove(entry);
      this.onExpire(entry);
      entry = this.head;
    }
    if (entry !== undefined && this.timer === undefined) this.arm(entry.deadline, this.clock.now());
  }
}
