import { describe, expect, it, vi } from 'vitest';
import {
  cache,
  resilient,
  type CacheOptions,
  type ResilienceEvent,
  type Serializer,
} from '../../src/index.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';
import { MemoryCacheStore } from '../helpers/memory-cache.js';

/**
 * The store-backed cache's own logic (fleet single flight through the key's lock, polling for another
 * process's value, stale values, the store's keys and encoding, the fallbacks while the store is out of
 * reach) in virtual time, against shared entries held in memory. The same behaviour against a real
 * redis-server is in test/redis/; these tests pin the decisions the cache takes on what the store says.
 */
function fleet(clock = new ManualClock()) {
  const store = new MemoryCacheStore(clock);
  /** One process: a cached function of a key that takes `computeMs` of the manual clock. */
  const member = (id: string, options: Partial<CacheOptions<[unknown]>> = {}, computeMs = 100) => {
    let outcome: 'ok' | 'fail' = 'ok';
    const fn = vi.fn(
      (key: unknown) =>
        new Promise<string>((resolve, reject) => {
          clock.setTimer(
            () =>
              outcome === 'ok'
                ? resolve(`${String(key)}@${id}`)
                : reject(new Error(`${id} failed`)),
            computeMs,
          );
        }),
    );
    const call = resilient(fn, {
      clock,
      cache: { store, name: 'users', ttl: 1_000, lockTimeout: 300, ...options },
    });
    const events: ResilienceEvent[] = [];
    call.on((event) => events.push(event));
    const settle = (key: unknown): Promise<unknown> =>
      call(key).then(
        (value) => value,
        (error: unknown) => error,
      );
    const fail = (): void => {
      outcome = 'fail';
    };
    return { fn, call, settle, events, fail };
  };
  return { clock, store, member };
}

/** Settles `promise` while the manual clock runs, and says when (virtual ms). */
async function timed(clock: ManualClock, promise: Promise<unknown>, upTo = 5_000) {
  let done: { value: unknown; at: number } | undefined;
  void promise.then((value) => {
    done = { value, at: clock.now() };
  });
  for (let t = 0; t < upTo && done === undefined; t++) await clock.advance(1);
  await flush();
  return done;
}

