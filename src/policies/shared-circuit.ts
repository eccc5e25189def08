import { systemClock, type TimerHandle } from '../clock.js';
import {
  guarded,
  StoreHealth,
  type FleetCircuitState,
  type FleetCounts,
  type SharedCircuit,
  type Store,
} from '../store.js';
import type { Clock } from '../clock.js';
import type { Emitter } from '../events.js';
import type { CircuitState } from '../types.js';

/**
 * What a {@link CircuitLink} reads of its breaker and calls on it. The breaker (circuit-breaker.ts)
 * imports the link; the link knows the breaker only through this shape, so the two files do not import
 * each other.
 */
export interface LinkedBreaker {
  readonly events: Emitter;
  readonly clock: Clock | undefined;
  readonly state: CircuitState;
  readonly windowType: 'count' | 'time';
  readonly windowDuration: number;
  readonly minimumCalls: number;
  readonly failureRateThreshold: number;
  readonly slowCallDuration: number;
  readonly slowCallRateThreshold: number;
  readonly halfOpenAfter: number;
  applyRemote(state: 'open' | 'closed' | 'isolated', retryAfter: number): void;
  /** ms until an open circuit turns half-open (how long the fleet opens for, after a local trip). */
  retryAfter(now: number): number;
}

/** Samples batched before a flush, at most. */
export const FLUSH_SAMPLES = 50;
/** A batch waits at most this long, in ms. */
export const FLUSH_INTERVAL = 100;
/** A count window is summed over the fleet in a time window of this length, in ms. */
export const FLEET_COUNT_WINDOW = 10_000;
/** Buckets of the fleet's window. */
const BUCKETS = 10;
/** Tells this process's trial-slot tokens from other processes' (no crypto in the core). */
const PROCESS_ID = Math.random().toString(36).slice(2, 10);
let links = 0;

/**
 * @internal The link between one process's circuit breaker and the fleet's circuit in a store.
 *
 * - Happy path: samples are counted here and flushed in batches (every {@link FLUSH_INTERVAL} ms or
 *   {@link FLUSH_SAMPLES} samples), fire-and-forget; the reply is the fleet's window, and when its rate
 *   crosses the threshold (after `minimumCalls` fleet-wide) the fleet's circuit opens and every
 *   process hears it at once.
 * - Whatever opens first (the fleet's window, this process's own window, `consecutiveFailures`), the
 *   fleet acts as one breaker: a local trip opens the fleet's circuit too, or, when the fleet is open
 *   or running its trial already, follows it.
 * - Half-open: one process across the fleet takes the trial slot (for the trial's own time limit, under
 *   a token only its caller holds); the others keep rejecting until the trial's outcome arrives
 *   (closed, or open again), or the slot is handed back unused.
 * - Store trouble: the local window alone decides, as without a store; one probe per `recheckAfter`
 *   (a timer on the policy's clock, traffic or not) notices the store's return and reads the fleet.
 */
