import { describe, expect, it } from 'vitest';
import { bulkhead, resilient, TimeoutError, type AttemptContext } from '../../src/index.js';
import { PROBE_SAMPLES } from '../../src/policies/adaptive.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { deferred, track } from '../helpers/promises.js';

/** Runs one call that the test settles after `ms` of virtual time. */
async function callTaking(
  policy: ReturnType<typeof resilient>,
  clock: ManualClock,
  ms: number,
): Promise<unknown> {
  const d = deferred<string>();
  const call = track(policy.execute(() => d.promise));
  await clock.advance(ms);
  d.resolve('ok');
  await clock.advance(0);
  return call.status === 'rejected' ? call.reason : call.value;
}

describe('timeout: { attempt: { percentile, multiplier, min, max } }', () => {
  it('uses max until enough latencies are known, then percentile × multiplier within [min, max]', async () => {
    const clock = new ManualClock();
    const policy = resilient({
      timeout: { attempt: { percentile: 0.99, multiplier: 2, min: 30, max: 1_000 } },
      clock,
    });
    // 99 calls of 20 ms: p99 needs 100 samples, so the limit is still max.
    for (let i = 0; i < 99; i++) expect(await callTaking(policy, clock, 20)).toBe('ok');
    expect(await callTaking(policy, clock, 900)).toBe('ok');
    // 100 samples now: p99 is 20 ms → a limit of 40 ms.
    const slow = await callTaking(policy, clock, 45);
    expect(slow).toBeInstanceOf(TimeoutError);
    expect((slow as TimeoutError).timeout).toBe(40);
    expect(await callTaking(policy, clock, 39)).toBe('ok');
  });

  it('keeps the limit within min', async () => {
    const clock = new ManualClock();
    const policy = resilient({
      timeout: { attempt: { percentile: 0.5, min: 25, max: 1_000 } },
      clock,
    });
    for (let i = 0; i < 20; i++) await callTaking(policy, clock, 1);
    const result = await callTaking(policy, clock, 30);
    expect((result as TimeoutError).timeout).toBe(25);
  });

  it('counts a timed-out attempt at its limit: a downstream slowing down as a whole raises the limit', async () => {
    const clock = new ManualClock();
    const policy = resilient({
      timeout: { attempt: { percentile: 0.99, multiplier: 1.5, max: 10_000 } },
      clock,
    });
    for (let i = 0; i < 500; i++) await callTaking(policy, clock, 10);
    // Now every call takes 100 ms. The limit (15 ms at first) grows by 1.5× each time the timeouts make
    // up the top 1% of the window (6 of 512 samples): 5 steps of about 6 timeouts reach 100 ms.
    let outcome: unknown;
    let calls = 0;
    do {
      outcome = await callTaking(policy, clock, 100);
      calls++;
    } while (outcome instanceof TimeoutError && calls < 1_000);
    expect(outcome).toBe('ok');
    expect(calls).toBeLessThanOrEqual(40);
  });

  it.each([
    [{ attempt: { percentile: 0.99 } }, 'Expected `timeout.attempt.max` to be a number of ms'],
    [
      { attempt: { percentile: 1.5, max: 10 } },
      'Expected `timeout.attempt.percentile` to be a number in (0, 1)',
    ],
    [
      { attempt: { percentile: 0.9, max: 10, multiplier: 0 } },
      'Expected `timeout.attempt.multiplier`',
    ],
    [
      { attempt: { percentile: 0.9, max: 10, factor: 2 } },
      'Unknown option `timeout.attempt.factor`',
    ],
  ])('%j is refused', (timeout, message) => {
    expect(() => resilient({ timeout } as never)).toThrow(message);
  });

  it('describe() shows the latency timeout', () => {
    const timeout = resilient({
      timeout: { attempt: { percentile: 0.99, min: 5, max: 500 } },
    })
      .describe()
      .stages.find((s) => s.stage === 'timeout');
    expect(timeout).toEqual({
      stage: 'timeout',
      enabled: true,
      attempt: { percentile: 0.99, multiplier: 1.5, min: 5, max: 500 },
    });
  });
});

describe('adaptive bulkhead in the pipeline', () => {
  it('learns the no-load latency from real calls, then moves its limit; events reach the wrapped function', async () => {
    const clock = new ManualClock();
    const pool = bulkhead({ adaptive: { minLimit: 2, initialLimit: 6 }, maxQueue: Infinity });
    const events: unknown[] = [];
    const wrapped = resilient(
      (id: AttemptContext | number) =>
        new Promise((resolve) => clock.setTimer(() => resolve(id), 10)),
      { bulkhead: pool, clock },
    );
    wrapped.on((e) => {
      if (e.type === 'concurrencyLimitChanged') events.push(e);
    });
    expect(pool.stats().limit).toBe(2);
    const calls = Array.from({ length: PROBE_SAMPLES + 2 }, (_, i) => track(wrapped(i)));
    expect(pool.stats()).toMatchObject({ inFlight: 2, queued: PROBE_SAMPLES });
    await clock.advance(10 * Math.ceil((PROBE_SAMPLES + 2) / 2));
    expect(calls.every((c) => c.status === 'fulfilled')).toBe(true);
    expect(pool.stats().limit).toBe(6);
    expect(events).toEqual([
      { type: 'concurrencyLimitChanged', limit: 6, previous: 2, noLoadLatency: 10, probing: false },
    ]);
  });

  it('is released with its latency even when the caller timed out, and counts the timeout', async () => {
    const clock = new ManualClock();
    const pool = bulkhead({ adaptive: { minLimit: 1, initialLimit: 1 } });
    const d = deferred<string>();
    const wrapped = resilient(() => d.promise, { bulkhead: pool, timeout: 5, clock });
    const call = track(wrapped());
    await clock.advance(5);
    expect(call.reason).toBeInstanceOf(TimeoutError);
    expect(pool.stats().inFlight).toBe(1);
    d.resolve('late');
    await clock.advance(0);
    expect(pool.stats().inFlight).toBe(0);
  });
});
