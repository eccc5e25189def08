import { describe, expect, it } from 'vitest';
import { BulkheadRejectedError, circuitBreaker, resilient } from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { deferred } from '../helpers/promises.js';

const boom = new Error('boom');

/** A Promise subclass whose `then` calls the handlers it is given twice (or both). */
function misbehaving(mode: 'twice' | 'both'): Promise<string> {
  class Evil extends Promise<string> {
    override then<A = string, B = never>(
      onOk?: ((value: string) => A | PromiseLike<A>) | null,
      onError?: ((reason: unknown) => B | PromiseLike<B>) | null,
    ): Promise<A | B> {
      onOk?.('evil');
      if (mode === 'twice') onOk?.('evil again');
      else onError?.(new Error('evil'));
      return super.then(onOk, onError);
    }
  }
  return Evil.resolve('evil');
}

describe('a Promise subclass or thenable from fn cannot corrupt the next call (fast path)', () => {
  it.each(['twice', 'both'] as const)(
    'a then that calls its handlers %s: every later call gets its own outcome',
    async (mode) => {
      const clock = new ManualClock();
      let n = 0;
      const call = resilient(
        (evil: boolean) => (evil ? misbehaving(mode) : Promise.resolve(`ok ${++n}`)),
        { clock, retry: { maxAttempts: 2, backoff: () => 0 }, circuitBreaker: {}, bulkhead: 1 },
      );
      const outcomes = await Promise.all([
        call(true).catch((e: unknown) => e),
        call(false).catch((e: unknown) => e),
      ]);
      // The bulkhead admits one at a time: the second call is turned away while the first runs.
      expect(outcomes[1]).toBeInstanceOf(BulkheadRejectedError);
      expect(['evil', 'evil again']).toContain(outcomes[0]);
      for (let i = 1; i <= 5; i++) await expect(call(false)).resolves.toBe(`ok ${i}`);
      // A maxConcurrent: 1 bulkhead never admits two.
      const first = call(false);
      await expect(call(false)).rejects.toBeInstanceOf(BulkheadRejectedError);
      await expect(first).resolves.toBe('ok 6');
    },
  );

  it.each(['twice', 'both'] as const)('with a timeout: a then that calls %s', async (mode) => {
    const clock = new ManualClock();
    let n = 0;
    const call = resilient(
      (evil: boolean) => (evil ? misbehaving(mode) : Promise.resolve(`ok ${++n}`)),
      { clock, timeout: 1_000, bulkhead: 1 },
    );
    expect(['evil', 'evil again']).toContain(await call(true));
    for (let i = 1; i <= 5; i++) await expect(call(false)).resolves.toBe(`ok ${i}`);
    const first = call(false);
    await expect(call(false)).rejects.toBeInstanceOf(BulkheadRejectedError);
    await expect(first).resolves.toBe('ok 6');
  });

  it('a native promise with a throwing `constructor` getter: the call rejects with its error, nothing throws', async () => {
    const boom = new Error('constructor getter');
    const odd = Promise.resolve('never seen');
    Reflect.defineProperty(odd, 'constructor', {
      get() {
        throw boom;
      },
    });
    for (const options of [{}, { timeout: 1_000 }, { retry: { maxAttempts: 1 } }]) {
      const call = resilient(() => odd, options);
      let promise: Promise<string> | undefined;
      expect(() => (promise = call())).not.toThrow();
      await expect(promise).rejects.toBe(boom);
    }
  });

  it('a native promise with its own `then` is adopted through that `then`', async () => {
    const own = Promise.resolve('native value');
    Reflect.defineProperty(own, 'then', {
      value: (onOk: (v: string) => void) => onOk('own then'),
    });
    await expect(resilient(() => own, { timeout: 1_000 })()).resolves.toBe('own then');
    await expect(resilient(() => own, { retry: true })()).resolves.toBe('own then');
  });

  it('a plain thenable that calls both handlers settles the call once', async () => {
    const thenable = {
      then(onOk: (v: string) => void, onError: (e: unknown) => void) {
        onOk('first');
        onError(new Error('second'));
        onOk('third');
      },
    };
    const call = resilient(() => thenable as unknown as Promise<string>, {
      retry: { maxAttempts: 2, backoff: () => 0 },
      bulkhead: 1,
    });
    await expect(call()).resolves.toBe('first');
    await expect(call()).resolves.toBe('first');
  });
});

describe('a pooled call carries nothing from one pipeline to the next', () => {
  it("a plain pipeline's calls never release another pipeline's bulkhead slot", async () => {
    const gate = deferred<string>();
    const guarded = resilient(() => gate.promise, { bulkhead: 1 });
    const plain = resilient(() => Promise.resolve('plain'), { retry: { maxAttempts: 2 } });
    gate.resolve('guarded');
    // Each call's state goes back to the pool when fn settles; the next call takes it again.
    await expect(guarded()).resolves.toBe('guarded');
    await expect(plain()).resolves.toBe('plain');
    const held = guarded();
    await expect(guarded()).rejects.toBeInstanceOf(BulkheadRejectedError);
    await expect(held).resolves.toBe('guarded');
  });

  it("a plain pipeline's failures are not counted by another pipeline's circuit breaker", async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1 });
    const guarded = resilient(() => Promise.resolve('guarded'), { clock, circuitBreaker: breaker });
    const plain = resilient(() => Promise.reject(boom), {
      clock,
      retry: { maxAttempts: 2, retryOn: () => false },
    });
    await expect(guarded()).resolves.toBe('guarded');
    await expect(plain()).rejects.toBe(boom);
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 1, failures: 0 });
    await expect(guarded()).resolves.toBe('guarded');
  });
});
