/** An opaque timer handle returned by {@link Clock.setTimer}. */
export type TimerHandle = unknown;

/**
 * The source of time for every policy. Monotonic milliseconds.
 *
 * Inject your own (see `ManualClock` in the docs) to test policies in virtual time.
 *
 * @example
 * const clock: Clock = { now: () => t, setTimer: (cb, ms) => ..., clearTimer: (h) => ... };
 * resilient(fn, { clock, retry: true });
 */
export interface Clock {
  /** Monotonic time in milliseconds. */
  now(): number;
  /**
   * Calls `callback` once after `ms` milliseconds. `unref` marks housekeeping timers that must not keep
   * a process alive (the shared timeout timer, which may stay armed after the last call).
   */
  setTimer(callback: () => void, ms: number, unref?: boolean): TimerHandle;
  /** Cancels a timer set by {@link Clock.setTimer}; a no-op for a timer that already fired. */
  clearTimer(handle: TimerHandle): void;
}

/**
 * The default clock: `performance.now()` and `setTimeout`. A policy never keeps an idle process alive:
 * the one timer that can outlive a call (the shared timeout timer) is `unref()`ed. Timers a caller is
 * waiting on (a backoff sleep, a queue wait) are not, just like `fetch`'s own: otherwise a script's
 * `await getUser()` would end the process in the middle of a backoff with the promise unsettled.
 */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimer(callback: () => void, ms: number, unref?: boolean): TimerHandle {
    const handle = setTimeout(callback, ms);
    if (unref === true) handle.unref();
    return handle;
  },
  clearTimer(handle: TimerHandle): void {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
});
