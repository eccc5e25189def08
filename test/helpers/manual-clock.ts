import type { TimerHandle } from '../../src/clock.js';
import { ManualClock as ShippedManualClock } from '../../src/testing/index.js';

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
 * The clock users get from `bulwark/testing` (so the library's own tests use what it ships), plus what
 * only these tests need: Node's timer overflow on demand, counters, and a clock without `refTimer`.
 */
export class ManualClock extends ShippedManualClock {
  private readonly nodeTimers: boolean;
  /** Timers asked for longer than Node allows (with `nodeTimers`, they fired after 1 ms). */
  overflows = 0;
  /** Calls of `refTimer`. */
  refToggles = 0;

  constructor(start = 0, options: ManualClockOptions = {}) {
    super({ start });
    this.nodeTimers = options.nodeTimers === true;
    // A clock without `refTimer` (an own `undefined` hides the method).
    if (options.refTimer === false) Object.defineProperty(this, 'refTimer', { value: undefined });
  }

  override setTimer(callback: () => void, ms: number, unref = false): TimerHandle {
    if (!(ms <= NODE_TIMEOUT_MAX)) {
      this.overflows++;
      if (this.nodeTimers) ms = 1;
    }
    return super.setTimer(callback, ms, unref);
  }

  override refTimer(handle: TimerHandle, ref: boolean): void {
    this.refToggles++;
    super.refTimer(handle, ref);
  }
}

/** Lets every queued promise reaction run (several rounds, for chains of awaits). */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
  await new Promise<void>((resolve) => setImmediate(resolve));
}
