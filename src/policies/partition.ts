import { systemClock, type Clock } from '../clock.js';
import { callWith, type AnyFunction } from '../core/call.js';
import { describeValue, Problems } from '../core/validate.js';
import type { Emitter } from '../events.js';

/**
 * Options of `partition`, on a circuit breaker, a rate limiter or a bulkhead given as options to
 * `resilient()`: one policy, separate state per key (a breaker per downstream host, a limit per tenant).
 */
export interface PartitionOptions<A extends readonly unknown[] = unknown[]> {
  /**
   * The partition key of a call, called with the call's `this` and arguments. It must return a string
   * (anything else rejects the call with a `TypeError`) and be pure: a call that waits or retries may
   * run it once more. Required.
   */
  by(...args: A extends readonly unknown[] ? A : never): string;
  /**
   * Partitions kept at most; the least recently used one is evicted first. A partition that is not at
   * rest (an open circuit, a limiter with tokens spent, a bulkhead with calls in flight or queued) is
   * kept beyond this until it is. The default value is `1_000`.
   */
  maxPartitions?: number;
  /**
   * A partition at rest that no call used for this many ms is dropped (one that is not at rest is
   * kept until it is). The default value is none (only `maxPartitions` evicts).
   */
  idleAfter?: number;
}

/** @internal the problem of a `partition` given to a standalone policy. */
export const PARTITION_HERE = (path: string): string =>
  `\`${path}.partition\` applies to the options given to resilient() (a policy shares its partitions between the functions it wraps); a standalone ${path}() is one policy`;

export const PARTITION_DEFAULTS = Object.freeze({ maxPartitions: 1_000, idleAfter: Infinity });

/** @internal what a partitioned policy answers: whether forgetting it changes nothing a call would see. */
export interface Partitionable {
  atRest(now: number): boolean;
  /** Lets go of what a dropped partition holds in a store (its subscription, its timers). */
  dispose?(): void;
}

/**
 * @internal How a policy of a partitioned stage is made: as one partition (its key, and the stage's
 * emitter that every partition shares), or as the stage's template, which only describes the stage and
 * never talks to a store.
 */
export type PartitionRole = { readonly key: string; readonly events: Emitter } | 'template';

/** @internal resolved `partition` options. */
export interface ResolvedPartition {
  readonly by: AnyFunction;
  readonly maxPartitions: number;
  readonly idleAfter: number;
}

/** @internal validates `partition` at `path`; undefined when absent (or `false`). */
export function resolvePartition(
  value: unknown,
  path: string,
  problems: Problems,
): ResolvedPartition | undefined {
  if (value === undefined || value === false) return undefined;
  const o = problems.object(path, value, ['by', 'maxPartitions', 'idleAfter']);
  if (o === undefined) return undefined;
  if (typeof o.by !== 'function')
    problems.add(
      `${path}.by`,
      o.by,
      'a function (...args) => string that returns the key of a call',
    );
  const maxPartitions = problems.number(
    `${path}.maxPartitions`,
    o.maxPartitions,
    PARTITION_DEFAULTS.maxPartitions,
    { min: 1, integer: true },
  );
  const idleAfter = problems.number(
    `${path}.idleAfter`,
    o.idleAfter,
    PARTITION_DEFAULTS.idleAfter,
    {
      min: 0,
      exclusiveMin: true,
      infinity: true,
    },
  );
  if (typeof o.by !== 'function') return undefined;
  return { by: o.by, maxPartitions, idleAfter };
}

/** @internal one partition: its key, its policy, its place in the LRU list. */
class Partition<T> {
  prev: Partition<T> | undefined = undefined;
  next: Partition<T> | undefined = undefined;
  /** True while kept outside the LRU list (evicted or idle, but not at rest). */
  kept = false;
  constructor(
    readonly key: string,
    readonly policy: T,
    public usedAt: number,
  ) {}
}

/** The error of the last {@link Partitions.route} that returned undefined. */
let routeError: TypeError | undefined;

/** @internal takes the error {@link Partitions.route} left (it returned undefined). */
export function takeRouteError(): TypeError {
  const error = routeError!;
  routeError = undefined;
  return error;
}

/**
 * @internal The partitions of one policy: a Map from key to policy and an intrusive LRU list (most
 * recently used first), so that a call on an existing partition costs the key function, one Map
 * lookup and a few pointer writes, and allocates nothing. Partitions that must be evicted (or are
 * idle) but are not at rest move to `kept`, outside the LRU count, and are dropped once at rest (checked
 * whenever a partition is made, and when a call uses them they rejoin the LRU list).
 */
export class Partitions<T extends Partitionable> {
  readonly by: AnyFunction;
  readonly maxPartitions: number;
  readonly idleAfter: number;
  /** Partitions dropped so far (evicted or idle). */
  evicted = 0;
  clock: Clock | undefined = undefined;
  private readonly map = new Map<string, Partition<T>>();
  private head: Partition<T> | undefined = undefined;
  private tail: Partition<T> | undefined = undefined;
  private readonly kept = new Set<Partition<T>>();

  constructor(
    resolved: ResolvedPartition,
    /** The option path, for the key function's errors. */
    readonly path: string,
    private readonly make: (key: string) => T,
  ) {
    this.by = resolved.by;
    this.maxPartitions = resolved.maxPartitions;
    this.idleAfter = resolved.idleAfter;
  }

  /** @internal */
  adoptClock(clock: Clock): void {
    this.clock ??= clock;
  }

  /** Live partitions (kept ones included). */
  get size(): number {
    return this.map.size;
  }