describe('cache with a store: one computation per key across the fleet', () => {
  it('a process that finds the key being computed waits for that value instead of computing it', async () => {
    const { clock, store, member } = fleet();
    const a = member('a');
    const b = member('b');
    const first = a.settle('k');
    await flush();
    const second = timed(clock, b.settle('k'));
    expect(await first).toBe('k@a');
    // b polls (after 5, 10, 20, 40, then every 50 ms) and takes a's value once it is stored (at 100).
    expect(await second).toEqual({ value: 'k@a', at: 125 });
    expect(a.fn).toHaveBeenCalledTimes(1);
    expect(b.fn).not.toHaveBeenCalled();
    expect(b.events.map((e) => e.type)).toEqual(['cacheJoined']);
    expect(store.commands.filter((c) => c.op === 'get').map((c) => c.at)).toEqual([
      0, 0, 5, 15, 35, 75, 125,
    ]);
    // The holder's write frees its lock: the next stale read takes it again.
    expect(store.commands.find((c) => c.op === 'set')).toMatchObject({
      key: 's:k',
      keepFor: 1_000,
      token: expect.any(String),
    });
  });

  it('a holder that died: the waiter takes the lock over when it expires and computes, within 2 × lockTimeout', async () => {
    const { clock, store, member } = fleet();
    const b = member('b');
    store.lock('users', 's:k', 300); // taken by a process that then died
    const done = await timed(clock, b.settle('k'));
    expect(b.fn).toHaveBeenCalledTimes(1);
    // The lock expired at 300; the poll that follows takes it, then b computes for 100 ms.
    expect(done!.value).toBe('k@b');
    expect(done!.at).toBeGreaterThanOrEqual(400);
    expect(done!.at).toBeLessThanOrEqual(300 + 50 + 100);
  });

  it('a holder whose computation fails releases the lock: a waiter computes at its next poll, not after lockTimeout', async () => {
    const { clock, store, member } = fleet();
    const a = member('a', {}, 20);
    const b = member('b', {}, 20);
    a.fail();
    const first = a.settle('k');
    await flush();
    const second = timed(clock, b.settle('k'));
    expect(await first).toEqual(new Error('a failed'));
    const done = await second;
    expect(done).toEqual({ value: 'k@b', at: 35 + 20 }); // polls at 5, 15, 35: the lock is free at 35
    expect(store.commands.filter((c) => c.op === 'release')).toHaveLength(1);
  });

  it('gives up waiting after 2 × lockTimeout and computes without the lock (a holder that hangs)', async () => {
    const { clock, store, member } = fleet();
    const b = member('b', { lockTimeout: 100 }, 10);
    // Another process holds the lock and renews it for ever (it hangs while alive).
    const renew = (): void => {
      store.lock('users', 's:k', 100);
      clock.setTimer(renew, 50);
    };
    renew();
    const done = await timed(clock, b.settle('k'), 1_000);
    expect(done!.value).toBe('k@b');
    expect(done!.at).toBeLessThanOrEqual(200 + 10);
    expect(done!.at).toBeGreaterThanOrEqual(200);
  });

  it('lockTimeout 0: no lock is asked for; each process computes', async () => {
    const { clock, store, member } = fleet();
    const a = member('a', { lockTimeout: 0 });
    const b = member('b', { lockTimeout: 0 });
    const both = Promise.all([a.settle('k'), b.settle('k')]);
    await clock.advance(100);
    expect(await both).toEqual(['k@a', 'k@b']);
    expect(store.commands.filter((c) => c.op === 'get').every((c) => c.token === undefined)).toBe(
      true,
    );
  });

  it('a value stored by another process is a hit here', async () => {
    const { store, member } = fleet();
    store.put('users', 's:k', JSON.stringify('k@elsewhere'), 1_000);
    const a = member('a');
    expect(await a.settle('k')).toBe('k@elsewhere');
    expect(a.fn).not.toHaveBeenCalled();
    expect(a.events.map((e) => e.type)).toEqual(['cacheHit']);
  });
});

describe('cache with a store: stale values', () => {
  it('staleWhileRevalidate: while another process refreshes, the stale value is served at once', async () => {
    const { store, member } = fleet();
    // ttl 1 s, kept 1.5 s: 200 ms left means 300 ms past its ttl, within staleWhileRevalidate.
    store.put('users', 's:k', JSON.stringify('old'), 200);
    store.lock('users', 's:k', 300);
    const a = member('a', { staleWhileRevalidate: 500 });
    expect(await a.settle('k')).toBe('old');
    expect(a.fn).not.toHaveBeenCalled();
    expect(a.events).toEqual([{ type: 'cacheStaleHit', key: 'k', age: 1_300, refreshing: false }]);
  });

  it('staleWhileRevalidate: the process that takes the lock serves the stale value and refreshes it', async () => {
    const { clock, store, member } = fleet();
    store.put('users', 's:k', JSON.stringify('old'), 200);
    const a = member('a', { staleWhileRevalidate: 500 });
    expect(await a.settle('k')).toBe('old');
    expect(a.events).toEqual([{ type: 'cacheStaleHit', key: 'k', age: 1_300, refreshing: true }]);
    await clock.advance(100);
    expect(a.fn).toHaveBeenCalledTimes(1);
    expect(store.keys('users')).toEqual(['s:k']);
    expect(await a.settle('k')).toBe('k@a');
  });

  it('staleIfError: a failed computation serves the stored value kept past its ttl', async () => {
    const { clock, store, member } = fleet();
    const a = member('a', { staleIfError: 2_000 });
    store.put('users', 's:k', JSON.stringify('old'), 500); // kept 3 s: 2.5 s past its ttl
    a.fail();
    const call = a.settle('k');
    await clock.advance(100);
    expect(await call).toBe('old');
    expect(a.events.find((e) => e.type === 'staleServed')).toMatchObject({ age: 2_500 });
    expect(store.commands.find((c) => c.op === 'release')).toBeDefined();
  });

  it('stores each value for ttl + the longest stale window', async () => {
    const { clock, store, member } = fleet();
    const a = member('a', { staleIfError: 2_000, staleWhileRevalidate: 500 });
    const call = a.settle('k');
    await clock.advance(100);
    await call;
    expect(store.commands.find((c) => c.op === 'set')?.keepFor).toBe(3_000);
  });

  it('a value another serializer wrote (it cannot be decoded) is a miss', async () => {
    const { clock, store, member } = fleet();
    store.put('users', 's:k', '{not json', 1_000);
    const a = member('a');
    const call = a.settle('k');
    await clock.advance(100);
    expect(await call).toBe('k@a');
    expect(a.fn).toHaveBeenCalledTimes(1);
  });
});

