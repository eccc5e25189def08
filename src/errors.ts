const MARKER = Symbol.for('bulwark.ResilienceError');

/** Stable codes of the library's own errors. */
export type ResilienceErrorCode =
  | 'ERR_BULWARK_TIMEOUT'
  | 'ERR_BULWARK_CIRCUIT_OPEN'
  | 'ERR_BULWARK_RATE_LIMITED'
  | 'ERR_BULWARK_BULKHEAD_REJECTED';

/**
 * Base class of every error bulwark itself raises. Check with {@link isResilienceError}, which also works
 * when two copies of the package are loaded (ESM and CJS side by side).
 */
export abstract class ResilienceError extends Error {
  abstract readonly code: ResilienceErrorCode;
  /** Marker read by {@link isResilienceError}; survives duplicate copies of the package. */
  declare readonly [MARKER]: true;
  // The marker and each class's `name` live on the prototypes, as `TypeError.prototype.name` does: a
  // rejection under load then defines no property but its own fields (building one is on the hot path).
  static {
    Object.defineProperty(this.prototype, MARKER, { value: true });
  }
}

function named(type: { prototype: Error }, name: string): void {
  Object.defineProperty(type.prototype, 'name', {
    value: name,
    writable: true,
    configurable: true,
  });
}

/** An attempt or the whole call ran past its time limit. */
export class TimeoutError extends ResilienceError {
  declare readonly name: 'TimeoutError';
  static {
    named(this, 'TimeoutError');
  }
  readonly code = 'ERR_BULWARK_TIMEOUT';
  /** The limit that expired, in milliseconds. */
  readonly timeout: number;
  /** Which limit expired: one attempt's or the whole call's (`timeout.total`). */
  readonly scope: 'attempt' | 'total';
  constructor(timeout: number, scope: 'attempt' | 'total' = 'attempt') {
    super(`${scope === 'total' ? 'Call' : 'Attempt'} timed out after ${timeout} ms`);
    this.timeout = timeout;
    this.scope = scope;
  }
}

/** The circuit breaker is open (or its half-open trial slots are taken); `fn` was not called. */
export class CircuitOpenError extends ResilienceError {
  declare readonly name: 'CircuitOpenError';
  static {
    named(this, 'CircuitOpenError');
  }
  readonly code = 'ERR_BULWARK_CIRCUIT_OPEN';
  /** Milliseconds until the breaker lets a trial call through (`Infinity` while isolated). */
  readonly retryAfter: number;
  constructor(retryAfter: number) {
    super(
      retryAfter === Infinity
        ? 'Circuit is isolated'
        : `Circuit is open; retry after ${Math.ceil(retryAfter)} ms`,
    );
    this.retryAfter = retryAfter;
  }
}

/** The rate limiter had no token within the allowed wait; `fn` was not called. */
export class RateLimitedError extends ResilienceError {
  declare readonly name: 'RateLimitedError';
  static {
    named(this, 'RateLimitedError');
  }
  readonly code = 'ERR_BULWARK_RATE_LIMITED';
  /** Milliseconds until a token is free. */
  readonly retryAfter: number;
  constructor(retryAfter: number) {
    super(`Rate limited; retry after ${Math.ceil(retryAfter)} ms`);
    this.retryAfter = retryAfter;
  }
}

/** The bulkhead was full and its queue too (or the wait in its queue expired); `fn` was not called. */
export class BulkheadRejectedError extends ResilienceError {
  declare readonly name: 'BulkheadRejectedError';
  static {
    named(this, 'BulkheadRejectedError');
  }
  readonly code = 'ERR_BULWARK_BULKHEAD_REJECTED';
  /** Why: no room in the queue, or `queueTimeout` expired while waiting. */
  readonly reason: 'full' | 'queueTimeout';
  constructor(reason: 'full' | 'queueTimeout') {
    super(reason === 'full' ? 'Bulkhead is full' : 'Bulkhead queue wait timed out');
    this.reason = reason;
  }
}

/**
 * True for any error raised by bulwark itself, from this copy of the package or another.
 *
 * @example
 * try { await getUser('42') } catch (e) { if (isResilienceError(e)) metrics.count(e.code) }
 */
export function isResilienceError(error: unknown): error is ResilienceError {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as Record<symbol, unknown>)[MARKER] === true
  );
}

/**
 * True for the library's local rejections: an open circuit, a rate limit, a full bulkhead. They say
 * nothing about the downstream's health, so they are never breaker failures and are not retried by
 * default.
 */
export function isLocalRejection(error: unknown): boolean {
  if (!isResilienceError(error)) return false;
  const code = error.code;
  return (
    code === 'ERR_BULWARK_CIRCUIT_OPEN' ||
    code === 'ERR_BULWARK_RATE_LIMITED' ||
    code === 'ERR_BULWARK_BULKHEAD_REJECTED'
  );
}

/**
 * @internal True for a {@link TimeoutError} of `scope` from any copy of the package: the library's own
 * rules never use `instanceof` on its errors, or an outer pipeline from the other copy (ESM next to
 * CJS) would not recognise an inner one's timeout.
 */
export function isTimeoutError(error: unknown, scope: 'attempt' | 'total'): boolean {
  return (
    isResilienceError(error) &&
    error.code === 'ERR_BULWARK_TIMEOUT' &&
    (error as TimeoutError).scope === scope
  );
}
