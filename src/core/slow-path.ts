/* eslint-disable no-restricted-syntax -- slow path: runs only when a call fails, waits or carries a signal */
import { clearTimer, setTimer, type Clock } from '../clock.js';
import { keyed, type Emitter } from '../events.js';
import type { ResolvedOptions } from '../options.js';
import type { Bulkhead, BulkheadWaiter } from '../policies/bulkhead.js';
import type { RateLimiter } from '../policies/rate-limiter.js';
import { SLOT_FULL, SLOT_LOCAL, type SlotResult } from '../policies/shared-bulkhead.js';
import { ASK_STORE, type CircuitBreaker } from '../policies/circuit-breaker.js';
import { takeRouteError, type Partitions } from '../policies/partition.js';
import type { ResolvedHedge } from '../policies/hedge.js';
import type { ResolvedLatencyTimeout } from '../policies/timeout.js';
import { Attempt } from './attempt.js';
import { callWith, run, toPromise, type AnyFunction, type Task } from './call.js';
import { LatencyWindow } from './latency.js';
import { Stages } from './stages.js';

/**
 * The slow path: the only async code of the pipeline. The retry loop, backoff sleeps, rate-limiter and
 * bulkhead waits, the caller's abort, and the fallback. A call enters it only when its first attempt
 * failed and is retried, when it must wait, or when it carries a signal; the fast path (fast-path.ts)
 * hands it what it knows so far.
 */

/**
 * Tasks that must not be hedged (a request `resilientFetch` must not repeat): their calls run one attempt
 * at a time even when the pipeline hedges.
 */
const unhedged = new WeakSet<Task>();

/** @internal marks `task` as work that is never hedged. */
export function doNotHedge(task: Task): void {
  unhedged.add(task);
}

/** What the slow path is handed from the fast path: nothing yet, an error, or a result. */
export const NOTHING = 0;
export const ERROR = 1;
export const RESULT = 2;

/**
 * The calls waiting on each caller signal. A signal gets one 'abort' listener however many calls watch
 * it: a long-lived signal (shutdown) shared by more than 10 calls in flight would otherwise make Node log
 * a MaxListenersExceededWarning. The listener is removed when the last of those calls ends.
 */
const watching = new WeakMap<AbortSignal, Set<Flow>>();

function abortFlows(event: Event): void {
  const signal = event.target as AbortSignal;
  const flows = watching.get(signal);
  if (flows === undefined) return;
  watching.delete(signal);
  signal.removeEventListener('abort', abortFlows);
  for (const flow of flows) flow.abort(signal.reason);
}

/** The slow path's per-call state: allocated only when a call fails, waits or carries a signal. */
export class Flow {
  deadline: number;
  aborted = false;
  reason: unknown = undefined;
  /** The abort handler of whatever the call waits on now. */
  onAbort: ((reason: unknown) => void) | undefined = undefined;
  /** Whether chaos applies to this call (`chaos.enabled`, read once per call). */
  chaos = false;
  /** The call's partition keys, for each partitioned stage (see SlowPath.route). */
  breakerKey: string | undefined = undefined;
  limiterKey: string | undefined = undefined;
  bulkheadKey: string | undefined = undefined;
  private readonly signals: AbortSignal[] = [];

  constructor(
    readonly thisArg: unknown,
    readonly args: unknown[],
    readonly task: Task | undefined,
    readonly start: number,
    total: number,
  ) {
    this.deadline = start + total;
  }

  /** Whether a caller's signal can abort this call (or already did). */
  get abortable(): boolean {
    return this.signals.length > 0 || this.aborted;
  }

  /** Listens to the caller's signals for the whole call; {@link Flow.dispose} removes the listeners. */
  watch(signal: AbortSignal | undefined): void {
    if (signal === undefined) return;
    if (signal.aborted) return this.abort(signal.reason);
    let flows = watching.get(signal);
    if (flows === undefined) {
      flows = new Set();
      watching.set(signal, flows);
      signal.addEventListener('abort', abortFlows);
    }
    flows.add(this);
    this.signals.push(signal);
  }

