import { describe, expect, it, vi } from 'vitest';
import {
  cache,
  Cache,
  circuitBreaker,
  resilient,
  resilientSync,
  type CacheOptions,
  type ResilienceEvent,
} from '../../src/index.js';
import { markFreeRunning } from '../../src/clock.js';
import { atTurnEnd } from '../../src/core/turn.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';
import { memoryStore } from '../helpers/memory-store.js';
import { deferred, track } from '../helpers/promises.js';

const boom = new Error('boom');

/** A cached function of one key; each call's outcome is set with `next`. */
function setup(options: boolean | CacheOptions<[string]> = {}, clock = new ManualClock()) {
  let outcome: 'ok' | 'fail' = 'ok';
  let n = 0;
  const fn = vi.fn((key: string) => {
    n++;
    return outcome === 'ok' ? Promise.resolve(`${key}#${n}`) : Promise.reject(boom);
  });
  const call = resilient(fn, { clock, cache: options });
  const events: ResilienceEvent[] = [];
  call.on((event) => events.push(event));
  const next = (value: 'ok' | 'fail'): void => {
    outcome = value;
  };
  const settle = (key: string): Promise<unknown> =>
    call(key).then(
      (value) => value,
      (error: unknown) => error,
    );
  return { call, fn, clock, events, next, settle };
}

/** Resolves to the value if `promise` is already settled, else to 'pending'. */
async function peek(promise: Promise<unknown>): Promise<unknown> {
  return Promise.race([promise, Promise.resolve('pending')]);
}

