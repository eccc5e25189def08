import { describe, expect, it } from 'vitest';
import { backoff, resilient, resilientFetch, resilientSync, retryBudget } from '../src/index.js';
import { ManualClock } from './helpers/manual-clock.js';

const fn = () => 1;

/** The message of the TypeError that `resilient(fn, options)` throws. */
function problems(options: unknown): string {
  try {
    resilient(fn, options as never);
  } catch (error) {
    expect(error).toBeInstanceOf(TypeError);
    return (error as TypeError).message;
  }
  throw new Error(`resilient() accepted ${String(options)}`);
}

describe('options validation: one TypeError at wrap time', () => {
  it.each([
    ['0', 0, '`0` (number)'],
    ['-1', -1, '`-1` (number)'],
    ['1.5', 1.5, '`1.5` (number)'],
    ['NaN', NaN, '`NaN` (number)'],
    ['Infinity', Infinity, '`Infinity` (number)'],
    ["'3'", '3', '`"3"` (string)'],
    ['null', null, '`null` (null)'],
    ['true', true, '`true` (boolean)'],
  ])('retry.maxAttempts of %s', (_label, maxAttempts, shown) => {
    expect(problems({ retry: { maxAttempts } })).toBe(
      `Invalid bulwark options:\n  - Expected \`retry.maxAttempts\` to be an integer >= 1, got ${shown}`,
    );
  });

  it.each([
    [
      'a negative timeout',
      { timeout: -1 },
      'Expected `timeout` to be a number > 0 (Infinity allowed), got `-1` (number)',
    ],
    [
      'a zero timeout',
      { timeout: 0 },
      'Expected `timeout` to be a number > 0 (Infinity allowed), got `0` (number)',
    ],
    [
      'a NaN timeout',
      { timeout: NaN },
      'Expected `timeout` to be a number > 0 (Infinity allowed), got `NaN` (number)',
    ],
    [
      'a string timeout',
      { timeout: '100' },
      'Expected `timeout` to be a number of ms or { attempt, total }, got `"100"` (string)',
    ],
    [
      'a null timeout',
      { timeout: null },
      'Expected `timeout` to be a number of ms or { attempt, total }, got `null` (null)',
    ],
    [
      'an empty timeout object',
      { timeout: {} },
      'Expected `timeout` to be an object with `attempt`, `total` or both, got `[object]` (object)',
    ],
    [
      'a negative timeout.attempt',
      { timeout: { attempt: -5 } },
      'Expected `timeout.attempt` to be a number > 0 (Infinity allowed), got `-5` (number)',
    ],
    [
      'a string timeout.total',
      { timeout: { total: '1s' } },
      'Expected `timeout.total` to be a number > 0 (Infinity allowed), got `"1s"` (string)',
    ],
    [
      'an array timeout',
      { timeout: [100] },
      'Expected `timeout` to be an options object, got `[array]` (array)',
    ],
    [
      'a non-object retry',
      { retry: 'yes' },
      'Expected `retry` to be an options object, got `"yes"` (string)',
    ],
    [
      'a string retry.backoff',
      { retry: { backoff: 'exponential' } },
      'Expected `retry.backoff` to be a function, got `"exponential"` (string)',
    ],
    [
      'a non-function retryOn',
      { retry: { retryOn: true } },
      'Expected `retry.retryOn` to be a function, got `true` (boolean)',
    ],
    [
      'a non-function retryOnResult',
      { retry: { retryOnResult: {} } },
      'Expected `retry.retryOnResult` to be a function, got `[object]` (object)',
    ],
    [
      'a non-budget retry.budget',
      { retry: { budget: 0.2 } },
      'Expected `retry.budget` to be a RetryBudget made by retryBudget(), got `0.2` (number)',
    ],
    [
      'a non-signal signal',
      { signal: { aborted: false } },
      'Expected `signal` to be an AbortSignal, got `[object]` (object)',
    ],
    [
      'a clock missing methods',
      { clock: { now: () => 0 } },
      'Expected `clock` to be a Clock { now, setTimer, clearTimer }, got `[object]` (object)',
    ],
    [
      'a non-function random',
      { random: 0.5 },
      'Expected `random` to be a function, got `0.5` (number)',
    ],
    [
      'a string stackTraces',
      { stackTraces: 'no' },
      'Expected `stackTraces` to be a boolean, got `"no"` (string)',
    ],
    ['a numeric name', { name: 42 }, 'Expected `name` to be a string, got `42` (number)'],
    ['null options', null, 'Expected `options` to be an options object, got `null` (null)'],
    ['numeric options', 5, 'Expected `options` to be an options object, got `5` (number)'],
    ['array options', [], 'Expected `options` to be an options object, got `[array]` (array)'],
  ])('%s', (_label, options, message) => {
    expect(problems(options)).toBe(`Invalid bulwark options:\n  - ${message}`);
  });

  it.each([
    ['retyr', { retyr: true }, 'Unknown option `retyr` (did you mean `retry`?)'],
    ['timout', { timout: 100 }, 'Unknown option `timout` (did you mean `timeout`?)'],
    ['fallbak', { fallbak: 1 }, 'Unknown option `fallbak` (did you mean `fallback`?)'],
    ['Signal', { Signal: 1 }, 'Unknown option `Signal` (did you mean `signal`?)'],
    [
      'retry.maxAttempt',
      { retry: { maxAttempt: 3 } },
      'Unknown option `retry.maxAttempt` (did you mean `retry.maxAttempts`?)',
    ],
    [
      'retry.retryOnResults',
      { retry: { retryOnResults: () => true } },
      'Unknown option `retry.retryOnResults` (did you mean `retry.retryOnResult`?)',
    ],
    [
      'timeout.totl',
      { timeout: { totl: 5 } },
      'Unknown option `timeout.totl` (did you mean `timeout.total`?)',
    ],
  ])('an unknown key %s with a "did you mean"', (_label, options, message) => {
    expect(problems(options)).toContain(message);
  });

  it('an unknown key far from every known one gets no suggestion, but the list of known options', () => {
    expect(problems({ xyzzy: 1 })).toBe(
      'Invalid bulwark options:\n  - Unknown option `xyzzy`; known options: retry, timeout, hedge, fallback, circuitBreaker, rateLimiter, bulkhead, cache, chaos, signal, clock, random, stackTraces, name',
    );
    expect(problems({ retry: { zzz: 1 } })).toBe(
      'Invalid bulwark options:\n  - Unknown option `retry.zzz`; known options: maxAttempts, backoff, retryOn, retryOnResult, budget, maxRetryAfter',
    );
  });

  it('names every problem, path and value in ONE TypeError', () => {
    const message = problems({
      retyr: true,
      retry: { maxAttempts: 0, backoff: 5, retryOn: 'yes' },
      timeout: { attempt: -1, total: NaN },
      random: 'dice',
      name: false,
    });
    expect(message.split('\n')).toEqual([
      'Invalid bulwark options:',
      '  - Unknown option `retyr` (did you mean `retry`?); known options: retry, timeout, hedge, fallback, circuitBreaker, rateLimiter, bulkhead, cache, chaos, signal, clock, random, stackTraces, name',
      '  - Expected `retry.maxAttempts` to be an integer >= 1, got `0` (number)',
      '  - Expected `retry.backoff` to be a function, got `5` (number)',
      '  - Expected `retry.retryOn` to be a function, got `"yes"` (string)',
      '  - Expected `timeout.attempt` to be a number > 0 (Infinity allowed), got `-1` (number)',
      '  - Expected `timeout.total` to be a number > 0 (Infinity allowed), got `NaN` (number)',
      '  - Expected `random` to be a function, got `"dice"` (string)',
      '  - Expected `name` to be a string, got `false` (boolean)',
    ]);
  });

  it('folds problems of the other stages into the same TypeError', () => {
    const message = problems({
      retry: { maxAttempts: -1 },
      bulkhead: { maxConcurrent: 0 },
      circuitBreaker: { failureRateThreshold: 50 },
    });
    const lines = message.split('\n');
    expect(lines[0]).toBe('Invalid bulwark options:');
    expect(lines).toContain(
      '  - Expected `retry.maxAttempts` to be an integer >= 1, got `-1` (number)',
    );
    expect(message).toContain('`bulkhead.maxConcurrent`');
    expect(message).toContain('`circuitBreaker.failureRateThreshold`');
    expect(message).toContain('`50` (number)');
  });

  it('reports getters that throw as problems, next to the others, without crashing', () => {
    const options = {
      get retry(): never {
        throw new Error('getter exploded');
      },
      timeout: -1,
    };
    expect(problems(options).split('\n')).toEqual([
      'Invalid bulwark options:',
      '  - Could not read `retry`: its getter threw getter exploded',
      '  - Expected `timeout` to be a number > 0 (Infinity allowed), got `-1` (number)',
    ]);
    const nested = {
      retry: {
        get maxAttempts(): never {
          // eslint-disable-next-line @typescript-eslint/only-throw-error -- a getter may throw anything
          throw 'not an Error';
        },
      },
    };
    expect(problems(nested)).toBe(
      'Invalid bulwark options:\n  - Could not read `retry.maxAttempts`: its getter threw `"not an Error"` (string)',
    );
  });

  it('reads each getter exactly once', () => {
    let reads = 0;
    const options = {
      get retry() {
        reads++;
        return { maxAttempts: 2 };
      },
    };
    expect(resilient(fn, options).describe().stages[3]).toMatchObject({ maxAttempts: 2 });
    expect(reads).toBe(1);
  });

  it('reports an options object whose keys cannot be listed (a throwing Proxy)', () => {
    const options = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('no keys for you');
        },
      },
    );
    expect(problems(options)).toBe(
      'Invalid bulwark options:\n  - Could not list the keys of `options`: Error: no keys for you',
    );
  });

  it('applies to policies and decorators too: resilient(options) throws at once', () => {
    expect(() => resilient({ retry: { maxAttempts: 0 } })).toThrow(TypeError);
    expect(() => resilient({ retry: { maxAttempts: 0 } })).toThrow('`retry.maxAttempts`');
  });

  it('shows functions, bigints and symbols readably', () => {
    expect(problems({ name: function named() {} })).toContain('got `[function named]` (function)');
    expect(problems({ name: () => {} })).toContain('got `[function name]` (function)');
    const unprintable = Object.defineProperty(() => {}, 'name', {
      get(): never {
        throw new Error('no name');
      },
    });
    expect(problems({ name: unprintable })).toContain('got `[unprintable]` (function)');
    const anonymous = [() => {}][0];
    expect(problems({ name: anonymous })).toContain('got `[function anonymous]` (function)');
    expect(problems({ name: 10n })).toContain('got `10n` (bigint)');
    expect(problems({ name: Symbol('s') })).toContain('got `Symbol(s)` (symbol)');
    expect(problems({ retry: { backoff: 1, retryOn: Object.assign(() => {}, {}) } })).toContain(
      'retry.backoff',
    );
  });
});