  /**
   * Sets the abort handler of the wait that begins now. When the call was aborted already (between two
   * waits, or by `fn` itself while it started), the handler runs at once: a wait never outlives an abort.
   */
  whenAborted(handler: (reason: unknown) => void): void {
    if (this.aborted) handler(this.reason);
    else this.onAbort = handler;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const onAbort = this.onAbort;
    this.onAbort = undefined;
    onAbort?.(reason);
  }

  dispose(): void {
    for (const signal of this.signals) {
      const flows = watching.get(signal);
      if (flows === undefined) continue;
      flows.delete(this);
      if (flows.size === 0) {
        watching.delete(signal);
        signal.removeEventListener('abort', abortFlows);
      }
    }
    this.signals.length = 0;
    this.onAbort = undefined;
  }
}

/**
 * The slow-path layer of the compiled pipeline: the stages' settings the slow path reads, and the async
 * methods. {@link FastPath} builds on it; {@link Pipeline} (the cache stage) on that.
 */
export abstract class SlowPath extends Stages {
  readonly attemptTimeout: number;
  readonly totalTimeout: number;
  readonly bulkhead: Bulkhead | undefined;
  readonly signal: AbortSignal | undefined;
  readonly hedge: ResolvedHedge | undefined;
  /** A latency-percentile attempt timeout. */
  readonly latencyTimeout: ResolvedLatencyTimeout | undefined;
  /** Recent successful attempt latencies, kept when a hedge delay or a timeout follows them. */
  readonly latency: LatencyWindow | undefined;
  /**
   * True when every call takes the slow path: a long-lived signal, hedging, a latency timeout or an
   * adaptive bulkhead (which needs each call's duration).
   */
  protected readonly alwaysSlow: boolean;
  /** True when this pipeline applies the fallback itself (no cache stage in front of it). */
  protected readonly fallbackHere: boolean;
  private readonly releaseSlot: () => void;

  constructor(
    readonly fn: AnyFunction | undefined,
    options: ResolvedOptions,
    parent: Emitter | undefined,
  ) {
    super(options, parent);
    this.attemptTimeout = options.timeout?.attempt ?? Infinity;
    this.totalTimeout = options.timeout?.total ?? Infinity;
    this.bulkhead = options.bulkhead;
    this.signal = options.signal;
    this.hedge = options.hedge;
    this.latencyTimeout = options.timeout?.latency;
    this.latency =
      this.latencyTimeout !== undefined ||
      (this.hedge !== undefined && Number.isNaN(this.hedge.delay))
        ? new LatencyWindow()
        : undefined;
    this.alwaysSlow =
      this.signal !== undefined ||
      this.hedge !== undefined ||
      this.latencyTimeout !== undefined ||
      this.bulkhead?.adaptive !== undefined ||
      // A bulkhead with a store answers on the slow path (one round trip to the store).
      this.bulkhead?.link !== undefined;
    // The fallback runs here only when there is no cache: with a cache, the cache stage sees the failure
    // first (to serve a stale value) and applies the fallback itself. `execute` (no `fn`) skips the
    // cache stage, so its pipeline always applies the fallback here.
    this.fallbackHere =
      this.fallback !== undefined && (this.cache === undefined || fn === undefined);
    const bulkhead = this.bulkhead;
    this.releaseSlot = () => bulkhead?.release();
  }

  /**
   * True when `error` is the pipeline's own `signal` aborting (a shutdown): an abort is never turned
   * into a value, neither a stale one nor a fallback.
   */
  protected isAbort(error: unknown): boolean {
    return this.signal?.aborted === true && error === this.signal.reason;
  }

