import { describe, expect, it } from 'vitest';
import {
  circuitBreaker,
  resilient,
  retryBudget,
  TimeoutError,
  type AttemptContext,
  type ResilienceEvent,
} from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { deferred, track } from '../helpers/promises.js';

/** A downstream whose calls the test settles one by one; each call records its own signal. */
function downstream() {
  const calls: { signal: AbortSignal; settle: ReturnType<typeof deferred<string>> }[] = [];
  const task = ({ signal }: AttemptContext): Promise<string> => {
    const settle = deferred<string>();
    calls.push({ signal, settle });
    return settle.promise;
  };
  return { calls, task };
}

describe('hedge: a fixed delay', () => {
  it('starts a second attempt after the delay; the first success wins and the loser is aborted', async () => {
    const clock = new ManualClock();
    const events: ResilienceEvent[] = [];
    const policy = resilient({ hedge: { delay: 50 }, clock });
    policy.on((e) => events.push(e));
    const d = downstream();
    const call = track(policy.execute(d.task));
    await clock.advance(49);
    expect(d.calls).toHaveLength(1);
    await clock.advance(1);
    expect(d.calls).toHaveLength(2);
    expect(events).toContainEqual({ type: 'attemptHedged', attempt: 1, hedge: 1, reason: 'slow' });
    d.calls[1]!.settle.resolve('second');
    await clock.advance(0);
    expect(call.status).toBe('fulfilled');
    expect(call.value).toBe('second');
    expect(d.calls[0]!.signal.aborted).toBe(true);
    expect((d.calls[0]!.signal.reason as DOMException).name).toBe('AbortError');
    expect(d.calls[1]!.signal.aborted).toBe(false);
    // No more attempts: maxHedgedAttempts defaults to 1.
    await clock.advance(1_000);
    expect(d.calls).toHaveLength(2);
    expect(clock.pending()).toBe(0);
  });

  it('a fast first success sends nothing more and leaves no timer', async () => {
    const clock = new ManualClock();
    const policy = resilient({ hedge: { delay: 50 }, clock });
    let sent = 0;
    await expect(policy.execute(async () => ++sent)).resolves.toBe(1);
    await clock.advance(100);
    expect(sent).toBe(1);
    expect(clock.pending()).toBe(0);
  });

  it('a failure before the delay starts the next attempt at once', async () => {
    const clock = new ManualClock();
    const events: ResilienceEvent[] = [];
    const policy = resilient({ hedge: { delay: 50, maxHedgedAttempts: 2 }, clock });
    policy.on((e) => events.push(e));
    const d = downstream();
    const call = track(policy.execute(d.task));
    await clock.advance(10);
    d.calls[0]!.settle.reject(new Error('boom'));
    await clock.advance(0);
    expect(d.calls).toHaveLength(2);
    expect(events).toContainEqual({
      type: 'attemptHedged',
      attempt: 1,
      hedge: 1,
      reason: 'failed',
    });
    // The next hedge still waits for its delay, counted from the second attempt's start.
    await clock.advance(49);
    expect(d.calls).toHaveLength(2);
    await clock.advance(1);
    expect(d.calls).toHaveLength(3);
    d.calls[2]!.settle.resolve('third');
    await clock.advance(0);
    expect(call.value).toBe('third');
    expect(d.calls[1]!.signal.aborted).toBe(true);
  });

  it('when every attempt fails, the error of the last one to fail is rethrown unchanged', async () => {
    const clock = new ManualClock();
    const policy = resilient({ hedge: { delay: 10, maxHedgedAttempts: 2 }, clock });
    const d = downstream();
    const call = track(policy.execute(d.task));
    await clock.advance(20);
    expect(d.calls).toHaveLength(3);
    const last = new Error('last');
    d.calls[2]!.settle.reject(new Error('third, first to fail'));
    d.calls[0]!.settle.reject(new Error('first'));
    await clock.advance(0);
    expect(call.status).toBe('pending');
    d.calls[1]!.settle.reject(last);
    await clock.advance(0);
    expect(call.status).toBe('rejected');
    expect(call.reason).toBe(last);
  });

  it('a caller abort ends every attempt in flight with the caller reason', async () => {
    const clock = new ManualClock();
    const policy = resilient({ hedge: { delay: 10 }, clock });
    const d = downstream();
    const caller = new AbortController();
    const call = track(policy.execute(d.task, { signal: caller.signal }));
    await clock.advance(10);
    expect(d.calls).toHaveLength(2);
    const reason = new Error('shutdown');
    caller.abort(reason);
    await clock.advance(0);
    expect(call.reason).toBe(reason);
    expect(d.calls.map((c) => c.signal.reason)).toEqual([reason, reason]);
    expect(clock.pending()).toBe(0);
  });

  it('the total deadline ends all attempts; each hedged attempt has its own attempt timeout', async () => {
    const clock = new ManualClock();
    const policy = resilient({ hedge: { delay: 30 }, timeout: { attempt: 50, total: 70 }, clock });
    const d = downstream();
    const call = track(policy.execute(d.task));
    await clock.advance(50);
    // The first attempt timed out at 50; the hedge (started at 30) runs until the deadline at 70.
    expect((d.calls[0]!.signal.reason as TimeoutError).scope).toBe('attempt');
    expect(call.status).toBe('pending');
    await clock.advance(20);
    expect(call.status).toBe('rejected');
    expect((call.reason as TimeoutError).scope).toBe('total');
  });

  it('inside retry: each retry attempt is one race; retry sees its last failure', async () => {
    const clock = new ManualClock();
    const policy = resilient({
      retry: { maxAttempts: 2, backoff: () => 100 },
      hedge: { delay: 10 },
      clock,
    });
    const d = downstream();
    const call = track(policy.execute(d.task));
    await clock.advance(10);
    d.calls[0]!.settle.reject(new Error('a'));
    d.calls[1]!.settle.reject(new Error('b'));
    await clock.advance(0);
    expect(d.calls).toHaveLength(2);
    await clock.advance(100);
    expect(d.calls).toHaveLength(3);
    d.calls[2]!.settle.resolve('ok');
    await clock.advance(0);
    expect(call.value).toBe('ok');
  });

  it('every hedged attempt passes the breaker: an open circuit stops hedging, a loser hands back its permit', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ consecutiveFailures: 1, halfOpenAfter: 1_000 });
    const policy = resilient({ hedge: { delay: 10 }, circuitBreaker: breaker, clock });
    const d = downstream();
    const call = track(policy.execute(d.task));
    await clock.advance(10);
    d.calls[1]!.settle.resolve('fast');
    await clock.advance(0);
    expect(call.value).toBe('fast');
    // The aborted loser is not a failure: the circuit stays closed.
    expect(breaker.stats().state).toBe('closed');
    breaker.isolate();
    await expect(policy.execute(d.task)).rejects.toMatchObject({
      code: 'ERR_BULWARK_CIRCUIT_OPEN',
    });
    expect(d.calls).toHaveLength(2);
  });

  it('hedges spend the retry budget: no budget, no hedge', async () => {
    const clock = new ManualClock();
    const budget = retryBudget({ ratio: 0.1, minPerSecond: 0 });
    const events: ResilienceEvent[] = [];
    const policy = resilient({ retry: { maxAttempts: 1, budget }, hedge: { delay: 10 }, clock });
    policy.on((e) => events.push(e));
    const d = downstream();
    const call = track(policy.execute(d.task));
    await clock.advance(10);
    expect(d.calls).toHaveLength(1);
    expect(events.some((e) => e.type === 'retryBudgetExhausted')).toBe(true);
    d.calls[0]!.settle.resolve('only');
    await clock.advance(0);
    expect(call.value).toBe('only');
  });
});

