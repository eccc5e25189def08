import { RingBuffer } from '../core/ring-buffer.js';
import { Problems } from '../core/validate.js';

/** Options of the bulkhead; a number is `maxConcurrent`. */
export interface BulkheadOptions {
  /** Calls of `fn` running at once. The default value is `10`. */
  maxConcurrent?: number;
  /** Calls waiting (FIFO) for a slot; beyond it calls are rejected. The default value is `0`. */
  maxQueue?: number;
  /** Longest wait in the queue, in ms. The default value is none (wait until a slot frees or the call is aborted). */
  queueTimeout?: number;
  /** Name (used in `describe()`). The default value is none. */
  name?: string;
}

export const BULKHEAD_DEFAULTS = Object.freeze({
  maxConcurrent: 10,
  maxQueue: 0,
  queueTimeout: Infinity,
});

/** @internal a caller parked in the queue. */
export interface BulkheadWaiter {
  grant(): void;
}

/**
 * A bulkhead: bounds the calls of `fn` in flight. A slot is held while `fn` runs and released when `fn`
 * really settles, even if its caller already gave up (a timeout): it bounds work in flight, not callers.
 *
 * @example
 * const pool = bulkhead({ maxConcurrent: 4, maxQueue: 100, queueTimeout: 1_000 });
 */
export class Bulkhead {
  readonly name: string | undefined;
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  readonly queueTimeout: number;
  private inFlight = 0;
  private readonly queue: RingBuffer<BulkheadWaiter>;
  private rejected = 0;

  constructor(options: number | BulkheadOptions = {}, path = 'bulkhead') {
    const problems = new Problems();
    const o =
      typeof options === 'number'
        ? { maxConcurrent: options }
        : (problems.object(path, options, ['maxConcurrent', 'maxQueue', 'queueTimeout', 'name']) ??
          {});
    const concurrentPath = typeof options === 'number' ? path : `${path}.maxConcurrent`;
    this.maxConcurrent = problems.number(
      concurrentPath,
      o.maxConcurrent,
      BULKHEAD_DEFAULTS.maxConcurrent,
      {
        min: 1,
        integer: true,
      },
    );
    this.maxQueue = problems.number(`${path}.maxQueue`, o.maxQueue, BULKHEAD_DEFAULTS.maxQueue, {
      min: 0,
      integer: true,
      infinity: true,
    });
    this.queueTimeout = problems.number(
      `${path}.queueTimeout`,
      o.queueTimeout,
      BULKHEAD_DEFAULTS.queueTimeout,
      {
        min: 0,
        exclusiveMin: true,
        infinity: true,
      },
    );
    const name = 'name' in o ? o.name : undefined;
    if (name !== undefined && typeof name !== 'string')
      problems.add(`${path}.name`, name, 'a string');
    problems.throwIfAny(path === 'bulkhead' ? 'Invalid bulkhead options' : undefined);
    this.name = typeof name === 'string' ? name : undefined;
    this.queue = new RingBuffer(this.maxQueue);
  }

  /** Takes a slot if one is free; never waits. */
  tryAcquire(): boolean {
    if (this.inFlight >= this.maxConcurrent) return false;
    this.inFlight++;
    return true;
  }

  /** Frees a slot, handing it straight to the oldest waiter if there is one. */
  release(): void {
    const waiter = this.queue.shift();
    if (waiter === undefined) this.inFlight--;
    else waiter.grant();
  }

  /** @internal parks a waiter; false when the queue is full (the caller is rejected). */
  enqueue(waiter: BulkheadWaiter): boolean {
    if (this.queue.push(waiter)) return true;
    this.rejected++;
    return false;
  }

  /** @internal removes an aborted or timed-out waiter at once. */
  dequeue(waiter: BulkheadWaiter): boolean {
    return this.queue.remove(waiter);
  }

  /** @internal */
  countRejection(): void {
    this.rejected++;
  }

  stats(): { inFlight: number; queued: number; rejected: number } {
    return { inFlight: this.inFlight, queued: this.queue.length, rejected: this.rejected };
  }

  describe(): Record<string, unknown> {
    return {
      stage: 'bulkhead',
      name: this.name ?? 'none',
      maxConcurrent: this.maxConcurrent,
      maxQueue: this.maxQueue,
      queueTimeout: this.queueTimeout === Infinity ? 'none' : this.queueTimeout,
    };
  }
}

/**
 * Makes a standalone {@link Bulkhead} to share between functions.
 *
 * @example
 * const pool = bulkhead(4); // at most 4 calls in flight, no queue
 */
export function bulkhead(options: number | BulkheadOptions = {}): Bulkhead {
  return new Bulkhead(options);
}
