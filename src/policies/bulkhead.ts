import { RingBuffer } from '../core/ring-buffer.js';
import { Problems } from '../core/validate.js';
import { Emitter, keyed, type Listener, type Unsubscribe } from '../events.js';
import { storeOption, type Store } from '../store.js';
import { PARTITION_HERE, type PartitionRole } from './partition.js';
import { AdaptiveLimit, resolveAdaptive, type AdaptiveOptions } from './adaptive.js';
import { BulkheadLink } from './shared-bulkhead.js';

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
   * then moves between `minLimit` and `maxLimit`; `maxConcurrent` must not be given, nor a `store`
   * (the limit is one process's view of the downstream's latency). The default value is none (a fixed
   * limit).
   */
  adaptive?: boolean | AdaptiveOptions['algorithm'] | AdaptiveOptions;
  /** Name (used in `describe()`, and by a `store`: the same name is the same slots). The default value is none. */
  name?: string;
  /**
   * Shares the slots across processes (`redisStore(client)` from `bulwark/redis`): at most
   * `maxConcurrent` calls in flight in the whole fleet, and at most `maxQueue` callers waiting
   * fleet-wide, woken in FIFO order. Requires a `name`. The default value is none (in memory).
   */
  store?: Store;
  /**
   * With a `store`: how long a slot (or a place in the queue) outlives a process that stopped renewing
   * it, in ms. A running call's slot is renewed every `slotLease / 3` ms; the slots of a process that
   * died come back after at most `slotLease`. The default value is `5_000`.
   */
  slotLease?: number;
  /**
   * With a `store`, while Redis is unreachable or slow: `'local'` the same bulkhead in this process alone
   * (the fleet may then run `maxConcurrent` calls per process), `'allow'` run without a slot,
   * `'reject'` reject (`BulkheadRejectedError { reason: 'full' }`). The default value is `'local'`.
   */
  onStoreError?: 'local' | 'allow' | 'reject';
}

export const BULKHEAD_DEFAULTS = Object.freeze({
  maxConcurrent: 10,
  maxQueue: 0,
  queueTimeout: Infinity,
  slotLease: 5_000,
  onStoreError: 'local' as const,
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
  readonly slotLease: number;
  readonly onStoreError: 'local' | 'allow' | 'reject';
  /** @internal the fleet's slots, when a `store` was given. */
  readonly link: BulkheadLink | undefined;
  /**
   * Events of the adaptive limit (`concurrencyLimitChanged`) and of a store (`storeUnavailable`,
   * `storeRecovered`); shared by the partitions of a stage.
   */
  events = new Emitter();
  /** @internal the partition key, when this bulkhead is one partition of a partitioned stage. */
  partition: string | undefined = undefined;
  private inFlight = 0;
  private readonly queue: RingBuffer<BulkheadWaiter>;
  private rejected = 0;

  constructor(
    options: number | BulkheadOptions = {},
    path = 'bulkhead',
    /** @internal a partition of a partitioned stage (see options.ts). */
    role?: PartitionRole,
  ) {
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
            'store',
            'slotLease',
            'onStoreError',
            'partition',
          ]) ?? {});
    if ('partition' in o && o.partition !== undefined) problems.raw(PARTITION_HERE(path));
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
    const store = 'store' in o ? o.store : undefined;
    const sharedIn = storeOption(problems, path, store, name, 'bulkhead');
    if (sharedIn !== undefined && typeof sharedIn.forBulkhead !== 'function')
      problems.add(`${path}.store`, store, 'a Store that shares bulkheads (forBulkhead)');
    if (adaptive !== undefined && store !== undefined)
      problems.raw(
        `\`${path}.store\` cannot be used with \`${path}.adaptive\`: a fleet-wide bulkhead has a fixed \`maxConcurrent\` (an adaptive limit follows one process's view of the downstream's latency)`,
      );
    const slotLease = 'slotLease' in o ? o.slotLease : undefined;
    const onStoreError = 'onStoreError' in o ? o.onStoreError : undefined;
    this.slotLease = problems.number(`${path}.slotLease`, slotLease, BULKHEAD_DEFAULTS.slotLease, {
      min: 0,
      exclusiveMin: true,
    });
    this.onStoreError = problems.oneOf(
      `${path}.onStoreError`,
      onStoreError,
      ['local', 'allow', 'reject'],
      BULKHEAD_DEFAULTS.onStoreError,
    );
    if (store === undefined) {
      if (slotLease !== undefined)
        problems.raw(`\`${path}.slotLease\` applies to a bulkhead with a \`store\``);
      if (onStoreError !== undefined)
        problems.raw(`\`${path}.onStoreError\` applies to a bulkhead with a \`store\``);
    }
    problems.throwIfAny(path === 'bulkhead' ? 'Invalid bulkhead options' : undefined);
    this.name = typeof name === 'string' ? name : undefined;
    this.queue = new RingBuffer(this.maxQueue);
    this.adaptive = adaptive === undefined ? undefined : new AdaptiveLimit(adaptive);
    this.limit = this.adaptive?.limit ?? this.maxConcurrent;
    if (typeof role === 'object') {
      this.partition = role.key;
      this.events = role.events;
    }
    this.link =
      sharedIn === undefined
        ? undefined
        : new BulkheadLink(this, sharedIn, this.name!, this.events, this.partition);
  }

  /** Listens to this bulkhead's events (`concurrencyLimitChanged`, `storeUnavailable`, `storeRecovered`). */
  on(listener: Listener): Unsubscribe {
    return this.events.on(listener);
  }

  /**
   * @internal True when forgetting this bulkhead admits nothing it would refuse: no call in flight or
   * queued (an adaptive limit it learned is forgotten).
   */
  atRest(): boolean {
    return this.inFlight === 0 && this.queue.length === 0 && (this.link?.atRest() ?? true);
  }

  /** @internal a dropped partition lets go of its fleet link (subscription, timers). */
  dispose(): void {
    this.link?.dispose();
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
    if (this.queue.length === 0 || this.inFlight > this.limit) this.inFlight--;
    else this.handOn();
  }

  /** The freed slot goes to the first waiter (kept out of `release`, which V8 then inlines). */
  private handOn(): void {
    const waiter = this.queue.shift()!;
    this.adaptive?.started(this.inFlight);
    waiter.grant();
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
        this.events.emit(
          keyed(
            {
              type: 'concurrencyLimitChanged',
              limit: this.limit,
              previous,
              noLoadLatency: adaptive.noLoadLatency,
              probing: adaptive.isProbing,
            },
            this.partition,
          ),
        );
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

  /**
   * This process's calls in flight and waiting (with a store: the fleet slots it holds, and its waiters
   * in the fleet's queue, too); `limit` (the adaptive limit now) only when the bulkhead is adaptive.
   */
  stats(): { inFlight: number; queued: number; rejected: number; limit?: number } {
    const link = this.link;
    const stats = {
      inFlight: this.inFlight + (link?.holding ?? 0),
      queued: this.queue.length + (link?.queued ?? 0),
      rejected: this.rejected,
    };
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
      ...(this.link === undefined
        ? {}
        : { store: 'shared', slotLease: this.slotLease, onStoreError: this.onStoreError }),
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
