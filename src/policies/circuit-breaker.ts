import { systemClock, type Clock } from '../clock.js';
import { isLocalRejection } from '../errors.js';
import { Emitter, keyed, type Listener, type Unsubscribe } from '../events.js';
import { Problems } from '../core/validate.js';
import { storeOption, type Store } from '../store.js';
import type { CircuitState } from '../types.js';
import { PARTITION_HERE, type PartitionRole } from './partition.js';
import { CircuitLink } from './shared-circuit.js';

export type { CircuitState } from '../types.js';

/** The sliding window the failure rate is computed over. */
export type CircuitWindow =
  | { type: 'count'; /** Last N calls. The default value is `100`. */ size?: number }
  | { type: 'time'; /** Last N ms. The default value is `60_000`. */ duration?: number };

/** Options of the circuit breaker. */
export interface CircuitBreakerOptions {
  /** Opens when failures / calls in the window reach this, in (0, 1]. The default value is `0.5`. */
  failureRateThreshold?: number;
  /** Calls the window must hold before a rate can open the circuit. The default value is `20`. */
  minimumCalls?: number;
  /** The window. The default value is `{ type: 'count', size: 100 }`. */
  window?: CircuitWindow;
  /** Also open after this many failures in a row, whatever the rate. The default value is none. */
  consecutiveFailures?: number;
  /** A success that took at least this many ms counts as slow. The default value is none. */
  slowCallDuration?: number;
  /** Opens when slow calls / calls reach this, in (0, 1]. The default value is `1`. */
  slowCallRateThreshold?: number;
  /** How long the circuit stays open before trial calls, in ms. The default value is `30_000`. */
  halfOpenAfter?: number;
  /** Trial calls let through at once while half-open; all must succeed to close. The default value is `1`. */
  halfOpenMaxCalls?: number;
  /**
   * The longest a failure's `retryAfter` hint (a 429 or 503's `Retry-After`) may hold the circuit open,
   * in ms: a longer hint (`Infinity` too) holds it open this long, so that a server's
   * `Retry-After: 999999999` cannot keep it open for years. A negative or NaN hint is ignored. The
   * wait is never shorter than `halfOpenAfter`. The default value is `300_000` (5 minutes).
   */
  maxRetryAfter?: number;
  /**
   * Which errors count as failures. An error it returns `false` for is ignored, as resilience4j's
   * `ignoreExceptions`: no sample (neither a failure nor a success: a run of consecutive failures goes
   * on), and a half-open trial slot it held is handed back. A throwing `isFailure` counts the error as
   * a failure. The default value counts every error except a caller's abort and the library's local
   * rejections (rate limited, bulkhead full).
   */
  isFailure?: (error: unknown) => boolean;
  /** A snapshot from {@link CircuitBreaker.toJSON}, to carry state across processes (serverless). */
  initialState?: CircuitBreakerSnapshot;
  /** The clock; by default the clock of the first pipeline that uses the breaker. */
  clock?: Clock;
  /** Name (used by shared stores and in `describe()`). Required with a `store`. The default value is none. */
  name?: string;
  /**
   * Shares the circuit across processes (`redisStore(client)` from `bulwark/redis`): every breaker with
   * the same `name` counts into one fleet-wide window, opens and closes together, and runs one half-open
   * trial for the whole fleet. The local window still decides alone while the store is unreachable.
   * The default value is none (in memory).
   */
  store?: Store;
}

/** @internal what `tryEnter` returns when only the store can say whether the call is a trial. */
export const ASK_STORE = -2;
const LOCAL = 0;
const REMOTE = 1;
const MANUAL = 2;

/** What {@link CircuitBreaker.toJSON} returns: plain JSON. */
export interface CircuitBreakerSnapshot {
  readonly version: 1;
  readonly state: CircuitState;
  /**
   * ms until half-open, when open, at `savedAt`: `Infinity` when isolated, which JSON writes `null`
   * (accepted back).
   */
  readonly retryAfter: number;
  /** Wall-clock time of the snapshot (`Date.now()`), to age it on restore. */
  readonly savedAt: number;
  readonly consecutiveFailures: number;
  /** Count window: outcomes oldest first (0 success, 1 failure, 2 slow success, 3 slow failure). */
  readonly outcomes?: readonly number[];
  /** Time window: `[calls, failures, slow]` per bucket, oldest first, and the bucket length in ms. */
  readonly buckets?: readonly (readonly [number, number, number])[];
  readonly bucketSize?: number;
}

export const CIRCUIT_BREAKER_DEFAULTS = Object.freeze({
  failureRateThreshold: 0.5,
  minimumCalls: 20,
  windowSize: 100,
  windowDuration: 60_000,
  slowCallRateThreshold: 1,
  halfOpenAfter: 30_000,
  halfOpenMaxCalls: 1,
  maxRetryAfter: 300_000,
  isFailure: (error: unknown): boolean => !isLocalRejection(error),
});

