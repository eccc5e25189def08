import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  BulkheadRejectedError,
  RateLimitedError,
  rateLimiter,
  resilient,
} from '../../src/index.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';

// ------------------------------------------------------------------------------------------------
// Bulkhead
// ------------------------------------------------------------------------------------------------

type BulkheadAction =
  | { type: 'call'; abortable: boolean }
  | { type: 'finish'; index: number; ok: boolean }
  | { type: 'abort'; index: number }
  | { type: 'advance'; ms: number };

const bulkheadAction: fc.Arbitrary<BulkheadAction> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ type: fc.constant('call'), abortable: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({ type: fc.constant('finish'), index: fc.nat(7), ok: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('abort'), index: fc.nat(7) }) },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('advance'), ms: fc.constantFrom(10, 50, 100) }),
  },
);

interface Caller {
  readonly id: number;
  readonly controller: AbortController | undefined;
  readonly queuedAt: number;
  settle?: (ok: boolean) => void;
  outcome?: unknown;
}

describe('bulkhead invariants', () => {
  it('never more than maxConcurrent running; FIFO queue; aborted and timed-out waiters leave at once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(0, 1, 2, 4, Infinity),
        fc.option(fc.constantFrom(50, 100), { nil: undefined }),
        fc.array(bulkheadAction, { maxLength: 50, size: 'max' }),
        async (maxConcurrent, maxQueue, queueTimeout, actions) => {
          const clock = new ManualClock();
          const pool = bulkhead({
            maxConcurrent,
            maxQueue,
            ...(queueTimeout === undefined ? {} : { queueTimeout }),
          });
          const policy = resilient({ clock, bulkhead: pool });
          let runningNow = 0;
          let maxSeen = 0;
          const started: number[] = [];
          // The reference: who runs, who waits (in order), what each caller got.
          const running: Caller[] = [];
          const waiting: Caller[] = [];
          const expectedStarts: number[] = [];
          let nextId = 0;

          const start = (caller: Caller): void => {
            running.push(caller);
            expectedStarts.push(caller.id);
          };

          for (const action of actions) {
            if (action.type === 'call') {
              const id = nextId++;
              const controller = action.abortable ? new AbortController() : undefined;
              const caller: Caller = { id, controller, queuedAt: clock.now() };
              const task = (): Promise<string> => {
                runningNow++;
                maxSeen = Math.max(maxSeen, runningNow);
                started.push(id);
                return new Promise<string>((resolve, reject) => {
                  caller.settle = (ok) => {
                    runningNow--;
                    if (ok) resolve(`done ${id}`);
                    else reject(new Error(`failed ${id}`));
                  };
                });
              };
              void policy
                .execute(task, controller === undefined ? {} : { signal: controller.signal })
                .then(
                  (value) => (caller.outcome = value),
                  (error: unknown) => (caller.outcome = error),
                );
              let full = false;
              if (running.length < maxConcurrent) start(caller);
              else if (waiting.length < maxQueue) waiting.push(caller);
              else full = true;
              await flush();
              if (full) {
                expect(caller.outcome).toBeInstanceOf(BulkheadRejectedError);
                expect((caller.outcome as BulkheadRejectedError).reason).toBe('full');
              } else {
                expect(caller.outcome).toBeUndefined();
              }
            } else if (action.type === 'finish') {
              if (running.length === 0) continue;
              const [caller] = running.splice(action.index % running.length, 1);
              caller!.settle!(action.ok);
              const next = waiting.shift();
              if (next !== undefined) start(next);
              await flush();
              expect(caller!.outcome).toEqual(
                action.ok ? `done ${caller!.id}` : new Error(`failed ${caller!.id}`),
              );
            } else if (action.type === 'abort') {
              const abortable = waiting.filter((c) => c.controller !== undefined);
              if (abortable.length === 0) continue;
              const caller = abortable[action.index % abortable.length]!;
              waiting.splice(waiting.indexOf(caller), 1);
              caller.controller!.abort(`abort ${caller.id}`);
              // It leaves the queue at once, synchronously.
              expect(pool.stats().queued).toBe(waiting.length);
              await flush();
              expect(caller.outcome).toBe(`abort ${caller.id}`);
            } else {
              const target = clock.now() + action.ms;
              // Waiters whose queueTimeout falls within this advance leave, in order.
              const timedOut =
                queueTimeout === undefined
                  ? []
                  : waiting.filter((c) => c.queuedAt + queueTimeout <= target);
              for (const caller of timedOut) waiting.splice(waiting.indexOf(caller), 1);
              await clock.advance(action.ms);
              for (const caller of timedOut) {
                expect(caller.outcome).toBeInstanceOf(BulkheadRejectedError);
                expect((caller.outcome as BulkheadRejectedError).reason).toBe('queueTimeout');
              }
            }
            expect(maxSeen).toBeLessThanOrEqual(maxConcurrent);
            expect(pool.stats()).toMatchObject({
              inFlight: running.length,
              queued: waiting.length,
            });
            expect(started).toEqual(expectedStarts);
          }
          // Everything drains: no slot is lost.
          while (running.length > 0) {
            const caller = running.shift()!;
            caller.settle!(true);
            const next = waiting.shift();
            if (next !== undefined) running.push(next);
            await flush();
          }
          expect(pool.stats()).toMatchObject({ inFlight: 0, queued: 0 });
          expect(clock.pending()).toBe(0);
        },
      ),
      { seed: 424_242, numRuns: 150 },
    );
  }, 60_000); // CPU-bound (fast-check runs): takes far longer than the 5 s default on a loaded 2-core CI machine
});

