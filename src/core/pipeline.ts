import type { Emitter, RejectionReason } from '../events.js';
import type { ResolvedOptions } from '../options.js';
import type { Bulkhead, BulkheadWaiter } from '../policies/bulkhead.js';
import { isPrimitiveKey, type Cache, type CacheEntry } from '../policies/cache.js';
import type { RetryBudget } from '../policies/retry.js';
import { ASK_STORE } from '../policies/circuit-breaker.js';
import { Attempt } from './attempt.js';
import { callWith, type AnyFunction } from './call.js';
import { DeadlineQueue, type DeadlineEntry } from './deadline-queue.js';
import { Stages } from './stages.js';

type Task = (context: Attempt) => unknown;

// What the slow path is handed from the fast path.
const NOTHING = 0;
const ERROR = 1;
const RESULT = 2;

const POOL_MAX = 1024;
// eslint-disable-next-line no-restricted-syntax -- one pool per process, made at load time
const pool: Call[] = [];

/**
 * The per-call state of the fast path (the first attempt), pooled: its handlers are created once per
 * pooled object, so a call allocates no closure. A Call belongs to one attempt until `fn` settles; when
 * the call moves on to the slow path (a retry, a fallback), what the slow path needs is copied out.
 */
class Call implements DeadlineEntry {
  p: Pipeline | undefined = undefined;
  thisArg: unknown = undefined;
  argc = 0;
  a0: unknown = undefined;
  a1: unknown = undefined;
  a2: unknown = undefined;
  a3: unknown = undefined;
  rest: unknown[] | undefined = undefined;
  task: Task | undefined = undefined;
  attempt: Attempt | undefined = undefined;
  start = 0;
  permit = 0;
  timedOut = false;
  resolve: ((value: unknown) => void) | undefined = undefined;
  reject: ((reason: unknown) => void) | undefined = undefined;
  // DeadlineEntry
  deadline = 0;
  prev: DeadlineEntry | undefined = undefined;
  next: DeadlineEntry | undefined = undefined;
  queued = false;

  readonly onOk = (value: unknown): unknown => this.p!.fastOk(this, value);
  readonly onError = (error: unknown): unknown => this.p!.fastError(this, error);
  readonly onTimedOk = (value: unknown): void => this.p!.timedOk(this, value);
  readonly onTimedError = (error: unknown): void => this.p!.timedError(this, error);
  /** A timer of this call's own, used instead of the shared deadline queue while someone listens. */
  timer: unknown = undefined;
  readonly onExpired = (): void => {
    this.timer = undefined;
    this.p!.expired(this);
  };
}

function acquireCall(): Call {
  return pool.length > 0 ? pool.pop()! : new Call();
}

function releaseCall(c: Call): void {
  c.p = undefined;
  c.thisArg = undefined;
  c.a0 = c.a1 = c.a2 = c.a3 = undefined;
  c.rest = undefined;
  c.task = undefined;
  c.attempt = undefined;
  c.resolve = undefined;
  c.reject = undefined;
  c.timedOut = false;
  if (pool.length < POOL_MAX) pool.push(c);
}