  protected startFlow(
    thisArg: unknown,
    args: unknown[],
    task: Task | undefined,
    now: number,
    signal: AbortSignal | undefined,
    chaos: boolean,
  ): Promise<unknown> {
    const flow = new Flow(thisArg, args, task, now, this.totalTimeout);
    flow.chaos = chaos;
    if (this.partitioned) {
      try {
        this.route(flow);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    flow.watch(this.signal);
    flow.watch(signal);
    return this.continueFlow(flow, NOTHING, undefined, false);
  }

  /**
   * Computes the call's partition keys once for its flow (the fast path computed them for its first
   * attempt; a call that waits or retries runs the key functions once more here). Each attempt then
   * looks its partitions up: one that was evicted meanwhile (at rest) is made again.
   */
  protected route(flow: Flow): void {
    if (this.breakers !== undefined) flow.breakerKey = flowKey(this.breakers, flow);
    if (this.limiters !== undefined) flow.limiterKey = flowKey(this.limiters, flow);
    if (this.bulkheads !== undefined) flow.bulkheadKey = flowKey(this.bulkheads, flow);
  }

  protected async continueFlow(
    flow: Flow,
    pending: number,
    value: unknown,
    judged: boolean,
  ): Promise<unknown> {
    try {
      return await this.retryLoop(flow, pending, value, judged);
    } catch (error) {
      if (!this.fallbackHere || (flow.aborted && error === flow.reason)) throw error;
      return this.applyFallback(error, flow.thisArg, flow.args);
    } finally {
      flow.dispose();
    }
  }

  protected applyFallback(error: unknown, thisArg: unknown, args: unknown[]): Promise<unknown> {
    const fallback = this.fallback!;
    if (this.listening()) this.emit({ type: 'fallbackUsed', error });
    if (fallback.fn === undefined) return Promise.resolve(fallback.value);
    try {
      return toPromise(fallback.fn.call(thisArg, error, ...args));
    } catch (fallbackError) {
      return Promise.reject(fallbackError);
    }
  }

  /**
   * The retry loop. `pending` is an outcome already known (the first attempt's, from the fast path);
   * `judged` says the retry predicates already ran on it and said retry.
   */
  private async retryLoop(
    flow: Flow,
    pending: number,
    value: unknown,
    judged: boolean,
  ): Promise<unknown> {
    const retry = this.retry;
    let attempt = 1;
    let delay = 0;
    for (;;) {
      if (pending === NOTHING) {
        if (flow.aborted) throw flow.reason;
        try {
          value = await (this.hedge === undefined ||
          (flow.task !== undefined && unhedged.has(flow.task))
            ? this.attemptSlow(flow, attempt)
            : this.hedged(flow, attempt, this.hedge));
          pending = RESULT;
        } catch (error) {
          value = error;
          pending = ERROR;
        }
      }
      if (pending === ERROR && flow.aborted && value === flow.reason) throw value;
      if (
        !judged &&
        !(pending === ERROR
          ? this.retriesError(value, attempt)
          : this.retriesResult(value, attempt))
      ) {
        if (pending === RESULT) return value;
        throw value;
      }
      judged = false;
      const error = pending === ERROR ? value : undefined;
      const now = this.clock.now();
      const hinted = pending === ERROR ? retryAfterOf(value) : undefined;
      // A hint is external input (a server's Retry-After): above the cap it is not waited for, and
      // the call fails with that error before it costs the budget anything.
      if (hinted !== undefined && hinted > retry!.maxRetryAfter) {
        if (this.listening()) {
          const remaining = retry!.maxRetryAfter;
          this.emit({ type: 'retryAbandoned', attempt, delay: hinted, remaining, error });
        }
        throw value;
      }
      if (retry?.budget !== undefined && !retry.budget.tryRetry(now)) {
        if (this.listening()) this.emit({ type: 'retryBudgetExhausted', attempt, error });
        if (pending === RESULT) return value;
        throw value;
      }
      delay = hinted ?? retry!.backoff(attempt, delay, this.random);
      // NaN or a negative delay retries at once; Infinity means never, so the retry is abandoned below.
      if (!(delay >= 0)) delay = 0;
      const remaining = flow.deadline - now;
      if (delay >= remaining) {
        if (this.listening())
          this.emit({ type: 'retryAbandoned', attempt, delay, remaining, error });
        if (pending === RESULT) return value;
        throw value;
      }
      if (this.listening()) {
        this.emit(
          pending === RESULT
            ? { type: 'retryResultScheduled', attempt, delay, result: value }
            : { type: 'retryScheduled', attempt, delay, error },
        );
      }
      if (delay > 0) await this.sleep(flow, delay);
      attempt++;
      pending = NOTHING;
    }
  }

  /** One attempt on the slow path: admission (maybe waiting), then `fn` under its timeout. */
  private async attemptSlow(flow: Flow, attempt: number): Promise<unknown> {
    let now = this.clock.now();
    const breaker =
      flow.breakerKey === undefined ? this.breaker : this.breakers!.get(flow.breakerKey, now);
    let permit = 0;
    let slot: SlotResult = SLOT_LOCAL;
    if (breaker !== undefined) {
      permit = breaker.tryEnter(now);
      if (permit === ASK_STORE) {
        const limit = Math.min(this.currentAttemptTimeout(), flow.deadline - now);
        const asked = breaker.enterShared(limit);
        permit = await this.storeWait(flow, asked, (late) => breaker.release(late));
        now = this.clock.now();
      }
      if (permit < 0)
        throw this.rejection('circuitOpen', breaker.retryAfter(now), breaker.partition);
    }
    // A rate-limit token taken and not yet used: a local rejection after it (bulkhead full, queue
    // timeout, abort) gives it back, as the fast path does.
    let token = false;
    let reservation = 0;
    let bulkhead = this.bulkhead;
    const limiter =
      flow.limiterKey === undefined ? this.limiter : this.limiters!.get(flow.limiterKey, now);
    try {
      if (limiter !== undefined) {
        const remaining = flow.deadline - now;
        const maxWait = Math.min(limiter.maxWait, remaining);
        const wait =
          limiter.shared === undefined
            ? limiter.reserve(now, maxWait)
            : await this.storeWait(flow, limiter.reserveShared(now, Math.max(0, maxWait)));
        if (wait < 0)
          throw this.rejection('rateLimited', limiter.retryAfter(now), limiter.partition);
        if (limiter.shared !== undefined) now = this.clock.now();
        reservation = limiter.reservationEnd;
        if (wait > 0) {
          if (this.listening())
            this.emit(keyed({ type: 'rateLimitWaited', wait }, limiter.partition));
          try {
            await this.sleep(flow, wait);
          } catch (error) {
            if (limiter.shared === undefined && limiter.reservationEnd === reservation)
              limiter.refund();
            throw error;
          }
          now = this.clock.now();
        }
        token = true;
      }
      if (flow.bulkheadKey !== undefined) bulkhead = this.bulkheads!.get(flow.bulkheadKey, now);
      if (bulkhead?.link !== undefined) {
        slot = await this.fleetSlot(flow, bulkhead);
        now = this.clock.now();
      }
      // Without a store, or with one that is unavailable (`onStoreError: 'local'`): this process's slots.
      if (bulkhead !== undefined && slot === SLOT_LOCAL && !bulkhead.tryAcquire()) {
        await this.queue(flow, bulkhead);
        now = this.clock.now();
      }
    } catch (error) {
      if (token) this.refundToken(limiter!, reservation);
      breaker?.release(permit);
      throw error;
    }
    if (flow.aborted) {
      // Aborted after the bulkhead slot was taken or handed over (before this resumed): give it back.
      this.releaseSlotOf(slot, bulkhead);
      if (token) this.refundToken(limiter!, reservation);
      breaker?.release(permit);
      throw flow.reason;
    }
    return this.runAttempt(flow, attempt, permit, now, slot, breaker, bulkhead);
  }

  /**
   * Gives back a rate-limit token that no call used: a shared one to the lease, a local one when no
   * reservation came after it (the limiter's time then still ends at `reservation`).
   */
  private refundToken(limiter: RateLimiter, reservation: number): void {
    if (limiter.shared !== undefined || limiter.reservationEnd === reservation) limiter.refund();
  }

  /** Gives back a bulkhead slot: a fleet slot's token, a local slot, or none (SLOT_NONE). */
  private releaseSlotOf(slot: SlotResult, bulkhead: Bulkhead | undefined): void {
    if (bulkhead === undefined) return;
    if (typeof slot === 'string') bulkhead.link!.release(slot);
    else if (slot === SLOT_LOCAL) bulkhead.release();
  }

  /**
   * Takes a slot of the fleet's bulkhead, waiting in the fleet's FIFO queue at most `queueTimeout` (or
   * what is left of the call's deadline); rejects like the local queue, and with the caller's abort.
   */
  private fleetSlot(flow: Flow, bulkhead: Bulkhead): Promise<SlotResult> {
    const link = bulkhead.link!;
    const remaining = flow.deadline - this.clock.now();
    const wait = link.acquire(Math.max(0, Math.min(bulkhead.queueTimeout, remaining)), this.clock);
    return new Promise((resolve, reject) => {
      let aborted = false;
      flow.whenAborted((reason) => {
        aborted = true;
        link.cancel(wait);
        reject(reason);
      });
      void wait.promise.then((result) => {
        if (aborted) {
          // The slot arrived as the caller gave up: hand it back.
          if (typeof result === 'string') link.release(result);
          return;
        }
        flow.onAbort = undefined;
        if (typeof result === 'string' || result >= 0) return resolve(result);
        if (result === SLOT_FULL) {
          bulkhead.countRejection();
          reject(this.rejection('bulkheadFull', 0, bulkhead.partition));
        } else if (bulkhead.queueTimeout <= remaining) {
          bulkhead.countRejection();
          reject(this.rejection('bulkheadQueueTimeout', 0, bulkhead.partition));
        } else {
          reject(this.timeoutError(this.totalTimeout, 'total'));
        }
      });
    });
  }

  /** Runs `fn` (or a fault or result chaos puts in its place) for one attempt of `flow`. */
  private runFlow(flow: Flow, context: Attempt | undefined, attempt: number): Promise<unknown> {
    const args = flow.args;
    const argc = args.length;
    const rest = argc > 4 ? args : undefined;
    return flow.chaos
      ? this.inject(
          flow.thisArg,
          argc,
          args[0],
          args[1],
          args[2],
          args[3],
          rest,
          flow.task,
          context,
          attempt,
        )
      : run(
          this.fn,
          flow.thisArg,
          argc,
          args[0],
          args[1],
          args[2],
          args[3],
          rest,
          flow.task,
          context,
        );
  }

  /**
   * One attempt of a call chaos applies to: a fault (`fn` not called), else a result (`fn` not called),
   * else `fn` itself. Each configured kind draws one number from `random`, so a seeded run repeats.
   */
  protected inject(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
    task: Task | undefined,
    context: Attempt | undefined,
    attempt: number,
  ): Promise<unknown> {
    const chaos = this.chaos!;
    const fault = chaos.fault;
    if (fault !== undefined && this.random() < fault.rate) {
      let error: unknown = fault.error;
      if (fault.generated) {
        try {
          error = callWith(fault.error as AnyFunction, thisArg, argc, a0, a1, a2, a3, rest);
        } catch (thrown) {
          error = thrown;
        }
      }
      if (this.listening()) this.emit({ type: 'chaosInjected', kind: 'fault', attempt, error });
      return Promise.reject(error);
    }
    const result = chaos.result;
    if (result !== undefined && this.random() < result.rate) {
      const value = result.value;
      if (this.listening()) this.emit({ type: 'chaosInjected', kind: 'result', attempt, value });
      return Promise.resolve(value);
    }
    return run(this.fn, thisArg, argc, a0, a1, a2, a3, rest, task, context);
  }

  /** Runs `fn` once, racing its attempt timeout (or the call's deadline) and the caller's abort. */
  private runAttempt(
    flow: Flow,
    attempt: number,
    permit: number,
    start: number,
    slot: SlotResult,
    breaker: CircuitBreaker | undefined,
    bulkhead: Bulkhead | undefined,
  ): Promise<unknown> {
    const context = flow.task === undefined ? undefined : new Attempt(attempt);
    // A caller abort while `fn` still runs synchronously must reach its signal at once: until the
    // handler below takes over (it runs at once if the call was aborted meanwhile), the abort only
    // aborts the attempt's signal.
    if (context !== undefined) flow.onAbort = (reason) => context.abort(reason);
    // Injected latency is part of the attempt: its timeout counts the wait, and a timeout or an abort
    // ends the wait at once (its timer cleared, `fn` never called).
    const injected = flow.chaos ? this.chaos!.latency : undefined;
    let wait: InjectedWait | undefined;
    let promise: Promise<unknown>;
    if (injected !== undefined && this.random() < injected.rate) {
      const delay = injected.delay;
      if (this.listening()) this.emit({ type: 'chaosInjected', kind: 'latency', attempt, delay });
      wait = new InjectedWait(this.clock, delay);
      promise = wait.promise.then(() => this.runFlow(flow, context, attempt));
    } else promise = this.runFlow(flow, context, attempt);
    const remaining = flow.deadline - start;
    const attemptTimeout = this.currentAttemptTimeout();
    const limit = Math.min(attemptTimeout, remaining);
    const scope = attemptTimeout <= remaining ? 'attempt' : 'total';
    const latency = this.latency;
    let timedOut = false;
    if (bulkhead?.adaptive !== undefined) {
      // The adaptive limit learns from how long `fn` really took, a timed-out call included.
      const complete = (): void => bulkhead.complete(start, this.clock.now(), timedOut);
      promise.then(complete, complete);
    } else if (typeof slot === 'string') {
      // A fleet slot is released by its token (slow path only: a closure per call is fine here).
      const link = bulkhead!.link!;
      const release = (): void => link.release(slot);
      promise.then(release, release);
    } else if (bulkhead !== undefined && slot === SLOT_LOCAL) {
      if (bulkhead === this.bulkhead) promise.then(this.releaseSlot, this.releaseSlot);
      else {
        const release = (): void => bulkhead.release();
        promise.then(release, release);
      }
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      let timer: unknown = undefined;
      const finish = (): boolean => {
        if (settled) return false;
        settled = true;
        if (timer !== undefined) clearTimer(this.clock, timer);
        flow.onAbort = undefined;
        return true;
      };
      if (limit !== Infinity) {
        timer = setTimer(
          this.clock,
          () => {
            timer = undefined;
            if (!finish()) return;
            timedOut = true;
            // A latency timeout counts a timed-out attempt as a sample at its limit: a downstream that
            // slows down as a whole raises the timeout instead of failing every call.
            if (scope === 'attempt' && this.latencyTimeout !== undefined)
              latency!.recordAtLeast(limit);
            const error = this.timeoutError(limit, scope);
            context?.abort(error);
            wait?.cancel(error);
            breaker?.recordFailure(permit, start, error);
            reject(error);
          },
          Math.max(0, limit),
        );
      }
      flow.whenAborted((reason) => {
        if (!finish()) return;
        context?.abort(reason);
        wait?.cancel(reason);
        breaker?.release(permit);
        reject(reason);
      });
      promise.then(
        (value) => {
          if (!finish()) return;
          breaker?.recordSuccess(permit, start);
          latency?.record(this.clock.now() - start);
          resolve(value);
        },
        (error: unknown) => {
          if (!finish()) return;
          breaker?.recordFailure(permit, start, error);
          reject(error);
        },
      );
    });
  }

  /**
   * Waits for a store's answer (Redis), or rejects at once with the caller's abort reason. An answer
   * that lands after the abort goes to `abandoned` (a breaker permit is handed back); the policy has
   * recorded the store's health either way.
   */
  private storeWait<T>(flow: Flow, answer: Promise<T>, abandoned?: (late: T) => void): Promise<T> {
    if (!flow.abortable) return answer;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      answer.then(
        (value) => {
          if (done) {
            abandoned?.(value);
            return;
          }
          done = true;
          flow.onAbort = undefined;
          resolve(value);
        },
        (error: unknown) => {
          if (done) return;
          done = true;
          flow.onAbort = undefined;
          reject(error);
        },
      );
      flow.whenAborted((reason) => {
        if (done) return;
        done = true;
        reject(reason);
      });
    });
  }

  /** The attempt timeout of an attempt that starts now: fixed, or following the observed latency. */
  protected currentAttemptTimeout(): number {
    const l = this.latencyTimeout;
    if (l === undefined) return this.attemptTimeout;
    const p = this.latency!.percentile(l.percentile);
    // Rounded up: host timers count whole ms (Node truncates 4.3 to 4), and a limit below the percentile
    // would cut calls the percentile says are normal.
    return Number.isNaN(p) ? l.max : Math.min(l.max, Math.max(l.min, Math.ceil(p * l.multiplier)));
  }

  /** How long a hedged attempt runs alone before the next one starts. */
  private hedgeDelay(hedge: ResolvedHedge): number {
    if (!Number.isNaN(hedge.delay)) return hedge.delay;
    const p = this.latency!.percentile(hedge.percentile);
    // Rounded up, as the attempt timeout: a timer truncated below the percentile (4.3 → 4 ms) would
    // hedge every call that takes 4.x ms, a third of them in bench:tail.
    return Number.isNaN(p) ? hedge.max : Math.min(hedge.max, Math.max(hedge.min, Math.ceil(p)));
  }

  /**
   * One retry attempt as a race of hedged attempts: the first starts now; the next after the hedge delay,
   * or at once when every running attempt failed. The first success wins and the others are aborted;
   * when every attempt failed, the last failure is the outcome.
   */
  private hedged(flow: Flow, attempt: number, hedge: ResolvedHedge): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const attempts: Flow[] = [];
      let failed = 0;
      let settled = false;
      let exhausted = false;
      let lastError: unknown = undefined;
      let timer: unknown = undefined;
      const stopTimer = (): void => {
        if (timer === undefined) return;
        this.clock.clearTimer(timer);
        timer = undefined;
      };
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        stopTimer();
        flow.onAbort = undefined;
        return true;
      };
      const abortOthers = (winner: Flow | undefined, reason: unknown): void => {
        for (const other of attempts) if (other !== winner) other.abort(reason);
      };
      /** Starts the next attempt; false when none may start (limit, deadline or budget). */
      const launch = (reason: 'slow' | 'failed'): boolean => {
        const index = attempts.length;
        if (index > hedge.maxHedgedAttempts) return false;
        if (index > 0) {
          const now = this.clock.now();
          if (now >= flow.deadline) return false;
          const budget = this.retry?.budget;
          if (budget !== undefined && !budget.tryRetry(now)) {
            if (this.listening())
              this.emit({ type: 'retryBudgetExhausted', attempt, error: lastError });
            return false;
          }
          if (this.listening()) this.emit({ type: 'attemptHedged', attempt, hedge: index, reason });
        }
        const child = new Flow(flow.thisArg, flow.args, flow.task, flow.start, 0);
        child.deadline = flow.deadline;
        child.chaos = flow.chaos;
        child.breakerKey = flow.breakerKey;
        child.limiterKey = flow.limiterKey;
        child.bulkheadKey = flow.bulkheadKey;
        attempts.push(child);
        if (index < hedge.maxHedgedAttempts) {
          const delay = this.hedgeDelay(hedge);
          if (delay !== Infinity) {
            timer = this.clock.setTimer(
              () => {
                timer = undefined;
                if (!settled && !launch('slow')) exhausted = true;
              },
              Math.max(0, delay),
            );
          }
        }
        this.attemptSlow(child, attempt).then(
          (value) => {
            if (!settle()) return;
            if (attempts.length > 1)
              abortOthers(
                child,
                new DOMException('Another hedged attempt succeeded first', 'AbortError'),
              );
            resolve(value);
          },
          (error: unknown) => {
            if (settled) return;
            failed++;
            lastError = error;
            if (failed < attempts.length) return;
            // Every attempt so far failed: the next starts at once, if one may.
            stopTimer();
            if (!exhausted && !flow.aborted && launch('failed')) return;
            exhausted = true;
            if (settle()) reject(lastError);
          },
        );
        return true;
      };
      flow.whenAborted((reason) => {
        if (!settle()) return;
        abortOthers(undefined, reason);
        reject(reason);
      });
      if (!settled) launch('slow');
    });
  }

  /** Waits `ms`, or rejects at once with the caller's abort reason. */
  private sleep(flow: Flow, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimer(
        this.clock,
        () => {
          flow.onAbort = undefined;
          resolve();
        },
        ms,
      );
      flow.whenAborted((reason) => {
        clearTimer(this.clock, timer);
        reject(reason);
      });
    });
  }

  /** Waits in the bulkhead's FIFO queue for a slot. */
  private queue(flow: Flow, bulkhead: Bulkhead): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: unknown = undefined;
      const waiter: BulkheadWaiter = {
        grant: () => {
          if (timer !== undefined) clearTimer(this.clock, timer);
          flow.onAbort = undefined;
          resolve();
        },
      };
      if (!bulkhead.enqueue(waiter)) {
        reject(this.rejection('bulkheadFull', 0, bulkhead.partition));
        return;
      }
      if (this.listening()) {
        const queued = bulkhead.stats().queued;
        this.emit(keyed({ type: 'bulkheadQueued', queued }, bulkhead.partition));
      }
      const remaining = flow.deadline - this.clock.now();
      const limit = Math.min(bulkhead.queueTimeout, remaining);
      if (limit !== Infinity) {
        timer = setTimer(
          this.clock,
          () => {
            if (!bulkhead.dequeue(waiter)) return;
            flow.onAbort = undefined;
            if (bulkhead.queueTimeout <= remaining) {
              bulkhead.countRejection();
              reject(this.rejection('bulkheadQueueTimeout', 0, bulkhead.partition));
            } else {
              reject(this.timeoutError(this.totalTimeout, 'total'));
            }
          },
          limit,
        );
      }
      flow.whenAborted((reason) => {
        bulkhead.dequeue(waiter);
        if (timer !== undefined) clearTimer(this.clock, timer);
        reject(reason);
      });
    });
  }
}