export class CircuitLink {
  readonly shared: SharedCircuit;
  readonly health: StoreHealth;
  /** The local circuit is open because the fleet's is. */
  fleetOpen = false;
  /** This process holds the fleet's trial slot. */
  trialHeld = false;
  /** A trial-slot request is in flight. */
  asking = false;
  /** Policy time before which asking for the trial slot is pointless (the store said so). */
  nextTrialAt = 0;
  private readonly tokenPrefix = `${PROCESS_ID}:${++links}:`;
  private asks = 0;
  private probeTimer: TimerHandle = undefined;
  private calls = 0;
  private failures = 0;
  private slow = 0;
  private timer: TimerHandle = undefined;
  private flushing = false;
  /** Counts isolate() and reset() calls of this process, when sent and when done. */
  private manualActions = 0;
  /** Counts the fleet's messages heard. */
  private heard = 0;
  private readonly window: { readonly duration: number; readonly buckets: number };
  private readonly unsubscribe: () => void;
  private disposed = false;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.flush();
  };
  private readonly onProbe = (): void => {
    this.probeTimer = undefined;
    if (this.health.available) return;
    if (this.health.usable()) void this.resync();
    else this.watchHealth();
  };

  constructor(
    private readonly breaker: LinkedBreaker,
    store: Store,
    name: string,
    /** The partition key, when the breaker is one partition of a partitioned stage. */
    partition?: string,
  ) {
    this.shared =
      partition === undefined ? store.forCircuit(name) : store.forCircuit(name, partition);
    this.health = new StoreHealth(
      store,
      breaker.events,
      'circuitBreaker',
      name,
      () => (breaker.clock ?? systemClock).now(),
      partition,
    );
    this.window = {
      duration: breaker.windowType === 'time' ? breaker.windowDuration : FLEET_COUNT_WINDOW,
      buckets: BUCKETS,
    };
    this.unsubscribe = this.shared.subscribe(
      (state) => {
        this.heard++;
        this.apply(state, true);
      },
      () => void this.resync(),
    );
    void this.resync();
  }

  private now(): number {
    return (this.breaker.clock ?? systemClock).now();
  }

  /** Runs a store command, recording the store's health (`undefined` when it failed). */
  private async guard<T>(task: () => Promise<T>): Promise<T | undefined> {
    const result = await guarded(this.health, task);
    if (result === undefined) this.watchHealth();
    return result;
  }

  /**
   * While the store is unavailable, probes it when the next probe is due, traffic or not: a breaker
   * that is open sends no samples, and would otherwise notice the store's return only at its next
   * trial. The probe reads the fleet's state, which it then follows.
   */
  private watchHealth(): void {
    if (this.health.available || this.probeTimer !== undefined || this.disposed) return;
    const clock = this.breaker.clock ?? systemClock;
    this.probeTimer = clock.setTimer(this.onProbe, Math.max(1, this.health.recheckIn()), true);
  }

  /**
   * True when nothing of this process's part in the fleet's circuit is under way: no sample waiting
   * for its flush or in flight, no trial asked for (a partition is dropped only then: its samples reach
   * the fleet's window).
   */
  quiet(): boolean {
    return this.calls === 0 && !this.flushing && !this.asking && !this.trialHeld;
  }

  /** A dropped partition: stop listening to the fleet and let go of the timers. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.unsubscribe();
    const clock = this.breaker.clock ?? systemClock;
    if (this.timer !== undefined) clock.clearTimer(this.timer);
    if (this.probeTimer !== undefined) clock.clearTimer(this.probeTimer);
    this.timer = this.probeTimer = undefined;
  }

  /** Counts one outcome (bit 1: failure, bit 2: slow) for the next flush. */
  sample(outcome: number): void {
    this.calls++;
    this.failures += outcome & 1;
    this.slow += (outcome & 2) >> 1;
    if (this.calls >= FLUSH_SAMPLES) this.flush();
    else if (this.timer === undefined && !this.flushing) {
      this.timer = (this.breaker.clock ?? systemClock).setTimer(this.onTimer, FLUSH_INTERVAL, true);
    }
  }

  /** Sends the batch now (fire-and-forget); while the store is unavailable the batch is dropped. */
  flush(): void {
    if (this.timer !== undefined) {
      (this.breaker.clock ?? systemClock).clearTimer(this.timer);
      this.timer = undefined;
    }
    if (this.flushing || this.calls === 0) return;
    const counts = { calls: this.calls, failures: this.failures, slow: this.slow };
    this.calls = this.failures = this.slow = 0;
    if (!this.health.usable()) return;
    this.flushing = true;
    this.shared.record(counts, this.window).then(
      (fleet) => {
        this.flushing = false;
        this.health.succeeded();
        this.judge(fleet);
        if (this.calls > 0) this.flush();
      },
      (error: unknown) => {
        this.flushing = false;
        this.health.failed(error);
        this.watchHealth();
      },
    );
  }

  /** Opens the fleet's circuit when its window crosses a threshold. */
  private judge(fleet: FleetCounts): void {
    const b = this.breaker;
    if (fleet.circuit.state !== 'closed') return this.apply(fleet.circuit, false);
    const state = b.state;
    if (state === 'isolated' || state === 'halfOpen' || fleet.calls < b.minimumCalls) return;
    if (
      fleet.failures / fleet.calls >= b.failureRateThreshold ||
      (b.slowCallDuration !== Infinity && fleet.slow / fleet.calls >= b.slowCallRateThreshold)
    ) {
      this.openFleet(false);
    }
  }

  /** Opens the fleet's circuit for `ms`; when the fleet is open or half-open already, follows it. */
  private openFleet(force: boolean, ms = this.breaker.halfOpenAfter): void {
    const manual = this.manualActions;
    void this.guard(() => this.shared.open(ms, force)).then((result) => {
      if (result === undefined || manual !== this.manualActions) return;
      if (result.opened) this.apply({ state: 'open', retryAfter: ms }, true);
      else if (this.breaker.state === 'open') this.apply(result.circuit, true);
    });
  }

  /**
   * Applies the fleet's state. A message is authoritative; a state read after a reconnection or with
   * a flush cannot tell a closed circuit from an open one whose wait just ended, so it only opens.
   */
  apply(fleet: FleetCircuitState, message: boolean): void {
    const b = this.breaker;
    const local: CircuitState = b.state;
    if (fleet.state === 'halfOpen') {
      // The trial slot was handed back unused: whoever waits for it may ask now.
      if (this.fleetOpen) this.nextTrialAt = 0;
      return;
    }
    if (fleet.state === 'open') {
      if (local === 'isolated' && !message) return;
      if (local === 'halfOpen' && this.trialHeld) return;
      this.fleetOpen = true;
      this.trialHeld = false;
      this.nextTrialAt = 0;
      b.applyRemote('open', fleet.retryAfter);
    } else if (fleet.state === 'isolated') {
      if (local === 'isolated') return;
      this.fleetOpen = false;
      this.trialHeld = false;
      b.applyRemote('isolated', 0);
    } else {
      if (local === 'closed' || (!message && local !== 'isolated')) return;
      this.fleetOpen = false;
      this.trialHeld = false;
      b.applyRemote('closed', 0);
    }
  }

  private async resync(): Promise<void> {
    const manual = this.manualActions;
    const heard = this.heard;
    const fleet = await this.guard(() => this.shared.read());
    // A read is stale when an isolate() or reset() of this process was sent or done while it was in
    // flight (the read may have run first: a NOSCRIPT reload sends that command again, later), or
    // when a message arrived meanwhile (on its own connection, it may be newer than the reply).
    if (fleet !== undefined && manual === this.manualActions && heard === this.heard)
      this.apply(fleet, false);
  }

  /** A local transition (not one applied from the fleet): tell the fleet what it must know. */
  transitioned(from: CircuitState, to: CircuitState): void {
    if (to === 'open') {
      if (from === 'halfOpen' && this.trialHeld) {
        // The fleet's trial failed: open the fleet's circuit again.
        this.trialHeld = false;
        this.fleetOpen = true;
        this.openFleet(true, this.breaker.retryAfter(this.now()));
      } else {
        // A local trip (its own window, consecutive failures, a local trial): the fleet opens too,
        // or this process follows the fleet's opening or trial that is under way. The samples that
        // caused it go out as well.
        this.flush();
        if (this.health.usable()) {
          // Follow the fleet from now on: even if the reply is slow, the half-open trial is the
          // fleet's to grant (a store in trouble then answers with a local trial).
          this.fleetOpen = true;
          this.openFleet(false, this.breaker.retryAfter(this.now()));
        } else this.watchHealth();
      }
    } else if (to === 'closed' && from === 'halfOpen' && this.trialHeld) {
      this.trialHeld = false;
      void this.guard(() => this.shared.close());
    } else if (to === 'halfOpen' && !this.trialHeld) {
      this.fleetOpen = false;
    }
  }

  /** `isolate()` or `reset()` by hand: acts fleet-wide. */
  manual(to: 'isolated' | 'closed'): void {
    this.manualActions++;
    this.fleetOpen = false;
    this.trialHeld = false;
    this.nextTrialAt = 0;
    void this.guard(() => (to === 'isolated' ? this.shared.isolate() : this.shared.close())).then(
      () => this.manualActions++,
    );
  }

  /** Whether a call may ask for the fleet's trial slot now (one request at a time). */
  mayAsk(now: number): boolean {
    return !this.asking && now >= this.nextTrialAt;
  }

  /**
   * Asks for the fleet's trial slot for a trial whose own time limit is `limit` ms: true granted,
   * false not now, undefined store trouble (the caller then runs a local trial).
   */
  async askTrial(limit: number): Promise<boolean | undefined> {
    if (!this.health.usable()) return undefined;
    this.asking = true;
    const heard = this.heard;
    try {
      const token = this.tokenPrefix + String(++this.asks);
      const wait = await this.guard(() => this.shared.tryTrial(token, limit));
      if (wait === undefined) return undefined;
      if (wait === Infinity) {
        // Isolated by hand (a message this process missed): follow it. Never a timer set to Infinity.
        this.apply({ state: 'isolated', retryAfter: Infinity }, true);
        return false;
      }
      if (wait < 0) {
        // Closed meanwhile (the close message is on its way): follow it; the call runs as a closed one.
        this.apply({ state: 'closed', retryAfter: 0 }, true);
        return false;
      }
      // A message heard meanwhile (on its own connection) may be newer than this reply: the slot handed
      // back, say, while the refusal was on its way. Then the refusal's wait is stale: ask at the next call.
      if (wait > 0 && heard === this.heard) this.nextTrialAt = this.now() + wait;
      return wait === 0;
    } finally {
      this.asking = false;
    }
  }
}
