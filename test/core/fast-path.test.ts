import { describe, expect, it } from 'vitest';
import { BulkheadRejectedError, resilient } from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';

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
