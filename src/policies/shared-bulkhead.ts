import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import type { Emitter } from '../events.js';
import { StoreHealth, type BulkheadRequest, type SharedBulkhead, type Store } from '../store.js';

/** A waiting caller asks the store again at least this often, in ms (a lost message, a dead holder). */
export const BULKHEAD_POLL = 250;

/** What a fleet slot request ends in, besides a slot's token. */
export const SLOT_FULL = -1;
export const SLOT_TIMED_OUT = -2;
/** Store unavailable, `onStoreError: 'local'`: take a slot of the process's own bulkhead. */
export const SLOT_LOCAL = 1;
/** Store unavailable, `onStoreError: 'allow'`: run without a slot. */
export const SLOT_NONE = 0;

/** A token (a fleet slot), or one of the SLOT_* outcomes. */
export type SlotResult = string | number;

/** Tells this process's tokens from other processes' (no crypto in the core). */
const PROCESS_ID = Math.random().toString(36).slice(2, 10);
let links = 0;

/** @internal the bulkhead's settings the link needs. */
export interface SharedBulkheadSettings {
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  readonly slotLease: number;
  readonly onStoreError: 'local' | 'allow' | 'reject';
}

/** A caller waiting for a fleet slot. */
export class SlotWait {
  /** Resolves with a token or a SLOT_* outcome; never rejects. */
  readonly promise: Promise<SlotResult>;
  /** @internal */
  settle!: (result: SlotResult) => void;
  /** @internal */
  timer: TimerHandle = undefined;
  /** @internal settled (granted, rejected, timed out or cancelled). */
  done = false;
  /** @internal the store's answer is awaited. */
  asking = false;
  /** @internal */
  clock: Clock = systemClock;

  constructor(readonly token: string) {
    this.promise = new Promise((resolve) => (this.settle = resolve));
  }
}

/**
 * @internal The link between one process's bulkhead and the fleet's slots in a store: a distributed
 * semaphore with a FIFO queue, every slot and place in the queue held on a lease this process renews
 * (one command for all of them) while its calls run or wait. Queued callers are woken by a message
 * when a slot frees, and ask again every {@link BULKHEAD_POLL} ms in case a message was lost or a
 * holder died (its lease ran out).
 */
export class BulkheadLink {
  readonly shared: SharedBulkhead;
  readonly health: StoreHealth;
  private readonly held = new Set<string>();
  /** This process's queued callers, oldest first (their order in the fleet's queue too). */
  private readonly waiting: SlotWait[] = [];
  private readonly tokenPrefix = `${PROCESS_ID}:${++links}:`;
  private asks = 0;
  /** Acquire requests whose answer has not arrived. */
  private requests = 0;
  private renewTimer: TimerHandle = undefined;
  private pollTimer: TimerHandle = undefined;
  private polling = false;
  private pollAgain = false;
  private unsubscribe: (() => void) | undefined = undefined;
  private readonly onRenew = (): void => {
    this.renewTimer = undefined;
    this.renew();
  };
  private readonly onPoll = (): void => {
    this.pollTimer = undefined;
    this.wake();
  };

  constructor(
    private readonly settings: SharedBulkheadSettings,
    store: Store,
    name: string,
    events: Emitter,
    /** The partition key, when the bulkhead is one partition of a partitioned stage. */
    partition?: string,
  ) {
    this.shared =
      partition === undefined ? store.forBulkhead!(name) : store.forBulkhead!(name, partition);
    this.health = new StoreHealth(
      store,
      events,
      'bulkhead',
      name,
      () => systemClock.now(),
      partition,
    );
  }

  /**
   * True when this process holds no fleet slot, no place in the fleet's queue, and has no request for
   * one in flight (a partition is dropped only then: its slots are released by their calls).
   */
  atRest(): boolean {
    return this.held.size === 0 && this.waiting.length === 0 && this.requests === 0;
  }

