import type { Problems } from './core/validate.js';
import { keyed, type Emitter } from './events.js';
import type { StorePolicy } from './types.js';

/**
 * Shared state for the stateful policies, so that many processes act as one: a circuit breaker that
 * opens for the whole fleet, a rate limit held across processes, a cache every process reads.
 *
 * The core only talks to these small interfaces and never imports a client library; `bulwark/redis`
 * implements them on Redis (`redisStore(client)`). Every method must settle within its own short
 * timeout: a store that hangs would hold the calls that wait on it.
 */
export interface Store {
  /**
   * The shared state of the rate limiter called `name`; with `partition`, of that partition alone (see
   * {@link Store.partitioned}).
   */
  forRateLimiter(name: string, partition?: string): SharedRateLimiter;
  /** The shared state of the circuit breaker called `name` (of its `partition`, when given). */
  forCircuit(name: string, partition?: string): SharedCircuit;
  /** The shared entries of the cache called `name`. */
  forCache(name: string): SharedCache;
  /**
   * The fleet-wide slots of the bulkhead called `name` (of its `partition`, when given); a store
   * without it cannot back a bulkhead.
   */
  forBulkhead?(name: string, partition?: string): SharedBulkhead;
  /**
   * True when the store keeps each `partition` of a policy apart (its own keys, its own messages): a
   * partitioned breaker, limiter or bulkhead needs it, so that a store that ignores the argument never
   * merges every partition into one state. `redisStore` does.
   */
  readonly partitioned?: boolean;
  /** After a failed command, how long the policies use their local behaviour before they try again, in ms. */
  readonly recheckAfter?: number;
}

/** What a shared rate limiter is asked for: GCRA parameters, and how many tokens to take at once. */
export interface RateLimitRequest {
  readonly limit: number;
  readonly interval: number;
  readonly burst: number;
  /** The longest wait the caller accepts, in ms. */
  readonly maxWait: number;
  /** Tokens wanted (a lease); fewer may be granted, at least one. */
  readonly count: number;
  /** Tokens of an earlier reservation that will never be spent: given back before this one. */
  readonly giveBack?: number;
}

/**
 * A reservation: `granted` tokens usable after `wait` ms, or none before `retryAfter` ms. `processes`
 * (when the store counts them): how many processes use this limiter now; while the store is out of
 * reach, each applies `limit / processes`.
 */
export type RateLimitReservation =
  | { readonly granted: number; readonly wait: number; readonly processes?: number }
  | { readonly granted: 0; readonly retryAfter: number; readonly processes?: number };

/** A rate limit held by a store (GCRA in one atomic step). */
export interface SharedRateLimiter {
  reserve(request: RateLimitRequest): Promise<RateLimitReservation>;
}

/** The circuit's state as the fleet sees it. */
export interface FleetCircuitState {
  /** `halfOpen`: the fleet's trial slot was just handed back unused; waiting processes may ask again. */
  readonly state: 'closed' | 'open' | 'isolated' | 'halfOpen';
  /** ms until the fleet's open circuit turns half-open (0 unless open). */
  readonly retryAfter: number;
}

/** Outcome counts: added by one process, or summed over the fleet's window. */
export interface OutcomeCounts {
  readonly calls: number;
  readonly failures: number;
  readonly slow: number;
}

/** The fleet's window totals after a flush, and the circuit's fleet state. */
export interface FleetCounts extends OutcomeCounts {
  readonly circuit: FleetCircuitState;
}

