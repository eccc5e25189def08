import { clearTimer, isFreeRunning, setTimer } from '../clock.js';
import type { Emitter, RejectionReason } from '../events.js';
import type { ResolvedOptions } from '../options.js';
import type { Bulkhead } from '../policies/bulkhead.js';
import type { CacheEntry } from '../policies/cache.js';
import type { CircuitBreaker } from '../policies/circuit-breaker.js';
import { takeRouteError } from '../policies/partition.js';
import type { RetryBudget } from '../policies/retry.js';
import { ASK_STORE } from '../policies/circuit-breaker.js';
import { chaosEnabled } from '../policies/chaos.js';
import { Attempt } from './attempt.js';
import { collect, run, type AnyFunction, type Task } from './call.js';
import { DeadlineQueue, type DeadlineEntry } from './deadline-queue.js';
import { ERROR, Flow, RESULT, SlowPath } from './slow-path.js';

/**
 * The fast path: the first attempt of a call, synchronous from admission to `fn`, with at most one
 * `.then` whose handlers were made once (ARCHITECTURE.md section 3). Whatever fails, waits or carries
 * a signal goes on to the slow path (slow-path.ts).
 */

const POOL_MAX = 1024;
// eslint-disable-next-line no-restricted-syntax -- one pool per process, made at load time
const pool: Call[] = [];

/**
 * The per-call state of the fast path (the first attempt), pooled: its handlers are created once per
 * pooled object, so a call allocates no closure. A Call belongs to one attempt until `fn` settles; when
 * the call moves on to the slow path (a retry, a fallback), what the slow path needs is copied out.
 */
class Call implements DeadlineEntry {
  p: FastPath | undefined = undefined;
  thisArg: unknown = undefined;
  argc = 0;
  a0: unknown = undefined;
  a1: unknown = undefined;
  a2: unknown = undefined;
  a3: unknown = undefined;
  rest: unknown[] | undefined = undefined;
  task: Task | undefined = undefined;
  attempt: Attempt | undefined = undefined;
  /** The cache entry this call fills (a miss that took the fast path), or undefined. */
  entry: CacheEntry | undefined = undefined;
  start = 0;
  permit = 0;
  /** The breaker and bulkhead this attempt entered (a partition's, when partitioned). */
  breaker: CircuitBreaker | undefined = undefined;
  bulkhead: Bulkhead | undefined = undefined;
  timedOut = false;
  /** Whether chaos applies to this call (its retries follow the first attempt's answer). */
  chaos = false;
  resolve: ((value: unknown) => void) | undefined = undefined;
  reject: ((reason: unknown) => void) | undefined = undefined;
  // DeadlineEntry
  deadline = 0;
  prev: DeadlineEntry | undefined = undefined;
  next: DeadlineEntry | undefined = undefined;
  queued = false;

