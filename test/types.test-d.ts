import { describe, expectTypeOf, it } from 'vitest';
import {
  backoff,
  resilient,
  retryBudget,
  type AttemptContext,
  type Backoff,
  type Policy,
  type ResilienceEvent,
  type ResilientFunction,
  type Unsubscribe,
} from '../src/index.js';

interface User {
  id: string;
  name: string;
}
declare function fetchUser(id: string, options?: { fresh: boolean }): Promise<User>;
declare function syncAdd(a: number, b: number): number;

describe('resilient(fn, options)', () => {
  it('keeps the parameters; no fallback gives Promise<Awaited<R>>', () => {
    const getUser = resilient(fetchUser, { retry: { maxAttempts: 4 }, timeout: 2_000 });
    expectTypeOf(getUser).parameters.toEqualTypeOf<[id: string, options?: { fresh: boolean }]>();
    expectTypeOf(getUser).returns.toEqualTypeOf<Promise<User>>();
    expectTypeOf(getUser('42')).toEqualTypeOf<Promise<User>>();
    // @ts-expect-error: the id is a string
    void getUser(42);
    // @ts-expect-error: at most two arguments
    void getUser('42', { fresh: true }, 'extra');
  });

  it('a synchronous fn is awaited: Promise<R>', () => {
    const add = resilient(syncAdd);
    expectTypeOf(add).parameters.toEqualTypeOf<[a: number, b: number]>();
    expectTypeOf(add(1, 2)).toEqualTypeOf<Promise<number>>();
    const nested = resilient(async () => Promise.resolve(Promise.resolve(1)));
    expectTypeOf(nested()).toEqualTypeOf<Promise<number>>();
  });

  it('a fallback function adds its (awaited) return type: Promise<Awaited<R> | F>', () => {
    const withNull = resilient(fetchUser, { fallback: () => null });
    expectTypeOf(withNull('1')).toEqualTypeOf<Promise<User | null>>();
    const withAsync = resilient(fetchUser, { fallback: async () => 'offline' as const });
    expectTypeOf(withAsync('1')).toEqualTypeOf<Promise<User | 'offline'>>();
    const withSame = resilient(fetchUser, {
      fallback: (_error, id) => ({ id, name: 'unknown' }),
    });
    // `F` is a const type parameter: literals keep their literal types (and objects become readonly)
    expectTypeOf(withSame('1')).toEqualTypeOf<
      Promise<User | { readonly id: string; readonly name: 'unknown' }>
    >();
  });

  it('the fallback function gets the error and the same parameters', () => {
    resilient(fetchUser, {
      fallback: (error, id, options) => {
        expectTypeOf(error).toEqualTypeOf<unknown>();
        expectTypeOf(id).toEqualTypeOf<string>();
        expectTypeOf(options).toEqualTypeOf<{ fresh: boolean } | undefined>();
        return null;
      },
    });
  });

  it('a plain fallback value adds its type', () => {
    expectTypeOf(resilient(fetchUser, { fallback: null })('1')).toEqualTypeOf<
      Promise<User | null>
    >();
    expectTypeOf(resilient(fetchUser, { fallback: 0 })('1')).toEqualTypeOf<Promise<User | 0>>();
    expectTypeOf(resilient(fetchUser, { fallback: 'none' })('1')).toEqualTypeOf<
      Promise<User | 'none'>
    >();
    expectTypeOf(resilient(syncAdd, { fallback: false })(1, 2)).toEqualTypeOf<
      Promise<number | false>
    >();
  });

  it('keeps `this`', () => {
    interface Repo {
      table: string;
    }
    const load = resilient(function (this: Repo, id: number) {
      return `${this.table}/${id}`;
    });
    expectTypeOf(load).thisParameter.toEqualTypeOf<Repo>();
    expectTypeOf(load).toEqualTypeOf<ResilientFunction<Repo, [id: number], string>>();
    const repo = { table: 'users', load };
    expectTypeOf(repo.load(1)).toEqualTypeOf<Promise<string>>();
    // @ts-expect-error: `this` must be a Repo
    void load.call({ other: true }, 1);
  });

  it('exposes describe, on and stats', () => {
    const getUser = resilient(fetchUser);
    expectTypeOf(getUser.describe().stages[0]!.stage).toEqualTypeOf<string>();
    expectTypeOf(getUser.on).parameter(0).toEqualTypeOf<(event: ResilienceEvent) => void>();
    expectTypeOf(getUser.on(() => {})).toEqualTypeOf<Unsubscribe>();
    expectTypeOf(getUser.stats).returns.toHaveProperty('retryBudget');
  });

  it('events are a discriminated union', () => {
    resilient(fetchUser).on((event) => {
      if (event.type === 'retryScheduled') {
        expectTypeOf(event.delay).toEqualTypeOf<number>();
        expectTypeOf(event.error).toEqualTypeOf<unknown>();
      }
      if (event.type === 'timedOut') expectTypeOf(event.scope).toEqualTypeOf<'attempt' | 'total'>();
    });
  });

  it('checks option types', () => {
    // @ts-expect-error: maxAttempts is a number
    resilient(fetchUser, { retry: { maxAttempts: '3' } });
    // @ts-expect-error: unknown option
    resilient(fetchUser, { retyr: true });
    // @ts-expect-error: timeout is a number or { attempt, total }
    resilient(fetchUser, { timeout: '1s' });
    resilient(fetchUser, {
      retry: {
        backoff: backoff.exponential({ jitter: 'equal' }),
        retryOn: (error, attempt) => {
          expectTypeOf(error).toEqualTypeOf<unknown>();
          expectTypeOf(attempt).toEqualTypeOf<number>();
          return true;
        },
        budget: retryBudget({ ratio: 0.1 }),
      },
      timeout: { attempt: 100, total: 1_000 },
      signal: new AbortController().signal,
    });
    expectTypeOf(backoff.constant(1)).toEqualTypeOf<Backoff>();
    // @ts-expect-error: not a jitter kind
    backoff.exponential({ jitter: 'half' });
  });
});