describe('cache with a store: what stats() and the events say', () => {
  it('a miss, a hit from the store and a call that joins one in flight here are each counted and told', async () => {
    const { clock, member } = fleet();
    const a = member('a');
    const first = a.settle('k');
    const joined = a.settle('k'); // same key, same process, while the first is in flight
    await clock.advance(100);
    expect(await first).toBe('k@a');
    expect(await joined).toBe('k@a');
    expect(a.fn).toHaveBeenCalledTimes(1);
    await flush();
    expect(await a.settle('k')).toBe('k@a'); // from the store
    expect(a.events).toEqual([
      { type: 'cacheJoined', key: 'k' }, // at once; the miss once the store has answered the first
      { type: 'cacheMiss', key: 'k' },
      { type: 'cacheHit', key: 'k' },
    ]);
    expect(a.call.stats().cache).toMatchObject({ hits: 2, misses: 1, hitRate: 2 / 3 });
  });

  it('stale values served are counted: within staleWhileRevalidate, and by staleIfError', async () => {
    const { clock, store, member } = fleet();
    const a = member('a', { staleWhileRevalidate: 500, staleIfError: 2_000 });
    store.put('users', 's:stale', JSON.stringify('old'), 1_800); // kept 3 s: 200 ms past its ttl
    store.lock('users', 's:stale', 300); // another process refreshes it
    expect(await a.settle('stale')).toBe('old');
    store.put('users', 's:err', JSON.stringify('older'), 1_000); // 2 s past its ttl
    a.fail();
    const call = a.settle('err');
    await clock.advance(100);
    expect(await call).toBe('older');
    expect(a.call.stats().cache).toMatchObject({
      hits: 1,
      staleHits: 1,
      misses: 1,
      staleServed: 1,
    });
  });

  it('a background refresh that fails is told and counted; the stale value stays and the lock is released', async () => {
    const { clock, store, member } = fleet();
    const a = member('a', { staleWhileRevalidate: 500 });
    store.put('users', 's:k', JSON.stringify('old'), 200); // 300 ms past its ttl
    a.fail();
    expect(await a.settle('k')).toBe('old'); // takes the lock, refreshes in the background
    await clock.advance(100);
    await flush();
    expect(a.events.map((e) => e.type)).toEqual(['cacheStaleHit', 'cacheRefreshFailed']);
    expect(a.events[1]).toMatchObject({ key: 'k', error: new Error('a failed') });
    expect(a.call.stats().cache).toMatchObject({ refreshFailures: 1, staleHits: 1 });
    const get = store.commands.find((c) => c.op === 'get')!;
    expect(store.commands.find((c) => c.op === 'release')).toMatchObject({ token: get.token });
    expect(await a.settle('k')).toBe('old'); // still within the window
  });

  it('a refreshed value the serializer refuses is a failed refresh; the stale value stays', async () => {
    const { clock, store, member } = fleet();
    let refuse = false;
    const serializer: Serializer = {
      encode: (value) => {
        if (refuse) throw new Error('too big');
        return JSON.stringify(value);
      },
      decode: (data) => JSON.parse(data) as unknown,
    };
    const a = member('a', { staleWhileRevalidate: 500, serializer });
    store.put('users', 's:k', JSON.stringify('old'), 200);
    refuse = true;
    expect(await a.settle('k')).toBe('old');
    await clock.advance(100);
    await flush();
    expect(a.events.map((e) => e.type)).toEqual(['cacheStaleHit', 'cacheRefreshFailed']);
    expect(a.call.stats().cache).toMatchObject({ refreshFailures: 1 });
    refuse = false;
    expect(await a.settle('k')).toBe('old'); // not refreshing any more: a new refresh starts
    await clock.advance(100);
    await flush();
    expect(await a.settle('k')).toBe('k@a');
  });

  it('lockTimeout 0: one background refresh per process at a time, and a new one once the value is stale again', async () => {
    const { clock, store, member } = fleet();
    const a = member('a', { staleWhileRevalidate: 500, lockTimeout: 0 });
    store.put('users', 's:k', JSON.stringify('old'), 200); // 300 ms past its ttl
    expect(await a.settle('k')).toBe('old');
    expect(await a.settle('k')).toBe('old'); // the refresh runs: not a second one
    expect(a.events).toEqual([
      { type: 'cacheStaleHit', key: 'k', age: 1_300, refreshing: true },
      { type: 'cacheStaleHit', key: 'k', age: 1_300, refreshing: false },
    ]);
    await clock.advance(100);
    await flush();
    expect(a.fn).toHaveBeenCalledTimes(1);
    expect(await a.settle('k')).toBe('k@a');
    await clock.advance(1_100); // stale again
    expect(await a.settle('k')).toBe('k@a');
    expect(a.events.at(-1)).toMatchObject({ type: 'cacheStaleHit', refreshing: true });
    await clock.advance(100);
    expect(a.fn).toHaveBeenCalledTimes(2);
  });
});