const KEYS = [
  'failureRateThreshold',
  'minimumCalls',
  'window',
  'consecutiveFailures',
  'slowCallDuration',
  'slowCallRateThreshold',
  'halfOpenAfter',
  'halfOpenMaxCalls',
  'maxRetryAfter',
  'isFailure',
  'initialState',
  'clock',
  'name',
  'store',
  'partition',
] as const;

const TIME_BUCKETS = 10;
const FAILURE = 1;
const SLOW = 2;

/**
 * A circuit breaker: `closed → open → halfOpen → closed | open`. Compiled into the pipeline, or shared
 * between several functions that call one downstream.
 *
 * @example
 * const breaker = circuitBreaker({ failureRateThreshold: 0.5, halfOpenAfter: 10_000 });
 * const getUser = resilient(fetchUser, { circuitBreaker: breaker });
 * const getOrder = resilient(fetchOrder, { circuitBreaker: breaker });
 */
export class CircuitBreaker {
  readonly name: string | undefined;
  readonly failureRateThreshold: number;
  readonly minimumCalls: number;
  readonly windowType: 'count' | 'time';
  readonly windowSize: number;
  readonly windowDuration: number;
  readonly consecutiveFailureLimit: number;
  readonly slowCallDuration: number;
  readonly slowCallRateThreshold: number;
  readonly halfOpenAfter: number;
  readonly halfOpenMaxCalls: number;
  readonly maxRetryAfter: number;
  readonly isFailure: (error: unknown) => boolean;
  /** @internal (one emitter shared by every partition of a partitioned breaker) */
  events = new Emitter();
  /** @internal */
  clock: Clock | undefined;
  /** @internal the partition key, when this breaker is one partition of a partitioned stage. */
  partition: string | undefined = undefined;

  /** @internal the fleet link, when a `store` was given (none on a partitioned stage's template). */
  readonly link: CircuitLink | undefined;
  /** @internal whether a `store` was given (a partitioned stage's template has no link, but one). */
  readonly withStore: boolean;
  private currentState: CircuitState = 'closed';
  /** Changes on every transition: samples of an older generation are ignored. */
  private generation = 0;
  private openedAt = 0;
  /** How long this opening lasts: `halfOpenAfter`, or longer when the failure said so (`retryAfter`). */
  private openFor = 0;
  /** The `retryAfter` hint of the failure being recorded, for the opening it may cause. */
  private hint = 0;
  private trialsInFlight = 0;
  private trialSuccesses = 0;
  /** Permits handed out and not yet recorded or released: calls in flight, whatever the state. */
  private inFlight = 0;
  private consecutive = 0;
  /** True when an outcome needs its time: a time window, or slow calls to tell (set once). */
  private readonly timed: boolean;
  /** True when the window was filled without a check since (a restored snapshot): the next sample checks. */
  private unchecked = false;
  // Count window.
  private readonly outcomes: Uint8Array;
  private cursor = 0;
  private filled = 0;
  // Time window.
  private readonly bucketSize: number;
  private readonly bucketCalls: Float64Array;
  private readonly bucketFailures: Float64Array;
  private readonly bucketSlow: Float64Array;
  private epoch = -1;
  // Totals over the window.
  private calls = 0;
  private failures = 0;
  private slow = 0;