/** A wait chaos injects before `fn`: ended early (rejected) by the attempt's timeout or abort. */
class InjectedWait {
  readonly promise: Promise<void>;
  private resolve: (() => void) | undefined = undefined;
  private reject: ((reason: unknown) => void) | undefined = undefined;
  private readonly timer: unknown;

  constructor(
    private readonly clock: Clock,
    delay: number,
  ) {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // `setTimer` sets no timer for `Infinity`: a hang only the timeout or an abort ends.
    this.timer = setTimer(clock, () => this.settle(undefined, false), delay);
  }

  cancel(reason: unknown): void {
    clearTimer(this.clock, this.timer);
    this.settle(reason, true);
  }

  private settle(reason: unknown, failed: boolean): void {
    const resolve = this.resolve;
    const reject = this.reject;
    this.resolve = this.reject = undefined;
    if (failed) reject?.(reason);
    else resolve?.();
  }
}

/** The partition key of `flow`'s call in `partitions`; throws the key function's TypeError. */
function flowKey<T extends { atRest(now: number): boolean }>(
  partitions: Partitions<T>,
  flow: Flow,
): string {
  const a = flow.args;
  const key =
    a.length <= 4
      ? partitions.keyOf(flow.thisArg, a.length, a[0], a[1], a[2], a[3], undefined)
      : partitions.keyOf(flow.thisArg, a.length, undefined, undefined, undefined, undefined, a);
  if (key === undefined) throw takeRouteError();
  return key;
}

/** An error's `retryAfter` hint in ms; `undefined` when absent, negative or NaN (then the backoff applies). */
function retryAfterOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const hint = (error as { retryAfter?: unknown }).retryAfter;
  return typeof hint === 'number' && hint >= 0 ? hint : undefined;
}