  /** A dropped partition: stop listening for freed slots, and let go of the timers. */
  dispose(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.renewTimer !== undefined) systemClock.clearTimer(this.renewTimer);
    if (this.pollTimer !== undefined) systemClock.clearTimer(this.pollTimer);
    this.renewTimer = this.pollTimer = undefined;
  }

  /** Slots of the fleet this process holds. */
  get holding(): number {
    return this.held.size;
  }

  /** This process's callers waiting in the fleet's queue. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Asks for a fleet slot, waiting at most `maxWait` ms (on `clock`) in the fleet's queue. The result
   * is a token to pass to {@link BulkheadLink.release}, or a SLOT_* outcome.
   */
  acquire(maxWait: number, clock: Clock): SlotWait {
    const wait = new SlotWait(this.tokenPrefix + String(++this.asks));
    wait.clock = clock;
    if (!this.health.usable()) {
      this.finish(wait, this.fallback());
      return wait;
    }
    const queue = this.settings.maxQueue > 0 && maxWait > 0;
    if (queue && maxWait !== Infinity) {
      wait.timer = clock.setTimer(() => {
        wait.timer = undefined;
        this.leave(wait, SLOT_TIMED_OUT);
      }, maxWait);
    }
    wait.asking = true;
    this.requests++;
    this.shared.acquire(wait.token, this.request(queue)).then(
      (answer) => {
        wait.asking = false;
        this.requests--;
        this.health.succeeded();
        if (wait.done) {
          // Cancelled or timed out meanwhile: hand back what the store gave.
          if (answer >= 0) this.send(wait.token);
          return;
        }
        if (answer === 1) return this.grant(wait);
        if (answer < 0) return this.finish(wait, SLOT_FULL);
        this.waiting.push(wait);
        this.watch();
      },
      (error: unknown) => {
        wait.asking = false;
        this.requests--;
        this.health.failed(error);
        // The request may still land: its place or slot lapses with its lease.
        if (!wait.done) this.finish(wait, this.fallback());
      },
    );
    return wait;
  }

  /** Gives a fleet slot back (its call settled). */
  release(token: string): void {
    if (!this.held.delete(token)) return;
    this.send(token);
  }

  /** A caller gave up (abort): leaves the queue, or hands back a slot granted meanwhile. */
  cancel(wait: SlotWait): void {
    this.leave(wait, SLOT_TIMED_OUT);
  }

  // ---- internals ----

  private request(queue: boolean): BulkheadRequest {
    const s = this.settings;
    return { maxConcurrent: s.maxConcurrent, maxQueue: s.maxQueue, queue, lease: s.slotLease };
  }

  private fallback(): number {
    const mode = this.settings.onStoreError;
    return mode === 'local' ? SLOT_LOCAL : mode === 'allow' ? SLOT_NONE : SLOT_FULL;
  }

  private grant(wait: SlotWait): void {
    this.held.add(wait.token);
    this.scheduleRenew();
    this.finish(wait, wait.token);
  }

  private finish(wait: SlotWait, result: SlotResult): void {
    if (wait.done) return;
    wait.done = true;
    if (wait.timer !== undefined) {
      wait.clock.clearTimer(wait.timer);
      wait.timer = undefined;
    }
    wait.settle(result);
  }

  /** Ends a wait without a slot; its place in the fleet's queue (or a slot it got) is given back. */
  private leave(wait: SlotWait, result: number): void {
    if (wait.done) return;
    const index = this.waiting.indexOf(wait);
    if (index >= 0) this.waiting.splice(index, 1);
    this.finish(wait, result);
    // While its request is in flight the answer decides (see acquire and poll).
    if (!wait.asking) this.send(wait.token);
  }

  /** Releases a token's slot or place in the store (fire-and-forget: a lease ends it otherwise). */
  private send(token: string): void {
    if (!this.health.usable()) return;
    this.shared.release(token).then(
      () => this.health.succeeded(),
      (error: unknown) => this.health.failed(error),
    );
  }

  /** While callers wait: listen for freed slots, and poll as a fallback. */
  private watch(): void {
    this.unsubscribe ??= this.shared.subscribe(() => this.wake());
    this.scheduleRenew();
    if (this.pollTimer === undefined && this.waiting.length > 0)
      this.pollTimer = systemClock.setTimer(this.onPoll, BULKHEAD_POLL);
  }

  /** Asks the store again for this process's oldest waiters, in order, until one must wait on. */
  private wake(): void {
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    const wait = this.waiting[0];
    if (wait === undefined) return this.idle();
    if (!this.health.usable()) {
      // The store is gone: every waiter falls back now (their places lapse with their leases).
      for (const w of this.waiting.splice(0)) this.finish(w, this.fallback());
      return this.idle();
    }
    this.polling = true;
    this.pollAgain = false;
    wait.asking = true;
    this.shared.acquire(wait.token, this.request(true)).then(
      (answer) => {
        wait.asking = false;
        this.polling = false;
        this.health.succeeded();
        if (wait.done) {
          if (answer >= 0) this.send(wait.token);
          return this.wake();
        }
        if (answer === 1 || answer < 0) {
          this.waiting.shift();
          if (answer === 1) this.grant(wait);
          else this.finish(wait, SLOT_FULL); // dropped from the queue (lease ran out), now full
          return this.wake();
        }
        if (this.pollAgain) return this.wake();
        this.watch();
      },
      (error: unknown) => {
        wait.asking = false;
        this.polling = false;
        this.health.failed(error);
        this.wake();
      },
    );
  }

  /** Nobody waits: stop polling (the subscription stays: a new one could miss a message). */
  private idle(): void {
    if (this.waiting.length > 0 || this.pollTimer === undefined) return;
    systemClock.clearTimer(this.pollTimer);
    this.pollTimer = undefined;
  }

  private scheduleRenew(): void {
    if (this.renewTimer !== undefined) return;
    this.renewTimer = systemClock.setTimer(this.onRenew, this.settings.slotLease / 3, true);
  }

  /** Renews every slot and place this process holds, in one command. */
  private renew(): void {
    const tokens = [...this.held];
    for (const wait of this.waiting) tokens.push(wait.token);
    if (tokens.length === 0) return;
    this.scheduleRenew();
    if (!this.health.usable()) return;
    this.shared.renew(tokens, this.settings.slotLease).then(
      () => this.health.succeeded(),
      (error: unknown) => this.health.failed(error),
    );
  }
}