// ------------------------------------------------------------------------------------------------
// Rate limiter
// ------------------------------------------------------------------------------------------------

describe('rate limiter invariant', () => {
  it('never admits more than burst + limit × elapsed / interval in any window', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 10 }),
        fc.constantFrom(100, 1_000, 750),
        fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
        fc.constantFrom(0, 0, 50, 400),
        fc.array(
          fc.tuple(fc.constantFrom(0, 1, 7, 33, 100, 250, 999), fc.integer({ min: 1, max: 6 })),
          {
            maxLength: 30,
            size: 'max',
          },
        ),
        async (limit, interval, burstOption, maxWait, arrivals) => {
          const clock = new ManualClock();
          const limiter = rateLimiter({
            clock,
            limit,
            interval,
            maxWait,
            ...(burstOption === undefined ? {} : { burst: burstOption }),
          });
          const burst = burstOption ?? limit;
          const starts: number[] = [];
          const call = resilient(() => starts.push(clock.now()), { clock, rateLimiter: limiter });
          const outcomes: Promise<unknown>[] = [];
          for (const [gap, count] of arrivals) {
            await clock.advance(gap);
            for (let i = 0; i < count; i++) {
              outcomes.push(
                call().then(
                  () => 'ok',
                  (error: unknown) => error,
                ),
              );
            }
          }
          await clock.runAll();
          const results = await Promise.all(outcomes);
          for (const result of results) {
            if (result === 'ok') continue;
            expect(result).toBeInstanceOf(RateLimitedError);
            // A rejection says truthfully that more than maxWait was needed.
            expect((result as RateLimitedError).retryAfter).toBeGreaterThan(maxWait);
          }
          expect(starts.length).toBe(results.filter((r) => r === 'ok').length);
          // Starts are in time order (FIFO waits); check every window [starts[i], starts[j]].
          const violations: string[] = [];
          for (let i = 0; i < starts.length; i++) {
            for (let j = i; j < starts.length; j++) {
              const elapsed = starts[j]! - starts[i]!;
              if (j - i + 1 > burst + (limit * elapsed) / interval + 1e-9)
                violations.push(`${j - i + 1} calls in [${starts[i]}, ${starts[j]}]`);
            }
          }
          expect(violations).toEqual([]);
          expect(limiter.stats().admitted).toBe(starts.length);
        },
      ),
      { seed: 1_337, numRuns: 200 },
    );
  }, 60_000); // CPU-bound (fast-check runs): takes far longer than the 5 s default on a loaded 2-core CI machine

  it('is not stricter than promised: a steady stream at the rate is fully admitted', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.constantFrom(100, 1_000, 60_000),
        fc.integer({ min: 1, max: 50 }),
        (limit, interval, n) => {
          const limiter = rateLimiter({ clock: new ManualClock(), limit, interval, burst: 1 });
          // One call every interval / limit ms (rounded up to whole ms) is always admitted.
          const step = Math.ceil(interval / limit);
          for (let k = 0; k < n; k++) expect(limiter.tryAcquire(k * step)).toBe(true);
        },
      ),
      { seed: 7, numRuns: 200 },
    );
  });
});

// ------------------------------------------------------------------------------------------------
// Cache
// ------------------------------------------------------------------------------------------------

type CacheAction =
  | { type: 'call'; key: number; ok: boolean }
  | { type: 'pair'; key: number; ok: boolean }
  | { type: 'advance'; ms: number };

const cacheAction: fc.Arbitrary<CacheAction> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ type: fc.constant('call'), key: fc.nat(6), ok: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('pair'), key: fc.nat(6), ok: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('advance'), ms: fc.constantFrom(10, 60, 200) }),
  },
);

describe('cache invariants', () => {
  it('never exceeds maxEntries and never serves a failure or a fallback value from the cache', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(50, 100, Infinity),
        fc.array(cacheAction, { maxLength: 60, size: 'max' }),
        async (maxEntries, ttl, actions) => {
          const clock = new ManualClock();
          let ok = true;
          let serial = 0;
          const values = new Map<number, Set<string>>(); // every value fn succeeded with, per key
          let invoked = 0;
          const fn = (key: number): Promise<string> => {
            invoked++;
            if (!ok) return Promise.reject(new Error(`failed ${key}`));
            const value = `${key}:${serial++}`;
            if (!values.has(key)) values.set(key, new Set());
            values.get(key)!.add(value);
            return Promise.resolve(value);
          };
          const call = resilient(fn, {
            clock,
            cache: { maxEntries, ttl },
            fallback: 'FALLBACK',
          });
          const failedLast = new Set<number>();
          for (const action of actions) {
            if (action.type === 'advance') {
              await clock.advance(action.ms);
            } else {
              ok = action.ok;
              const before = invoked;
              const results = await Promise.all(
                action.type === 'pair' ? [call(action.key), call(action.key)] : [call(action.key)],
              );
              const calledFn = invoked > before;
              expect(invoked - before).toBeLessThanOrEqual(1); // single flight
              if (failedLast.has(action.key)) expect(calledFn).toBe(true); // no failure stored
              for (const result of results) {
                if (result === 'FALLBACK') {
                  expect(calledFn && !action.ok).toBe(true);
                } else {
                  expect(values.get(action.key)?.has(result)).toBe(true);
                }
              }
              if (calledFn && !action.ok) failedLast.add(action.key);
              else failedLast.delete(action.key);
            }
            expect(call.stats().cache!.size).toBeLessThanOrEqual(maxEntries);
          }
        },
      ),
      { seed: 99, numRuns: 200 },
    );
  }, 60_000); // CPU-bound (fast-check runs): takes far longer than the 5 s default on a loaded 2-core CI machine
});