describe('options: what is accepted', () => {
  it.each([
    ['no options', undefined],
    ['an empty object', {}],
    ['retry: true', { retry: true }],
    ['retry: false', { retry: false }],
    ['retry: {}', { retry: {} }],
    ['maxAttempts 1', { retry: { maxAttempts: 1 } }],
    ['a numeric timeout', { timeout: 1 }],
    ['an Infinity timeout', { timeout: Infinity }],
    ['timeout.attempt alone', { timeout: { attempt: 10 } }],
    ['timeout.total alone', { timeout: { total: 10 } }],
    ['a fallback value of undefined', { fallback: undefined }],
    ['options with undefined values', { retry: undefined, timeout: undefined, name: undefined }],
    [
      'every option',
      {
        retry: {
          maxAttempts: 2,
          backoff: backoff.constant(1),
          retryOn: () => true,
          retryOnResult: () => false,
          budget: retryBudget(),
        },
        timeout: { attempt: 1, total: 2 },
        fallback: null,
        signal: new AbortController().signal,
        clock: new ManualClock(),
        random: () => 0,
        stackTraces: false,
        name: 'n',
      },
    ],
  ])('%s', (_label, options) => {
    expect(() => resilient(fn, options as never)).not.toThrow();
  });

  it('a class instance with the right methods is a clock', () => {
    expect(resilient(fn, { clock: new ManualClock() }).describe().clock).toBe('custom');
  });

  it('retry: false, like no retry, builds no retry stage', () => {
    expect(resilient(fn, { retry: false }).describe().stages[3]).toEqual({
      stage: 'retry',
      enabled: false,
    });
  });
});

