/**
 * Words that several layers share (events, policies, stores). This file imports nothing, so a layer
 * that needs one of these names never has to import another layer for it: that is what keeps the
 * import graph free of circles (test/structure.test.ts).
 */

/** The breaker's state. `isolated` is open by hand until {@link CircuitBreaker.reset}. */
export type CircuitState = 'closed' | 'open' | 'halfOpen' | 'isolated';

/** What {@link StoreUnavailable} events name. */
export type StorePolicy = 'circuitBreaker' | 'rateLimiter' | 'cache' | 'bulkhead';