  // A released Call (p undefined) ignores a late handler call. Every promise watched here is a plain
  // native one (toPromise), which calls a handler once, so this guard only holds against a bug of ours.
  readonly onOk = (value: unknown): unknown => this.p?.fastOk(this, value);
  readonly onError = (error: unknown): unknown => this.p?.fastError(this, error);
  /**
   * The outer promise's executor (timed calls), made once per pooled Call: the resolving functions go
   * straight into this object. Through a module-level `capture` they were written twice (a module
   * variable, then here), each a write barrier for a young function stored into an old object.
   */
  readonly executor = (
    resolve: (value: unknown) => void,
    reject: (reason: unknown) => void,
  ): void => {
    this.resolve = resolve;
    this.reject = reject;
  };
  readonly onTimedOk = (value: unknown): void => this.p?.timedOk(this, value);
  readonly onTimedError = (error: unknown): void => this.p?.timedError(this, error);
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

/**
 * Drops what a pooled Call refers to, so that it keeps nothing of its last call alive. A field that the
 * call left as it found it is not written again: on the hot path (few arguments, no task) most are, and
 * every store costs. `invoke` sets every field anyway when the Call is taken again.
 */
function releaseCall(c: Call): void {
  c.p = undefined;
  if (c.thisArg !== undefined) c.thisArg = undefined;
  if (c.argc !== 0) {
    c.a0 = c.a1 = c.a2 = c.a3 = undefined;
    c.rest = undefined;
  }
  if (c.task !== undefined) {
    c.task = undefined;
    c.attempt = undefined;
  }
  if (c.entry !== undefined) c.entry = undefined;
  if (c.breaker !== undefined) c.breaker = undefined;
  if (c.bulkhead !== undefined) c.bulkhead = undefined;
  c.resolve = undefined;
  c.reject = undefined;
  c.timedOut = false;
  if (pool.length < POOL_MAX) pool.push(c);
}

let capturedReject: ((reason: unknown) => void) | undefined;
function captureReject(
  _resolve: (value: unknown) => void,
  reject: (reason: unknown) => void,
): void {
  capturedReject = reject;
}

/**
 * A promise rejected with `reason` one microtask from now, after the caller's `await` has attached its
 * handler. `Promise.reject(reason)` costs about 1 µs on Node 20 under load: Node's unhandled-rejection
 * tracking calls into JavaScript for a promise rejected with no handler, and again when one is
 * attached. A promise rejected once it has a handler skips both. Rejections are batched: one microtask
 * rejects every promise refused in the same turn.
 */
function rejectSoon(reason: unknown): Promise<never> {
  const promise = new Promise(captureReject) as Promise<never>;
  rejectQueue.push(capturedReject!, reason);
  capturedReject = undefined;
  if (rejectQueue.length === 2) queueMicrotask(flushRejections);
  return promise;
}

// eslint-disable-next-line no-restricted-syntax -- one queue per process, made at load time
const rejectQueue: unknown[] = [];

function flushRejections(): void {
  // Rejecting runs no user code synchronously (handlers are queued), so nothing is added meanwhile.
  for (let i = 0; i < rejectQueue.length; i += 2) {
    (rejectQueue[i] as (reason: unknown) => void)(rejectQueue[i + 1]);
  }
  rejectQueue.length = 0;
}

/**
 * The fast-path layer of the compiled pipeline: what can be decided at wrap time for the first attempt
 * is decided in the constructor; `invoke` admits the call synchronously and runs `fn`.
 */
export abstract class FastPath extends SlowPath {
  /** The first attempt's limit: min(attempt, total). */
  readonly firstTimeout: number;
  readonly firstScope: 'attempt' | 'total';
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
  private readonly deadlines: DeadlineQueue<Call> | undefined;
  /** True when the deadline queue stamps the first attempt's deadlines itself (no clock read here). */
  private readonly lazyDeadlines: boolean;
  /**
   * True when the first attempt admits every call unchecked and reads no clock: no chaos, breaker,
   * limiter, bulkhead, retry budget or reason to take the slow path, and `fn`'s promise is watched (a
   * timeout, retry or fallback). Such a call takes {@link invokePlain}.
   */
  protected readonly plain: boolean;

  constructor(fn: AnyFunction | undefined, options: ResolvedOptions, parent: Emitter | undefined) {
    super(fn, options, parent);
    this.firstTimeout = Math.min(this.attemptTimeout, this.totalTimeout);
    this.firstScope = this.attemptTimeout <= this.totalTimeout ? 'attempt' : 'total';
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
    const otherClock =
      this.partitionsTimed ||
      this.breakerTimed ||
      this.limiter !== undefined ||
      this.retry?.budget !== undefined;
    // The system clock's time moves on its own: when nothing else on the fast path reads it, an
    // attempt timeout's deadlines are stamped by the queue, one clock read per turn of the event loop
    // (see DeadlineQueue). A total timeout needs each call's start (the deadline of its retries), and a
    // manual clock the exact time.
    this.lazyDeadlines =
      this.firstTimeout !== Infinity &&
      this.totalTimeout === Infinity &&
      !otherClock &&
      isFreeRunning(this.clock);
    this.needsClock = otherClock || (this.firstTimeout !== Infinity && !this.lazyDeadlines);
    this.observe =
      this.retry !== undefined ||
      this.fallbackHere ||
      breaker !== undefined ||
      this.bulkhead !== undefined ||
      this.firstTimeout !== Infinity;
    this.deadlines =
      this.firstTimeout === Infinity
        ? undefined
        : new DeadlineQueue<Call>(
            this.clock,
            (c) => this.expired(c),
            this.lazyDeadlines ? this.firstTimeout : undefined,
          );
    this.plain =
      this.observe &&
      !this.needsClock &&
      !this.alwaysSlow &&
      !this.partitioned &&
      this.chaos === undefined &&
      breaker === undefined &&
      this.limiter === undefined &&
      this.bulkhead === undefined &&
      this.budget === undefined;
  }

