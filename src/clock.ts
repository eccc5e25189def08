/** An opaque timer handle returned by {@link Clock.setTimer}. */
export type TimerHandle = unknown;

/**
 * The longest delay a host timer takes: Node, browsers, Deno and Workers store it in a signed 32-bit
 * integer (about 24.8 days) and fire a longer one after 1 ms. The library never asks a clock for more: a
 * longer wait is chained from timers of at most this length.
 */
export const MAX_TIMER_DELAY = 2_147_483_647;

/**
 * The source of time for every policy. Monotonic milliseconds.
 *
 * Inject your own, or `manualClock()` from `bulwark/testing`, to test policies in virtual time.
 *
 * @example
 * const clock: Clock = { now: () => t, setTimer: (cb, ms) => ..., clearTimer: (h) => ... };
 * resilient(fn, { clock, retry: true });
 */
export interface Clock {
  /** Monotonic time in milliseconds. */
  now(): number;
  /**
   * Calls `callback` once after `ms` milliseconds. The library never passes more than
   * {@link MAX_TIMER_DELAY} (it chains timers for longer waits) nor `Infinity` (it sets no timer), so a
   * clock built on `setTimeout` is safe. `unref` marks a timer no caller waits on (a cache's expiry
   * timer, say), which must not keep a process alive.
   */
  setTimer(callback: () => void, ms: number, unref?: boolean): TimerHandle;
  /** Cancels a timer set by {@link Clock.setTimer}; a no-op for a timer that already fired. */
  clearTimer(handle: TimerHandle): void;
  /**
   * Optional: marks whether a pending timer keeps the process alive (Node's `ref()` / `unref()`). The
   * shared timeout timer uses it: it stays armed between calls, kept alive only while a call waits on
   * it. Without it that timer is cleared whenever no call waits, and armed again by the next one.
   */
  refTimer?(handle: TimerHandle, ref: boolean): void;
}

/** A wait longer than the host allows (or `Infinity`): a chain of timers of at most MAX_TIMER_DELAY. */
class LongTimer {
  handle: TimerHandle = undefined;
  private readonly step = (): void => this.run();

  constructor(
    private readonly clock: Clock,
    private readonly callback: () => void,
    private readonly due: number,
    public unref: boolean,
  ) {
    if (due !== Infinity) this.run();
  }

  private run(): void {
    const left = this.due - this.clock.now();
    if (left <= 0) {
      this.handle = undefined;
      this.callback();
      return;
    }
    this.handle = this.clock.setTimer(this.step, Math.min(left, MAX_TIMER_DELAY), this.unref);
  }

  cancel(): void {
    if (this.handle === undefined) return;
    this.clock.clearTimer(this.handle);
    this.handle = undefined;
  }
}

/**
 * @internal Sets a timer of any duration on `clock`: up to {@link MAX_TIMER_DELAY} it is the clock's own
 * timer, longer ones are chained, and `Infinity` never fires. Every timer of the library goes through it.
 */
export function setTimer(
  clock: Clock,
  callback: () => void,
  ms: number,
  unref?: boolean,
): TimerHandle {
  // Negated, so that NaN goes to the clock as before rather than into a chain.
  if (!(ms > MAX_TIMER_DELAY)) return clock.setTimer(callback, ms, unref);
  return new LongTimer(clock, callback, clock.now() + ms, unref === true);
}

/** @internal Cancels a timer set by {@link setTimer}. */
export function clearTimer(clock: Clock, handle: TimerHandle): void {
  if (handle instanceof LongTimer) handle.cancel();
  else clock.clearTimer(handle);
}

/**
 * @internal Makes a pending timer keep the process alive (`ref`) or not. False when the clock cannot
 * (it has no `refTimer`): the caller then clears a timer nobody waits on instead.
 */