describe('resilient(options): a policy', () => {
  it('is a Policy typed by its fallback', () => {
    expectTypeOf(resilient({ retry: true })).toEqualTypeOf<Policy<never>>();
    expectTypeOf(resilient({ fallback: null })).toEqualTypeOf<Policy<null>>();
  });

  it('takes `true` for "with defaults" for every stage with options (issue 10 item 14)', () => {
    expectTypeOf(
      resilient({ retry: true, circuitBreaker: true, bulkhead: true, cache: true }),
    ).toEqualTypeOf<Policy<never>>();
    expectTypeOf(resilient({ circuitBreaker: false, bulkhead: false })).toEqualTypeOf<
      Policy<never>
    >();
  });

  it('policy(fn) keeps parameters, `this` and adds the fallback', () => {
    const policy = resilient({ retry: true, timeout: { attempt: 500, total: 3_000 } });
    const getUser = policy(fetchUser);
    expectTypeOf(getUser).parameters.toEqualTypeOf<[id: string, options?: { fresh: boolean }]>();
    expectTypeOf(getUser('1')).toEqualTypeOf<Promise<User>>();
    const withFallback = resilient({ fallback: () => undefined })(fetchUser);
    expectTypeOf(withFallback('1')).toEqualTypeOf<Promise<User | undefined>>();
    const method = policy(function (this: Date) {
      return this.getTime();
    });
    expectTypeOf(method).thisParameter.toEqualTypeOf<Date>();
    expectTypeOf(method).returns.toEqualTypeOf<Promise<number>>();
  });

  it('execute: the task gets an AttemptContext; the result is awaited, plus the fallback', () => {
    const policy = resilient({ retry: true });
    const result = policy.execute(
      (context) => {
        expectTypeOf(context).toEqualTypeOf<AttemptContext>();
        expectTypeOf(context.signal).toEqualTypeOf<AbortSignal>();
        expectTypeOf(context.attempt).toEqualTypeOf<number>();
        return Promise.resolve(42);
      },
      { signal: new AbortController().signal },
    );
    expectTypeOf(result).toEqualTypeOf<Promise<number>>();
    expectTypeOf(policy.execute(() => 'sync')).toEqualTypeOf<Promise<string>>();
    expectTypeOf(resilient({ fallback: 'fb' as const }).execute(async () => 1)).toEqualTypeOf<
      Promise<number | 'fb'>
    >();
    // @ts-expect-error: the signal must be an AbortSignal
    void policy.execute(() => 1, { signal: 'abort' });
  });
});

describe('decorators (TC39 standard)', () => {
  it('type-check on async methods and keep the method’s type', () => {
    const policy = resilient({ retry: true });
    class Repo {
      prefix = 'p';

      @resilient({ retry: true, timeout: 1_000 })
      async load(id: string): Promise<string> {
        return `${this.prefix}${id}`;
      }

      @policy
      async save(id: string, value: number): Promise<void> {
        void [id, value, this.prefix];
      }

      @resilient({ fallback: '' })
      static async find(id: string): Promise<string> {
        return id;
      }
    }
    expectTypeOf(new Repo().load).toEqualTypeOf<(id: string) => Promise<string>>();
    expectTypeOf(new Repo().save).parameters.toEqualTypeOf<[id: string, value: number]>();
    expectTypeOf(Repo.find).returns.toEqualTypeOf<Promise<string>>();
  });

  it('refuse what would make the method’s declared type a lie', () => {
    // A decorator cannot change a method's type, so a fallback the method's result type does not
    // allow is a type error (the call could resolve to `null`, typed `Promise<string>`)...
    class WrongFallback {
      // @ts-expect-error: null is not a string
      @resilient({ fallback: null })
      async find(id: string): Promise<string> {
        return id;
      }
    }
    // ...and so is a synchronous method (it would return a promise, typed `number`).
    class SyncMethod {
      // @ts-expect-error: the decorated method returns a promise
      @resilient({ retry: true })
      add(a: number, b: number): number {
        return a + b;
      }
    }
    void [WrongFallback, SyncMethod];
  });
});

describe('chaos options', () => {
  it("types `enabled` and a fault's `error` function with the wrapped function's parameters", () => {
    resilient(fetchUser, {
      chaos: {
        fault: {
          rate: 0.1,
          error: (id, options) => {
            expectTypeOf(id).toEqualTypeOf<string>();
            expectTypeOf(options).toEqualTypeOf<{ fresh: boolean } | undefined>();
            return new Error(id);
          },
        },
        latency: { rate: 0.1, delay: 100 },
        enabled: (id) => id.startsWith('test-'),
      },
    });
    resilient(fetchUser, {
      // @ts-expect-error an error must be an Error or a function returning one
      chaos: { fault: { rate: 0.1, error: 'boom' } },
    });
  });

  it('narrows chaosInjected events by kind', () => {
    const listener = (event: ResilienceEvent): void => {
      if (event.type === 'chaosInjected' && event.kind === 'latency')
        expectTypeOf(event.delay).toEqualTypeOf<number>();
    };
    expectTypeOf(listener).toBeFunction();
  });
});