  constructor(
    options: CircuitBreakerOptions = {},
    path = 'circuitBreaker',
    /** @internal a partition of a partitioned stage, or its template (see options.ts). */
    role?: PartitionRole,
  ) {
    const problems = new Problems();
    const o = problems.object(path, options, KEYS) ?? {};
    this.name = typeof o.name === 'string' ? o.name : undefined;
    if (o.name !== undefined && typeof o.name !== 'string')
      problems.add(`${path}.name`, o.name, 'a string');
    const ratio = { min: 0, max: 1, exclusiveMin: true };
    this.failureRateThreshold = problems.number(
      `${path}.failureRateThreshold`,
      o.failureRateThreshold,
      CIRCUIT_BREAKER_DEFAULTS.failureRateThreshold,
      ratio,
    );
    this.minimumCalls = problems.number(
      `${path}.minimumCalls`,
      o.minimumCalls,
      CIRCUIT_BREAKER_DEFAULTS.minimumCalls,
      {
        min: 1,
        integer: true,
      },
    );
    let windowType: 'count' | 'time' = 'count';
    let size: number = CIRCUIT_BREAKER_DEFAULTS.windowSize;
    let duration: number = CIRCUIT_BREAKER_DEFAULTS.windowDuration;
    if (o.window !== undefined) {
      const w = problems.object(`${path}.window`, o.window, ['type', 'size', 'duration']);
      if (w !== undefined) {
        windowType = problems.oneOf(`${path}.window.type`, w.type, ['count', 'time'], 'count');
        if (w.type === undefined) problems.add(`${path}.window.type`, w.type, "'count' or 'time'");
        if (windowType === 'count') {
          if (w.duration !== undefined)
            problems.raw(
              `\`${path}.window.duration\` applies to a time window; a count window takes \`size\``,
            );
          size = problems.number(`${path}.window.size`, w.size, size, {
            min: 1,
            max: 1_000_000,
            integer: true,
          });
        } else {
          if (w.size !== undefined)
            problems.raw(
              `\`${path}.window.size\` applies to a count window; a time window takes \`duration\``,
            );
          duration = problems.number(`${path}.window.duration`, w.duration, duration, {
            min: 0,
            exclusiveMin: true,
          });
        }
      }
    }
    if (windowType === 'count' && this.minimumCalls > size) {
      problems.raw(
        `\`${path}.minimumCalls\` (${this.minimumCalls}) exceeds \`${path}.window.size\` (${size}): the circuit could never open on its failure rate`,
      );
    }
    this.windowType = windowType;
    this.windowSize = size;
    this.windowDuration = duration;
    this.consecutiveFailureLimit = problems.number(
      `${path}.consecutiveFailures`,
      o.consecutiveFailures,
      Infinity,
      {
        min: 1,
        integer: true,
      },
    );
    this.slowCallDuration = problems.number(
      `${path}.slowCallDuration`,
      o.slowCallDuration,
      Infinity,
      {
        min: 0,
        exclusiveMin: true,
      },
    );
    this.slowCallRateThreshold = problems.number(
      `${path}.slowCallRateThreshold`,
      o.slowCallRateThreshold,
      CIRCUIT_BREAKER_DEFAULTS.slowCallRateThreshold,
      ratio,
    );
    if (o.slowCallRateThreshold !== undefined && o.slowCallDuration === undefined) {
      problems.raw(
        `\`${path}.slowCallRateThreshold\` needs \`${path}.slowCallDuration\` to say what is slow`,
      );
    }
    this.halfOpenAfter = problems.number(
      `${path}.halfOpenAfter`,
      o.halfOpenAfter,
      CIRCUIT_BREAKER_DEFAULTS.halfOpenAfter,
      {
        min: 0,
      },
    );
    this.halfOpenMaxCalls = problems.number(
      `${path}.halfOpenMaxCalls`,
      o.halfOpenMaxCalls,
      CIRCUIT_BREAKER_DEFAULTS.halfOpenMaxCalls,
      { min: 1, integer: true },
    );
    this.maxRetryAfter = problems.number(
      `${path}.maxRetryAfter`,
      o.maxRetryAfter,
      CIRCUIT_BREAKER_DEFAULTS.maxRetryAfter,
      { min: 0, infinity: true },
    );
    this.isFailure = problems.func(
      `${path}.isFailure`,
      o.isFailure,
      CIRCUIT_BREAKER_DEFAULTS.isFailure,
    );
    const clock = o.clock;
    if (clock !== undefined) checkClock(problems, `${path}.clock`, clock);
    this.clock = isClock(clock) ? clock : undefined;
    const initial = o.initialState;
    const restorable =
      initial !== undefined &&
      problems.guard(
        `${path}.initialState`,
        () => checkSnapshot(problems, `${path}.initialState`, initial),
        false,
      );
    const store = storeOption(problems, path, o.store, o.name, 'breaker');
    if (o.partition !== undefined) problems.raw(PARTITION_HERE(path));
    problems.throwIfAny(path === 'circuitBreaker' ? 'Invalid circuitBreaker options' : undefined);

    this.timed = windowType === 'time' || this.slowCallDuration !== Infinity;
    this.outcomes = new Uint8Array(windowType === 'count' ? size : 0);
    this.bucketSize = duration / TIME_BUCKETS;
    const buckets = windowType === 'time' ? TIME_BUCKETS : 0;
    this.bucketCalls = new Float64Array(buckets);
    this.bucketFailures = new Float64Array(buckets);
    this.bucketSlow = new Float64Array(buckets);
    if (restorable) {
      const snapshot = initial as CircuitBreakerSnapshot;
      if (this.clock === undefined) this.pendingSnapshot = snapshot;
      else this.restore(snapshot);
    }
    this.withStore = store !== undefined;
    if (typeof role === 'object') {
      this.partition = role.key;
      this.events = role.events;
    }
    // A partitioned stage's template never talks to the store: its partitions do, each on its own keys.
    // It asks for its circuit only so that a store refuses a bad name now, not at the first call.
    if (store !== undefined && role === 'template') store.forCircuit(this.name!);
    this.link =
      store === undefined || role === 'template'
        ? undefined
        : new CircuitLink(this, store, this.name!, this.partition);
  }