export function refTimer(clock: Clock, handle: TimerHandle, ref: boolean): boolean {
  if (typeof clock.refTimer !== 'function') return false;
  if (handle instanceof LongTimer) {
    handle.unref = !ref;
    if (handle.handle !== undefined) clock.refTimer(handle.handle, ref);
  } else {
    clock.refTimer(handle, ref);
  }
  return true;
}

interface DenoTimers {
  refTimer(id: number): void;
  unrefTimer(id: number): void;
}

/**
 * Keeps a host timer alive or not, where the runtime has the notion: Node and Bun timers have
 * `ref()`/`unref()`, Deno has `Deno.refTimer(id)`; a browser or a Worker has no process to keep alive.
 */
function refHostTimer(handle: TimerHandle, ref: boolean): void {
  if (typeof handle === 'object' && handle !== null) {
    const timer = handle as { ref?: unknown; unref?: unknown };
    const toggle = ref ? timer.ref : timer.unref;
    if (typeof toggle === 'function') (toggle as () => void).call(handle);
  } else if (typeof handle === 'number') {
    const deno = (globalThis as { Deno?: Partial<DenoTimers> }).Deno;
    const toggle = ref ? deno?.refTimer : deno?.unrefTimer;
    if (typeof toggle === 'function') toggle.call(deno, handle);
  }
}

let perf: { now(): number } | undefined;
let perfTimers: unknown;

/**
 * `performance.now()`, with the `performance` object read once. On Node `globalThis.performance` is a
 * lazy getter: about 200 instructions per read, more than `now()` itself, and a tenth of a full
 * pipeline's time with a rate limiter. Fake timers (Jest, Vitest, Sinon) replace `performance` together
 * with `setTimeout`: whenever `setTimeout` is not the one `performance` was read with, `performance` is
 * read again, so a clock faked after the first call is followed (test/clock.test.ts).
 */
function hostNow(): number {
  if (globalThis.setTimeout !== perfTimers || perf === undefined) {
    perfTimers = globalThis.setTimeout;
    perf = globalThis.performance;
  }
  return perf.now();
}

/** The host's timers as they are: at most MAX_TIMER_DELAY, which {@link setTimer} guarantees. */
const hostClock: Clock = {
  now: hostNow,
  setTimer(callback: () => void, ms: number, unref?: boolean): TimerHandle {
    const handle = setTimeout(callback, ms);
    if (unref === true) refHostTimer(handle, false);
    return handle;
  },
  clearTimer(handle: TimerHandle): void {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
  refTimer: refHostTimer,
};

/**
 * The default clock: `performance.now()` and `setTimeout`, on every runtime (Node, Bun, Deno, Workers,
 * browsers). A timer that a call waits on (an attempt timeout, a backoff sleep, a queue wait) keeps the
 * process alive, just as the call's own I/O would: a script's `await getUser()` runs to its end, timeout
 * and fallback included. A timer no call waits on (a cache's expiry timer, the shared timeout timer once
 * its last call settled) does not: a policy never keeps an idle process alive. Any duration works,
 * however long; `Infinity` never fires.
 */
export const systemClock: Clock = Object.freeze({
  now: hostNow,
  setTimer: (callback: () => void, ms: number, unref?: boolean): TimerHandle =>
    setTimer(hostClock, callback, ms, unref),
  clearTimer: (handle: TimerHandle): void => clearTimer(hostClock, handle),
  refTimer: (handle: TimerHandle, ref: boolean): void => void refTimer(hostClock, handle, ref),
});

const freeRunning = new WeakSet<Clock>();

/**
 * @internal Marks a clock whose time moves on its own, as the system clock's does: stages may then stamp
 * the times of one turn of the event loop with one read at its end (see DeadlineQueue). Tests mark a
 * manual clock to see, in virtual time, what the system clock gets.
 */
export function markFreeRunning(clock: Clock): void {
  freeRunning.add(clock);
}

/** @internal see {@link markFreeRunning}. */
export function isFreeRunning(clock: Clock): boolean {
  return clock === systemClock || freeRunning.has(clock);
}