describe('cache: defaults and options', () => {
  it('`true` means ttl 60 s, maxEntries 1000, default key, no staleIfError', () => {
    const call = resilient((id: string) => id, { cache: true });
    expect(call.describe().stages.find((s) => s.stage === 'cache')).toEqual({
      stage: 'cache',
      enabled: true,
      name: 'none',
      ttl: 60_000,
      maxEntries: 1_000,
      key: 'default',
      staleIfError: 0,
      staleWhileRevalidate: 0,
    });
    expect(cache()).toBeInstanceOf(Cache);
    expect(cache({ name: 'users', key: (id: string) => id }).describe()).toMatchObject({
      name: 'users',
      key: 'custom',
    });
  });

  it('keeps a result fresh for ttl ms, then calls fn again', async () => {
    const { settle, fn, clock } = setup({ ttl: 1_000 });
    expect(await settle('a')).toBe('a#1');
    await clock.advance(999);
    expect(await settle('a')).toBe('a#1');
    expect(fn).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    expect(await settle('a')).toBe('a#2');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('the default ttl is 60 s', async () => {
    const { settle, clock } = setup(true);
    await settle('a');
    await clock.advance(59_999);
    expect(await settle('a')).toBe('a#1');
    await clock.advance(1);
    expect(await settle('a')).toBe('a#2');
  });

  it('ttl Infinity never expires and sets no timer', async () => {
    const { settle, clock } = setup({ ttl: Infinity });
    await settle('a');
    await clock.advance(1e12);
    expect(await settle('a')).toBe('a#1');
    expect(clock.pending()).toBe(0);
  });

  it('keys are separate', async () => {
    const { settle, fn } = setup();
    expect(await settle('a')).toBe('a#1');
    expect(await settle('b')).toBe('b#2');
    expect(await settle('a')).toBe('a#1');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('stats() counts hits, misses and size', async () => {
    const { settle, call } = setup();
    await settle('a');
    await settle('a');
    await settle('a');
    await settle('b');
    expect(call.stats().cache).toEqual({
      size: 2,
      hits: 2,
      misses: 2,
      staleServed: 0,
      staleHits: 0,
      refreshFailures: 0,
      hitRate: 0.5,
    });
    expect(cache().stats().hitRate).toBe(0);
  });

  it('clear(key) and clear() drop entries', async () => {
    const shared = cache({ key: (id: string) => id });
    const clock = new ManualClock();
    const fn = vi.fn((id: string) => Promise.resolve(`${id}:${fn.mock.calls.length}`));
    const call = resilient(fn, { clock, cache: shared });
    await call('a');
    await call('b');
    shared.clear('a');
    expect(await call('a')).toBe('a:3');
    expect(await call('b')).toBe('b:2');
    shared.clear();
    expect(shared.stats().size).toBe(0);
    expect(await call('b')).toBe('b:4');
    expect(clock.pending()).toBe(1); // one expiry timer for the whole cache
    shared.clear();
    expect(clock.pending()).toBe(0);
  });
});

describe('cache: clearing while a call is in flight', () => {
  it('a result that lands after clear() is returned but not stored', async () => {
    const shared = cache({ clock: new ManualClock() });
    let resolve!: (value: string) => void;
    const fn = vi.fn(
      (id: string) =>
        new Promise<string>((r) => {
          resolve = (v) => r(`${id}:${v}`);
        }),
    );
    const call = resilient(fn, { cache: shared });
    const first = call('a');
    shared.clear();
    resolve('1');
    expect(await first).toBe('a:1');
    expect(shared.stats().size).toBe(0);
    const second = call('a');
    resolve('2');
    expect(await second).toBe('a:2');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('a failure that lands after clear(key) leaves a newer entry alone', async () => {
    const clock = new ManualClock();
    const shared = cache({ clock });
    const settlers: ((ok: boolean) => void)[] = [];
    const fn = vi.fn(
      (id: string) =>
        new Promise<string>((resolve, reject) => {
          settlers.push((ok) => (ok ? resolve(id) : reject(boom)));
        }),
    );
    const call = resilient(fn, { cache: shared });
    const old = call('a').catch((e: unknown) => e);
    shared.clear('a');
    shared.clear('missing');
    const fresh = call('a');
    settlers[0]!(false);
    expect(await old).toBe(boom);
    settlers[1]!(true);
    expect(await fresh).toBe('a');
    expect(await call('a')).toBe('a');
    expect(fn).toHaveBeenCalledTimes(2);
  });
});

describe('cache: a hit', () => {
  it('returns the same, already-resolved promise and calls nothing', async () => {
    const { call, fn, events } = setup();
    const first = call('a');
    expect(await first).toBe('a#1');
    const hit1 = call('a');
    const hit2 = call('a');
    expect(hit1).toBe(hit2);
    expect(await peek(hit1)).toBe('a#1');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(events).toEqual([
      { type: 'cacheMiss', key: 'a' },
      { type: 'cacheHit', key: 'a' },
      { type: 'cacheHit', key: 'a' },
    ]);
  });

  it('runs no other stage: an isolated breaker does not stop it', async () => {
    const clock = new ManualClock();
    const breaker = circuitBreaker({ clock });
    const fn = vi.fn((id: string) => Promise.resolve(id.toUpperCase()));
    const call = resilient(fn, { clock, cache: true, circuitBreaker: breaker });
    expect(await call('a')).toBe('A');
    breaker.isolate();
    expect(await call('a')).toBe('A');
    await expect(call('b')).rejects.toThrow(/isolated/);
  });
});

describe('cache: single flight', () => {
  it('concurrent misses on one key share one call', async () => {
    const clock = new ManualClock();
    let resolve!: (value: string) => void;
    const fn = vi.fn(
      (key: string) =>
        new Promise<string>((r) => {
          void key;
          resolve = r;
        }),
    );
    const call = resilient(fn, { clock, cache: true });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    const callers = [call('k'), call('k'), call('k')];
    expect(fn).toHaveBeenCalledTimes(1);
    expect(call.stats().cache).toMatchObject({ size: 1, misses: 1, hits: 2 }); // the joiners
    resolve('v');
    expect(await Promise.all(callers)).toEqual(['v', 'v', 'v']);
    expect(events.map((e) => e.type)).toEqual(['cacheMiss', 'cacheJoined', 'cacheJoined']);
  });

  it('a shared failure rejects every waiter and is not stored', async () => {
    const clock = new ManualClock();
    let reject!: (error: unknown) => void;
    const fn = vi.fn(
      (key: string) =>
        new Promise<string>((_, r) => {
          void key;
          reject = r;
        }),
    );
    const call = resilient(fn, { clock, cache: true });
    const callers = [call('k'), call('k')].map((p) => p.catch((e: unknown) => e));
    reject(boom);
    expect(await Promise.all(callers)).toEqual([boom, boom]);
    expect(call.stats().cache?.size).toBe(0);
    fn.mockResolvedValueOnce('later');
    expect(await call('k')).toBe('later');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('concurrent refreshes of an expired entry share one call too', async () => {
    const { call, fn, clock } = setup({ ttl: 100, staleIfError: 1_000 });
    await call('a');
    await clock.advance(100);
    const [x, y] = [call('a'), call('a')];
    expect(await Promise.all([x, y])).toEqual(['a#2', 'a#2']);
    expect(fn).toHaveBeenCalledTimes(2);
  });
});

describe('cache: failures, fallback and staleIfError', () => {
  it('never stores a failure', async () => {
    const { settle, next, fn } = setup();
    next('fail');
    expect(await settle('a')).toBe(boom);
    next('ok');
    expect(await settle('a')).toBe('a#2');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('never stores a fallback value', async () => {
    const clock = new ManualClock();
    const fn = vi
      .fn<(id: string) => Promise<string>>()
      .mockRejectedValueOnce(boom)
      .mockResolvedValue('real');
    const call = resilient(fn, { clock, cache: true, fallback: 'fallback' });
    expect(await call('a')).toBe('fallback');
    expect(call.stats().cache?.size).toBe(0);
    expect(await call('a')).toBe('real');
    expect(await call('a')).toBe('real');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('without staleIfError an expired value is dropped, and a failed refresh fails', async () => {
    const { settle, next, clock, call } = setup({ ttl: 100 });
    await settle('a');
    await clock.advance(100);
    expect(call.stats().cache?.size).toBe(0);
    next('fail');
    expect(await settle('a')).toBe(boom);
  });

  it('staleIfError: Infinity: a first miss that fails has no stale value to serve and fails', async () => {
    const { settle, next, events } = setup({ ttl: 100, staleIfError: Infinity });
    next('fail');
    expect(await settle('a')).toBe(boom);
    expect(events.map((e) => e.type)).not.toContain('staleServed');
    next('ok');
    expect(await settle('a')).toBe('a#2');
  });

  it('staleIfError: a failed refresh within the window serves the stale value and says so', async () => {
    const { settle, next, clock, call, events } = setup({ ttl: 100, staleIfError: 500 });
    expect(await settle('a')).toBe('a#1');
    await clock.advance(100);
    expect(call.stats().cache?.size).toBe(1); // kept for the stale window
    next('fail');
    await clock.advance(200);
    expect(await settle('a')).toBe('a#1');
    expect(events.at(-1)).toEqual({ type: 'staleServed', key: 'a', age: 300, error: boom });
    expect(call.stats().cache?.staleServed).toBe(1);
    await clock.advance(300); // 500 ms after expiry: still within
    expect(await settle('a')).toBe('a#1');
    await clock.advance(1); // past it
    expect(await settle('a')).toBe(boom);
    expect(call.stats().cache?.size).toBe(0);
    next('ok');
    expect(await settle('a')).toBe('a#5');
  });

  it('a successful refresh replaces the stale value', async () => {
    const { settle, clock } = setup({ ttl: 100, staleIfError: 500 });
    await settle('a');
    await clock.advance(150);
    expect(await settle('a')).toBe('a#2');
    expect(await settle('a')).toBe('a#2');
  });

  it('with a fallback, a stale value is preferred to the fallback', async () => {
    const clock = new ManualClock();
    const fn = vi
      .fn<(id: string) => Promise<string>>()
      .mockResolvedValueOnce('fresh')
      .mockRejectedValue(boom);
    const call = resilient(fn, {
      clock,
      cache: { ttl: 100, staleIfError: 100 },
      fallback: 'fallback',
    });
    expect(await call('a')).toBe('fresh');
    await clock.advance(150);
    expect(await call('a')).toBe('fresh');
    await clock.advance(100);
    expect(await call('a')).toBe('fallback');
  });
});

describe('cache: maxEntries and eviction', () => {
  it('never holds more than maxEntries; the oldest untouched entry goes first', async () => {
    const { settle, fn, call } = setup({ maxEntries: 2 });
    await settle('a');
    await settle('b');
    await settle('c');
    expect(call.stats().cache?.size).toBe(2);
    fn.mockClear();
    expect(await settle('b')).toBe('b#2');
    expect(await settle('c')).toBe('c#3');
    expect(fn).not.toHaveBeenCalled();
    expect(await settle('a')).toBe('a#4');
  });

  it('an entry used since the cache last turned over is kept; an unused one goes', async () => {
    const { settle, fn } = setup({ maxEntries: 2 });
    await settle('a');
    await settle('b');
    await settle('a'); // use a
    await settle('c'); // evicts b, not a
    fn.mockClear();
    expect(await settle('a')).toBe('a#1');
    expect(fn).not.toHaveBeenCalled();
    expect(await settle('b')).toBe('b#4');
  });

  it('never holds more than maxEntries under churn, and keeps a key in steady use', async () => {
    const { settle, fn, call } = setup({ maxEntries: 10 });
    expect(await settle('hot')).toBe('hot#1');
    for (let i = 0; i < 200; i++) {
      expect(await settle(`k${i}`)).toMatch(new RegExp(`^k${i}#`));
      expect(call.stats().cache?.size).toBeLessThanOrEqual(10);
      if (i % 3 === 0) expect(await settle('hot')).toBe('hot#1');
    }
    // 200 misses and one first call: the hot key was never called again.
    expect(fn).toHaveBeenCalledTimes(201);
  });

  it('an evicted entry reused for another key never mixes their results', async () => {
    const { settle } = setup({ maxEntries: 4 });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 12; i++) {
        const value = await settle(`k${i}`);
        expect(value).toMatch(new RegExp(`^k${i}#`));
        // A hit right after returns the same key's value.
        expect(await settle(`k${i}`)).toBe(value);
      }
    }
  });

  it('a call in flight when its generation is evicted keeps single flight and is stored', async () => {
    const clock = new ManualClock();
    const pending = new Map<string, (v: string) => void>();
    const fn = vi.fn(
      (key: string) =>
        new Promise<string>((resolve) => {
          pending.set(key, resolve);
        }),
    );
    const call = resilient(fn, { clock, cache: { maxEntries: 2 } });
    const slow = call('slow');
    for (const key of ['a', 'b', 'c', 'd', 'e']) {
      const p = call(key);
      pending.get(key)!(key.toUpperCase());
      await p;
    }
    // 'slow' has outlived two generations; a second caller still joins its call.
    const joined = call('slow');
    expect(fn.mock.calls.filter(([k]) => k === 'slow')).toHaveLength(1);
    pending.get('slow')!('SLOW');
    expect(await slow).toBe('SLOW');
    expect(await joined).toBe('SLOW');
    expect(await call('slow')).toBe('SLOW');
    expect(fn.mock.calls.filter(([k]) => k === 'slow')).toHaveLength(1);
    expect(call.stats().cache?.size).toBeLessThanOrEqual(2);
  });

  it('when every entry is in flight, the oldest is evicted but its callers still get their result', async () => {
    const clock = new ManualClock();
    const pending: ((v: string) => void)[] = [];
    const fn = vi.fn(
      (key: string) =>
        new Promise<string>((r) => {
          void key;
          pending.push(r);
        }),
    );
    const call = resilient(fn, { clock, cache: { maxEntries: 1 } });
    const a = call('a');
    const b = call('b');
    expect(call.stats().cache?.size).toBe(1);
    pending[0]!('A');
    pending[1]!('B');
    expect(await a).toBe('A');
    expect(await b).toBe('B');
    await flush();
    expect(call.stats().cache?.size).toBe(1);
    expect(await call('b')).toBe('B'); // b was kept, a was not
    expect(fn).toHaveBeenCalledTimes(2);
  });
});

describe('cache: a miss through the other stages', () => {
  it('a miss whose first attempt fails is filled by the retry that succeeds', async () => {
    const clock = new ManualClock();
    const fn = vi
      .fn<(id: string) => Promise<string>>()
      .mockRejectedValueOnce(boom)
      .mockResolvedValue('retried');
    const call = resilient(fn, {
      clock,
      cache: true,
      retry: { maxAttempts: 2, backoff: () => 0 },
    });
    expect(await call('a')).toBe('retried');
    expect(await call('a')).toBe('retried');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('a result judged by retryOnResult is stored only once accepted', async () => {
    const clock = new ManualClock();
    const fn = vi
      .fn<(id: string) => Promise<string>>()
      .mockResolvedValueOnce('not yet')
      .mockResolvedValue('done');
    const call = resilient(fn, {
      clock,
      cache: true,
      retry: { maxAttempts: 2, backoff: () => 0, retryOnResult: (r) => r === 'not yet' },
    });
    expect(await call('a')).toBe('done');
    expect(await call('a')).toBe('done');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('a result retryOnResult accepts at once is stored (a judged miss that needs no retry)', async () => {
    const clock = new ManualClock();
    const fn = vi.fn((id: string) => Promise.resolve(`${id}!`));
    const retryOnResult = vi.fn(() => false);
    const call = resilient(fn, {
      clock,
      cache: true,
      retry: { maxAttempts: 2, backoff: () => 0, retryOnResult },
    });
    expect(await call('a')).toBe('a!');
    expect(await call('a')).toBe('a!');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(retryOnResult).toHaveBeenCalledTimes(1);
  });

  it('a miss that times out is not stored; the fallback answers, and concurrent callers share it', async () => {
    const clock = new ManualClock();
    const fn = vi.fn<(id: string) => Promise<string>>(() => new Promise(() => undefined));
    const call = resilient(fn, { clock, cache: true, timeout: 100, fallback: 'fallback' });
    const first = call('a');
    const second = call('a'); // joins the call in flight
    await clock.advance(100);
    expect(await first).toBe('fallback');
    expect(await second).toBe('fallback');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(call.stats().cache?.size).toBe(0);
  });

  it('a miss that times out without a fallback rejects every caller and is not stored', async () => {
    const clock = new ManualClock();
    const fn = vi
      .fn<(id: string) => Promise<string>>()
      .mockImplementationOnce(() => new Promise(() => undefined))
      .mockResolvedValue('later');
    const call = resilient(fn, { clock, cache: true, timeout: 100 });
    const first = call('a').catch((error: unknown) => error);
    await clock.advance(100);
    expect(await first).toMatchObject({ name: 'TimeoutError' });
    expect(await call('a')).toBe('later');
  });

  it('a failed refresh behind a timeout and retries still serves the stale value', async () => {
    const clock = new ManualClock();
    const fn = vi
      .fn<(id: string) => Promise<string>>()
      .mockResolvedValueOnce('fresh')
      .mockRejectedValue(boom);
    const call = resilient(fn, {
      clock,
      cache: { ttl: 100, staleIfError: 1_000 },
      timeout: 50,
      retry: { maxAttempts: 2, backoff: () => 0 },
      fallback: 'fallback',
    });
    expect(await call('a')).toBe('fresh');
    await clock.advance(150);
    expect(await call('a')).toBe('fresh');
    expect(fn).toHaveBeenCalledTimes(3);
  });
});

describe('cache: keys', () => {
  it('the default key takes one primitive argument of any primitive type, or none', async () => {
    const clock = new ManualClock();
    const fn = vi.fn((k?: unknown) => Promise.resolve(typeof k));
    const call = resilient(fn, { clock, cache: true });
    const keys: unknown[] = ['s', 1, true, 10n, Symbol.for('x'), null, undefined];
    for (const key of keys) await call(key);
    for (const key of keys) await call(key);
    expect(fn).toHaveBeenCalledTimes(keys.length);
    await call();
    expect(fn).toHaveBeenCalledTimes(keys.length); // no argument is the key `undefined`
  });

  it('the default key rejects an object argument at call time, with a TypeError', async () => {
    const clock = new ManualClock();
    const fn = vi.fn((k: unknown) => Promise.resolve(k));
    const call = resilient(fn, { clock, cache: true });
    let promise: Promise<unknown> | undefined;
    expect(() => {
      promise = call({ id: 1 });
    }).not.toThrow();
    await expect(promise).rejects.toThrow(TypeError);
    await expect(call({ id: 1 })).rejects.toThrow(
      /default `cache.key` needs exactly one primitive argument.*of type object/,
    );
    await expect(call(null)).resolves.toBe(null);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('the default key rejects two arguments at call time', async () => {
    const call = resilient((...ids: string[]) => ids.join(), {
      clock: new ManualClock(),
      cache: true,
    });
    await expect(call('a', 'b')).rejects.toThrow(/got 2 argument\(s\)/);
  });

  it('a function declaring two parameters without `key` is a TypeError at wrap time', () => {
    const load = (a: string, b: string) => a + b;
    expect(() => resilient(load, { cache: true })).toThrow(TypeError);
    expect(() => resilient(load, { cache: true })).toThrow(/`load` declares 2/);
    expect(() =>
      resilient(load, { cache: { key: (a: string, b: string) => `${a}|${b}` } }),
    ).not.toThrow();
  });

  it('a custom key gets the arguments and `this`', async () => {
    const clock = new ManualClock();
    const fn = vi.fn((user: { id: number }, fields: string[]) =>
      Promise.resolve(`${user.id}:${fields.join()}`),
    );
    const key = vi.fn(function (this: unknown, user: { id: number }, fields: string[]) {
      return `${user.id}|${fields.join()}`;
    });
    const call = resilient(fn, { clock, cache: { key } });
    const self = { me: true };
    expect(await call.call(self, { id: 1 }, ['a'])).toBe('1:a');
    expect(await call({ id: 1 }, ['a'])).toBe('1:a');
    expect(await call({ id: 2 }, ['a'])).toBe('2:a');
    expect(fn).toHaveBeenCalledTimes(2);
    expect(key.mock.contexts[0]).toBe(self);
  });

  it('a custom key on five or more arguments works', async () => {
    const clock = new ManualClock();
    const fn = vi.fn((...n: number[]) => Promise.resolve(n.reduce((a, b) => a + b, 0)));
    const call = resilient(fn, { clock, cache: { key: (...n: number[]) => n.join() } });
    expect(await call(1, 2, 3, 4, 5)).toBe(15);
    expect(await call(1, 2, 3, 4, 5)).toBe(15);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('a throwing key rejects the call with its error', async () => {
    const call = resilient((id: string) => id, {
      clock: new ManualClock(),
      cache: {
        key: () => {
          throw boom;
        },
      },
    });
    await expect(call('a')).rejects.toBe(boom);
  });
});

describe('cache: keys compare with Object.is (issue 10 item 5)', () => {
  const sign = (x: number): string => (Object.is(x, -0) ? 'minus zero' : `plus ${x}`);

  it('f(0) and f(-0) are different calls, each cached under its own key', async () => {
    const fn = vi.fn((x: number) => Promise.resolve(sign(x)));
    const c = cache({ ttl: 1_000 });
    const f = resilient(fn, { clock: new ManualClock(), cache: c });
    expect(await f(0)).toBe('plus 0');
    expect(await f(-0)).toBe('minus zero');
    expect(await f(-0)).toBe('minus zero');
    expect(await f(0)).toBe('plus 0');
    expect(fn).toHaveBeenCalledTimes(2);
    c.clear(-0); // drops -0 only
    expect(await f(0)).toBe('plus 0');
    expect(fn).toHaveBeenCalledTimes(2);
    expect(await f(-0)).toBe('minus zero');
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it('a failed f(-0) forgets its own entry, not f(0)’s', async () => {
    let fail = false;
    const fn = vi.fn((x: number) => (fail ? Promise.reject(boom) : Promise.resolve(sign(x))));
    const f = resilient(fn, { clock: new ManualClock(), cache: true });
    expect(await f(0)).toBe('plus 0');
    fail = true;
    await expect(f(-0)).rejects.toBe(boom);
    expect(await f(0)).toBe('plus 0'); // still a hit
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('a call of f(-0) in flight survives a generation turn under its own key', async () => {
    const pending: ((value: string) => void)[] = [];
    const fn = vi.fn(
      (x: number) => new Promise<string>((resolve) => pending.push(() => resolve(sign(x)))),
    );
    const f = resilient(fn, { clock: new ManualClock(), cache: { maxEntries: 2 } });
    const minus = f(-0);
    const plus = f(0); // turns the generation: the flight of -0 moves to the young one
    const joined = f(-0);
    expect(fn).toHaveBeenCalledTimes(2);
    for (const resolve of pending) resolve('');
    expect(await minus).toBe('minus zero');
    expect(await joined).toBe('minus zero');
    expect(await plus).toBe('plus 0');
  });

  it('resilientSync: f(0) and f(-0) are different calls', () => {
    const fn = vi.fn(sign);
    const f = resilientSync(fn, { clock: new ManualClock(), cache: true });
    expect(f(0)).toBe('plus 0');
    expect(f(-0)).toBe('minus zero');
    expect(f(-0)).toBe('minus zero');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('with a store: 0 and -0 are different store keys', async () => {
    const clock = new ManualClock();
    const store = memoryStore(clock);
    const fn = vi.fn((x: number) => Promise.resolve(sign(x)));
    const f = resilient(fn, { clock, cache: { store, name: 'zeros', ttl: 1_000 } });
    expect(await f(0)).toBe('plus 0');
    expect(await f(-0)).toBe('minus zero');
    expect(await f(-0)).toBe('minus zero');
    expect(await f(0)).toBe('plus 0');
    expect(fn).toHaveBeenCalledTimes(2);
    expect(store.keys).toEqual(['number:0', 'number:-0']);
  });

  it('with a store: concurrent f(0) and f(-0) each keep their own flight', async () => {
    const clock = new ManualClock();
    const fn = vi.fn((x: number) => Promise.resolve(sign(x)));
    const f = resilient(fn, { clock, cache: { store: memoryStore(clock), name: 'z', ttl: 1_000 } });
    const calls = [f(0), f(-0), f(0), f(-0)];
    expect(await Promise.all(calls)).toEqual(['plus 0', 'minus zero', 'plus 0', 'minus zero']);
    expect(fn).toHaveBeenCalledTimes(2);
  });
});

describe('cache: sharing', () => {
  it('inline options give each wrapped function its own cache', async () => {
    const policy = resilient({ clock: new ManualClock(), cache: true });
    const upper = policy((s: string) => s.toUpperCase());
    const lower = policy((s: string) => s.toLowerCase());
    expect(await upper('Ab')).toBe('AB');
    expect(await lower('Ab')).toBe('ab');
    expect(upper.stats().cache?.size).toBe(1);
  });

  it('a shared cache instance is shared by every function it wraps', async () => {
    const shared = cache({ ttl: 1_000 });
    const clock = new ManualClock();
    const first = vi.fn((id: string) => Promise.resolve(`first:${id}`));
    const second = vi.fn((id: string) => Promise.resolve(`second:${id}`));
    const a = resilient(first, { clock, cache: shared });
    const b = resilient(second, { clock, cache: shared });
    expect(await a('x')).toBe('first:x');
    expect(await b('x')).toBe('first:x'); // same key space
    expect(second).not.toHaveBeenCalled();
    expect(b.stats().cache).toEqual(shared.stats());
    expect(shared.stats()).toMatchObject({ size: 1, hits: 1, misses: 1 });
  });
});

describe('cache: option validation', () => {
  it.each<[string, unknown, RegExp]>([
    ['ttl 0', { ttl: 0 }, /`cache.ttl` to be a number > 0/],
    ['ttl -1', { ttl: -1 }, /`cache.ttl`/],
    ['maxEntries 0', { maxEntries: 0 }, /`cache.maxEntries` to be an integer >= 1/],
    ['maxEntries 1.5', { maxEntries: 1.5 }, /`cache.maxEntries`/],
    ['staleIfError -1', { staleIfError: -1 }, /`cache.staleIfError`/],
    ['key', { key: 'id' }, /`cache.key` to be a function/],
    ['clock', { clock: 1 }, /`cache.clock`/],
    ['name', { name: 1 }, /`cache.name`/],
    ['unknown', { size: 1 }, /Unknown option `cache.size`/],
    ['a number', 5, /`cache` to be an options object/],
  ])('%s fails at wrap time naming the option', (_, options, message) => {
    expect(() => resilient((id: string) => id, { cache: options as CacheOptions })).toThrow(
      TypeError,
    );
    expect(() => resilient((id: string) => id, { cache: options as CacheOptions })).toThrow(
      message,
    );
    expect(() => cache(options as CacheOptions)).toThrow(message);
  });

  it('cache: false is no cache', () => {
    const call = resilient((id: string) => id, { cache: false });
    expect(call.stats().cache).toBeUndefined();
  });
});

describe('cache: one clock read per turn on the system clock', () => {
  /** A manual clock that counts its reads, marked as moving on its own (what the system clock gets). */
  function freeRunningClock(): ManualClock & { reads: number } {
    const clock = Object.assign(new ManualClock(), { reads: 0 });
    const now = clock.now.bind(clock);
    clock.now = () => {
      clock.reads++;
      return now();
    };
    markFreeRunning(clock);
    return clock;
  }

  const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('behind a timeout stage, the misses of a turn read no clock; their expiry is stamped at its end, never early', async () => {
    const clock = freeRunningClock();
    let n = 0;
    const call = resilient(async (key: string) => `${key}#${++n}`, {
      clock,
      timeout: 1_000,
      cache: { ttl: 100 },
    });
    await endOfTurn();
    clock.reads = 0;
    expect(await call('a')).toBe('a#1');
    clock.elapse(3); // the turn takes 3 ms
    expect(await call('b')).toBe('b#2');
    expect(clock.reads).toBe(0);
    await endOfTurn();
    expect(clock.reads).toBeLessThanOrEqual(2); // one for the timeouts, one for the cache
    await clock.advance(99); // 102: b was stored 99 ms ago, a 102 ms ago but stamped with b
    expect([await call('a'), await call('b')]).toEqual(['a#1', 'b#2']);
    await clock.advance(1); // 103: both expired
    expect([await call('a'), await call('b')]).toEqual(['a#3', 'b#4']);
  });

  it('with no end-of-turn run in the turn, a miss reads the clock itself (no timer of its own)', async () => {
    const clock = freeRunningClock();
    const call = resilient(async (key: string) => key, { clock, cache: { ttl: 100 } });
    await endOfTurn();
    clock.reads = 0;
    await call('a');
    expect(clock.reads).toBe(1);
  });

  it('a result stored with the time stamps the earlier ones of its turn first: expiry order holds', () => {
    const clock = freeRunningClock();
    const c = cache({ ttl: 100, clock });
    atTurnEnd(() => {});
    const a = c.insert('a', undefined);
    c.storeNow(a, 1);
    expect(a.expires).toBeNaN();
    clock.elapse(2);
    const b = c.insert('b', undefined);
    c.store(b, 2, clock.now());
    expect([a.expires, b.expires]).toEqual([102, 102]);
  });

  it('the expiry timer firing before the end of the turn stamps the results itself, never early', () => {
    let fire: (() => void) | undefined;
    let time = 0;
    const clock = {
      now: () => time,
      setTimer: (callback: () => void) => {
        fire = callback;
        return 1;
      },
      clearTimer: () => {},
    };
    markFreeRunning(clock);
    const c = cache({ ttl: 10, clock });
    atTurnEnd(() => {});
    const a = c.insert('a', undefined);
    c.storeNow(a, 1);
    time = 7;
    fire!();
    expect(a.expires).toBe(17);
    expect(a.fresh).toBe(true);
    time = 17;
    fire!();
    expect(a.fresh).toBe(false);
  });

  it('dropping the first result still to stamp moves the stamp on to the next', async () => {
    const clock = freeRunningClock();
    const c = cache({ ttl: 50, clock });
    atTurnEnd(() => {});
    const [a, b] = [c.insert('a', undefined), c.insert('b', undefined)];
    c.storeNow(a, 1);
    c.storeNow(b, 2);
    c.clear('a');
    clock.elapse(4);
    await endOfTurn();
    expect(b.expires).toBe(54);
  });
});

describe('cache: staleWhileRevalidate', () => {
  it('serves a stale value at once while one background refresh replaces it', async () => {
    const clock = new ManualClock();
    const refresh = deferred<string>();
    let calls = 0;
    const fn = vi.fn((key: string) =>
      ++calls === 1 ? Promise.resolve(`${key}#1`) : refresh.promise,
    );
    const call = resilient(fn, { clock, cache: { ttl: 100, staleWhileRevalidate: 1_000 } });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    expect(await call('a')).toBe('a#1');
    await clock.advance(150);
    // Three calls within the window: all answered at once with the stale value, one refresh.
    expect(await call('a')).toBe('a#1');
    expect(await call('a')).toBe('a#1');
    expect(await call('a')).toBe('a#1');
    expect(fn).toHaveBeenCalledTimes(2);
    expect(events.filter((e) => e.type === 'cacheStaleHit')).toEqual([
      { type: 'cacheStaleHit', key: 'a', age: 150, refreshing: true },
      { type: 'cacheStaleHit', key: 'a', age: 150, refreshing: false },
      { type: 'cacheStaleHit', key: 'a', age: 150, refreshing: false },
    ]);
    refresh.resolve('a#2');
    await clock.advance(0);
    // The refreshed value is fresh for a full ttl from when it arrived.
    expect(await call('a')).toBe('a#2');
    await clock.advance(99);
    expect(await call('a')).toBe('a#2');
    expect(fn).toHaveBeenCalledTimes(2);
    expect(call.stats().cache).toMatchObject({ hits: 5, misses: 1, staleHits: 3 });
    expect(call.describe().stages[1]).toMatchObject({ staleWhileRevalidate: 1_000 });
  });

  it('past ttl + staleWhileRevalidate a call waits for a new value, as without it', async () => {
    const { call, fn, clock, events } = setup({ ttl: 100, staleWhileRevalidate: 200 });
    expect(await call('a')).toBe('a#1');
    await clock.advance(301);
    const miss = call('a');
    expect(await miss).toBe('a#2');
    expect(fn).toHaveBeenCalledTimes(2);
    expect(events.some((e) => e.type === 'cacheStaleHit')).toBe(false);
  });

  it('the refresh runs through retry and breaker; a failed one keeps the stale value and says so', async () => {
    // Any start: the window is measured from the entry's expiry, not from the clock's zero.
    const clock = new ManualClock(50_000);
    let fail = false;
    const fn = vi.fn(async (key: string) => {
      if (fail) throw boom;
      return key;
    });
    const call = resilient(fn, {
      clock,
      retry: { maxAttempts: 3, backoff: () => 10 },
      circuitBreaker: { consecutiveFailures: 3, halfOpenAfter: 10_000 },
      cache: { ttl: 100, staleWhileRevalidate: 1_000 },
    });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    expect(await call('a')).toBe('a');
    await clock.advance(100);
    fail = true;
    expect(await call('a')).toBe('a'); // stale, refresh started
    await clock.advance(20); // two backoff sleeps: 3 attempts
    expect(fn).toHaveBeenCalledTimes(4);
    expect(events.filter((e) => e.type === 'retryScheduled')).toHaveLength(2);
    expect(events).toContainEqual({ type: 'cacheRefreshFailed', key: 'a', error: boom });
    expect(events.some((e) => e.type === 'circuitOpened')).toBe(true);
    // Still within the window: the stale value again, and a new refresh (which the open circuit refuses).
    expect(await call('a')).toBe('a');
    await clock.advance(0);
    expect(fn).toHaveBeenCalledTimes(4);
    expect(call.stats().cache).toMatchObject({ refreshFailures: 2, staleHits: 2 });
  });

  it('a refresh that fails after the window falls back to staleIfError, then to the error', async () => {
    const clock = new ManualClock();
    const pending: ReturnType<typeof deferred<string>>[] = [];
    let first = true;
    const fn = vi.fn((key: string) => {
      if (first) {
        first = false;
        return Promise.resolve(key);
      }
      const d = deferred<string>();
      pending.push(d);
      return d.promise;
    });
    const call = resilient(fn, {
      clock,
      cache: { ttl: 100, staleWhileRevalidate: 100, staleIfError: 300 },
    });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    await call('a');
    await clock.advance(150);
    expect(await call('a')).toBe('a'); // stale hit, refresh 1 starts
    await clock.advance(100); // 250 ms old: past ttl + staleWhileRevalidate
    const joined = track(call('a')); // joins refresh 1
    pending[0]!.reject(boom);
    await clock.advance(0);
    // Within staleIfError: the joined call gets the stale value.
    expect(joined.value).toBe('a');
    expect(events.map((e) => e.type)).toContain('staleServed');
    await clock.advance(200); // 450 ms old: past staleIfError too
    const late = track(call('a'));
    pending[1]!.reject(boom);
    await clock.advance(0);
    expect(late.reason).toBe(boom);
  });

  it('a refresh nobody waits for never leaves an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      const { call, next, clock, events } = setup({ ttl: 100, staleWhileRevalidate: 1_000 });
      await call('a');
      await clock.advance(100);
      next('fail');
      expect(await call('a')).toBe('a#1');
      await clock.advance(0);
      await new Promise((resolve) => setImmediate(resolve));
      expect(events.some((e) => e.type === 'cacheRefreshFailed')).toBe(true);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it("the refresh is not the caller's: no fallback applies to it, and the value is served stale", async () => {
    const clock = new ManualClock();
    let fail = false;
    const fallback = vi.fn(() => 'fallback');
    const call = resilient(
      async (key: string) => {
        if (fail) throw boom;
        return key;
      },
      { clock, fallback, cache: { ttl: 100, staleWhileRevalidate: 1_000 } },
    );
    expect(await call('a')).toBe('a');
    await clock.advance(100);
    fail = true;
    expect(await call('a')).toBe('a');
    await clock.advance(0);
    expect(fallback).not.toHaveBeenCalled();
    // The stale entry was kept: still served.
    expect(await call('a')).toBe('a');
  });

  it("the pipeline's signal (shutdown) stops a refresh; its timers go", async () => {
    const clock = new ManualClock();
    const shutdown = new AbortController();
    let calls = 0;
    const call = resilient(
      (key: string) => (++calls === 1 ? Promise.resolve(key) : new Promise<string>(() => {})),
      {
        clock,
        signal: shutdown.signal,
        timeout: 5_000,
        retry: { maxAttempts: 5 },
        cache: { ttl: 100, staleWhileRevalidate: 10_000 },
      },
    );
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    await call('a');
    await clock.advance(100);
    expect(await call('a')).toBe('a');
    expect(calls).toBe(2);
    shutdown.abort(new Error('shutdown'));
    await clock.advance(0);
    expect(events.at(-1)).toMatchObject({ type: 'cacheRefreshFailed', key: 'a' });
    expect(clock.pending({ refOnly: true })).toBe(0);
    expect(calls).toBe(2);
  });

  it('validates staleWhileRevalidate; resilientSync refuses it', () => {
    expect(() => resilient((k: string) => k, { cache: { staleWhileRevalidate: -1 } })).toThrow(
      'Expected `cache.staleWhileRevalidate` to be a number >= 0 (Infinity allowed), got `-1` (number)',
    );
    expect(() => cache({ staleWhileRevalidate: '5s' as never })).toThrow(
      'Expected `cache.staleWhileRevalidate` to be a number >= 0',
    );
    expect(() => resilientSync((k: string) => k, { cache: { staleWhileRevalidate: 100 } })).toThrow(
      'Expected `cache.staleWhileRevalidate` to be absent or 0',
    );
    expect(() =>
      resilientSync((k: string) => k, { cache: cache({ staleWhileRevalidate: 100 }) }),
    ).toThrow('Expected `cache.staleWhileRevalidate` to be absent or 0');
  });
});
