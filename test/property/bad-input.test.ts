import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CircuitOpenError, isResilienceError, resilient, TimeoutError } from '../../src/index.js';
import { OPTION_KEYS } from '../../src/options.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';

// ------------------------------------------------------------------------------------------------
// Random option objects: accepted and working, or one TypeError naming the option
// ------------------------------------------------------------------------------------------------

/** What the user's own functions (in the options) throw: the only errors a call may surface. */
class UserError extends Error {}

// fast-check inspects the values it generates (to clone and print them), so the arbitraries describe
// hostile values with markers and `materialize` builds the real proxies and throwing getters per run.
class Hostile {}
class ThrowingGetter {
  constructor(readonly throwsError: boolean) {}
}

const proxies = new WeakSet<object>();
const isProxy = (value: object): boolean => proxies.has(value);
const hostileProxy = (): object => {
  const proxy = new Proxy(
    {},
    {
      get: () => {
        throw new Error('proxy get');
      },
      has: () => {
        throw new Error('proxy has');
      },
      ownKeys: () => {
        throw new Error('proxy ownKeys');
      },
      getPrototypeOf: () => {
        throw new Error('proxy getPrototypeOf');
      },
      getOwnPropertyDescriptor: () => {
        throw new Error('proxy getOwnPropertyDescriptor');
      },
    },
  );
  proxies.add(proxy);
  return proxy;
};

const junkFunction = fc.constantFrom<(...args: unknown[]) => unknown>(
  () => undefined,
  () => 1,
  () => NaN,
  () => 'x',
  () => true,
  () => ({}),
  (x: unknown) => x,
  () => {
    throw new UserError('user function threw');
  },
  () => Promise.reject(new UserError('user function rejected')),
);

const junkScalar = fc.oneof(
  fc.constantFrom<unknown>(
    NaN,
    Infinity,
    -Infinity,
    -1,
    0,
    -0,
    0.5,
    1e21,
    Number.MAX_SAFE_INTEGER,
    null,
    undefined,
    true,
    false,
    '',
    '10',
    [],
    [1, 2],
    {},
    Symbol('junk'),
    10n,
    new Date(0),
    /re/,
    new Map(),
  ),
  fc.integer({ min: -5, max: 1_000_000 }),
  fc.double(),
  fc.string({ maxLength: 6 }),
);

const junk: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: junkScalar },
  { weight: 2, arbitrary: junkFunction },
  { weight: 1, arbitrary: fc.object({ maxDepth: 2, maxKeys: 3 }) },
  { weight: 1, arbitrary: fc.constant(null).map(() => new Hostile()) },
);

const plausibleNumber = fc.constantFrom(1, 2, 3, 10, 50, 100, 1_000, 0.5, 0.25);

/** A nested options object: known keys with junk or plausible values, sometimes a misspelt key. */
function stageObject(keys: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .tuple(
      fc.dictionary(
        fc.constantFrom(...keys, 'typo', keys[0] + 's'),
        fc.oneof({ weight: 2, arbitrary: plausibleNumber }, { weight: 3, arbitrary: junk }),
        { maxKeys: 4 },
      ),
      fc.option(fc.constantFrom(...keys), { nil: undefined }),
    )
    .map(([object, throwing]) => withThrowingGetter(object, throwing));
}

/** Marks `key` to become a getter that throws (an Error or, as some code does, a plain string). */
function withThrowingGetter(
  object: Record<string, unknown>,
  key: string | undefined,
): Record<string, unknown> {
  if (key === undefined) return object;
  return { ...object, [key]: new ThrowingGetter(key.length % 2 === 0) };
}