  private pendingSnapshot: CircuitBreakerSnapshot | undefined = undefined;

  /** @internal the first pipeline gives the breaker its clock when the user did not. */
  adoptClock(clock: Clock): void {
    this.clock ??= clock;
    if (this.pendingSnapshot !== undefined) {
      const snapshot = this.pendingSnapshot;
      this.pendingSnapshot = undefined;
      this.restore(snapshot);
    }
  }

  /**
   * @internal True when forgetting this breaker changes nothing a call would see but its window's
   * counts: it is closed and no call it admitted is in flight (an open, half-open or isolated circuit is
   * never forgotten, nor a call's outcome still to come).
   */
  atRest(): boolean {
    return this.currentState === 'closed' && this.inFlight === 0 && (this.link?.quiet() ?? true);
  }

  /** @internal a dropped partition stops listening to its fleet circuit. */
  dispose(): void {
    this.link?.dispose();
  }

  /** The current state; an open circuit whose wait is over still reads `open` until the next call. */
  get state(): CircuitState {
    if (this.pendingSnapshot !== undefined) this.adoptClock(systemClock);
    return this.currentState;
  }

  /** Listens to this breaker's transitions, whichever pipeline caused them. */
  on(listener: Listener): Unsubscribe {
    return this.events.on(listener);
  }

  // ---- admission and recording (the hot path) ----

  /** The permit of a call admitted while closed (no clock needed), or -1 when not closed. */
  closedPermit(): number {
    if (this.currentState !== 'closed') return -1;
    this.inFlight++;
    return this.generation;
  }

  /**
   * Admits a call at `now`: returns a permit (>= 0) to pass to the record methods, or -1 when the call
   * must be rejected (see {@link CircuitBreaker.retryAfter}).
   */
  tryEnter(now: number): number {
    const state = this.currentState;
    if (state === 'closed') {
      this.inFlight++;
      return this.generation;
    }
    if (state === 'open') {
      if (now - this.openedAt < this.openFor) return -1;
      // The fleet's circuit: one process across the fleet runs the trial (see enterShared).
      if (this.link?.fleetOpen === true) return this.link.mayAsk(now) ? ASK_STORE : -1;
      this.transition('halfOpen', now);
    } else if (state === 'isolated') {
      return -1;
    }
    if (this.trialsInFlight >= this.halfOpenMaxCalls) return -1;
    this.trialsInFlight++;
    this.inFlight++;
    return this.generation;
  }

  /**
   * @internal After `tryEnter` said {@link ASK_STORE}: asks the store for the fleet's trial slot and
   * admits the call as the trial when granted (or, while the store is unreachable, as a local trial).
   * `limit` is the trial's own time limit in ms (`Infinity` for none): how long the slot is held.
   */
  async enterShared(limit = Infinity): Promise<number> {
    const link = this.link!;
    const granted = await link.askTrial(limit);
    const now = this.now();
    if (this.currentState !== 'open' || !link.fleetOpen) {
      // The fleet's outcome arrived meanwhile.
      const permit = this.tryEnter(now);
      return permit === ASK_STORE ? -1 : permit;
    }
    if (granted === false) return -1;
    link.trialHeld = granted === true;
    link.fleetOpen = false;
    this.transition('halfOpen', now);
    this.trialsInFlight++;
    this.inFlight++;
    return this.generation;
  }

  /** @internal applies the fleet's state without telling the fleet again. */
  applyRemote(state: 'open' | 'closed' | 'isolated', retryAfter: number): void {
    const now = this.now();
    // Open already (this process's own message coming back, say): only the wait is the fleet's.
    if (state !== 'open' || this.currentState !== 'open') this.transition(state, now, REMOTE);
    if (state === 'open') this.openUntil(now, retryAfter);
  }

  /** Open with `remaining` ms to wait from `now` (at least `halfOpenAfter` in all). */
  private openUntil(now: number, remaining: number): void {
    this.openFor = Math.max(this.halfOpenAfter, remaining);
    this.openedAt = now - (this.openFor - remaining);
  }

  /** ms until a rejected call could be admitted (0 while half-open trials are busy). */
  retryAfter(now: number): number {
    if (this.currentState === 'isolated') return Infinity;
    if (this.currentState !== 'open') return 0;
    return Math.max(0, this.openedAt + this.openFor - now);
  }

