import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resilient, type ResilienceError } from '../../src/index.js';
import { Partitions, type Partitionable } from '../../src/policies/partition.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';
import { deferred, type Deferred } from '../helpers/promises.js';

// ------------------------------------------------------------------------------------------------
// The partition table alone: bounded, and nothing but partitions at rest is ever dropped
// ------------------------------------------------------------------------------------------------

/** A policy whose rest the test decides. */
class Fake implements Partitionable {
  busy = false;
  dropped = false;
  constructor(readonly key: string) {}
  atRest(): boolean {
    return !this.busy;
  }
}

type TableOp =
  | { readonly type: 'get'; readonly key: number }
  | { readonly type: 'busy'; readonly key: number; readonly busy: boolean }
  | { readonly type: 'advance'; readonly ms: number };

const tableOp: fc.Arbitrary<TableOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ type: fc.constant('get' as const), key: fc.nat(9) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('busy' as const),
      key: fc.nat(9),
      busy: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('advance' as const), ms: fc.nat(50) }) },
);

describe('partition table (property)', () => {
  it('keeps at most maxPartitions at rest whenever it makes one, and drops only partitions at rest', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.option(fc.integer({ min: 1, max: 60 }), { nil: undefined }),
        fc.array(tableOp, { maxLength: 120 }),
        (maxPartitions, idleAfter, ops) => {
          const clock = new ManualClock();
          let made: Fake[] = [];
          const table = new Partitions<Fake>(
            { by: String, maxPartitions, idleAfter: idleAfter ?? Infinity },
            'circuitBreaker',
            (key) => {
              const fake = new Fake(key);
              made.push(fake);
              return fake;
            },
          );
          table.adoptClock(clock);
          /** The live policy of each key, as the table last handed it out. */
          const live = new Map<string, Fake>();
          for (const op of ops) {
            if (op.type === 'advance') {
              clock.elapse(op.ms);
              continue;
            }
            const key = String(op.key);
            if (op.type === 'busy') {
              const policy = table.peek(key);
              if (policy !== undefined) policy.busy = op.busy;
              continue;
            }
            const before = made.length;
            const policy = table.get(key, clock.now());
            const previous = live.get(key);
            if (previous !== undefined && previous !== policy) {
              // The key's old policy was dropped: only at rest (its state equal to a fresh one's).
              expect(previous.busy).toBe(false);
            }
            live.set(key, policy);
            if (made.length > before) {
              // A partition was made: the ones at rest (the new one included) fit in maxPartitions.
              const entries = [...table.entries()];
              const atRest = entries.filter(([, p]) => p.atRest()).length;
              expect(atRest).toBeLessThanOrEqual(maxPartitions);
              expect(table.size).toBe(entries.length);
              expect(table.size - table.keptCount).toBeLessThanOrEqual(maxPartitions);
            }
            // Never two live policies for one key.
            expect(table.peek(key)).toBe(policy);
          }
          made = [];
        },
      ),
      { numRuns: 100 },
    );
  }, 60_000);
});

// ------------------------------------------------------------------------------------------------
// Model: a bounded pipeline decides every call exactly as one that never evicts
// ------------------------------------------------------------------------------------------------

type CallOp =
  | { readonly type: 'call'; readonly key: number; readonly outcome: 'ok' | 'fail' | 'hold' }
  | { readonly type: 'settle'; readonly pick: number; readonly ok: boolean }
  | { readonly type: 'advance'; readonly ms: number };

const callOp: fc.Arbitrary<CallOp> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('call' as const),
      key: fc.nat(3),
      outcome: fc.constantFrom('ok' as const, 'fail' as const, 'hold' as const),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('settle' as const),
      pick: fc.nat(),
      ok: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('advance' as const), ms: fc.nat(150) }) },
);

/** One pipeline under test: its function records what it ran and holds what the test settles. */
function pipeline(clock: ManualClock, maxPartitions: number, idleAfter: number | undefined) {
  const ran: string[] = [];
  const held: Deferred<string>[] = [];
  const fn = (key: string, outcome: 'ok' | 'fail' | 'hold'): Promise<string> => {
    ran.push(key);
    if (outcome === 'ok') return Promise.resolve(key);
    if (outcome === 'fail') return Promise.reject(new Error(`${key} failed`));
    const d = deferred<string>();
    held.push(d);
    return d.promise;
  };
  const partition = {
    by: (key: string) => key,
    maxPartitions,
    ...(idleAfter === undefined ? {} : { idleAfter }),
  };
  const call = resilient(fn, {
    clock,
    // Any failure opens (a closed window's counts, which eviction may forget, never decide).
    circuitBreaker: {
      consecutiveFailures: 1,
      failureRateThreshold: 1,
      minimumCalls: 100,
      halfOpenAfter: 100,
      partition,
    },
    rateLimiter: { limit: 2, interval: 100, partition },
    bulkhead: { maxConcurrent: 1, partition },
  });
  return { call, ran, held };
}