describe('hedge: a percentile delay', () => {
  it('uses max until enough latencies are known, then the percentile of recent successes', async () => {
    const clock = new ManualClock();
    const policy = resilient({ hedge: { delay: { percentile: 0.95, max: 500 } }, clock });
    const d = downstream();
    const latencyOf = (i: number): number => 10 + (i % 10);
    // 19 successes: not enough for p95 (20).
    for (let i = 0; i < 19; i++) {
      const call = policy.execute(d.task);
      await clock.advance(latencyOf(i));
      d.calls.at(-1)!.settle.resolve('ok');
      await call;
    }
    let call = track(policy.execute(d.task));
    await clock.advance(499);
    expect(d.calls).toHaveLength(20);
    await clock.advance(1);
    expect(d.calls).toHaveLength(21);
    d.calls[19]!.settle.resolve('ok');
    await clock.advance(0);
    expect(call.status).toBe('fulfilled');
    // 20 latencies known now: 19 between 10 and 19 ms, and 500. p95 (nearest rank) is 19 ms.
    call = track(policy.execute(d.task));
    await clock.advance(18);
    expect(d.calls).toHaveLength(22);
    await clock.advance(1);
    expect(d.calls).toHaveLength(23);
    d.calls[22]!.settle.resolve('ok');
    await clock.advance(0);
    expect(call.status).toBe('fulfilled');
  });

  it('without max, hedges nothing until the percentile is known', async () => {
    const clock = new ManualClock();
    const policy = resilient({ hedge: { delay: { percentile: 0.5 } }, clock });
    const d = downstream();
    const call = track(policy.execute(d.task));
    await clock.advance(60_000);
    expect(d.calls).toHaveLength(1);
    d.calls[0]!.settle.resolve('ok');
    await clock.advance(0);
    expect(call.value).toBe('ok');
  });
});