  /**
   * The time an outcome is known, read once per record, or 0 when neither the window nor slow calls
   * need it (a count window without `slowCallDuration` reads no clock).
   */
  private outcomeTime(): number {
    return this.timed ? this.now() : 0;
  }

  /**
   * Records a success. `start` is the call's start time (read only for `slowCallDuration`); the sample
   * belongs to the window of the moment its outcome is known (resilience4j's `SlidingTimeWindowMetrics`).
   */
  recordSuccess(permit: number, start: number): void {
    this.inFlight--;
    if (permit !== this.generation) return;
    const now = this.outcomeTime();
    const outcome = now - start >= this.slowCallDuration ? SLOW : 0;
    if (this.currentState === 'halfOpen') return this.trialSucceeded(outcome, now);
    this.consecutive = 0;
    // Every sample is checked, a fast success too: the one that brings the window to `minimumCalls`
    // may find the failure rate already over the threshold (resilience4j checks on every outcome).
    // But a fast success on a full count window only replaces its oldest sample: the window's calls
    // stay, its failure and slow-call counts cannot rise, and the check after the previous sample
    // found them within the thresholds (the circuit is closed), so the check could not trip it.
    const quiet = outcome === 0 && this.filled === this.windowSize && !this.unchecked;
    this.add(outcome, now);
    this.link?.sample(outcome);
    if (!quiet) this.check();
  }

  /** A half-open trial succeeded: enough of them close the circuit, a slow one opens it again. */
  private trialSucceeded(outcome: number, now: number): void {
    this.trialsInFlight--;
    if (outcome === SLOW) return this.transition('open', now);
    if (++this.trialSuccesses >= this.halfOpenMaxCalls) this.transition('closed', now);
  }

  /** Records a failure (see {@link CircuitBreaker.recordSuccess}); `isFailure → false` ignores it. */
  recordFailure(permit: number, start: number, error: unknown): void {
    this.inFlight--;
    if (permit !== this.generation) return;
    let failure: boolean;
    try {
      failure = this.isFailure(error);
    } catch {
      failure = true;
    }
    if (!failure) return this.handBack(permit);
    if (this.currentState === 'halfOpen') {
      this.trialsInFlight--;
      this.hint = this.capHint(error);
      this.transition('open', this.now());
      this.hint = 0;
      return;
    }
    const now = this.outcomeTime();
    const outcome = now - start >= this.slowCallDuration ? FAILURE | SLOW : FAILURE;
    this.consecutive++;
    this.add(outcome, now);
    this.link?.sample(outcome);
    this.hint = this.capHint(error);
    this.check();
    this.hint = 0;
  }

  /** Gives a permit back without a sample (a local rejection or a caller abort after admission). */
  release(permit: number): void {
    if (permit < 0) return; // an admission that never happened (a store's late refusal)
    this.inFlight--;
    this.handBack(permit);
  }

  private handBack(permit: number): void {
    if (permit === this.generation && this.currentState === 'halfOpen') this.trialsInFlight--;
  }

  // ---- manual control ----

  /**
   * Opens the circuit until {@link CircuitBreaker.reset}, whatever happens. On an isolated breaker it
   * changes nothing and emits no event.
   */
  isolate(): void {
    this.transition('isolated', this.now(), MANUAL);
    this.link?.manual('isolated');
  }

  /**
   * Closes the circuit with a fresh window. On a closed breaker it only clears the window: no
   * `circuitClosed` event (nothing changed state).
   */
  reset(): void {
    this.transition('closed', this.now(), MANUAL);
    this.link?.manual('closed');
  }

  /** Counts in the current window and the state. */
  stats(): {
    state: CircuitState;
    calls: number;
    failures: number;
    slowCalls: number;
    failureRate: number;
    slowCallRate: number;
    consecutiveFailures: number;
    retryAfter: number;
  } {
    const now = this.now();
    if (this.windowType === 'time') this.rotate(now);
    return {
      state: this.currentState,
      calls: this.calls,
      failures: this.failures,
      slowCalls: this.slow,
      failureRate: this.calls === 0 ? 0 : this.failures / this.calls,
      slowCallRate: this.calls === 0 ? 0 : this.slow / this.calls,
      consecutiveFailures: this.consecutive,
      retryAfter: this.retryAfter(now),
    };
  }