describe('partitioned pipeline (model, property)', () => {
  it('eviction and idleness never admit a call that a pipeline that never evicts refuses (nor refuse one it admits)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }),
        fc.array(callOp, { maxLength: 60 }),
        async (maxPartitions, idleAfter, ops) => {
          const clock = new ManualClock();
          const bounded = pipeline(clock, maxPartitions, idleAfter);
          const model = pipeline(clock, 1_000, undefined);
          const outcomes: Promise<unknown>[] = [];
          for (const op of ops) {
            if (op.type === 'advance') {
              await clock.advance(op.ms);
            } else if (op.type === 'settle') {
              if (bounded.held.length === 0) continue;
              const i = op.pick % bounded.held.length;
              const [b] = bounded.held.splice(i, 1);
              const [m] = model.held.splice(i, 1);
              if (op.ok) {
                b!.resolve('ok');
                m!.resolve('ok');
              } else {
                b!.reject(new Error('late failure'));
                m!.reject(new Error('late failure'));
              }
            } else {
              const key = String(op.key);
              const ranBefore = model.ran.length;
              const b = bounded.call(key, op.outcome);
              const m = model.call(key, op.outcome);
              const [bError, mError] = await Promise.all([rejection(b), rejection(m)]);
              outcomes.push(b, m);
              // Admitted by one iff admitted by the other, and refused for the same reason.
              expect(bounded.ran).toEqual(model.ran);
              if (model.ran.length === ranBefore) expect(bError?.code).toBe(mError?.code);
            }
            await flush(4);
            expect(bounded.held.length).toBe(model.held.length);
          }
          // Beyond maxPartitions, only partitions kept because they are not at rest.
          const stats = bounded.call.stats().partitions!;
          for (const stage of [stats.circuitBreaker!, stats.rateLimiter!, stats.bulkhead!]) {
            expect(stage.count - stage.kept).toBeLessThanOrEqual(maxPartitions);
          }
          for (const d of [...bounded.held, ...model.held]) d.resolve('end');
          await Promise.allSettled(outcomes);
        },
      ),
      {
        numRuns: 150,
        examples: [
          // A closed circuit evicted while its call is in flight: that call's failure must open it.
          [
            1,
            undefined,
            [
              { type: 'call', key: 2, outcome: 'hold' },
              { type: 'call', key: 0, outcome: 'ok' },
              { type: 'settle', pick: 0, ok: false },
              { type: 'call', key: 2, outcome: 'ok' },
            ],
          ],
          // A spent limiter evicted: its key must stay limited until its tokens are back.
          [
            1,
            undefined,
            [
              { type: 'call', key: 1, outcome: 'ok' },
              { type: 'call', key: 1, outcome: 'ok' },
              { type: 'call', key: 0, outcome: 'ok' },
              { type: 'call', key: 1, outcome: 'ok' },
            ],
          ],
          // An open circuit long idle: still open (idleAfter never drops what is not at rest).
          [
            2,
            10,
            [
              { type: 'call', key: 1, outcome: 'fail' },
              { type: 'advance', ms: 50 },
              { type: 'call', key: 0, outcome: 'ok' },
              { type: 'call', key: 2, outcome: 'ok' },
              { type: 'call', key: 1, outcome: 'ok' },
            ],
          ],
        ],
      },
    );
  }, 120_000);
});

/** The library's rejection of a call refused at once; undefined when it ran (or is running). */
async function rejection(promise: Promise<unknown>): Promise<ResilienceError | undefined> {
  const settledSoon = await Promise.race([
    promise.then(
      () => undefined,
      (error: unknown) => error,
    ),
    flush(2).then(() => undefined),
  ]);
  const error = settledSoon as { code?: string } | undefined;
  return typeof error?.code === 'string' ? (error as ResilienceError) : undefined;
}