describe('cache with a store: keys and values', () => {
  it('typed store keys: 1, "1", 1n, true, null and undefined never collide', async () => {
    const { clock, store, member } = fleet();
    const a = member('a', {}, 0);
    for (const key of [1, '1', 1n, true, null, undefined]) {
      const call = a.settle(key);
      await clock.advance(0);
      await call;
    }
    await flush();
    expect(store.keys('users').sort()).toEqual(
      ['number:1', 's:1', 'bigint:1', 'boolean:true', 'null', 'undefined'].sort(),
    );
  });

  it('an object key is refused with a TypeError naming the fix; clear(objectKey) throws it too', async () => {
    const { member } = fleet();
    const a = member('a', { key: (k: unknown) => k }); // the default key refuses objects before
    const error = await a.settle({ id: 1 });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe(
      'A cache with a store needs a string, number, bigint, boolean, null or undefined key, got object; return one from `cache.key`',
    );
    const shared = cache({ store: new MemoryCacheStore(new ManualClock()), name: 'c' });
    expect(() => shared.clear({ id: 1 })).toThrow(TypeError);
  });

  it('a result the serializer cannot encode rejects with a TypeError and frees the key for the others', async () => {
    const { clock, store, member } = fleet();
    const refuse: Serializer = {
      encode: () => {
        throw new Error('no functions please');
      },
      decode: (data) => JSON.parse(data) as unknown,
    };
    const a = member('a', { serializer: refuse });
    const call = a.settle('k');
    await clock.advance(100);
    const error = await call;
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe(
      'The cache "users" cannot store this result: no functions please',
    );
    expect((error as Error).cause).toEqual(new Error('no functions please'));
    const get = store.commands.find((c) => c.op === 'get')!;
    expect(store.commands.find((c) => c.op === 'release')).toMatchObject({ token: get.token });
  });

  it('clear(key) deletes the store key, clear() clears the cache in the store', async () => {
    const { clock, store } = fleet();
    const shared = cache({ store, name: 'users', clock });
    shared.clear(7);
    shared.clear();
    await flush();
    expect(store.commands.map((c) => [c.op, c.key])).toEqual([
      ['delete', 'number:7'],
      ['clear', undefined],
    ]);
  });

  it('keeps at most maxEntries values in the store', async () => {
    const { clock, store, member } = fleet();
    const a = member('a', { maxEntries: 3 }, 0);
    for (let i = 0; i < 10; i++) {
      const call = a.settle(`k${i}`);
      await clock.advance(1);
      await call;
    }
    await flush();
    expect(store.keys('users')).toHaveLength(3);
  });

  it('describe() shows the store settings: lockTimeout and which serializer', () => {
    const store = new MemoryCacheStore(new ManualClock());
    expect(cache({ store, name: 'c' }).describe()).toMatchObject({
      store: 'shared',
      lockTimeout: 10_000,
      serializer: 'json',
    });
    const custom: Serializer = { encode: String, decode: (d) => d };
    expect(
      cache({ store, name: 'c', serializer: custom, lockTimeout: 0 }).describe(),
    ).toMatchObject({ lockTimeout: 0, serializer: 'custom' });
    expect(cache({}).describe().store).toBeUndefined();
  });

  it.each([
    [
      'serializer without a store',
      { serializer: { encode: String, decode: String } },
      /`cache.serializer` applies to a cache with a `store`/,
    ],
    [
      'lockTimeout without a store',
      { lockTimeout: 5 },
      /`cache.lockTimeout` applies to a cache with a `store`/,
    ],
    [
      'a serializer without decode',
      { serializer: { encode: String }, store: true },
      /Expected `cache.serializer` to be a Serializer \{ encode, decode \}/,
    ],
    [
      'a serializer that is null',
      { serializer: null, store: true },
      /Expected `cache.serializer` to be a Serializer/,
    ],
    [
      'a negative lockTimeout',
      { lockTimeout: -1, store: true },
      /Expected `cache.lockTimeout` to be a number >= 0/,
    ],
    ['a store without a name', { store: true, noName: true }, /`cache.name`/],
  ])('%s is refused at construction, naming the option', (_, raw, message) => {
    const store = new MemoryCacheStore(new ManualClock());
    const { store: withStore, noName, ...rest } = raw as Record<string, unknown>;
    const options = {
      ...rest,
      ...(withStore === true ? { store } : {}),
      ...(withStore === true && noName !== true ? { name: 'c' } : {}),
    };
    expect(() => cache(options as never)).toThrow(TypeError);
    expect(() => cache(options as never)).toThrow(message);
  });
});