  /** A JSON snapshot to carry the state across processes; pass it back as `initialState`. */
  toJSON(): CircuitBreakerSnapshot {
    const now = this.now();
    const base = {
      version: 1 as const,
      state: this.currentState,
      retryAfter: this.retryAfter(now),
      savedAt: Date.now(),
      consecutiveFailures: this.consecutive,
    };
    if (this.windowType === 'count') {
      const outcomes: number[] = [];
      const size = this.windowSize;
      for (let i = this.filled; i > 0; i--)
        outcomes.push(this.outcomes[(this.cursor - i + size) % size]!);
      return { ...base, outcomes };
    }
    const epoch = this.rotate(now);
    const buckets: [number, number, number][] = [];
    for (let i = TIME_BUCKETS - 1; i >= 0; i--) {
      const slot = (((epoch - i) % TIME_BUCKETS) + TIME_BUCKETS) % TIME_BUCKETS;
      buckets.push([this.bucketCalls[slot]!, this.bucketFailures[slot]!, this.bucketSlow[slot]!]);
    }
    return { ...base, buckets, bucketSize: this.bucketSize };
  }

  describe(): Record<string, unknown> {
    return {
      stage: 'circuitBreaker',
      name: this.name ?? 'none',
      failureRateThreshold: this.failureRateThreshold,
      minimumCalls: this.minimumCalls,
      window:
        this.windowType === 'count'
          ? { type: 'count', size: this.windowSize }
          : { type: 'time', duration: this.windowDuration },
      consecutiveFailures:
        this.consecutiveFailureLimit === Infinity ? 'none' : this.consecutiveFailureLimit,
      slowCallDuration: this.slowCallDuration === Infinity ? 'none' : this.slowCallDuration,
      slowCallRateThreshold: this.slowCallRateThreshold,
      halfOpenAfter: this.halfOpenAfter,
      halfOpenMaxCalls: this.halfOpenMaxCalls,
      maxRetryAfter: this.maxRetryAfter,
      isFailure: this.isFailure === CIRCUIT_BREAKER_DEFAULTS.isFailure ? 'default' : 'custom',
      ...(this.withStore ? { store: 'shared' } : {}),
    };
  }

  // ---- internals ----

  /** A failure's `retryAfter` hint, capped by `maxRetryAfter` (see {@link hintOf}). */
  private capHint(error: unknown): number {
    return Math.min(hintOf(error), this.maxRetryAfter);
  }

  private now(): number {
    return (this.clock ?? systemClock).now();
  }

  // Typed-array reads below use `!`: every index is in range by construction (`?? 0` would only add a
  // branch that can never run).
  private add(outcome: number, at: number): void {
    if (this.windowType === 'count') this.addCount(outcome);
    else this.addTimed(outcome, at);
  }

  /**
   * A count window's sample replaces the oldest once the window is full. Each window type has its own
   * small method: one `add` for both was too large for V8 to inline into the call's settlement.
   */
  private addCount(outcome: number): void {
    const size = this.windowSize;
    const cursor = this.cursor;
    if (this.filled === size) {
      const old = this.outcomes[cursor]!;
      // The common case, a success replacing a success, changes no count.
      if (old !== outcome) {
        this.failures += (outcome & FAILURE) - (old & FAILURE);
        this.slow += ((outcome & SLOW) - (old & SLOW)) >> 1;
        this.outcomes[cursor] = outcome;
      }
    } else {
      this.filled++;
      this.calls++;
      this.failures += outcome & FAILURE;
      this.slow += (outcome & SLOW) >> 1;
      this.outcomes[cursor] = outcome;
    }
    this.cursor = cursor + 1 === size ? 0 : cursor + 1;
  }

  private addTimed(outcome: number, at: number): void {
    const slot = this.rotate(at);
    const failure = outcome & FAILURE;
    const slow = (outcome & SLOW) >> 1;
    this.bucketCalls[slot] = this.bucketCalls[slot]! + 1;
    this.bucketFailures[slot] = this.bucketFailures[slot]! + failure;
    this.bucketSlow[slot] = this.bucketSlow[slot]! + slow;
    this.calls++;
    this.failures += failure;
    this.slow += slow;
  }

  /** Advances the time window to `now` (lazily, on access), dropping expired buckets; returns the slot. */
  private rotate(now: number): number {
    const epoch = Math.floor(now / this.bucketSize);
    if (epoch > this.epoch) {
      const steps = this.epoch < 0 ? TIME_BUCKETS : Math.min(TIME_BUCKETS, epoch - this.epoch);
      for (let i = 1; i <= steps; i++) {
        const slot = (((this.epoch + i) % TIME_BUCKETS) + TIME_BUCKETS) % TIME_BUCKETS;
        this.calls -= this.bucketCalls[slot]!;
        this.failures -= this.bucketFailures[slot]!;
        this.slow -= this.bucketSlow[slot]!;
        this.bucketCalls[slot] = 0;
        this.bucketFailures[slot] = 0;
        this.bucketSlow[slot] = 0;
      }
      this.epoch = epoch;
    }
    // A restored sample, or a clock that went back, lands in the current bucket.
    return ((this.epoch % TIME_BUCKETS) + TIME_BUCKETS) % TIME_BUCKETS;
  }