/** Builds the value a description stands for: proxies for {@link Hostile}, getters that throw. */
function materialize(value: unknown, depth = 0): unknown {
  if (value instanceof Hostile) return hostileProxy();
  if (
    depth > 1 ||
    typeof value !== 'object' ||
    value === null ||
    Object.getPrototypeOf(value) !== Object.prototype
  )
    return value;
  const object: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item instanceof ThrowingGetter) {
      Object.defineProperty(object, key, {
        enumerable: true,
        get() {
          // Some code throws plain strings: bulwark must cope with those too.
          // eslint-disable-next-line @typescript-eslint/only-throw-error
          throw item.throwsError ? new Error(`getter ${key} threw`) : `getter ${key} threw`;
        },
      });
    } else {
      Object.defineProperty(object, key, {
        value: materialize(item, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return object;
}

const STAGE_KEYS: Record<string, readonly string[]> = {
  retry: ['maxAttempts', 'backoff', 'retryOn', 'retryOnResult', 'budget'],
  timeout: ['attempt', 'total'],
  circuitBreaker: [
    'failureRateThreshold',
    'minimumCalls',
    'window',
    'consecutiveFailures',
    'slowCallDuration',
    'slowCallRateThreshold',
    'halfOpenAfter',
    'halfOpenMaxCalls',
    'isFailure',
    'initialState',
    'name',
  ],
  rateLimiter: ['limit', 'interval', 'burst', 'maxWait', 'name'],
  bulkhead: ['maxConcurrent', 'maxQueue', 'queueTimeout', 'name'],
  cache: ['ttl', 'maxEntries', 'key', 'staleIfError', 'name'],
};

const VALID: Record<string, unknown[]> = {
  retry: [true, false, { maxAttempts: 2 }, { maxAttempts: 3, backoff: () => 5 }],
  timeout: [1_000, { attempt: 100 }, { total: 500 }, { attempt: 50, total: 200 }],
  fallback: ['fallback', null, 0, () => 'fallback'],
  circuitBreaker: [{}, { consecutiveFailures: 3 }, { failureRateThreshold: 0.5, minimumCalls: 5 }],
  rateLimiter: [{ limit: 10 }, { limit: 5, burst: 2, maxWait: 100 }],
  bulkhead: [2, { maxConcurrent: 3, maxQueue: 1 }, { maxConcurrent: 1, queueTimeout: 50 }],
  cache: [true, false, { ttl: 1_000 }, { maxEntries: 2 }],
  stackTraces: [true, false],
  name: ['orders'],
  random: [() => 0.5],
};

/** One top-level option's value: valid, a junk stage object, or plain junk. */
function optionValue(key: string): fc.Arbitrary<unknown> {
  const choices: fc.WeightedArbitrary<unknown>[] = [{ weight: 3, arbitrary: junk }];
  const valid = VALID[key];
  if (valid !== undefined) choices.push({ weight: 3, arbitrary: fc.constantFrom(...valid) });
  const nested = STAGE_KEYS[key];
  if (nested !== undefined) choices.push({ weight: 4, arbitrary: stageObject(nested) });
  return fc.oneof(...choices);
}

const ALL_KEYS: readonly string[] = [...OPTION_KEYS, 'retries', 'timout', 'circuitBreaker'];

const optionsObject: fc.Arbitrary<unknown> = fc
  .tuple(
    fc.uniqueArray(fc.constantFrom(...ALL_KEYS), { maxLength: 5 }),
    fc.option(fc.constantFrom(...ALL_KEYS), { nil: undefined }),
  )
  .chain(([keys, throwing]) =>
    fc
      .tuple(...keys.map((key) => optionValue(key)))
      .map((values) =>
        withThrowingGetter(
          Object.fromEntries(keys.map((key, i) => [key, values[i]])),
          throwing !== undefined && keys.includes(throwing) ? throwing : undefined,
        ),
      ),
  );

const topLevel: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 1, arbitrary: junk },
  { weight: 9, arbitrary: optionsObject },
);

/** The options' own top-level keys, read without triggering getters or proxy traps. */
function ownKeys(options: unknown): string[] {
  if (typeof options !== 'object' || options === null) return [];
  try {
    return Object.keys(Object.getOwnPropertyDescriptors(options));
  } catch {
    return [];
  }
}

describe('bad options', () => {
  it('are accepted and work, or rejected with one TypeError that names the option', async () => {
    let accepted = 0;
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(topLevel, async (description) => {
        const options = materialize(description);
        const clock = new ManualClock();
        const fn = (key: number): Promise<string> => Promise.resolve(`value ${key}`);
        let wrapped: ((key: number) => Promise<unknown>) | undefined;
        // A valid clock is added to a plain options object that has none: a call then runs in
        // virtual time. (Hostile proxies and non-objects are passed as they are.)
        let withClock = options;
        const keys = ownKeys(options);
        if (
          typeof options === 'object' &&
          options !== null &&
          !Array.isArray(options) &&
          !isProxy(options) &&
          !keys.includes('clock')
        ) {
          withClock = Object.defineProperty(options, 'clock', { value: clock, enumerable: true });
        }
        try {
          wrapped = resilient(fn, withClock as never);
        } catch (error) {
          rejected++;
          // One TypeError...
          expect(error).toBeInstanceOf(TypeError);
          const message = (error as TypeError).message;
          const lines = message.split('\n');
          expect(lines[0]).toMatch(/^Invalid bulwark options:$/);
          expect(lines.length).toBeGreaterThan(1);
          // ...whose every line names an option the object has (or the options themselves).
          // (A path is printed in backticks and starts with a top-level key.)
          for (const line of lines.slice(1)) {
            const named = ['options', ...keys].some(
              (key) => line.includes(`\`${key}\``) || line.includes(`\`${key}.`),
            );
            expect(named, `${line} (keys: ${keys.join(', ')})`).toBe(true);
          }
          return;
        }
        accepted++;
        // Accepted: a call goes through.
        let outcome: { ok: boolean; value: unknown } | undefined;
        wrapped(7).then(
          (value) => (outcome = { ok: true, value }),
          (error: unknown) => (outcome = { ok: false, value: error }),
        );
        await flush();
        await clock.runAll();
        expect(outcome).toBeDefined();
        if (outcome!.ok) {
          // fn's value, or the fallback's when a user function (retryOnResult, say) got in the way.
          if (outcome!.value !== 'value 7') {
            const fallback = (options as { fallback?: unknown } | undefined)?.fallback;
            expect(typeof fallback === 'function' || outcome!.value === fallback).toBe(true);
          }
        } else {
          // Only what the user's own functions threw can surface.
          expect(outcome!.value).toBeInstanceOf(UserError);
        }
      }),
      { seed: 20_261_127, numRuns: 1_000 },
    );
    // Both branches are exercised.
    expect(accepted).toBeGreaterThan(50);
    expect(rejected).toBeGreaterThan(50);
  }, 60_000); // CPU-bound (fast-check runs): takes far longer than the 5 s default on a loaded 2-core CI machine
});

