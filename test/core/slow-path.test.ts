import { describe, expect, it } from 'vitest';
import { resilient } from '../../src/index.js';

describe('a caller abort reaches the attempt at once (slow path)', () => {
  // cockatiel "links parent cancellation token": `fn` aborts the caller while it still runs
  // synchronously; its attempt signal must say so before `fn` returns.
  it.each([
    ['reads the signal after the abort', false],
    ['read the signal before the abort', true],
  ])('execute: %s', async (_, readFirst) => {
    const caller = new AbortController();
    const reason = new Error('caller gave up');
    let seen: boolean | undefined;
    let seenReason: unknown;
    const policy = resilient({ retry: { maxAttempts: 2, backoff: () => 0 } });
    const result = policy.execute(
      ({ signal }) => {
        if (readFirst) expect(signal.aborted).toBe(false);
        caller.abort(reason);
        seen = signal.aborted;
        seenReason = signal.reason;
        return 'done';
      },
      { signal: caller.signal },
    );
    await expect(result).rejects.toBe(reason);
    expect(seen).toBe(true);
    expect(seenReason).toBe(reason);
  });

  it('with the pipeline’s own signal, on a retry', async () => {
    const shutdown = new AbortController();
    const policy = resilient({
      signal: shutdown.signal,
      retry: { maxAttempts: 2, backoff: () => 0 },
    });
    const seen: boolean[] = [];
    const result = policy.execute(({ signal, attempt }) => {
      if (attempt === 1) throw new Error('flaky');
      shutdown.abort();
      seen.push(signal.aborted);
      return 'done';
    });
    const error = await result.catch((e: unknown) => e);
    expect(shutdown.signal.aborted).toBe(true);
    expect(error).toBe(shutdown.signal.reason);
    expect(seen).toEqual([true]);
  });
});