  /** Opens the circuit when a limit is reached; the window was just rotated to now by `add`. */
  private check(): void {
    this.unchecked = false;
    if (this.consecutive >= this.consecutiveFailureLimit)
      return this.transition('open', this.now());
    if (this.calls < this.minimumCalls) return;
    if (
      this.failures / this.calls >= this.failureRateThreshold ||
      (this.slowCallDuration !== Infinity && this.slow / this.calls >= this.slowCallRateThreshold)
    ) {
      this.transition('open', this.now());
    }
  }

  private clearWindow(): void {
    this.outcomes.fill(0);
    this.cursor = 0;
    this.filled = 0;
    this.bucketCalls.fill(0);
    this.bucketFailures.fill(0);
    this.bucketSlow.fill(0);
    this.calls = 0;
    this.failures = 0;
    this.slow = 0;
    this.consecutive = 0;
  }

  private transition(state: CircuitState, now: number, cause = LOCAL): void {
    const from = this.currentState;
    const failureRate = this.calls === 0 ? 0 : this.failures / this.calls;
    const slowCallRate = this.calls === 0 ? 0 : this.slow / this.calls;
    const consecutive = this.consecutive;
    this.currentState = state;
    this.generation++;
    this.trialsInFlight = 0;
    this.trialSuccesses = 0;
    if (state === 'open') {
      this.openedAt = now;
      this.openFor = Math.max(this.halfOpenAfter, this.hint);
    }
    if (state === 'closed') this.clearWindow();
    // `isolate()` on an isolated breaker, `reset()` on a closed one: no transition to tell anyone of.
    if (from === state) return;
    if (cause === LOCAL) this.link?.transitioned(from, state);
    const events = this.events;
    if (!events.listening) return;
    const partition = this.partition;
    if (state === 'open') {
      const event = {
        type: 'circuitOpened' as const,
        failureRate,
        slowCallRate,
        consecutiveFailures: consecutive,
        retryAfter: this.openFor,
      };
      events.emit(keyed(event, partition));
    } else if (state === 'halfOpen') events.emit(keyed({ type: 'circuitHalfOpened' }, partition));
    else if (state === 'closed') events.emit(keyed({ type: 'circuitClosed' }, partition));
    else events.emit(keyed({ type: 'circuitIsolated' }, partition));
  }

  private restore(s: CircuitBreakerSnapshot): void {
    const now = this.now();
    const elapsed = Math.max(0, Date.now() - s.savedAt);
    this.clearWindow();
    if (this.windowType === 'count' && s.outcomes !== undefined) {
      for (const outcome of s.outcomes.slice(-this.windowSize)) this.add(outcome & 3, now);
    } else if (
      this.windowType === 'time' &&
      s.buckets !== undefined &&
      s.bucketSize !== undefined
    ) {
      this.rotate(now);
      const shift = Math.floor(elapsed / s.bucketSize);
      s.buckets.forEach(([calls, failures, slow], i) => {
        const age = s.buckets!.length - 1 - i + shift; // buckets ago
        if (age >= TIME_BUCKETS) return;
        const slot = (((this.epoch - age) % TIME_BUCKETS) + TIME_BUCKETS) % TIME_BUCKETS;
        this.bucketCalls[slot] = this.bucketCalls[slot]! + calls;
        this.bucketFailures[slot] = this.bucketFailures[slot]! + failures;
        this.bucketSlow[slot] = this.bucketSlow[slot]! + slow;
        this.calls += calls;
        this.failures += failures;
        this.slow += slow;
      });
    }
    this.consecutive = s.consecutiveFailures;
    this.unchecked = true;
    if (s.state === 'open' || s.state === 'halfOpen') {
      // A half-open snapshot restarts as open with no wait left: the next call is a trial.
      // Capped as a hint is: a snapshot is input from outside the process.
      const remaining =
        s.state === 'open'
          ? Math.min(
              Math.max(0, s.retryAfter - elapsed),
              Math.max(this.halfOpenAfter, this.maxRetryAfter),
            )
          : 0;
      this.currentState = 'open';
      this.openUntil(now, remaining);
    } else {
      this.currentState = s.state;
    }
    this.generation++;
    if (this.events.listening)
      this.events.emit({ type: 'circuitStateRestored', state: this.currentState });
  }
}

export function isClock(value: unknown): value is Clock {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Clock).now === 'function' &&
    typeof (value as Clock).setTimer === 'function' &&
    typeof (value as Clock).clearTimer === 'function'
  );
}

const CLOCK_METHODS = ['now', 'setTimer', 'clearTimer'] as const;