// ------------------------------------------------------------------------------------------------
// Odd functions through every stage
// ------------------------------------------------------------------------------------------------

type Behaviour =
  | { kind: 'value'; value: unknown }
  | { kind: 'throw'; value: unknown }
  | { kind: 'reject'; value: unknown }
  | { kind: 'thenable'; value: unknown }
  | { kind: 'rejectingThenable'; value: unknown }
  | { kind: 'throwingThen'; value: unknown }
  | { kind: 'never' };

const oddValue = fc.constantFrom<unknown>(
  'a string',
  '',
  undefined,
  null,
  0,
  NaN,
  false,
  Symbol.for('odd'),
  10n,
  { retryAfter: 'soon' },
  { retryAfter: -5 },
);

const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  oddValue.map((value) => ({ kind: 'value' as const, value })),
  fc
    .oneof(oddValue, fc.constant(new Error('sync')))
    .map((value) => ({ kind: 'throw' as const, value })),
  oddValue.map((value) => ({ kind: 'reject' as const, value })),
  oddValue.map((value) => ({ kind: 'thenable' as const, value })),
  oddValue.map((value) => ({ kind: 'rejectingThenable' as const, value })),
  oddValue.map((value) => ({ kind: 'throwingThen' as const, value })),
  fc.constant({ kind: 'never' as const }),
);

const STAGES = [
  'retry',
  'timeout',
  'circuitBreaker',
  'rateLimiter',
  'bulkhead',
  'cache',
  'fallback',
] as const;
type Stage = (typeof STAGES)[number];

function call(b: Behaviour): unknown {
  switch (b.kind) {
    case 'value':
      return b.value;
    case 'throw':
      throw b.value;
    case 'reject':
      return Promise.reject(b.value);
    case 'thenable':
      return { then: (resolve: (v: unknown) => void) => resolve(b.value) };
    case 'rejectingThenable':
      return { then: (_: unknown, reject: (e: unknown) => void) => reject(b.value) };
    case 'throwingThen':
      return {
        then: () => {
          throw b.value;
        },
      };
    case 'never':
      return { then: () => undefined };
  }
}

