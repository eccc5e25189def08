import { describe, expect, it, vi } from 'vitest';
import {
  BulkheadRejectedError,
  backoff,
  resilient,
  type ResilienceEvent,
  type ResilientFunction,
} from '../src/index.js';
import { ManualClock } from './helpers/manual-clock.js';
import { deferred } from './helpers/promises.js';

// TC39 standard decorators (TypeScript 5's default): this file is compiled without
// experimentalDecorators; test/legacy/decorator.test.ts covers the NestJS style.

describe('@resilient(options) as a standard decorator', () => {
  it('wraps an async method, forwarding `this` and the arguments on every attempt', async () => {
    const clock = new ManualClock();
    class Repo {
      calls = 0;
      constructor(readonly prefix: string) {}

      @resilient({ retry: { maxAttempts: 3, backoff: backoff.constant(10) }, clock })
      async load(id: string, n: number): Promise<string> {
        this.calls++;
        if (this.calls < 3) throw new Error(`failure ${this.calls}`);
        return `${this.prefix}:${id}:${n}`;
      }
    }
    const repo = new Repo('users');
    const result = repo.load('42', 7);
    await clock.advance(20);
    await expect(result).resolves.toBe('users:42:7');
    expect(repo.calls).toBe(3);
  });

  it('builds one pipeline per method, shared by every instance of the class', async () => {
    const gate = deferred<string>();
    class Client {
      constructor(readonly name: string) {}

      @resilient({ bulkhead: { maxConcurrent: 1, maxQueue: 0 } })
      async send(): Promise<string> {
        await gate.promise;
        return this.name;
      }
    }
    const a = new Client('a');
    const b = new Client('b');
    expect(a.send).toBe(b.send);
    const first = a.send();
    await expect(b.send()).rejects.toBeInstanceOf(BulkheadRejectedError);
    gate.resolve('go');
    await expect(first).resolves.toBe('a');
    await expect(b.send()).resolves.toBe('b');
  });

  it('a policy used on several methods shares its stateful stages between them', async () => {
    const gate = deferred();
    const policy = resilient({ bulkhead: { maxConcurrent: 1, maxQueue: 0 } });
    class Api {
      @policy
      async users(): Promise<string> {
        await gate.promise;
        return 'users';
      }

      @policy
      async orders(): Promise<string> {
        return 'orders';
      }
    }
    const api = new Api();
    const users = api.users();
    await expect(api.orders()).rejects.toBeInstanceOf(BulkheadRejectedError);
    gate.resolve(undefined);
    await expect(users).resolves.toBe('users');
    await expect(api.orders()).resolves.toBe('orders');
    expect(policy.stats().bulkhead).toMatchObject({ inFlight: 0, rejected: 1 });
  });

  it('the decorated method keeps its name and exposes describe() and on()', async () => {
    const clock = new ManualClock();
    class Svc {
      @resilient({ timeout: 5, clock, name: 'svc.slow' })
      async slow(): Promise<never> {
        return new Promise<never>(() => {});
      }
    }
    const method = Svc.prototype.slow as unknown as ResilientFunction<Svc, [], never>;
    expect(method.name).toBe('slow');
    expect(method.describe().name).toBe('svc.slow');
    const events: ResilienceEvent[] = [];
    method.on((e) => events.push(e));
    const call = new Svc().slow().catch((e: unknown) => e);
    await clock.advance(5);
    expect(await call).toMatchObject({ name: 'TimeoutError' });
    expect(events).toEqual([{ type: 'timedOut', timeout: 5, scope: 'attempt' }]);
  });

  it('works on static methods, with `this` the class', async () => {
    class Registry {
      static readonly prefix = 'reg';

      @resilient({ fallback: 'fb' })
      static async lookup(key: string): Promise<string> {
        return `${this.prefix}:${key}`;
      }
    }
    await expect(Registry.lookup('k')).resolves.toBe('reg:k');
  });

  it('retries a synchronous throw of a method that is not async', async () => {
    const clock = new ManualClock();
    class Calc {
      factor = 3;
      calls = 0;

      @resilient({ retry: { backoff: backoff.constant(0) }, clock })
      times(n: number): Promise<number> {
        if (++this.calls === 1) throw new Error('sync');
        return Promise.resolve(n * this.factor);
      }
    }
    const calc = new Calc();
    await expect(calc.times(2)).resolves.toBe(6);
    expect(calc.calls).toBe(2);
  });

  it('applies the fallback with the instance as `this`', async () => {
    const fallback = vi.fn(function (this: unknown) {
      return this;
    });
    class Thing {
      @resilient({ fallback })
      async fail(): Promise<unknown> {
        throw new Error('x');
      }
    }
    const thing = new Thing();
    await expect(thing.fail()).resolves.toBe(thing);
  });

  it('a policy called with anything else than a function or a decorator call throws a TypeError', () => {
    const policy = resilient({}) as unknown as (...args: unknown[]) => unknown;
    expect(() => policy(null, 'load', {})).toThrow(/wraps a function/);
    expect(() => policy({}, 42, {})).toThrow(/wraps a function/);
    expect(() => policy(() => 1, {})).toThrow(/wraps a function/);
  });

  it('throws a TypeError on a getter, a setter, an auto-accessor, a field or a class', () => {
    const policy = resilient({ retry: true });
    const dec = policy as unknown as (value: unknown, context: DecoratorContext) => never;
    expect(() => {
      class A {
        @dec
        get value(): number {
          return Math.PI;
        }
      }
      return A;
    }).toThrow(/decorates class methods only, not a getter \(`value`\)/);
    expect(() => {
      class B {
        @dec
        set value(_v: number) {}
      }
      return B;
    }).toThrow(/not a setter/);
    expect(() => {
      class C {
        @dec
        accessor value = 1;
      }
      return C;
    }).toThrow(new TypeError('@resilient decorates class methods only, not an accessor (`value`)'));
    expect(() => {
      class D {
        @dec
        value = 1;
      }
      return D;
    }).toThrow(/not a field/);
    expect(() => {
      @dec
      class E {}
      return E;
    }).toThrow(TypeError);
  });
});