/** A circuit breaker's fleet-wide state: a time-bucketed window, an open key, a trial slot, messages. */
export interface SharedCircuit {
  /** Adds a batch of outcomes to the window (`duration` ms in `buckets` buckets); returns the totals. */
  record(
    counts: OutcomeCounts,
    window: { readonly duration: number; readonly buckets: number },
  ): Promise<FleetCounts>;
  /**
   * Opens the fleet's circuit for `ms` and tells every process. Without `force` it leaves a fleet that
   * is open, isolated or running its trial as it is, and says so: `opened` is false and `circuit` is
   * the fleet's state to follow (`open` with `retryAfter: 0` while another process runs the trial).
   */
  open(ms: number, force: boolean): Promise<{ opened: boolean; circuit: FleetCircuitState }>;
  /** Closes the fleet's circuit with a fresh window and tells every process. */
  close(): Promise<void>;
  /** Holds the fleet's circuit open until {@link SharedCircuit.close}, and tells every process. */
  isolate(): Promise<void>;
  /**
   * Takes the fleet's one half-open trial slot for the caller holding `token`, for at most `limit` ms
   * (the trial call's own time limit; `Infinity` when it has none, the store then caps it): 0 when
   * granted, otherwise the ms before asking again makes sense (the circuit is still open, or another
   * process holds the slot; `Infinity`: isolated), or a negative number when the fleet's circuit is
   * closed (a trial's success closed it: nothing to try). A grant that arrives after the caller gave up on
   * the request is handed back by the store at once ({@link SharedCircuit.releaseTrial}).
   */
  tryTrial(token: string, limit: number): Promise<number>;
  /** Hands back the trial slot if `token` still holds it, and tells the waiting processes. */
  releaseTrial(token: string): Promise<void>;
  /** The fleet's state now. */
  read(): Promise<FleetCircuitState>;
  /**
   * Listens to the fleet's transitions. `onResync` runs when messages may have been missed (the
   * subscription came back after a disconnection). Returns the unsubscribe function.
   */
  subscribe(onMessage: (state: FleetCircuitState) => void, onResync: () => void): () => void;
}

/** What a shared bulkhead is asked for. */
export interface BulkheadRequest {
  readonly maxConcurrent: number;
  /** Callers that may wait fleet-wide (`Infinity`: no bound). */
  readonly maxQueue: number;
  /** Whether the caller may queue at all (false: a slot now, or nothing). */
  readonly queue: boolean;
  /** How long a slot or a place in the queue lasts unless renewed, in ms. */
  readonly lease: number;
}

/**
 * A bulkhead's fleet-wide slots: a semaphore with a FIFO queue, each holder and waiter named by a
 * token and held on a lease (a process that dies stops renewing: its slots come back).
 */
export interface SharedBulkhead {
  /**
   * Takes a slot for `token`, or queues it (asked again, it keeps its place and renews it):
   * 1 granted, 0 queued, -1 rejected (no slot, and no room or no wish to queue).
   */
  acquire(token: string, request: BulkheadRequest): Promise<number>;
  /** Renews the leases of these tokens' slots and places in the queue. */
  renew(tokens: readonly string[], lease: number): Promise<void>;
  /** Gives back `token`'s slot or place in the queue; waiters hear of a freed slot. */
  release(token: string): Promise<void>;
  /** Listens for freed slots. Returns the unsubscribe function. */
  subscribe(onFree: () => void): () => void;
}

/** A stored cache value: its encoded text and how long the store keeps it, in ms. */
export interface SharedCacheEntry {
  readonly data: string;
  /** ms before the store drops it (`Infinity` when it never expires). */
  readonly remaining: number;
}

/** A key's computation lock: taken by a process that computes the key for the whole fleet. */
export interface SharedCacheLock {
  /** How long the lock lasts, in ms, if its holder never releases it (it died, or hangs). */
  readonly ms: number;
  /** The holder's token: only the holder releases the lock. */
  readonly token: string;
  /** An entry with at most this many ms left is stale: the lock is taken to refresh it. */
  readonly staleFor: number;
}

/** What {@link SharedCache.get} read. */
export interface SharedCacheRead {
  /** The stored value, if there is one that has not expired. */
  readonly entry: SharedCacheEntry | undefined;
  /**
   * With a lock asked for and no fresh entry: 0 when this caller now holds the key's lock, otherwise
   * the ms another holder's lock has left. `-1` when no lock was asked for.
   */
  readonly lock: number;
}

/**
 * A cache's shared entries. Keys and values arrive encoded as strings. A store keeps at most
 * `maxEntries` values per cache (the soonest to expire go first), whatever keys callers choose.
 */