describe('cache with a store: while the store is out of reach', () => {
  it('a failed read is a miss computed here; the lock that read may still take is released behind it', async () => {
    const { clock, store, member } = fleet();
    const a = member('a');
    store.mode = 'fail';
    const call = a.settle('k');
    await clock.advance(100);
    expect(await call).toBe('k@a');
    const [get, release] = store.commands;
    expect(get).toMatchObject({ op: 'get', key: 's:k' });
    expect(release).toMatchObject({ op: 'release', key: 's:k', token: get!.token });
    expect(a.events.map((e) => e.type)).toContain('storeUnavailable');
    // Until recheckAfter (1 s) passes, calls do not ask the store at all.
    const before = store.commands.length;
    const again = a.settle('j');
    await clock.advance(100);
    expect(await again).toBe('j@a');
    expect(store.commands.length).toBe(before);
    // The probe after recheckAfter finds it back.
    store.mode = 'answer';
    await clock.advance(800);
    const probe = a.settle('m');
    await clock.advance(100);
    expect(await probe).toBe('m@a');
    expect(a.events.map((e) => e.type)).toContain('storeRecovered');
  });

  it('a read that hangs and then fails (a command timeout) is a miss computed here', async () => {
    const { clock, store } = fleet();
    const policyCache = cache({ store, name: 'users', clock });
    const fn = vi.fn((key: string) => Promise.resolve(key));
    const call = resilient(fn, { clock, cache: policyCache });
    store.mode = 'hang';
    const pending = call('k').catch((error: unknown) => error);
    await flush();
    expect(store.commands).toHaveLength(1);
    store.release();
    // A read that fails late is a miss computed here.
    expect(await pending).toBe('k');
  });
});
