import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoff, resilient, retryBudget, TimeoutError } from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';

// ------------------------------------------------------------------------------------------------
// Retry: never more than maxAttempts, never past the total deadline, the last error unchanged
// ------------------------------------------------------------------------------------------------

type Outcome = 'ok' | 'fail' | 'hang';

const never = new Promise<never>(() => undefined);

describe('retry invariants', () => {
  it('never exceeds maxAttempts nor the total deadline; returns the first success or the last error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.constantFrom<Outcome>('ok', 'fail', 'fail', 'hang'), {
          minLength: 8,
          maxLength: 8,
        }),
        fc.constantFrom(0, 1, 5, 20, 50),
        fc.option(fc.constantFrom(10, 30), { nil: undefined }),
        fc.option(fc.constantFrom(1, 25, 60, 100, 250), { nil: undefined }),
        async (maxAttempts, outcomes, delay, attemptTimeout, totalTimeout) => {
          const clock = new ManualClock();
          const timed = attemptTimeout !== undefined || totalTimeout !== undefined;
          // Without any timeout a hanging attempt would hang the call for ever: make it a failure.
          const plan = outcomes.map((o) => (o === 'hang' && !timed ? 'fail' : o));
          const starts: number[] = [];
          const errors: Error[] = [];
          const fn = (): Promise<string> => {
            const n = starts.length;
            starts.push(clock.now());
            const outcome = plan[n] ?? 'fail';
            if (outcome === 'ok') return Promise.resolve(`ok ${n + 1}`);
            if (outcome === 'hang') return never;
            const error = new Error(`fail ${n + 1}`);
            errors.push(error);
            return Promise.reject(error);
          };
          const timeout =
            attemptTimeout === undefined && totalTimeout === undefined
              ? undefined
              : {
                  ...(attemptTimeout === undefined ? {} : { attempt: attemptTimeout }),
                  ...(totalTimeout === undefined ? {} : { total: totalTimeout }),
                };
          const wrapped = resilient(fn, {
            clock,
            retry: { maxAttempts, backoff: backoff.constant(delay) },
            ...(timeout === undefined ? {} : { timeout }),
          });
          let settledAt = -1;
          let result: { ok: boolean; value: unknown } | undefined;
          wrapped().then(
            (value) => {
              settledAt = clock.now();
              result = { ok: true, value };
            },
            (error: unknown) => {
              settledAt = clock.now();
              result = { ok: false, value: error };
            },
          );
          await clock.advance(2_000);

          // Never more than maxAttempts calls of fn.
          expect(starts.length).toBeGreaterThanOrEqual(1);
          expect(starts.length).toBeLessThanOrEqual(maxAttempts);
          // Every call settles (some timeout bounds each hanging attempt).
          expect(result).toBeDefined();
          if (totalTimeout !== undefined) {
            // No attempt starts at or after the deadline, and the call settles by it.
            for (const start of starts) expect(start).toBeLessThan(totalTimeout);
            expect(settledAt).toBeLessThanOrEqual(totalTimeout);
          }
          const firstOk = plan.slice(0, starts.length).indexOf('ok');
          if (result!.ok) {
            // A success ends the retries at once, and is returned as is.
            expect(firstOk).toBe(starts.length - 1);
            expect(result!.value).toBe(`ok ${starts.length}`);
          } else {
            expect(firstOk).toBe(-1);
            const last = plan[starts.length - 1];
            const error = result!.value;
            if (last === 'fail' && !(error instanceof TimeoutError)) {
              // The last error, unchanged.
              expect(error).toBe(errors[errors.length - 1]);
            } else {
              expect(error).toBeInstanceOf(TimeoutError);
            }
            // With no deadline in the way, a failure is retried until maxAttempts.
            if (totalTimeout === undefined) expect(starts.length).toBe(maxAttempts);
          }
          if (totalTimeout === undefined && attemptTimeout === undefined) {
            const expected = firstOk === -1 || firstOk >= maxAttempts ? maxAttempts : firstOk + 1;
            expect(starts.length).toBe(expected);
          }
        },
      ),
      { seed: 20_260_707, numRuns: 300 },
    );
  });
});

// ------------------------------------------------------------------------------------------------
// Retry budget: retries never exceed ratio × calls + floor over the budget's window
// ------------------------------------------------------------------------------------------------

type BudgetAction = { type: 'calls'; count: number } | { type: 'advance'; ms: number };

const budgetAction: fc.Arbitrary<BudgetAction> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ type: fc.constant('calls'), count: fc.integer({ min: 1, max: 12 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ type: fc.constant('advance'), ms: fc.integer({ min: 0, max: 700 }) }),
  },
);

describe('retry budget invariant', () => {
  it('never lets the retries in its window exceed ratio × calls + minPerSecond × window', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(0, 0.1, 0.2, 0.5, 1),
        fc.constantFrom(0, 1, 2, 10),
        fc.constantFrom(1_000, 2_000),
        fc.integer({ min: 2, max: 5 }),
        fc.array(budgetAction, { minLength: 1, maxLength: 30 }),
        async (ratio, minPerSecond, window, maxAttempts, actions) => {
          const clock = new ManualClock();
          const budget = retryBudget({ ratio, minPerSecond, window, clock });
          // Two functions share the budget, as two callers of one downstream would.
          const failing = (): Promise<never> => Promise.reject(new Error('down'));
          const options = {
            clock,
            retry: { maxAttempts, backoff: backoff.constant(0), budget },
          };
          const a = resilient(failing, options);
          const b = resilient(failing, options);
          const callTimes: number[] = [];
          const retryTimes: number[] = [];
          let fnCalls = 0;
          for (const wrapped of [a, b]) {
            wrapped.on((event) => {
              if (event.type === 'retryScheduled') retryTimes.push(clock.now());
            });
          }
          const bucket = window / 10;
          const epoch = (t: number): number => Math.floor(t / bucket);
          const floor = (minPerSecond * window) / 1000;
          const pending: Promise<unknown>[] = [];
          const counting = (wrapped: typeof a) => () => {
            fnCalls++;
            callTimes.push(clock.now());
            pending.push(wrapped().catch(() => undefined));
          };
          const callA = counting(a);
          const callB = counting(b);
          for (const action of actions) {
            if (action.type === 'advance') {
              await clock.advance(action.ms);
              continue;
            }
            for (let i = 0; i < action.count; i++) (i % 2 === 0 ? callA : callB)();
            await Promise.all(pending);
            pending.length = 0;
            // At every retry, the retries in the budget's window (this one included) stay within
            // ratio × calls in that window + the floor.
            for (const [index, t] of retryTimes.entries()) {
              const e = epoch(t);
              const inWindow = (s: number): boolean => epoch(s) > e - 10 && epoch(s) <= e;
              const calls = callTimes.filter(inWindow).length;
              const retries = retryTimes.slice(0, index + 1).filter(inWindow).length;
              expect(retries).toBeLessThanOrEqual(ratio * calls + floor + 1e-9);
            }
          }
          // Every call made at most maxAttempts attempts, and the budget counted each call once.
          expect(fnCalls).toBe(callTimes.length);
          expect(retryTimes.length).toBeLessThanOrEqual(callTimes.length * (maxAttempts - 1));
        },
      ),
      { seed: 4_711, numRuns: 200 },
    );
  }, 60_000); // CPU-bound (fast-check runs): takes far longer than the 5 s default on a loaded 2-core CI machine
});
