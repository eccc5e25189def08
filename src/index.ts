export { resilient } from './resilient.js';
export type {
  ExecuteOptions,
  Observable,
  PipelineDescription,
  PipelineStats,
  Policy,
  ResilientFunction,
} from './resilient.js';
export type { ResilientOptions } from './options.js';
export type { AttemptContext } from './core/attempt.js';
export {
  ResilienceError,
  TimeoutError,
  CircuitOpenError,
  RateLimitedError,
  BulkheadRejectedError,
  isResilienceError,
} from './errors.js';
export type { ResilienceErrorCode } from './errors.js';
export { backoff } from './backoff.js';
export type {
  Backoff,
  BackoffDescription,
  DecorrelatedOptions,
  ExponentialOptions,
  Jitter,
} from './backoff.js';
export { systemClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export type {
  Listener,
  RejectionReason,
  ResilienceEvent,
  ResilienceEventType,
  Unsubscribe,
} from './events.js';
export { retryBudget, RetryBudget } from './policies/retry.js';
export type { RetryBudgetOptions, RetryOptions } from './policies/retry.js';
export type { LatencyTimeout, TimeoutOptions } from './policies/timeout.js';
export type { HedgeOptions, LatencyPercentile } from './policies/hedge.js';
export type { AdaptiveAlgorithm, AdaptiveOptions } from './policies/adaptive.js';
export type { FallbackOption } from './policies/fallback.js';
export { circuitBreaker, CircuitBreaker } from './policies/circuit-breaker.js';
export type {
  CircuitBreakerOptions,
  CircuitBreakerSnapshot,
  CircuitState,
  CircuitWindow,
} from './policies/circuit-breaker.js';
export { rateLimiter, RateLimiter } from './policies/rate-limiter.js';
export type { RateLimiterOptions } from './policies/rate-limiter.js';
export { bulkhead, Bulkhead } from './policies/bulkhead.js';
export type { BulkheadOptions } from './policies/bulkhead.js';
export { cache, Cache, jsonSerializer } from './policies/cache.js';
export type { CacheOptions } from './policies/cache.js';
export { resilientSync } from './sync.js';
export type { ResilientSyncFunction, ResilientSyncOptions } from './sync.js';
export { resilientFetch, ResponseStatusError, parseRetryAfter } from './fetch.js';
export type {
  FetchDescription,
  FetchFunction,
  FetchInput,
  ResilientFetch,
  ResilientFetchOptions,
} from './fetch.js';
export type {
  BulkheadRequest,
  FleetCircuitState,
  FleetCounts,
  OutcomeCounts,
  RateLimitRequest,
  RateLimitReservation,
  Serializer,
  SharedBulkhead,
  SharedCache,
  SharedCacheEntry,
  SharedCacheLock,
  SharedCacheRead,
  SharedCircuit,
  SharedRateLimiter,
  Store,
  StorePolicy,
} from './store.js';