  /** Partitions kept beyond `maxPartitions` or past `idleAfter` because they are not at rest. */
  get keptCount(): number {
    return this.kept.size;
  }

  /**
   * The key of a call, or undefined when the key function threw or returned a non-string (the error is
   * left for {@link takeRouteError}).
   */
  keyOf(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): string | undefined {
    let key: unknown;
    try {
      key = callWith(this.by, thisArg, argc, a0, a1, a2, a3, rest);
    } catch (error) {
      routeError =
        error instanceof TypeError
          ? error
          : new TypeError(`\`${this.path}.partition.by\` threw: ${String(error)}`, {
              cause: error,
            });
      return undefined;
    }
    if (typeof key === 'string') return key;
    routeError = this.keyError(key);
    return undefined;
  }

  private keyError(key: unknown): TypeError {
    return new TypeError(
      `Expected \`${this.path}.partition.by\` to return a string (the partition key), got ${describeValue(key)}`,
    );
  }

  /**
   * The policy of partition `key`, made if needed. `now` is the call's time (read by the pipeline when
   * `idleAfter` is set; otherwise unused).
   */
  get(key: string, now: number): T {
    const p = this.map.get(key);
    if (p === undefined) return this.create(key);
    if (p !== this.head) {
      if (p.kept) return this.rejoin(p);
      this.unlink(p);
      this.linkFirst(p);
    }
    if (this.idleAfter !== Infinity) {
      p.usedAt = now;
      this.dropIdle(now);
    }
    return p.policy;
  }

  /**
   * A kept partition is used again: it rejoins the LRU order as the most recent, and makes room there as
   * a new partition does (the least recently used at rest are evicted).
   */
  private rejoin(p: Partition<T>): T {
    const now = (this.clock ?? systemClock).now();
    p.kept = false;
    this.kept.delete(p);
    this.linkFirst(p);
    p.usedAt = now;
    while (this.map.size - this.kept.size > this.maxPartitions && this.tail !== p)
      this.evict(this.tail!, now);
    return p.policy;
  }

  /** The policy of `key` if it is live; never makes one. */
  peek(key: string): T | undefined {
    return this.map.get(key)?.policy;
  }

  /** Every live partition, most recently used first, then the kept ones. */
  *entries(): IterableIterator<[string, T]> {
    for (let p = this.head; p !== undefined; p = p.next) yield [p.key, p.policy];
    for (const p of this.kept) yield [p.key, p.policy];
  }

  private create(key: string): T {
    const now = (this.clock ?? systemClock).now();
    // Kept partitions that came back to rest go first.
    for (const p of this.kept) {
      if (p.policy.atRest(now)) this.drop(p);
    }
    const policy = this.make(key);
    const p = new Partition(key, policy, now);
    this.map.set(key, p);
    this.linkFirst(p);
    this.dropIdle(now);
    // Make room: least recently used first; one that is not at rest is kept until it is.
    while (this.map.size > this.maxPartitions && this.tail !== p) this.evict(this.tail!, now);
    return policy;
  }

  /** Drops (or keeps, when not at rest) the least recently used partitions idle for `idleAfter`. */
  private dropIdle(now: number): void {
    const idleAfter = this.idleAfter;
    if (idleAfter === Infinity) return;
    let tail = this.tail;
    while (tail !== undefined && tail !== this.head && now - tail.usedAt >= idleAfter) {
      this.evict(tail, now);
      tail = this.tail;
    }
  }

  private evict(p: Partition<T>, now: number): void {
    this.unlink(p);
    if (p.policy.atRest(now)) {
      this.map.delete(p.key);
      this.evicted++;
      p.policy.dispose?.();
      return;
    }
    p.kept = true;
    this.kept.add(p);
  }

  private drop(p: Partition<T>): void {
    this.kept.delete(p);
    this.map.delete(p.key);
    this.evicted++;
    p.policy.dispose?.();
  }

  private linkFirst(p: Partition<T>): void {
    p.prev = undefined;
    p.next = this.head;
    if (this.head !== undefined) this.head.prev = p;
    else this.tail = p;
    this.head = p;
  }

  private unlink(p: Partition<T>): void {
    if (p.prev !== undefined) p.prev.next = p.next;
    else this.head = p.next;
    if (p.next !== undefined) p.next.prev = p.prev;
    else this.tail = p.prev;
    p.prev = p.next = undefined;
  }

  /** What `describe()` shows of the partitioning. */
  describe(): Record<string, unknown> {
    return {
      by: describeFunction(this.by),
      maxPartitions: this.maxPartitions,
      idleAfter: this.idleAfter === Infinity ? 'none' : this.idleAfter,
    };
  }

  /** What `stats()` shows: counts, and each live partition's stats by key. */
  stats<S>(of: (policy: T) => S): PartitionStats<S> {
    const byKey: Record<string, S> = {};
    for (const [key, policy] of this.entries()) {
      Object.defineProperty(byKey, key, {
        value: of(policy),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return { count: this.map.size, kept: this.kept.size, evicted: this.evicted, byKey };
  }
}

/** The stats of a partitioned stage. */
export interface PartitionStats<S> {
  /** Live partitions (kept ones included). */
  readonly count: number;
  /** Partitions kept beyond `maxPartitions` or `idleAfter` because they are not at rest yet. */
  readonly kept: number;
  /** Partitions dropped so far (evicted or idle). */
  readonly evicted: number;
  /** The stats of each live partition, by key. */
  readonly byKey: Readonly<Record<string, S>>;
}

function describeFunction(fn: AnyFunction): string {
  return `[function ${fn.name || 'anonymous'}]`;
}