describe('odd functions through every stage', () => {
  it('non-promises, sync throws, thenables that never settle and non-Error rejections get the right outcome', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.subarray([...STAGES]),
        behaviour,
        fc.boolean(),
        async (stages, b, viaExecute) => {
          const has = (stage: Stage): boolean => stages.includes(stage);
          // A thenable that never settles needs a timeout stage to end.
          if (b.kind === 'never' && !has('timeout')) stages = [...stages, 'timeout'];
          const clock = new ManualClock();
          let fnCalls = 0;
          const fallbackErrors: unknown[] = [];
          const policy = resilient({
            clock,
            ...(has('retry') ? { retry: { maxAttempts: 3 } } : {}),
            ...(has('timeout') ? { timeout: { attempt: 100, total: 10_000 } } : {}),
            ...(has('circuitBreaker') ? { circuitBreaker: { consecutiveFailures: 10 } } : {}),
            ...(has('rateLimiter') ? { rateLimiter: { limit: 100 } } : {}),
            ...(has('bulkhead') ? { bulkhead: { maxConcurrent: 10 } } : {}),
            ...(has('cache') ? { cache: { ttl: 60_000 } } : {}),
            ...(has('fallback')
              ? {
                  fallback: (error: unknown) => {
                    fallbackErrors.push(error);
                    return 'FALLBACK';
                  },
                }
              : {}),
          });
          const fn = (key: string): unknown => {
            fnCalls++;
            void key;
            return call(b);
          };
          const wrapped = policy(fn);
          const run = (): Promise<unknown> =>
            viaExecute ? policy.execute(() => fn('k')) : wrapped('k');
          const settle = async (): Promise<{ ok: boolean; value: unknown }> => {
            let outcome: { ok: boolean; value: unknown } | undefined;
            run().then(
              (value) => (outcome = { ok: true, value }),
              (error: unknown) => (outcome = { ok: false, value: error }),
            );
            // Past every timeout and backoff, short of the cache's ttl.
            await clock.advance(20_000);
            expect(outcome, 'the call settled').toBeDefined();
            return outcome!;
          };

          const first = await settle();
          const succeeds = b.kind === 'value' || b.kind === 'thenable';
          if (succeeds) {
            expect(first).toEqual({ ok: true, value: b.value });
            expect(fnCalls).toBe(1);
            // A cached success is served without calling fn again (execute skips the cache).
            const second = await settle();
            expect(second).toEqual({ ok: true, value: b.value });
            expect(fnCalls).toBe(has('cache') && !viaExecute ? 1 : 2);
            return;
          }
          // Every failure, whatever its value, is retried (none of them is a local rejection).
          expect(fnCalls).toBe(has('retry') ? 3 : 1);
          const expectedError =
            b.kind === 'never' ? expect.any(TimeoutError) : (b as { value: unknown }).value;
          if (has('fallback')) {
            expect(first).toEqual({ ok: true, value: 'FALLBACK' });
            expect(fallbackErrors).toHaveLength(1);
            if (b.kind === 'never') expect(fallbackErrors[0]).toBeInstanceOf(TimeoutError);
            else expect(fallbackErrors[0]).toBe(expectedError);
          } else if (b.kind === 'never') {
            expect(first.ok).toBe(false);
            expect(first.value).toBeInstanceOf(TimeoutError);
          } else {
            // The error comes back unchanged: same value, not wrapped.
            expect(first.ok).toBe(false);
            expect(first.value).toBe(expectedError);
            expect(isResilienceError(first.value)).toBe(false);
          }
          // Failures are never cached: the next call runs fn again.
          const before = fnCalls;
          await settle();
          expect(fnCalls).toBe(before + (has('retry') ? 3 : 1));
        },
      ),
      { seed: 1_207, numRuns: 400 },
    );
  });

  it('a failure with a non-Error value counts against the breaker', async () => {
    for (const value of [undefined, null, 'down', 0]) {
      const clock = new ManualClock();
      const wrapped = resilient(() => Promise.reject(value), {
        clock,
        circuitBreaker: { consecutiveFailures: 2, halfOpenAfter: 1_000 },
      });
      await expect(wrapped()).rejects.toBe(value);
      await expect(wrapped()).rejects.toBe(value);
      await expect(wrapped()).rejects.toBeInstanceOf(CircuitOpenError);
    }
  });

  it('a thenable that never settles keeps its bulkhead slot after its timeout', async () => {
    const clock = new ManualClock();
    const wrapped = resilient(() => ({ then: () => undefined }), {
      clock,
      timeout: 100,
      bulkhead: { maxConcurrent: 1 },
    });
    const first = wrapped();
    const outcome = first.then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await clock.advance(100);
    expect(await outcome).toBeInstanceOf(TimeoutError);
    expect(wrapped.stats().bulkhead).toMatchObject({ inFlight: 1 });
  });
});

describe('hostile option values', () => {
  it.each([
    'retry',
    'timeout',
    'circuitBreaker',
    'rateLimiter',
    'bulkhead',
    'cache',
    'chaos',
    'signal',
    'clock',
  ])('a Proxy whose traps throw, as `%s`, is one TypeError naming it', (key) => {
    const proxy = materialize(new Hostile());
    expect(() => resilient(() => 1, { [key]: proxy } as never)).toThrow(
      new RegExp(
        `^Invalid bulwark options:\\n {2}- (Could not read|Could not list the keys of|Expected) \`${key}`,
      ),
    );
    try {
      resilient(() => 1, { [key]: proxy } as never);
    } catch (error) {
      expect(error).toBeInstanceOf(TypeError);
    }
  });
});
