import { RingBuffer } from '../core/ring-buffer.js';
import { Problems } from '../core/validate.js';
import { Emitter, type Listener, type Unsubscribe } from '../events.js';
import { AdaptiveLimit, resolveAdaptive, type AdaptiveOptions } from './adaptive.js';

/** Options of the bulkhead; a number is `maxConcurrent`. */
export interface BulkheadOptions {
  /** Calls of `fn` running at once. The default value is `10`. */
  maxConcurrent?: number;
  /** Calls waiting (FIFO) for a slot; beyond it calls are rejected. The default value is `0`. */
  maxQueue?: number;
  /** Longest wait in the queue, in ms. The default value is none (wait until a slot frees or the call is aborted). */
  queueTimeout?: number;
  /**
   * Let the limit follow the downstream's latency instead of a fixed `maxConcurrent`: `true` or an
   * algorithm name for the defaults, or options (see "Adaptive concurrency" in the README). The limit
   * then moves between `minLimit` and `maxLimit`; `maxConcurrent` must not be given.
   * The default value is none (a fixed limit).
   */
  adaptive?: boolean | AdaptiveOptions['algorithm'] | AdaptiveOptions;
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
  /** The adaptive limit, when `adaptive` is on. */
  readonly adaptive: AdaptiveLimit | undefined;
  /** Calls allowed in flight now: `maxConcurrent`, or the adaptive limit. */
  limit: number;
  /** Events of the adaptive limit (`concurrencyLimitChanged`). */
  readonly events = new Emitter();
  private inFlight = 0;
  private readonly queue: RingBuffer<BulkheadWaiter>;
  private rejected = 0;

  constructor(options: number | BulkheadOptions = {}, path = 'bulkhead') {
    const problems = new Problems();
    const o =
      typeof options === 'number'
        ? { maxConcurrent: options }
        : (problems.object(path, options, [
            'maxConcurrent',
            'maxQueue',
            'queueTimeout',
            'adaptive',
            'name',
          ]) ?? {});
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
    const adaptive =
      'adaptive' in o ? resolveAdaptive(o.adaptive, `${path}.adaptive`, problems) : undefined;
    if (adaptive !== undefined && o.maxConcurrent !== undefined)
      problems.add(
        concurrentPath,
        o.maxConcurrent,
        `no \`maxConcurrent\` with \`${path}.adaptive\` (the limit moves between \`adaptive.minLimit\` and \`adaptive.maxLimit\`)`,
      );
    const name = 'name' in o ? o.name : undefined;
    if (name !== undefined && typeof name !== 'string')
      problems.add(`${path}.name`, name, 'a string');
    problems.throwIfAny(path === 'bulkhead' ? 'Invalid bulkhead options' : undefined);
    this.name = typeof name === 'string' ? name : undefined;
    this.queue = new RingBuffer(this.maxQueue);
    this.adaptive = adaptive === undefined ? undefined : new AdaptiveLimit(adaptive);
    this.limit = this.adaptive?.limit ?? this.maxConcurrent;
  }

  /** Listens to this bulkhead's events (`concurrencyLimitChanged`). */
  on(listener: Listener): Unsubscribe {
    return this.events.on(listener);
  }

  /** Takes a slot if one is free; never waits. */
  tryAcquire(): boolean {
    if (this.inFlight >= this.limit) return false;
    this.inFlight++;
    this.adaptive?.started(this.inFlight);
    return true;
  }

  /** Frees a slot, handing it straight to the oldest waiter if there is one. */
  release(): void {
    // An adaptive limit may have shrunk below the calls in flight: the slot is not handed on.
    const waiter = this.inFlight > this.limit ? undefined : this.queue.shift();
    if (waiter === undefined) this.inFlight--;
    else {
      this.adaptive?.started(this.inFlight);
      waiter.grant();
    }
  }

  /**
   * @internal frees the slot of a call that took it at `start` and finished at
   * `now` (`timedOut`: its attempt timed out), and moves the limit.
   */
  complete(start: number, now: number, timedOut: boolean): void {
    const adaptive = this.adaptive;
    if (adaptive === undefined) return this.release();
    const previous = this.limit;
    if (adaptive.sample(start, now, timedOut)) {
      this.limit = adaptive.limit;
      if (this.events.listening)
        this.events.emit({
          type: 'concurrencyLimitChanged',
          limit: this.limit,
          previous,
          noLoadLatency: adaptive.noLoadLatency,
          probing: adaptive.isProbing,
        });
    }
    this.release();
    // A grown limit admits waiters at once.
    while (this.inFlight < this.limit && this.queue.length > 0) {
      this.inFlight++;
      this.adaptive?.started(this.inFlight);
      this.queue.shift()!.grant();
    }
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

  /** `limit` (the adaptive limit now) only when the bulkhead is adaptive. */
  stats(): { inFlight: number; queued: number; rejected: number; limit?: number } {
    const stats = { inFlight: this.inFlight, queued: this.queue.length, rejected: this.rejected };
    return this.adaptive === undefined ? stats : { ...stats, limit: this.limit };
  }

  describe(): Record<string, unknown> {
    return {
      stage: 'bulkhead',
      name: this.name ?? 'none',
      maxConcurrent: this.adaptive === undefined ? this.maxConcurrent : 'adaptive',
      ...(this.adaptive === undefined ? {} : { adaptive: { ...this.adaptive.options } }),
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