  /**
   * @internal the first attempt of a call to a `plain` pipeline without a cache: `invoke` with nothing
   * to admit. A small function of its own: the general `invoke` is too large for V8 to inline, and its
   * checks and ten parameters were a tenth of a timeout stage's time. The fields a released Call holds
   * as undefined (task, attempt, breaker, bulkhead, entry) are not written again.
   */
  invokePlain(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    const c = acquireCall();
    c.p = this;
    c.thisArg = thisArg;
    c.argc = argc;
    c.a0 = a0;
    c.a1 = a1;
    c.a2 = a2;
    c.a3 = a3;
    c.rest = rest;
    c.start = 0;
    c.permit = 0;
    c.chaos = false;
    const promise = run(this.fn, thisArg, argc, a0, a1, a2, a3, rest, undefined, undefined);
    return this.watch(c, promise, undefined, 0);
  }

  protected invoke(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
    task: Task | undefined,
    signal: AbortSignal | undefined,
    entry: CacheEntry | undefined,
  ): Promise<unknown> {
    // Chaos, when configured, costs one check per call while disabled; injected latency waits, so a
    // call that may get some takes the slow path. Faults and results stay on the fast path.
    const chaos = this.chaos;
    const chaosOn = chaos !== undefined && chaosEnabled(chaos, thisArg, argc, a0, a1, a2, a3, rest);
    if (signal !== undefined || this.alwaysSlow || (chaosOn && chaos.latency !== undefined)) {
      const now = this.clock.now();
      this.budget?.recordCall(now);
      return this.startFlow(
        thisArg,
        collect(argc, a0, a1, a2, a3, rest),
        task,
        now,
        signal,
        chaosOn,
      );
    }
    let now = this.needsClock ? this.clock.now() : 0;
    let breaker = this.breaker;
    let limiter = this.limiter;
    let bulkhead = this.bulkhead;
    if (this.partitioned) {
      // A partitioned stage costs its key function and one Map lookup (no allocation when it exists).
      const breakers = this.breakers;
      if (breakers !== undefined) {
        const key = breakers.keyOf(thisArg, argc, a0, a1, a2, a3, rest);
        if (key === undefined) return Promise.reject(takeRouteError());
        breaker = breakers.get(key, now);
      }
      const limiters = this.limiters;
      if (limiters !== undefined) {
        const key = limiters.keyOf(thisArg, argc, a0, a1, a2, a3, rest);
        if (key === undefined) return Promise.reject(takeRouteError());
        limiter = limiters.get(key, now);
      }
      const bulkheads = this.bulkheads;
      if (bulkheads !== undefined) {
        const key = bulkheads.keyOf(thisArg, argc, a0, a1, a2, a3, rest);
        if (key === undefined) return Promise.reject(takeRouteError());
        bulkhead = bulkheads.get(key, now);
      }
    }
    this.budget?.recordCall(now);
    let permit = 0;
    if (breaker !== undefined) {
      permit = breaker.closedPermit();
      if (permit < 0) {
        if (!this.needsClock) now = this.clock.now();
        permit = breaker.tryEnter(now);
        // The fleet's circuit: whether this call may be its trial is the store's to say.
        if (permit === ASK_STORE)
          return this.startFlow(
            thisArg,
            collect(argc, a0, a1, a2, a3, rest),
            task,
            now,
            undefined,
            chaosOn,
          );
      }
      if (permit < 0)
        return this.rejectEarly(
          'circuitOpen',
          breaker.retryAfter(now),
          breaker.partition,
          thisArg,
          argc,
          a0,
          a1,
          a2,
          a3,
          rest,
          task,
          now,
          chaosOn,
        );
    }
    if (limiter !== undefined && !limiter.tryAcquire(now)) {
      breaker?.release(permit);
      // A limiter with a store answers on the slow path (one round trip to the store).
      if (limiter.shared === undefined && (limiter.maxWait === 0 || this.totalTimeout === 0)) {
        limiter.countRejection();
        return this.rejectEarly(
          'rateLimited',
          limiter.retryAfter(now),
          limiter.partition,
          thisArg,
          argc,
          a0,
          a1,
          a2,
          a3,
          rest,
          task,
          now,
          chaosOn,
        );
      }
      return this.startFlow(
        thisArg,
        collect(argc, a0, a1, a2, a3, rest),
        task,
        now,
        undefined,
        chaosOn,
      );
    }
    if (bulkhead !== undefined && !bulkhead.tryAcquire()) {
      if (limiter !== undefined) limiter.refund();
      breaker?.release(permit);
      if (bulkhead.maxQueue === 0) {
        bulkhead.countRejection();
        const partition = bulkhead.partition;
        return this.rejectEarly(
          'bulkheadFull',
          0,
          partition,
          thisArg,
          argc,
          a0,
          a1,
          a2,
          a3,
          rest,
          task,
          now,
          chaosOn,
        );
      }
      return this.startFlow(
        thisArg,
        collect(argc, a0, a1, a2, a3, rest),
        task,
        now,
        undefined,
        chaosOn,
      );
    }
    if (!this.observe && entry === undefined) {
      const context = task === undefined ? undefined : new Attempt(1);
      return chaosOn
        ? this.inject(thisArg, argc, a0, a1, a2, a3, rest, task, context, 1)
        : run(this.fn, thisArg, argc, a0, a1, a2, a3, rest, task, context);
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
    c.breaker = breaker;
    c.bulkhead = bulkhead;
    c.entry = entry;
    c.chaos = chaosOn;
    if (task !== undefined) c.attempt = new Attempt(1);
    const promise = chaosOn
      ? this.inject(thisArg, argc, a0, a1, a2, a3, rest, task, c.attempt, 1)
      : run(this.fn, thisArg, argc, a0, a1, a2, a3, rest, task, c.attempt);
    return this.watch(c, promise, entry, now);
  }

  /** Watches the first attempt's promise: one `.then`, and the deadline when there is a timeout. */
  private watch(
    c: Call,
    promise: Promise<unknown>,
    entry: CacheEntry | undefined,
    now: number,
  ): Promise<unknown> {
    const deadlines = this.deadlines;
    if (deadlines === undefined) {
      const observed = promise.then(c.onOk, c.onError);
      // A cache miss is filled by this call (see `afterFirst`): its flight is what the caller gets.
      if (entry !== undefined) entry.flight = observed;
      return observed;
    }
    const outer = new Promise(c.executor);
    if (entry !== undefined) entry.flight = outer;
    if (this.listening()) {
      // A listener (OpenTelemetry, say) reads the async context of the events it gets: the timeout
      // event must fire in this call's context, not in that of the call that armed the shared timer.
      // The call waits on it: it keeps the process alive until it is cleared.
      c.timer = setTimer(this.clock, c.onExpired, this.firstTimeout);
    } else {
      if (!this.lazyDeadlines) c.deadline = now + this.firstTimeout;
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
    c.breaker?.recordSuccess(c.permit, this.sampleTime(c));
    c.bulkhead?.release();
    if (!this.judgesResult && c.entry === undefined) {
      releaseCall(c);
      return value;
    }
    const next = this.afterFirst(c, false, value);
    releaseCall(c);
    return next;
  }

  /** @internal the first attempt failed (no timeout stage). */
  fastError(c: Call, error: unknown): unknown {
    c.breaker?.recordFailure(c.permit, this.sampleTime(c), error);
    c.bulkhead?.release();
    try {
      return this.afterFirst(c, true, error);
    } finally {
      releaseCall(c);
    }
  }

  /** @internal `fn` settled in a timed first attempt. */
  timedOk(c: Call, value: unknown): void {
    c.bulkhead?.release();
    if (c.timedOut) return releaseCall(c);
    this.stopTimer(c);
    c.breaker?.recordSuccess(c.permit, this.sampleTime(c));
    this.settleOuter(c, false, value);
    releaseCall(c);
  }

  /** @internal `fn` failed in a timed first attempt. */
  timedError(c: Call, error: unknown): void {
    c.bulkhead?.release();
    if (c.timedOut) return releaseCall(c);
    this.stopTimer(c);
    c.breaker?.recordFailure(c.permit, this.sampleTime(c), error);
    this.settleOuter(c, true, error);
    releaseCall(c);
  }

  private settleOuter(c: Call, failed: boolean, value: unknown): void {
    const resolve = c.resolve as (value: unknown) => void;
    const reject = c.reject as (reason: unknown) => void;
    // The Call is released right after (timedOk, timedError), or, on a timeout, `expired` drops these.
    // The happy path: nothing to judge, retry or fill.
    if (!failed && !this.judgesResult && c.entry === undefined) return resolve(value);
    try {
      resolve(this.afterFirst(c, failed, value));
    } catch (error) {
      reject(error);
    }
  }

  /**
   * What follows the first attempt: its value, a retry (slow path), the fallback, or its error thrown.
   * The retry predicates run here, synchronously, so a failure that is not retried never pays for an
   * async frame. A cache miss is filled here too: the cache stage needs no `.then` of its own.
   */
  private afterFirst(c: Call, failed: boolean, value: unknown): unknown {
    const entry = c.entry;
    if (entry !== undefined) {
      if (!failed && !this.judgesResult) {
        this.cache!.storeNow(entry, value);
        return value;
      }
      return this.fillAfter(entry, c, failed, value);
    }
    return this.decideFor(c, failed, value);
  }

  /**
   * {@link decide} for a Call: a method of its own, so that `afterFirst` stays small enough for V8 to
   * inline into the settlement of every call (its twelve arguments were half of its bytecode).
   */
  private decideFor(c: Call, failed: boolean, value: unknown): unknown {
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
      c.chaos,
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
    chaos: boolean,
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
      flow.chaos = chaos;
      if (this.partitioned) this.route(flow);
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
    clearTimer(this.clock, c.timer);
    c.timer = undefined;
  }

  /** The first attempt ran out of time; `fn` still runs and keeps its bulkhead slot until it settles. */
  /** @internal */
  expired(c: Call): void {
    c.timedOut = true;
    const error = this.timeoutError(this.firstTimeout, this.firstScope);
    c.attempt?.abort(error);
    c.breaker?.recordFailure(c.permit, this.sampleTime(c), error);
    this.settleOuter(c, true, error);
    // `fn` still runs and holds this Call until it settles: keep nothing of the caller's alive.
    c.resolve = c.reject = undefined;
  }

  /* eslint-disable no-restricted-syntax -- slow path: a cache miss whose first attempt failed or is judged */
  /**
   * The first attempt of a cache miss failed, or its result is judged by `retryOnResult`: the retry (if
   * any) runs on the slow path, then the entry is filled, the stale value served, or the fallback
   * applied (the cache sees a failure before the fallback does).
   */
  private fillAfter(entry: CacheEntry, c: Call, failed: boolean, value: unknown): unknown {
    const { thisArg, argc, a0, a1, a2, a3, rest } = c;
    let next: unknown;
    try {
      next = this.decide(
        failed,
        value,
        thisArg,
        argc,
        a0,
        a1,
        a2,
        a3,
        rest,
        c.task,
        c.start,
        c.chaos,
      );
    } catch (error) {
      return this.missFallback(entry, error, thisArg, collect(argc, a0, a1, a2, a3, rest));
    }
    if (!(next instanceof Promise)) {
      this.cache!.storeNow(entry, next);
      return next;
    }
    const args = collect(argc, a0, a1, a2, a3, rest);
    return next.then(
      (result: unknown) => {
        this.cache!.storeNow(entry, result);
        return result;
      },
      (error: unknown) => this.missFallback(entry, error, thisArg, args),
    );
  }

  /** A miss failed for good: the stale value if `staleIfError` allows, else the fallback, else throw. */
  private missFallback(
    entry: CacheEntry,
    error: unknown,
    thisArg: unknown,
    args: unknown[],
  ): unknown {
    try {
      return this.missFailed(entry, error);
    } catch {
      if (this.fallback === undefined) throw error;
      return this.applyFallback(error, thisArg, args);
    }
  }

  /**
   * @internal the cache stage's answer to a failed miss: the stale value within `staleIfError` (and a
   * `staleServed` event), else the entry is forgotten and the error thrown.
   */
  protected missFailed(entry: CacheEntry, error: unknown): unknown {
    const cache = this.cache!;
    entry.flight = undefined;
    const now = this.clock.now();
    if (
      entry.expires !== -Infinity &&
      now - entry.expires <= cache.staleIfError &&
      !this.isAbort(error)
    ) {
      cache.staleServed++;
      if (this.listening()) {
        this.emit({
          type: 'staleServed',
          key: entry.key,
          age: now - entry.expires + cache.ttl,
          error,
        });
      }
      return entry.value;
    }
    cache.drop(entry);
    throw error;
  }
  /* eslint-enable no-restricted-syntax */

  /** A rejection before `fn` ran, without entering the slow path unless a retry may follow. */
  private rejectEarly(
    reason: RejectionReason,
    retryAfter: number,
    partition: string | undefined,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
    task: Task | undefined,
    now: number,
    chaos: boolean,
  ): Promise<unknown> {
    const error = this.rejection(reason, retryAfter, partition);
    if (this.retry === undefined && (this.fallback === undefined || this.cache !== undefined)) {
      return rejectSoon(error);
    }
    try {
      return Promise.resolve(
        this.decide(true, error, thisArg, argc, a0, a1, a2, a3, rest, task, now, chaos),
      );
    } catch (finalError) {
      return rejectSoon(finalError);
    }
  }
}