/** @internal reports a value that is not a {@link Clock}, naming the methods it lacks. */
export function checkClock(problems: Problems, path: string, value: unknown): void {
  if (isClock(value)) return;
  const missing =
    typeof value === 'object' && value !== null
      ? CLOCK_METHODS.filter((m) => typeof (value as Record<string, unknown>)[m] !== 'function')
      : [];
  const detail = missing.length === 0 ? '' : ` (${missing.join(', ')} not a function)`;
  problems.add(path, value, `a Clock { now, setTimer, clearTimer }${detail}`);
}

const STATES: readonly unknown[] = ['closed', 'open', 'halfOpen', 'isolated'];

/** A count that must be present: an integer >= 0. */
function count(problems: Problems, path: string, value: unknown): void {
  if (value === undefined) problems.add(path, value, 'an integer >= 0');
  else problems.number(path, value, 0, { min: 0, integer: true });
}

/**
 * Checks a snapshot field by field (a hand-edited or truncated one names its bad field), so that a
 * restored breaker never runs on a bogus state, a fractional count or a window it cannot hold.
 */
function checkSnapshot(problems: Problems, path: string, value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.add(path, value, 'a snapshot from circuitBreaker.toJSON()');
    return false;
  }
  const before = problems.messages.length;
  const s = value as Record<string, unknown>;
  if (s.version !== 1) problems.add(`${path}.version`, s.version, '1');
  if (!STATES.includes(s.state))
    problems.add(`${path}.state`, s.state, "'closed', 'open', 'halfOpen' or 'isolated'");
  // JSON writes Infinity (an isolated breaker's wait) as null.
  if (s.retryAfter !== null || s.state !== 'isolated') {
    if (s.retryAfter === undefined)
      problems.add(`${path}.retryAfter`, s.retryAfter, 'a number >= 0');
    else problems.number(`${path}.retryAfter`, s.retryAfter, 0, { min: 0, infinity: true });
  }
  if (typeof s.savedAt !== 'number' || !Number.isFinite(s.savedAt))
    problems.add(`${path}.savedAt`, s.savedAt, 'a time from Date.now()');
  count(problems, `${path}.consecutiveFailures`, s.consecutiveFailures);
  const outcomes = s.outcomes;
  if (outcomes !== undefined) {
    if (!Array.isArray(outcomes)) problems.add(`${path}.outcomes`, outcomes, 'an array');
    else {
      const bad = outcomes.findIndex((o) => o !== 0 && o !== 1 && o !== 2 && o !== 3);
      if (bad >= 0) problems.add(`${path}.outcomes[${bad}]`, outcomes[bad], '0, 1, 2 or 3');
    }
  }
  const buckets = s.buckets;
  if (buckets !== undefined) {
    if (!Array.isArray(buckets)) problems.add(`${path}.buckets`, buckets, 'an array');
    else {
      buckets.forEach((bucket: unknown, i) => {
        const at = `${path}.buckets[${i}]`;
        if (!Array.isArray(bucket) || bucket.length !== 3) {
          problems.add(at, bucket, '[calls, failures, slow]');
          return;
        }
        const [calls, failures, slow] = bucket as unknown[];
        const n = problems.messages.length;
        count(problems, `${at}[0]`, calls);
        count(problems, `${at}[1]`, failures);
        count(problems, `${at}[2]`, slow);
        if (
          problems.messages.length === n &&
          ((failures as number) > (calls as number) || (slow as number) > (calls as number))
        )
          problems.add(at, bucket, 'failures and slow calls no more than calls');
      });
    }
    if (s.bucketSize === undefined)
      problems.add(`${path}.bucketSize`, s.bucketSize, 'a number > 0');
    else problems.number(`${path}.bucketSize`, s.bucketSize, 0, { min: 0, exclusiveMin: true });
  }
  return problems.messages.length === before;
}

/**
 * Makes a standalone {@link CircuitBreaker} to share between functions.
 *
 * @example
 * const breaker = circuitBreaker({ consecutiveFailures: 5, halfOpenAfter: 10_000 });
 */
export function circuitBreaker(options: CircuitBreakerOptions = {}): CircuitBreaker {
  return new CircuitBreaker(options);
}

/**
 * A failure's `retryAfter` hint in ms (an HTTP 429 or 503 with `Retry-After`, as `resilientFetch`
 * raises): the circuit then stays open that long, `halfOpenAfter` at least and `maxRetryAfter` at most.
 * 0 when there is none or it is negative or NaN; `Infinity` is above any cap.
 */
function hintOf(error: unknown): number {
  if (typeof error !== 'object' || error === null) return 0;
  const hint = (error as { retryAfter?: unknown }).retryAfter;
  return typeof hint === 'number' && hint > 0 ? hint : 0;
}