export interface SharedCache {
  /** Reads an entry; with `lock` and no fresh entry, also tries to take the key's lock. */
  get(key: string, lock?: SharedCacheLock): Promise<SharedCacheRead>;
  /**
   * Stores `data`, dropped after `keepFor` ms (`Infinity`: never), keeping at most `maxEntries`
   * values; releases the key's lock if `token` holds it.
   */
  set(
    key: string,
    data: string,
    keepFor: number,
    maxEntries: number,
    token?: string,
  ): Promise<void>;
  /** Releases the key's lock if `token` holds it (its computation failed). */
  release(key: string, token: string): Promise<void>;
  delete(key: string): Promise<void>;
  clear(): Promise<void>;
}

/** Encodes cached values for a shared store. */
export interface Serializer {
  encode(value: unknown): string;
  decode(data: string): unknown;
}

export type { StorePolicy } from './types.js';

/** @internal true when `value` looks like a {@link Store}. */
export function isStore(value: unknown): value is Store {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Partial<Store>;
  return (
    typeof s.forRateLimiter === 'function' &&
    typeof s.forCircuit === 'function' &&
    typeof s.forCache === 'function'
  );
}

/** The default of {@link Store.recheckAfter}. */
export const RECHECK_AFTER = 1_000;

/**
 * @internal A policy's view of its store's health: after a failure the policy uses its local behaviour
 * and lets one command through every `recheckAfter` ms to see whether the store is back. Each change
 * is one event (`storeUnavailable`, `storeRecovered`), not one per command.
 */
export class StoreHealth {
  available = true;
  private retryAt = 0;
  private readonly recheckAfter: number;

  constructor(
    store: Store,
    private readonly events: Emitter,
    private readonly policy: StorePolicy,
    private readonly name: string,
    /** The policy's clock (ms): when to probe an unavailable store again is a policy's time too. */
    private readonly now: () => number,
    /** The partition key, when the policy is one partition of a partitioned stage. */
    private readonly partition?: string,
  ) {
    const recheck = store.recheckAfter;
    this.recheckAfter = typeof recheck === 'number' && recheck >= 0 ? recheck : RECHECK_AFTER;
  }

  /** Whether to ask the store now: always while available, then one probe per `recheckAfter`. */
  usable(): boolean {
    if (this.available) return true;
    const now = this.now();
    if (now < this.retryAt) return false;
    this.retryAt = now + this.recheckAfter;
    return true;
  }

  /** Whether a probe of an unavailable store is due (without taking it). */
  recheckDue(): boolean {
    return this.now() >= this.retryAt;
  }

  /** ms until the next probe of an unavailable store is due (0 when it is due). */
  recheckIn(): number {
    return Math.max(0, this.retryAt - this.now());
  }

  failed(error: unknown): void {
    this.retryAt = this.now() + this.recheckAfter;
    if (!this.available) return;
    this.available = false;
    if (this.events.listening) {
      this.events.emit(
        keyed(
          { type: 'storeUnavailable', policy: this.policy, name: this.name, error },
          this.partition,
        ),
      );
    }
  }

  succeeded(): void {
    if (this.available) return;
    this.available = true;
    if (this.events.listening)
      this.events.emit(
        keyed({ type: 'storeRecovered', policy: this.policy, name: this.name }, this.partition),
      );
  }
}

/** @internal runs `task` against the store, recording its health; `undefined` when it failed. */
export async function guarded<T>(
  health: StoreHealth,
  task: () => Promise<T>,
): Promise<T | undefined> {
  try {
    const result = await task();
    health.succeeded();
    return result;
  } catch (error) {
    health.failed(error);
    return undefined;
  }
}

/**
 * @internal Validates a policy's `store` option and the `name` it then requires: two processes share a
 * policy's state through its name. Returns the store when it is one.
 */
export function storeOption(
  problems: Problems,
  path: string,
  store: unknown,
  name: unknown,
  what: string,
): Store | undefined {
  if (store === undefined) return undefined;
  if (!isStore(store)) {
    problems.add(`${path}.store`, store, 'a Store (redisStore(client) from bulwark/redis)');
    return undefined;
  }
  if (typeof name !== 'string' || name === '') {
    problems.add(`${path}.name`, name, `a non-empty string: a ${what} with a store needs a name`);
  }
  return store;
}
