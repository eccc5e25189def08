import type { Clock } from '../clock.js';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  isTimeoutError,
  RateLimitedError,
  TimeoutError,
  type ResilienceError,
} from '../errors.js';
import { Emitter, keyed, type RejectionReason, type ResilienceEvent } from '../events.js';
import type { ResolvedOptions } from '../options.js';
import type { Cache } from '../policies/cache.js';
import type { ResolvedChaos } from '../policies/chaos.js';
import type { CircuitBreaker } from '../policies/circuit-breaker.js';
import type { Bulkhead } from '../policies/bulkhead.js';
import type { ResolvedFallback } from '../policies/fallback.js';
import type { Partitions } from '../policies/partition.js';
import type { RateLimiter } from '../policies/rate-limiter.js';
import type { ResolvedRetry } from '../policies/retry.js';

/**
 * What the async {@link Pipeline} and the synchronous pipeline of `resilientSync` share: the resolved
 * stages, the retry predicates, the library's rejections and event emission.
 */
export abstract class Stages {
  readonly clock: Clock;
  readonly random: () => number;
  readonly retry: ResolvedRetry | undefined;
  readonly maxAttempts: number;
  readonly breaker: CircuitBreaker | undefined;
  readonly limiter: RateLimiter | undefined;
  /** The partitions of a partitioned stage (then `breaker`, `limiter` or `bulkhead` is its template). */
  readonly breakers: Partitions<CircuitBreaker> | undefined;
  readonly limiters: Partitions<RateLimiter> | undefined;
  readonly bulkheads: Partitions<Bulkhead> | undefined;
  /** True when a stage is partitioned. */
  readonly partitioned: boolean;
  /** True when a partitioned stage needs each call's time (`idleAfter`). */
  readonly partitionsTimed: boolean;
  readonly cache: Cache | undefined;
  readonly fallback: ResolvedFallback | undefined;
  readonly chaos: ResolvedChaos | undefined;
  readonly stackTraces: boolean;
  readonly events = new Emitter();

  constructor(
    readonly options: ResolvedOptions,
    protected readonly parent: Emitter | undefined,
  ) {
    this.clock = options.clock;
    this.random = options.random;
    this.retry = options.retry;
    this.maxAttempts = options.retry?.maxAttempts ?? 1;
    this.breaker = options.breaker;
    this.limiter = options.limiter;
    this.breakers = options.breakerPartitions;
    this.limiters = options.limiterPartitions;
    this.bulkheads = options.bulkheadPartitions;
    this.partitioned =
      this.breakers !== undefined || this.limiters !== undefined || this.bulkheads !== undefined;
    this.partitionsTimed =
      (this.breakers?.idleAfter ?? Infinity) !== Infinity ||
      (this.limiters?.idleAfter ?? Infinity) !== Infinity ||
      (this.bulkheads?.idleAfter ?? Infinity) !== Infinity;
    this.cache = typeof options.cache === 'function' ? options.cache() : options.cache;
    this.cache?.adoptClock(this.clock);
    this.fallback = options.fallback;
    this.chaos = options.chaos;
    this.stackTraces = options.stackTraces;
  }

  /** Whether `error` from attempt `attempt` is retried (may throw: `retryOn` is the user's). */
  protected retriesError(error: unknown, attempt: number): boolean {
    const retry = this.retry;
    if (retry === undefined) return false;
    if (isTimeoutError(error, 'total')) return false;
    if (attempt >= this.maxAttempts) {
      if (this.listening()) {
        // eslint-disable-next-line no-restricted-syntax -- built only when someone listens
        this.emit({ type: 'retriesExhausted', attempts: attempt, error });
      }
      return false;
    }
    return retry.retryOn(error, attempt);
  }

  /** Whether a successful `result` is retried (`retryOnResult`). */
  protected retriesResult(result: unknown, attempt: number): boolean {
    const retryOnResult = this.retry?.retryOnResult;
    return (
      retryOnResult !== undefined && attempt < this.maxAttempts && retryOnResult(result, attempt)
    );
  }

  /** One of the library's local rejections; without a stack trace when `stackTraces` is off. */
  protected rejection(
    reason: RejectionReason,
    retryAfter: number,
    partition?: string,
  ): ResilienceError {
    const limit = Error.stackTraceLimit;
    if (!this.stackTraces) Error.stackTraceLimit = 0;
    let error: ResilienceError;
    if (reason === 'circuitOpen') error = new CircuitOpenError(retryAfter);
    else if (reason === 'rateLimited') error = new RateLimitedError(retryAfter);
    else error = new BulkheadRejectedError(reason === 'bulkheadFull' ? 'full' : 'queueTimeout');
    Error.stackTraceLimit = limit;
    if (this.listening()) {
      // eslint-disable-next-line no-restricted-syntax -- built only when someone listens
      this.emit(keyed({ type: 'callRejected', reason, retryAfter }, partition));
    }
    return error;
  }

  protected timeoutError(timeout: number, scope: 'attempt' | 'total'): TimeoutError {
    const limit = Error.stackTraceLimit;
    if (!this.stackTraces) Error.stackTraceLimit = 0;
    const error = new TimeoutError(timeout, scope);
    Error.stackTraceLimit = limit;
    if (this.listening()) {
      // eslint-disable-next-line no-restricted-syntax -- built only when someone listens
      this.emit({ type: 'timedOut', timeout, scope });
    }
    return error;
  }

  /** True when someone listens: build event objects only then. */
  protected listening(): boolean {
    return this.events.listening || this.parent?.listening === true;
  }

  protected emit(event: ResilienceEvent): void {
    this.events.emit(event);
    this.parent?.emit(event);
  }

  /* eslint-disable no-restricted-syntax -- error messages: built at wrap time or when a call is refused */
  /** At wrap time: the default cache key cannot serve a function that declares several parameters. */
  checkKey(fn: { readonly name: string; readonly length: number }): void {
    if (this.cache === undefined || this.cache.keyOf !== undefined || fn.length <= 1) return;
    throw new TypeError(
      `The default \`cache.key\` works for a function of at most one primitive argument, and \`${fn.name || 'anonymous'}\` declares ${fn.length}; pass \`cache.key: (...args) => key\``,
    );
  }

  /** At call time: a TypeError for arguments the default cache key cannot take. */
  protected keyError(argc: number, a0: unknown): TypeError {
    return new TypeError(
      `The default \`cache.key\` needs exactly one primitive argument (string, number, boolean, bigint, symbol, null or undefined), got ${argc} argument(s)${argc === 1 ? ` of type ${a0 === null ? 'null' : typeof a0}` : ''}; pass \`cache.key: (...args) => key\``,
    );
  }
  /* eslint-enable no-restricted-syntax */
}
