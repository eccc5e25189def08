import { describe, expect, it } from 'vitest';
import { CircuitOpenError, circuitBreaker, resilient } from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';

// Regressions found by the soak test (test/soak/run.mjs).

describe('execute in a policy that also caches', () => {
  // `execute` skips the cache stage (no arguments to key on), so its pipeline must apply the fallback
  // itself: it used to leave that to the cache stage and reject with the error.
  it('applies the fallback to a failure (fast path)', async () => {
    const policy = resilient({ cache: true, fallback: 'fallback' });
    await expect(policy.execute(() => Promise.reject(new Error('down')))).resolves.toBe('fallback');
  });

  it('applies the fallback to a library rejection and after retries', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ consecutiveFailures: 1, halfOpenAfter: 1_000 });
    const policy = resilient({
      clock,
      cache: { ttl: 100 },
      circuitBreaker: breaker,
      retry: { maxAttempts: 2, backoff: () => 0 },
      fallback: (error: unknown) => (error instanceof CircuitOpenError ? 'open' : 'failed'),
    });
    await expect(policy.execute(() => Promise.reject(new Error('down')))).resolves.toBe('open');
    await expect(policy.execute(() => 'ok')).resolves.toBe('open');
  });

  it('still leaves the fallback to the cache stage for wrapped functions', async () => {
    const policy = resilient({ cache: true, fallback: 'fallback' });
    let calls = 0;
    const get = policy((key: string) => {
      calls++;
      return calls === 1 ? Promise.reject(new Error(key)) : Promise.resolve(key);
    });
    await expect(get('a')).resolves.toBe('fallback');
    await expect(get('a')).resolves.toBe('a');
    await expect(get('a')).resolves.toBe('a');
    expect(calls).toBe(2);
  });

  it('does not apply the fallback to a caller abort', async () => {
    const policy = resilient({ cache: true, fallback: 'fallback' });
    const controller = new AbortController();
    const reason = new Error('gave up');
    controller.abort(reason);
    await expect(policy.execute(() => 'value', { signal: controller.signal })).rejects.toBe(reason);
  });
});
