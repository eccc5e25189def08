import { describe, expect, it, vi } from 'vitest';
import {
  BulkheadRejectedError,
  TimeoutError,
  backoff,
  resilient,
  type ResilientFunction,
} from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { deferred } from '../helpers/promises.js';

// Legacy `experimentalDecorators` (NestJS style: `(prototype, key, descriptor)`). vitest.config.ts
// compiles files under test/legacy/ that way, and test/legacy/tsconfig.json type-checks them so.

describe('@resilient(options) as a legacy (experimentalDecorators) decorator', () => {
  it('is really called the legacy way, with (prototype, key, descriptor)', () => {
    const policy = resilient({ retry: true });
    const spy = vi.fn(policy as (...args: unknown[]) => unknown);
    const decorator = spy as unknown as MethodDecorator;
    class Repo {
      @decorator
      async load(): Promise<number> {
        return 1;
      }
    }
    expect(spy).toHaveBeenCalledTimes(1);
    const [target, key, descriptor] = spy.mock.calls[0]!;
    expect(target).toBe(Repo.prototype);
    expect(key).toBe('load');
    expect(descriptor).toMatchObject({ writable: true, enumerable: false, configurable: true });
  });

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

  it('keeps the descriptor’s attributes and the method’s name', () => {
    class Repo {
      @resilient({ retry: true })
      async load(): Promise<number> {
        return 1;
      }
    }
    const descriptor = Object.getOwnPropertyDescriptor(Repo.prototype, 'load')!;
    expect(descriptor.enumerable).toBe(false);
    expect(descriptor.writable).toBe(true);
    expect(descriptor.configurable).toBe(true);
    expect((descriptor.value as () => unknown).name).toBe('load');
  });

  it('builds one pipeline per method, shared by every instance of the class', async () => {
    const gate = deferred();
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
    gate.resolve(undefined);
    await expect(first).resolves.toBe('a');
    await expect(b.send()).resolves.toBe('b');
  });

  it('a policy object works as the decorator itself, NestJS style', async () => {
    const clock = new ManualClock();
    const policy = resilient({ timeout: 10, clock });
    class Controller {
      @policy
      async slow(): Promise<never> {
        return new Promise<never>(() => {});
      }
    }
    const method = Controller.prototype.slow as unknown as ResilientFunction<Controller, [], never>;
    expect(method.describe().stages.at(-2)).toEqual({
      stage: 'timeout',
      enabled: true,
      attempt: 10,
    });
    const call = new Controller().slow().catch((e: unknown) => e);
    await clock.advance(10);
    expect(await call).toBeInstanceOf(TimeoutError);
  });

  it('works on static methods, with `this` the class', async () => {
    class Registry {
      static readonly prefix = 'reg';

      @resilient({ retry: true })
      static async lookup(key: string): Promise<string> {
        return `${this.prefix}:${key}`;
      }
    }
    await expect(Registry.lookup('k')).resolves.toBe('reg:k');
  });

  it('throws a TypeError on accessors and properties', () => {
    const policy = resilient({ retry: true });
    expect(() => {
      class A {
        @policy
        get value(): number {
          return Math.PI;
        }
      }
      return A;
    }).toThrow(/decorates class methods only, not accessors or fields \(`value`\)/);
    const asProperty = policy as unknown as PropertyDecorator;
    expect(() => {
      class B {
        @asProperty
        value = 1;
      }
      return B;
    }).toThrow(TypeError);
  });

  it('throws a clear TypeError at decoration time on a class, never replacing it by a function', () => {
    const policy = resilient({ retry: true });
    const asClass = policy as unknown as ClassDecorator;
    let made: unknown;
    expect(() => {
      @asClass
      class Repo {
        load(): number {
          return 1;
        }
      }
      made = Repo;
    }).toThrow(/decorates class methods only, not a class \(`Repo`\)/);
    expect(made).toBeUndefined();
  });

  it('throws a clear TypeError at decoration time on a getter, a static getter or a field', () => {
    const policy = resilient({ retry: true });
    const asProperty = policy as unknown as PropertyDecorator;
    const clear = /decorates class methods only, not accessors or fields \(`value`\)/;
    expect(() => {
      class A {
        @policy
        static get value(): number {
          return Date.now();
        }
      }
      return A;
    }).toThrow(clear);
    expect(() => {
      class B {
        @asProperty
        value = 1;
      }
      return B;
    }).toThrow(clear);
    expect(() => {
      class C {
        @asProperty
        static value = 1;
      }
      return C;
    }).toThrow(clear);
    // A legacy field decorator as some compilers call it: (prototype, key), no descriptor at all.
    class D {}
    expect(() => (policy as (...args: unknown[]) => unknown)(D.prototype, 'value')).toThrow(clear);
    // ... and a static one: its target is the class, or a constructor function compiled from one.
    expect(() => (policy as (...args: unknown[]) => unknown)(D, 'value')).toThrow(clear);
    function E(): void {}
    expect(() => (policy as (...args: unknown[]) => unknown)(E, 'value')).toThrow(clear);
  });
});