let capturedResolve: ((value: unknown) => void) | undefined;
let capturedReject: ((reason: unknown) => void) | undefined;
function capture(resolve: (value: unknown) => void, reject: (reason: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

function toPromise(value: unknown): Promise<unknown> {
  return value instanceof Promise ? (value as Promise<unknown>) : Promise.resolve(value);
}

/* eslint-disable no-restricted-syntax -- slow path: runs only when a call misses, fails, waits or carries a signal */
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

/**
 * A promise rejected with `reason` one microtask from now, after the caller's `await` has attached its
 * handler. `Promise.reject(reason)` costs about 1 µs on Node 20 under load: Node's unhandled-rejection
 * tracking calls into JavaScript for a promise rejected with no handler, and again when one is
 * attached. A promise rejected once it has a handler skips both. Rejections are batched: one microtask
 * rejects every promise refused in the same turn.
 */
function rejectSoon(reason: unknown): Promise<never> {
  const promise = new Promise(capture) as Promise<never>;
  rejectQueue.push(capturedReject!, reason);
  capturedResolve = capturedReject = undefined;
  if (rejectQueue.length === 2) queueMicrotask(flushRejections);
  return promise;
}

const rejectQueue: unknown[] = [];

function flushRejections(): void {
  // Rejecting runs no user code synchronously (handlers are queued), so nothing is added meanwhile.
  for (let i = 0; i < rejectQueue.length; i += 2) {
    (rejectQueue[i] as (reason: unknown) => void)(rejectQueue[i + 1]);
  }
  rejectQueue.length = 0;
}

/** The slow path's per-call state: allocated only when a call fails, waits or carries a signal. */
class Flow {
  deadline: number;
  aborted = false;
  reason: unknown = undefined;
  /** The abort handler of whatever the call waits on now. */
  onAbort: ((reason: unknown) => void) | undefined = undefined;
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

/* eslint-enable no-restricted-syntax */

/**
 * The compiled pipeline of one wrapped function. Everything that can be decided at wrap time is decided
 * in the constructor; `invoke` is the fast path (synchronous admission, one `.then` with handlers made
 * once), and the async methods below it are the slow path, entered only when something fails or waits.
 */
export class Pipeline extends Stages {
  readonly attemptTimeout: number;
  readonly totalTimeout: number;
  /** The first attempt's limit: min(attempt, total). */
  readonly firstTimeout: number;
  readonly firstScope: 'attempt' | 'total';
  readonly bulkhead: Bulkhead | undefined;
  readonly signal: AbortSignal | undefined;
  /** True when the fast path must read the clock. */
  private readonly needsClock: boolean;
  /** The retry budget, which counts every call. */
  private readonly budget: RetryBudget | undefined;
  /** True when a successful first attempt must be judged by `retryOnResult`. */
  private readonly judgesResult: boolean;
  /** True when the breaker's samples need their start time (time window or slow calls). */
  private readonly breakerTimed: boolean;
  /** True when `fn`'s promise must be watched at all. */
  private readonly observe: boolean;
  /** True when this pipeline applies the fallback itself (no cache stage in front of it). */
  private readonly fallbackHere: boolean;
  private readonly deadlines: DeadlineQueue<Call> | undefined;
  private readonly releaseSlot: () => void;

  constructor(
    readonly fn: AnyFunction | undefined,
    options: ResolvedOptions,
    parent: Emitter | undefined,
  ) {
    super(options, parent);
    this.attemptTimeout = options.timeout?.attempt ?? Infinity;
    this.totalTimeout = options.timeout?.total ?? Infinity;
    this.firstTimeout = Math.min(this.attemptTimeout, this.totalTimeout);
    this.firstScope = this.attemptTimeout <= this.totalTimeout ? 'attempt' : 'total';
    this.bulkhead = options.bulkhead;
    this.signal = options.signal;
    const breaker = this.breaker;
    // Any breaker needs the time: an open circuit turns half-open after `halfOpenAfter`, even with a
    // count window (with `now` stuck at 0 it would stay open for ever).
    // A closed breaker with a count window needs no time; one that is not closed reads the clock
    // itself in `invoke` (an open circuit turns half-open after `halfOpenAfter`).
    this.budget = this.retry?.budget;
    this.judgesResult = this.retry?.retryOnResult !== undefined;
    this.breakerTimed =
      breaker !== undefined &&
      (breaker.windowType === 'time' || breaker.slowCallDuration !== Infinity);
    this.needsClock =
      this.breakerTimed ||
      this.limiter !== undefined ||
      this.firstTimeout !== Infinity ||
      this.retry?.budget !== undefined;
    // The fallback runs here only when there is no cache: with a cache, the cache stage sees the failure
    // first (to serve a stale value) and applies the fallback itself. `execute` (no `fn`) skips the
    // cache stage, so its pipeline always applies the fallback here.
    this.fallbackHere =
      this.fallback !== undefined && (this.cache === undefined || fn === undefined);
    this.observe =
      this.retry !== undefined ||
      this.fallbackHere ||
      breaker !== undefined ||
      this.bulkhead !== undefined ||
      this.firstTimeout !== Infinity;
    this.deadlines =
      this.firstTimeout === Infinity
        ? undefined
        : new DeadlineQueue<Call>(this.clock, (c) => this.expired(c));
    const bulkhead = this.bulkhead;
    this.releaseSlot = () => bulkhead?.release();
  }

  // ---------------------------------------------------------------------------------------------
  // Entry points
  // ---------------------------------------------------------------------------------------------

  /** A call of the wrapped function: cache, then the rest of the pipeline. */
  call(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    const cache = this.cache;
    if (cache === undefined)
      return this.invoke(thisArg, argc, a0, a1, a2, a3, rest, undefined, undefined);
    let key: unknown;
    if (cache.keyOf === undefined) {
      if (argc > 1 || !isPrimitiveKey(a0)) return Promise.reject(this.keyError(argc, a0));
      key = a0;
    } else {
      try {
        key = callWith(cache.keyOf, thisArg, argc, a0, a1, a2, a3, rest);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (cache.shared !== undefined)
      return this.sharedCall(cache, key, thisArg, argc, a0, a1, a2, a3, rest);
    const entry = cache.entries.get(key);
    if (entry !== undefined) {
      // Freshness is timer-driven (see Cache): a hit reads no clock and allocates nothing.
      if (entry.fresh) {
        entry.touched = true;
        cache.hits++;
        if (this.listening()) {
          // eslint-disable-next-line no-restricted-syntax -- built only when someone listens
          this.emit({ type: 'cacheHit', key });
        }
        return entry.promise;
      }
      if (entry.flight !== undefined) {
        cache.hits++;
        if (this.listening()) {
          // eslint-disable-next-line no-restricted-syntax -- built only when someone listens
          this.emit({ type: 'cacheJoined', key });
        }
        return this.withFallback(entry.flight, thisArg, argc, a0, a1, a2, a3, rest);
      }
    }
    return this.miss(cache, key, entry, thisArg, argc, a0, a1, a2, a3, rest);
  }

  /** `policy.execute(task, { signal })`: no cache (there are no arguments to key on). */
  execute(task: Task, signal: AbortSignal | undefined): Promise<unknown> {
    return this.invoke(
      undefined,
      0,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      task,
      signal,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Fast path
  // ---------------------------------------------------------------------------------------------

  private invoke(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
    task: Task | undefined,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    if (signal !== undefined || this.signal !== undefined) {
      const now = this.clock.now();
      this.budget?.recordCall(now);
      return this.startFlow(thisArg, collect(argc, a0, a1, a2, a3, rest), task, now, signal);
    }
    let now = this.needsClock ? this.clock.now() : 0;
    this.budget?.recordCall(now);
    let permit = 0;
    const breaker = this.breaker;
    if (breaker !== undefined) {
      permit = breaker.closedPermit();
      if (permit < 0) {
        if (!this.needsClock) now = this.clock.now();
        permit = breaker.tryEnter(now);
        // The fleet's circuit: whether this call may be its trial is the store's to say.
        if (permit === ASK_STORE)
          return this.startFlow(thisArg, collect(argc, a0, a1, a2, a3, rest), task, now, undefined);
      }
      if (permit < 0)
        return this.rejectEarly(
          'circuitOpen',
          breaker.retryAfter(now),
          thisArg,
          argc,
          a0,
          a1,
          a2,
          a3,
          rest,
          task,
          now,
        );
    }
    const limiter = this.limiter;
    if (limiter !== undefined && !limiter.tryAcquire(now)) {
      breaker?.release(permit);
      // A limiter with a store answers on the slow path (one round trip to the store).
      if (limiter.shared === undefined && (limiter.maxWait === 0 || this.totalTimeout === 0)) {
        limiter.countRejection();
        return this.rejectEarly(
          'rateLimited',
          limiter.retryAfter(now),
          thisArg,
          argc,
          a0,
          a1,
          a2,
          a3,
          rest,
          task,
          now,
        );
      }
      return this.startFlow(thisArg, collect(argc, a0, a1, a2, a3, rest), task, now, undefined);
    }
    const bulkhead = this.bulkhead;
    if (bulkhead !== undefined && !bulkhead.tryAcquire()) {
      if (limiter !== undefined) limiter.refund();
      breaker?.release(permit);
      if (bulkhead.maxQueue === 0) {
        bulkhead.countRejection();
        return this.rejectEarly('bulkheadFull', 0, thisArg, argc, a0, a1, a2, a3, rest, task, now);
      }
      return this.startFlow(thisArg, collect(argc, a0, a1, a2, a3, rest), task, now, undefined);
    }
    if (!this.observe) {
      const context = task === undefined ? undefined : new Attempt(1);
      return run(this.fn, thisArg, argc, a0, a1, a2, a3, rest, task, context);
    }

    const c = acquireCall();
    c.p = this;
    c.thisArg = thisArg;
    c.argc = argc;
    c.a0 = a0;
    c.a1 = a1;
    c.a2 = a2;
    c.a3 = a3;
    c.rest = rest;
    c.task = task;
    c.start = now;
    c.permit = permit;
    if (task !== undefined) c.attempt = new Attempt(1);
    const promise = run(this.fn, thisArg, argc, a0, a1, a2, a3, rest, task, c.attempt);
    const deadlines = this.deadlines;
    if (deadlines === undefined) return promise.then(c.onOk, c.onError);
    const outer = new Promise(capture);
    c.resolve = capturedResolve;
    c.reject = capturedReject;
    capturedResolve = capturedReject = undefined;
    c.deadline = now + this.firstTimeout;
    if (this.listening()) {
      // A listener (OpenTelemetry, say) reads the async context of the events it gets: the timeout
      // event must fire in this call's context, not in that of the call that armed the shared timer.
      c.timer = this.clock.setTimer(c.onExpired, this.firstTimeout, true);
    } else {
      deadlines.push(c);
    }
    // The handlers never throw, so the promise this `then` returns never rejects.
    void promise.then(c.onTimedOk, c.onTimedError);
    return outer;
  }

  /**
   * The start time a breaker sample needs, or 0 when the breaker does not use it (a count window
   * without slow calls): passing a float to a method V8 did not inline boxes it, 16 bytes per call.
   */
  private sampleTime(c: Call): number {
    return this.breakerTimed ? c.start : 0;
  }

  /** @internal the first attempt succeeded (no timeout stage). */
  fastOk(c: Call, value: unknown): unknown {
    this.breaker?.recordSuccess(c.permit, this.sampleTime(c));
    this.bulkhead?.release();
    if (!this.judgesResult) {
      releaseCall(c);
      return value;
    }
    const next = this.afterFirst(c, false, value);
    releaseCall(c);
    return next;
  }

  /** @internal the first attempt failed (no timeout stage). */
  fastError(c: Call, error: unknown): unknown {
    this.breaker?.recordFailure(c.permit, this.sampleTime(c), error);
    this.bulkhead?.release();
    try {
      return this.afterFirst(c, true, error);
    } finally {
      releaseCall(c);
    }
  }

  /** @internal `fn` settled in a timed first attempt. */
  timedOk(c: Call, value: unknown): void {
    this.bulkhead?.release();
    if (c.timedOut) return releaseCall(c);
    this.stopTimer(c);
    this.breaker?.recordSuccess(c.permit, this.sampleTime(c));
    this.settleOuter(c, false, value);
    releaseCall(c);
  }

  /** @internal `fn` failed in a timed first attempt. */
  timedError(c: Call, error: unknown): void {
    this.bulkhead?.release();
    if (c.timedOut) return releaseCall(c);
    this.stopTimer(c);
    this.breaker?.recordFailure(c.permit, this.sampleTime(c), error);
    this.settleOuter(c, true, error);
    releaseCall(c);
  }

  private settleOuter(c: Call, failed: boolean, value: unknown): void {
    const resolve = c.resolve as (value: unknown) => void;
    const reject = c.reject as (reason: unknown) => void;
    c.resolve = c.reject = undefined;
    try {
      resolve(this.afterFirst(c, failed, value));
    } catch (error) {
      reject(error);
    }
  }

  /**
   * What follows the first attempt: its value, a retry (slow path), the fallback, or its error thrown.
   * The retry predicates run here, synchronously, so a failure that is not retried never pays for an
   * async frame.
   */
  private afterFirst(c: Call, failed: boolean, value: unknown): unknown {
    return this.decide(
      failed,
      value,
      c.thisArg,
      c.argc,
      c.a0,
      c.a1,
      c.a2,
      c.a3,
      c.rest,
      c.task,
      c.start,
    );
  }

  private decide(
    failed: boolean,
    value: unknown,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
    task: Task | undefined,
    start: number,
  ): unknown {
    let again: boolean;
    try {
      again = failed ? this.retriesError(value, 1) : this.retriesResult(value, 1);
    } catch (predicateError) {
      failed = true;
      value = predicateError;
      again = false;
    }
    if (again) {
      const flow = new Flow(
        thisArg,
        collect(argc, a0, a1, a2, a3, rest),
        task,
        start,
        this.totalTimeout,
      );
      return this.continueFlow(flow, failed ? ERROR : RESULT, value, true);
    }
    if (!failed) return value;
    if (this.fallbackHere) {
      return this.applyFallback(value, thisArg, collect(argc, a0, a1, a2, a3, rest));
    }
    throw value;
  }

  private stopTimer(c: Call): void {
    if (c.timer === undefined) return this.deadlines?.remove(c);
    this.clock.clearTimer(c.timer);
    c.timer = undefined;
  }

  /** The first attempt ran out of time; `fn` still runs and keeps its bulkhead slot until it settles. */
  /** @internal */
  expired(c: Call): void {
    c.timedOut = true;
    const error = this.timeoutError(this.firstTimeout, this.firstScope);
    c.attempt?.abort(error);
    this.breaker?.recordFailure(c.permit, this.sampleTime(c), error);
    this.settleOuter(c, true, error);
  }

  /** A rejection before `fn` ran, without entering the slow path unless a retry may follow. */
  private rejectEarly(
    reason: RejectionReason,
    retryAfter: number,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
    task: Task | undefined,
    now: number,
  ): Promise<unknown> {
    const error = this.rejection(reason, retryAfter);
    if (this.retry === undefined && (this.fallback === undefined || this.cache !== undefined)) {
      return rejectSoon(error);
    }
    try {
      return Promise.resolve(
        this.decide(true, error, thisArg, argc, a0, a1, a2, a3, rest, task, now),
      );
    } catch (finalError) {
      return rejectSoon(finalError);
    }
  }

  /* eslint-disable no-restricted-syntax -- slow path: runs only when a call misses, fails, waits or carries a signal */
  // ---------------------------------------------------------------------------------------------
  // Cache stage (miss path)
  // ---------------------------------------------------------------------------------------------

  private miss(
    cache: Cache,
    key: unknown,
    existing: CacheEntry | undefined,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    cache.misses++;
    if (this.listening()) this.emit({ type: 'cacheMiss', key });
    const inner = this.invoke(thisArg, argc, a0, a1, a2, a3, rest, undefined, undefined);
    let entry: CacheEntry | undefined = existing;
    const flight = inner.then(
      (value) => {
        cache.store(entry!, value, this.clock.now());
        return value;
      },
      (error: unknown) => {
        const e = entry!;
        e.flight = undefined;
        const now = this.clock.now();
        if (e.expires !== -Infinity && now - e.expires <= cache.staleIfError) {
          cache.staleServed++;
          if (this.listening()) {
            this.emit({ type: 'staleServed', key, age: now - e.expires + cache.ttl, error });
          }
          return e.value;
        }
        cache.drop(e);
        throw error;
      },
    );
    if (entry === undefined) entry = cache.create(key, flight);
    else entry.flight = flight;
    return this.withFallback(flight, thisArg, argc, a0, a1, a2, a3, rest);
  }

  /**
   * A cache with a store: values live in the store (read on every call), single flight stays local
   * (concurrent calls for one key share one read and one call of `fn`).
   */
  private sharedCall(
    cache: Cache,
    key: unknown,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    let storeKey: string;
    try {
      storeKey = cache.storeKey(key);
    } catch (error) {
      return Promise.reject(error);
    }
    const joined = cache.entries.get(key)?.flight;
    if (joined !== undefined) {
      cache.hits++;
      if (this.listening()) this.emit({ type: 'cacheJoined', key });
      return this.withFallback(joined, thisArg, argc, a0, a1, a2, a3, rest);
    }
    const flight = this.sharedFlight(cache, key, storeKey, thisArg, argc, a0, a1, a2, a3, rest);
    const entry = cache.create(key, flight);
    // The local entry only carries the call in flight.
    const forget = (): void => cache.drop(entry);
    void flight.then(forget, forget);
    return this.withFallback(flight, thisArg, argc, a0, a1, a2, a3, rest);
  }

  private async sharedFlight(
    cache: Cache,
    key: unknown,
    storeKey: string,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    const stored = await cache.fetch(storeKey);
    if (stored?.fresh === true) {
      cache.hits++;
      if (this.listening()) this.emit({ type: 'cacheHit', key });
      return stored.value;
    }
    cache.misses++;
    if (this.listening()) this.emit({ type: 'cacheMiss', key });
    let value: unknown;
    try {
      value = await this.invoke(thisArg, argc, a0, a1, a2, a3, rest, undefined, undefined);
    } catch (error) {
      // The store keeps a value `staleIfError` ms past its ttl: one still there may be served.
      if (stored === undefined) throw error;
      cache.staleServed++;
      if (this.listening()) this.emit({ type: 'staleServed', key, age: stored.age, error });
      return stored.value;
    }
    cache.put(storeKey, value);
    return value;
  }

  private withFallback(
    promise: Promise<unknown>,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    if (this.fallback === undefined) return promise;
    return promise.then(undefined, (error: unknown) =>
      this.signal?.aborted === true && error === this.signal.reason
        ? Promise.reject(error)
        : this.applyFallback(error, thisArg, collect(argc, a0, a1, a2, a3, rest)),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Slow path: the only async code. Retry loop, waits, aborts, fallback.
  // ---------------------------------------------------------------------------------------------

  private startFlow(
    thisArg: unknown,
    args: unknown[],
    task: Task | undefined,
    now: number,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const flow = new Flow(thisArg, args, task, now, this.totalTimeout);
    flow.watch(this.signal);
    flow.watch(signal);
    return this.continueFlow(flow, NOTHING, undefined, false);
  }

  private async continueFlow(
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

  private applyFallback(error: unknown, thisArg: unknown, args: unknown[]): Promise<unknown> {
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
          value = await this.attemptSlow(flow, attempt);
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
      if (retry?.budget !== undefined && !retry.budget.tryRetry(now)) {
        if (this.listening()) this.emit({ type: 'retryBudgetExhausted', attempt, error });
        if (pending === RESULT) return value;
        throw value;
      }
      const hinted = pending === ERROR ? retryAfterOf(value) : undefined;
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
    const breaker = this.breaker;
    let permit = 0;
    if (breaker !== undefined) {
      permit = breaker.tryEnter(now);
      if (permit === ASK_STORE) {
        permit = await breaker.enterShared();
        now = this.clock.now();
      }
      if (permit < 0) throw this.rejection('circuitOpen', breaker.retryAfter(now));
    }
    try {
      const limiter = this.limiter;
      if (limiter !== undefined) {
        const remaining = flow.deadline - now;
        const maxWait = Math.min(limiter.maxWait, remaining);
        const wait =
          limiter.shared === undefined
            ? limiter.reserve(now, maxWait)
            : await limiter.reserveShared(now, Math.max(0, maxWait));
        if (wait < 0) throw this.rejection('rateLimited', limiter.retryAfter(now));
        if (limiter.shared !== undefined) now = this.clock.now();
        if (wait > 0) {
          if (this.listening()) this.emit({ type: 'rateLimitWaited', wait });
          const reservation = limiter.reservationEnd;
          try {
            await this.sleep(flow, wait);
          } catch (error) {
            if (limiter.shared === undefined && limiter.reservationEnd === reservation)
              limiter.refund();
            throw error;
          }
          now = this.clock.now();
        }
      }
      const bulkhead = this.bulkhead;
      if (bulkhead !== undefined && !bulkhead.tryAcquire()) {
        await this.queue(flow, bulkhead);
        now = this.clock.now();
      }
    } catch (error) {
      breaker?.release(permit);
      throw error;
    }
    if (flow.aborted) {
      // Aborted after the bulkhead slot was taken or handed over (before this resumed): give it back.
      this.bulkhead?.release();
      breaker?.release(permit);
      throw flow.reason;
    }
    return this.runAttempt(flow, attempt, permit, now);
  }

  /** Runs `fn` once, racing its attempt timeout (or the call's deadline) and the caller's abort. */
  private runAttempt(flow: Flow, attempt: number, permit: number, start: number): Promise<unknown> {
    const context = flow.task === undefined ? undefined : new Attempt(attempt);
    const promise =
      flow.args.length <= 4
        ? run(
            this.fn,
            flow.thisArg,
            flow.args.length,
            flow.args[0],
            flow.args[1],
            flow.args[2],
            flow.args[3],
            undefined,
            flow.task,
            context,
          )
        : run(
            this.fn,
            flow.thisArg,
            flow.args.length,
            undefined,
            undefined,
            undefined,
            undefined,
            flow.args,
            flow.task,
            context,
          );
    if (this.bulkhead !== undefined) promise.then(this.releaseSlot, this.releaseSlot);
    const remaining = flow.deadline - start;
    const limit = Math.min(this.attemptTimeout, remaining);
    const scope = this.attemptTimeout <= remaining ? 'attempt' : 'total';
    const breaker = this.breaker;
    return new Promise((resolve, reject) => {
      let settled = false;
      let timer: unknown = undefined;
      const finish = (): boolean => {
        if (settled) return false;
        settled = true;
        if (timer !== undefined) this.clock.clearTimer(timer);
        flow.onAbort = undefined;
        return true;
      };
      if (limit !== Infinity) {
        timer = this.clock.setTimer(
          () => {
            timer = undefined;
            if (!finish()) return;
            const error = this.timeoutError(limit, scope);
            context?.abort(error);
            breaker?.recordFailure(permit, start, error);
            reject(error);
          },
          Math.max(0, limit),
        );
      }
      flow.whenAborted((reason) => {
        if (!finish()) return;
        context?.abort(reason);
        breaker?.release(permit);
        reject(reason);
      });
      promise.then(
        (value) => {
          if (!finish()) return;
          breaker?.recordSuccess(permit, start);
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

  /** Waits `ms`, or rejects at once with the caller's abort reason. */
  private sleep(flow: Flow, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimer(() => {
        flow.onAbort = undefined;
        resolve();
      }, ms);
      flow.whenAborted((reason) => {
        this.clock.clearTimer(timer);
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
          if (timer !== undefined) this.clock.clearTimer(timer);
          flow.onAbort = undefined;
          resolve();
        },
      };
      if (!bulkhead.enqueue(waiter)) {
        reject(this.rejection('bulkheadFull', 0));
        return;
      }
      if (this.listening()) this.emit({ type: 'bulkheadQueued', queued: bulkhead.stats().queued });
      const remaining = flow.deadline - this.clock.now();
      const limit = Math.min(bulkhead.queueTimeout, remaining);
      if (limit !== Infinity) {
        timer = this.clock.setTimer(() => {
          if (!bulkhead.dequeue(waiter)) return;
          flow.onAbort = undefined;
          if (bulkhead.queueTimeout <= remaining) {
            bulkhead.countRejection();
            reject(this.rejection('bulkheadQueueTimeout', 0));
          } else {
            reject(this.timeoutError(this.totalTimeout, 'total'));
          }
        }, limit);
      }
      flow.whenAborted((reason) => {
        bulkhead.dequeue(waiter);
        if (timer !== undefined) this.clock.clearTimer(timer);
        reject(reason);
      });
    });
  }
  /* eslint-enable no-restricted-syntax */
}

/** Calls `fn` (or `task`) with exactly the arguments received; never throws. */
function run(
  fn: AnyFunction | undefined,
  thisArg: unknown,
  argc: number,
  a0: unknown,
  a1: unknown,
  a2: unknown,
  a3: unknown,
  rest: unknown[] | undefined,
  task: Task | undefined,
  context: Attempt | undefined,
): Promise<unknown> {
  let result: unknown;
  try {
    result =
      task === undefined ? callWith(fn, thisArg, argc, a0, a1, a2, a3, rest) : task(context!);
  } catch (error) {
    return Promise.reject(error);
  }
  return toPromise(result);
}

/* eslint-disable no-restricted-syntax -- slow path: runs only when a call misses, fails, waits or carries a signal */
function collect(
  argc: number,
  a0: unknown,
  a1: unknown,
  a2: unknown,
  a3: unknown,
  rest: unknown[] | undefined,
): unknown[] {
  if (argc > 4) return rest!;
  return args4(argc, a0, a1, a2, a3);
}

function args4(argc: number, a0: unknown, a1: unknown, a2: unknown, a3: unknown): unknown[] {
  switch (argc) {
    case 0:
      return [];
    case 1:
      return [a0];
    case 2:
      return [a0, a1];
    case 3:
      return [a0, a1, a2];
    default:
      return [a0, a1, a2, a3];
  }
}

/* eslint-enable no-restricted-syntax */

function retryAfterOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const hint = (error as { retryAfter?: unknown }).retryAfter;
  return typeof hint === 'number' && hint >= 0 && hint !== Infinity ? hint : undefined;
}