describe('error messages for the commonest mistakes', () => {
  const known =
    'known options: retry, timeout, hedge, fallback, circuitBreaker, rateLimiter, bulkhead, cache, chaos, signal, clock, random, stackTraces, name';
  const retryKnown =
    'known options: maxAttempts, backoff, retryOn, retryOnResult, budget, maxRetryAfter';
  const counts = '`maxAttempts` counts all calls, the first included';

  it.each<[string, unknown, string]>([
    [
      '{ retries: 3 } (p-retry, async-retry)',
      { retries: 3 },
      `Unknown option \`retries\` (did you mean \`retry\`? \`retry: { maxAttempts: 4 }\` makes 3 retries: ${counts}); ${known}`,
    ],
    [
      '{ retries: 1 }',
      { retries: 1 },
      `Unknown option \`retries\` (did you mean \`retry\`? \`retry: { maxAttempts: 2 }\` makes 1 retry: ${counts}); ${known}`,
    ],
    [
      '{ maxRetries: true }',
      { maxRetries: true },
      `Unknown option \`maxRetries\` (did you mean \`retry\`? \`retry: { maxAttempts: 4 }\` makes 3 retries: ${counts}); ${known}`,
    ],
    [
      '{ maxAttempts: 3 } at the top level',
      { maxAttempts: 3 },
      `Unknown option \`maxAttempts\` (did you mean \`retry: { maxAttempts }\`? It counts all calls, the first included); ${known}`,
    ],
    [
      'retry: { retries: 3 }',
      { retry: { retries: 3 } },
      `Unknown option \`retry.retries\` (did you mean \`retry.maxAttempts\`? It counts all calls, the first included: \`retries: 3\` is \`maxAttempts: 4\`); ${retryKnown}`,
    ],
    [
      'retry: { maxRetries: 5 }',
      { retry: { maxRetries: 5 } },
      `Unknown option \`retry.maxRetries\` (did you mean \`retry.maxAttempts\`? It counts all calls, the first included: \`maxRetries: 5\` is \`maxAttempts: 6\`); ${retryKnown}`,
    ],
    [
      "retry: { retries: 'many' }",
      { retry: { retries: 'many' } },
      `Unknown option \`retry.retries\` (did you mean \`retry.maxAttempts\`? It counts all calls, the first included); ${retryKnown}`,
    ],
    [
      'retry: { attempts: 3 }',
      { retry: { attempts: 3 } },
      `Unknown option \`retry.attempts\` (did you mean \`retry.maxAttempts\`? It counts all calls, the first included); ${retryKnown}`,
    ],
    [
      '{ retry: 3 }',
      { retry: 3 },
      'Expected `retry` to be `true` or an options object, got `3` (number); did you mean `retry: { maxAttempts: 3 }` (3 calls in all, the first included) or `retry: true` (the defaults)?',
    ],
    [
      '{ retry: 0.5 }',
      { retry: 0.5 },
      'Expected `retry` to be `true` or an options object, got `0.5` (number); did you mean `retry: { maxAttempts: 3 }` (3 calls in all, the first included) or `retry: true` (the defaults)?',
    ],
  ])('%s', (_label, options, message) => {
    expect(problems(options)).toBe(`Invalid bulwark options:\n  - ${message}`);
  });

  it('gives the same hints for resilientSync and resilientFetch', () => {
    expect(() => resilientSync(fn, { retry: 2 } as never)).toThrow(
      'did you mean `retry: { maxAttempts: 2 }` (2 calls in all, the first included) or `retry: true` (the defaults)?',
    );
    expect(() => resilientFetch({ retries: 2 } as never)).toThrow(
      `Invalid resilientFetch options:\n  - Unknown option \`retries\` (did you mean \`retry\`? \`retry: { maxAttempts: 3 }\` makes 2 retries: ${counts}); known options:`,
    );
  });

  it.each<[string, () => unknown, string]>([
    [
      'resilient(undefined, options)',
      () => resilient(undefined as never, { retry: true }),
      'resilient(fn, options): the function to wrap is undefined (a wrong import name, usually)',
    ],
    [
      'resilient(undefined, undefined)',
      () => (resilient as (...a: unknown[]) => unknown)(undefined, undefined),
      'resilient(fn, options): the function to wrap is undefined (a wrong import name, usually)',
    ],
    [
      'resilient(null, options)',
      () => resilient(null as never, {}),
      'resilient(fn, options): the function to wrap is `null` (null), not a function',
    ],
    [
      "resilient('getUser', options)",
      () => resilient('getUser' as never, {}),
      'resilient(fn, options): the function to wrap is `"getUser"` (string), not a function',
    ],
    [
      'resilient(options, options)',
      () => (resilient as (...a: unknown[]) => unknown)({}, {}),
      'resilient(options) takes one argument; to wrap a function call resilient(fn, options)',
    ],
    [
      'resilientSync(undefined)',
      () => resilientSync(undefined as never),
      'resilientSync(fn, options): the function to wrap is undefined (a wrong import name, usually)',
    ],
    [
      'policy(undefined)',
      () => resilient({ retry: true })(undefined as never),
      'policy(fn): the function to wrap is undefined (a wrong import name, usually)',
    ],
    [
      'policy(42)',
      () => (resilient({}) as (...a: unknown[]) => unknown)(42),
      'policy(fn): the function to wrap is `42` (number), not a function',
    ],
  ])('%s', (_label, call, message) => {
    expect(call).toThrow(new TypeError(message));
  });

  it('resilient(options) alone and resilient() still make a policy', () => {
    expect(typeof resilient({ retry: true })).toBe('function');
    expect(typeof resilient()).toBe('function');
  });
});