describe('hedge options', () => {
  it.each([
    [{ hedge: {} }, 'Expected `hedge.delay` to be a number of ms or { percentile, min?, max? }'],
    [{ hedge: { delay: -1 } }, 'Expected `hedge.delay` to be'],
    [
      { hedge: { delay: 5, maxHedgedAttempts: 0 } },
      'Expected `hedge.maxHedgedAttempts` to be an integer >= 1',
    ],
    [
      { hedge: { delay: { percentile: 95 } } },
      'Expected `hedge.delay.percentile` to be a number in (0, 1), such as 0.95, got `95`',
    ],
    [
      { hedge: { delay: { percentile: 0.9, min: 50, max: 10 } } },
      'Expected `hedge.delay.max` to be at least `hedge.delay.min` (50)',
    ],
    [
      { hedge: { delay: { percentile: 0 } } },
      'Expected `hedge.delay.percentile` to be a number in (0, 1), such as 0.95, got `0`',
    ],
    [
      { hedge: { delay: { percentile: 1 } } },
      'Expected `hedge.delay.percentile` to be a number in (0, 1), such as 0.95, got `1`',
    ],
    [
      { hedge: { delay: { percentile: '0.9' } } },
      'Expected `hedge.delay.percentile` to be a number in (0, 1), such as 0.95, got `"0.9"`',
    ],
    [
      { hedge: { delay: { percentile: 0.9, min: -1 } } },
      'Expected `hedge.delay.min` to be a number >= 0, got `-1`',
    ],
    [
      { hedge: { delay: { percentile: 0.9, max: 0 } } },
      'Expected `hedge.delay.max` to be a number > 0 (Infinity allowed), got `0`',
    ],
    [
      { hedge: { delay: null } },
      'Expected `hedge.delay` to be a number of ms or { percentile, min?, max? }, got `null`',
    ],
    [{ hedge: { delay: [] } }, 'Expected `hedge.delay` to be an options object'],
    [
      { hedge: { delay: { percentile: 0.9, pct: 1 } } },
      'Unknown option `hedge.delay.pct`; known options: percentile, min, max',
    ],
    [{ hedge: { delay: 5, attempts: 2 } }, 'Unknown option `hedge.attempts`'],
    [{ hedge: 50 }, 'Expected `hedge` to be an options object'],
  ])('%j is refused', (options, message) => {
    expect(() => resilient(options as never)).toThrow(message);
  });

  it('accepts max equal to min, and no max (Infinity) for a percentile delay', () => {
    const hedgeOf = (delay: object) =>
      resilient({ hedge: { delay } as never })
        .describe()
        .stages.find((s) => s.stage === 'hedge');
    expect(hedgeOf({ percentile: 0.9, min: 10, max: 10 })).toMatchObject({
      delay: { percentile: 0.9, min: 10, max: 10 },
      maxHedgedAttempts: 1,
    });
    expect(hedgeOf({ percentile: 0.5, max: Infinity })).toMatchObject({
      delay: { percentile: 0.5, min: 0, max: 'none' },
    });
    expect(hedgeOf({ percentile: 0.5 })).toMatchObject({
      delay: { percentile: 0.5, min: 0, max: 'none' },
    });
  });

  it('describe() shows hedging between retry and the circuit breaker', () => {
    const description = resilient({
      retry: true,
      hedge: { delay: { percentile: 0.95, max: 200 }, maxHedgedAttempts: 2 },
    }).describe();
    expect(description.order.slice(3, 6)).toEqual(['retry', 'hedge', 'circuitBreaker']);
    expect(description.stages.find((s) => s.stage === 'hedge')).toEqual({
      stage: 'hedge',
      enabled: true,
      delay: { percentile: 0.95, min: 0, max: 200 },
      maxHedgedAttempts: 2,
    });
  });
});
