import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cache, jsonSerializer, resilient, type ResilienceEvent } from '../../src/index.js';
import { MAX_CACHE_KEY_LENGTH, redisStore, type RedisStore } from '../../src/redis/index.js';
import { deferred, type Deferred } from '../helpers/promises.js';
import { connect, noRedis, RedisServer, sleep, until } from './server.js';

describe.skipIf(noRedis)('cache with a Redis store', () => {
  let server: RedisServer;
  let client: Redis;
  let store: RedisStore;
  let n = 0;
  const name = (): string => `cache-${++n}`;

  beforeAll(async () => {
    server = await RedisServer.start();
    client = await connect(server.port);
    // A generous command timeout: these tests are about the cache, not a slow Redis on a busy machine.
    store = redisStore(client, { commandTimeout: 2_000, recheckAfter: 100 });
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('shares values between processes (caches with one name); keys are typed', async () => {
    const shared = name();
    let calls = 0;
    const load = async (id: string | number): Promise<{ id: string | number; n: number }> => ({
      id,
      n: ++calls,
    });
    const a = resilient(load, { cache: { name: shared, store, ttl: 5_000 } });
    const b = resilient(load, { cache: { name: shared, store, ttl: 5_000 } });
    const events: ResilienceEvent[] = [];
    b.on((e) => events.push(e));
    expect(await a('1')).toEqual({ id: '1', n: 1 });
    // The write is fire-and-forget.
    await until(async () => (await client.hexists(`bulwark:cache:{${shared}}:v`, 's:1')) === 1);
    expect(await b('1')).toEqual({ id: '1', n: 1 });
    expect(await b(1)).toEqual({ id: 1, n: 2 }); // 1 and '1' are two keys
    expect(events.map((e) => e.type)).toEqual(['cacheHit', 'cacheMiss']);
    const ttl = await client.pttl(`bulwark:cache:{${shared}}:v`);
    expect(ttl).toBeGreaterThan(4_000);
    expect(b.stats().cache).toMatchObject({ hits: 1, misses: 1, size: 0 });
    expect(b.describe().stages[1]).toMatchObject({ store: 'shared', serializer: 'json' });
  });

  it('single flight stays local: concurrent misses share one read and one call', async () => {
    let calls = 0;
    const fn = resilient(
      async (id: string) => {
        calls++;
        await sleep(30);
        return id;
      },
      { cache: { name: name(), store } },
    );
    const events: string[] = [];
    fn.on((e) => events.push(e.type));
    expect(await Promise.all([fn('x'), fn('x'), fn('x')])).toEqual(['x', 'x', 'x']);
    expect(calls).toBe(1);
    expect(events.filter((e) => e === 'cacheJoined')).toHaveLength(2);
  });

  it('expires after ttl; staleIfError serves a value another process stored', async () => {
    const shared = name();
    const a = resilient(async (id: string) => `v-${id}`, {
      cache: { name: shared, store, ttl: 100, staleIfError: 2_000 },
    });
    let failing = true;
    const b = resilient(
      async (id: string) => {
        if (failing) throw new Error('down');
        return `fresh-${id}`;
      },
      { cache: { name: shared, store, ttl: 100, staleIfError: 2_000 } },
    );
    const events: ResilienceEvent[] = [];
    b.on((e) => events.push(e));
    await a('k');
    await sleep(150);
    await expect(b('k')).resolves.toBe('v-k');
    const stale = events.find((e) => e.type === 'staleServed');
    expect(stale).toMatchObject({ key: 'k' });
    expect((stale as { age: number }).age).toBeGreaterThanOrEqual(100);
    failing = false;
    await expect(b('k')).resolves.toBe('fresh-k');
    // Without staleIfError an expired value is gone from Redis.
    const c = resilient(async (id: string) => id.length, {
      cache: { name: name(), store, ttl: 50 },
    });
    await c('z');
    // The write leaves after the call settles (later on a loaded machine) and lapses 50 ms after Redis
    // ran it: wait for that, bounded, rather than a fixed 100 ms.
    await until(
      async () => (await client.keys(`bulwark:cache:{cache-${n}}:*`)).length === 0,
      10_000,
      'the expired value gone from Redis',
    );
  });

  it('a value JSON cannot encode is a clear TypeError; a custom serializer can', async () => {
    const bad = resilient(async (id: string) => ({ id, big: 1n }), {
      cache: { name: name(), store },
    });
    await expect(bad('a')).rejects.toThrow(/`value\.big` is a bigint.*cache\.serializer/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => jsonSerializer.encode(cyclic)).toThrow(/cycle/);
    expect(() => jsonSerializer.encode(new Map())).toThrow(/Map/);
    expect(() => jsonSerializer.encode(() => 1)).toThrow(/function/);
    expect(() => jsonSerializer.encode(undefined)).toThrow(/undefined/);
    expect(() => jsonSerializer.encode({ d: new Date(0) })).toThrow(/`value\.d` is a Date/);
    expect(jsonSerializer.encode({ a: [1, 'x'], u: undefined })).toBe('{"a":[1,"x"]}');
    const bigints = {
      encode: (v: unknown) => String(v),
      decode: (s: string) => BigInt(s),
    };
    const shared = name();
    const fn = resilient(async (id: string) => BigInt(id.length) * 10n, {
      cache: { name: shared, store, serializer: bigints },
    });
    expect(await fn('a')).toBe(10n);
    await sleep(20);
    const other = resilient(async (id: string) => BigInt(id.length) * 0n, {
      cache: { name: shared, store, serializer: bigints },
    });
    expect(await other('a')).toBe(10n);
    // Something another serializer wrote reads as a miss.
    await store.forCache(shared).set('s:b', 'not json', 60_000, 10);
    const json = resilient(async (id: string) => 'fresh'.padEnd(5, id), {
      cache: { name: shared, store },
    });
    expect(await json('b')).toBe('fresh');
  });

  it('validates: name, store, serializer; keys must be primitives a store can hold', async () => {
    expect(() => cache({ store })).toThrow(/cache\.name/);
    expect(() => cache({ serializer: jsonSerializer })).toThrow(/cache\.serializer.*store/);
    expect(() => cache({ name: 'x', store, serializer: {} as never })).toThrow(/cache\.serializer/);
    const fn = resilient(async (s: symbol) => String(s), { cache: { name: name(), store } });
    await expect(fn(Symbol('x'))).rejects.toThrow(/needs a string, number/);
    const all = resilient(async (k: unknown) => String(k), {
      cache: { name: name(), store, key: (k: unknown) => k },
    });
    for (const key of [1n, true, null, undefined, 2])
      await expect(all(key)).resolves.toBe(String(key));
  });

  it('clear() drops keys in the store, one or all', async () => {
    const shared = name();
    const users = cache({ name: shared, store });
    const fn = resilient(async (id: string) => id, { cache: users });
    await Promise.all([fn('a'), fn('b'), fn('c')]);
    const values = `bulwark:cache:{${shared}}:v`;
    await until(async () => (await client.hlen(values)) === 3);
    users.clear('a');
    await until(async () => (await client.hlen(values)) === 2);
    expect(await client.zcard(`bulwark:cache:{${shared}}:e`)).toBe(2);
    users.clear();
    await until(async () => (await client.keys(`bulwark:cache:{${shared}}:*`)).length === 0);
  });

  it('clear(badKey) throws the TypeError to the caller; the store stays available', async () => {
    const users = cache({ name: name(), store });
    const events: string[] = [];
    users.on((e) => events.push(e.type));
    const fn = resilient(async (id: string) => id, { cache: users });
    await fn('a');
    expect(() => users.clear(Symbol('bad'))).toThrow(TypeError);
    expect(() => users.clear({ id: 1 })).toThrow(/needs a string, number/);
    await sleep(20);
    expect(events).not.toContain('storeUnavailable');
    // Still shared: the value stored before is a hit.
    await sleep(20);
    expect(await fn('a')).toBe('a');
    expect(users.stats()).toMatchObject({ hits: 1, misses: 1 });
  });

  it('is bounded: 2,001 attacker-chosen keys leave at most maxEntries values in Redis, ttl or not', async () => {
    for (const ttl of [60_000, Infinity]) {
      const shared = name();
      const fn = resilient(async (id: string) => id.length, {
        cache: { name: shared, store, ttl, maxEntries: 10 },
      });
      for (let i = 0; i < 2_001; i += 50)
        await Promise.all(
          Array.from({ length: Math.min(50, 2_001 - i) }, (_, j) => fn(`key-${i + j}`)),
        );
      const values = `bulwark:cache:{${shared}}:v`;
      const expiries = `bulwark:cache:{${shared}}:e`;
      // Writes are fire-and-forget: wait for the last ones, then count.
      await until(async () => (await client.zscore(expiries, 's:key-2000')) !== null);
      expect(await client.hlen(values)).toBeLessThanOrEqual(10);
      expect(await client.zcard(expiries)).toBeLessThanOrEqual(10);
      // Nothing else of this cache stays in Redis (the keys' locks went with their values).
      await until(async () => (await client.keys(`bulwark:cache:{${shared}}:*`)).length === 2);
      expect((await client.keys(`bulwark:cache:{${shared}}:*`)).sort()).toEqual(
        [expiries, values].sort(),
      );
      // The newest stay: a repeat of the last key is a hit.
      expect(await fn('key-2000')).toBe(8);
      expect(fn.stats().cache).toMatchObject({ hits: 1, misses: 2_001 });
      // The cache expires as a whole when nothing writes for as long as an entry lives.
      const left = await client.pttl(values);
      if (ttl === Infinity) expect(left).toBe(-1);
      else expect(left).toBeGreaterThan(50_000);
    }
  }, 30_000);

  it('a key longer than MAX_CACHE_KEY_LENGTH is stored under its hash: a 1 MB argument is not a 1 MB key', async () => {
    const shared = name();
    let calls = 0;
    const make = () =>
      resilient(async (text: string) => `${text.length}-${++calls}`, {
        cache: { name: shared, store },
      });
    const big = 'x'.repeat(1 << 20);
    expect(await make()(big)).toBe(`${1 << 20}-1`);
    const values = `bulwark:cache:{${shared}}:v`;
    await until(async () => (await client.hlen(values)) === 1);
    const [field] = await client.hkeys(values);
    expect(field).toMatch(/^h:[\w-]{43}$/);
    expect(Number(await client.call('MEMORY', 'USAGE', values))).toBeLessThan(1_000);
    // Another process (cache object) finds it by the same hash; a key one character shorter differs.
    expect(await make()(big)).toBe(`${1 << 20}-1`);
    expect(await make()(big.slice(1))).toBe(`${(1 << 20) - 1}-2`);
    // Keys up to the limit are stored as they are.
    const short = 'y'.repeat(MAX_CACHE_KEY_LENGTH - 2); // 's:' + 126 characters
    await make()(short);
    await until(async () => (await client.hexists(values, `s:${short}`)) === 1);
  });

  it('refuses a policy name with a brace (it would change the hash tag)', () => {
    expect(() => cache({ name: 'a{b', store })).toThrow(/no `\{` or `\}`.*got `a\{b`/);
    expect(() => cache({ name: 'a}b', store })).toThrow(TypeError);
  });

  it('fleet single flight: a key another process computes is waited for, not computed again', async () => {
    const shared = name();
    let computed = 0;
    const make = () =>
      resilient(
        async (id: string) => {
          computed++;
          await sleep(100);
          return `${id}-${computed}`;
        },
        { cache: { name: shared, store } },
      );
    const a = make();
    const b = make();
    const events: string[] = [];
    b.on((e) => events.push(e.type));
    const first = a('k');
    await until(async () => (await client.exists(`bulwark:cache:{${shared}}:l:s:k`)) === 1);
    expect(await Promise.all([first, b('k'), b('k')])).toEqual(['k-1', 'k-1', 'k-1']);
    expect(computed).toBe(1);
    expect(events).toEqual(['cacheJoined', 'cacheJoined']);
    // The lock went with the value.
    expect(await client.exists(`bulwark:cache:{${shared}}:l:s:k`)).toBe(0);
  });

  it('a failed computation releases its lock: a waiter computes at once', async () => {
    const shared = name();
    const a = resilient(
      async (id: string) => {
        await sleep(50);
        throw new Error(`down ${id}`);
      },
      { cache: { name: shared, store } },
    );
    let computed = 0;
    const b = resilient(async (id: string) => `${id}-${++computed}`, {
      cache: { name: shared, store },
    });
    const failing = a('k').catch((error: Error) => error.message);
    await until(async () => (await client.exists(`bulwark:cache:{${shared}}:l:s:k`)) === 1);
    const start = Date.now();
    expect(await b('k')).toBe('k-1');
    expect(await failing).toBe('down k');
    expect(Date.now() - start).toBeLessThan(1_000); // not the 10 s lock
  });

  it('a dead holder blocks the others no longer than its lock; lockTimeout bounds any wait', async () => {
    const shared = name();
    // A process took the lock for 300 ms and died.
    const raw = store.forCache(shared);
    await raw.get('s:k', { ms: 300, token: 'dead', staleFor: 0 });
    let computed = 0;
    const fn = resilient(async (id: string) => `${id}-${++computed}`, {
      cache: { name: shared, store },
    });
    let start = Date.now();
    expect(await Promise.all([fn('k'), fn('k')])).toEqual(['k-1', 'k-1']);
    const waited = Date.now() - start;
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(2_000);
    expect(computed).toBe(1);
    // A lock held far longer than this cache's lockTimeout: it computes after 2 × lockTimeout, without
    // the lock.
    await raw.get('s:j', { ms: 10_000, token: 'slow', staleFor: 0 });
    const bounded = resilient(async (id: string) => `${id}-${++computed}`, {
      cache: { name: shared, store, lockTimeout: 200 },
    });
    start = Date.now();
    expect(await bounded('j')).toBe('j-2');
    expect(Date.now() - start).toBeGreaterThanOrEqual(390);
    expect(Date.now() - start).toBeLessThan(2_000);
    expect(await client.get(`bulwark:cache:{${shared}}:l:s:j`)).toBe('slow'); // not ours to release
  });

  it('lockTimeout: 0 keeps single flight per process; lockTimeout needs a store', async () => {
    const shared = name();
    let computed = 0;
    const make = () =>
      resilient(
        async (id: string) => {
          await sleep(30);
          return `${id}-${++computed}`;
        },
        { cache: { name: shared, store, lockTimeout: 0 } },
      );
    await Promise.all([make()('k'), make()('k')]);
    expect(computed).toBe(2);
    expect(await client.keys(`bulwark:cache:{${shared}}:l:*`)).toEqual([]);
    expect(make().describe().stages[1]).toMatchObject({ lockTimeout: 0 });
    expect(() => cache({ lockTimeout: 5 })).toThrow(/cache\.lockTimeout.*store/);
    expect(() => cache({ name: 'x', store, lockTimeout: -1 })).toThrow(/cache\.lockTimeout/);
    // A value that cannot be stored releases the lock too.
    const bad = resilient(async (id: string) => BigInt(id.length), {
      cache: { name: shared, store },
    });
    await expect(bad('b')).rejects.toThrow(TypeError);
    await until(async () => (await client.exists(`bulwark:cache:{${shared}}:l:s:b`)) === 0);
  });

  it('staleWhileRevalidate: every process serves the stale value at once; one refreshes it', async () => {
    const shared = name();
    const refreshes: Deferred<string>[] = [];
    let computed = 0;
    const make = () =>
      resilient(
        (id: string) => {
          if (++computed === 1) return Promise.resolve(`${id}-1`);
          const d = deferred<string>();
          refreshes.push(d);
          return d.promise;
        },
        { cache: { name: shared, store, ttl: 1_000, staleWhileRevalidate: 60_000 } },
      );
    const a = make();
    const b = make();
    const events: ResilienceEvent[] = [];
    a.on((e) => events.push(e));
    b.on((e) => events.push(e));
    expect(await a('k')).toBe('k-1');
    await until(async () => (await client.hexists(`bulwark:cache:{${shared}}:v`, 's:k')) === 1);
    await sleep(1_100); // past the ttl: the store keeps it ttl + staleWhileRevalidate
    // Nobody waits for the refresh (it never settles until the test says so).
    expect(await Promise.all([a('k'), b('k'), a('k'), b('k')])).toEqual([
      'k-1',
      'k-1',
      'k-1',
      'k-1',
    ]);
    const stale = events.filter((e) => e.type === 'cacheStaleHit');
    expect(stale.length).toBeGreaterThanOrEqual(2);
    expect(stale.filter((e) => (e as { refreshing: boolean }).refreshing)).toHaveLength(1);
    expect(computed).toBe(2); // one refresh across both processes
    expect(await client.exists(`bulwark:cache:{${shared}}:l:s:k`)).toBe(1); // its lock
    // Later calls still get the stale value and start no other refresh while the lock lives.
    expect(await b('k')).toBe('k-1');
    expect(computed).toBe(2);
    // A ttl of 1 s: the refreshed value stays fresh through the checks below on a loaded machine.
    refreshes[0]!.resolve('k-2');
    await until(async () => (await b('k')) === 'k-2', 3_000, 'the refreshed value');
    expect(await a('k')).toBe('k-2');
    expect(await client.exists(`bulwark:cache:{${shared}}:l:s:k`)).toBe(0); // released with the value
    expect(computed).toBe(2);
  });

  it('staleWhileRevalidate: a failed refresh keeps the stale value, releases its lock and says so', async () => {
    const shared = name();
    let fail = false;
    let computed = 0;
    const fn = resilient(
      async (id: string) => {
        computed++;
        if (fail) throw new Error('down');
        return `${id}-${computed}`;
      },
      {
        retry: { maxAttempts: 2, backoff: () => 0 },
        cache: { name: shared, store, ttl: 1_000, staleWhileRevalidate: 60_000 },
      },
    );
    const events: ResilienceEvent[] = [];
    fn.on((e) => events.push(e));
    expect(await fn('k')).toBe('k-1');
    await until(async () => (await client.hexists(`bulwark:cache:{${shared}}:v`, 's:k')) === 1);
    await sleep(1_100);
    fail = true;
    expect(await fn('k')).toBe('k-1');
    await until(() => events.some((e) => e.type === 'cacheRefreshFailed'), 3_000, 'the failure');
    expect(computed).toBe(3); // the refresh ran through retry: 2 attempts
    expect(events.find((e) => e.type === 'cacheRefreshFailed')).toMatchObject({ key: 'k' });
    await until(async () => (await client.exists(`bulwark:cache:{${shared}}:l:s:k`)) === 0);
    // Still servable; the next call starts the next refresh at once (no lock left behind).
    fail = false;
    expect(await fn('k')).toBe('k-1');
    await until(async () => (await fn('k')) === 'k-4', 3_000, 'the refreshed value');
    expect(fn.stats().cache).toMatchObject({ refreshFailures: 1 });
    expect(fn.describe().stages[1]).toMatchObject({
      staleWhileRevalidate: 60_000,
      store: 'shared',
    });
  });

  it('staleWhileRevalidate with lockTimeout: 0: one refresh at a time per process, none waits', async () => {
    const shared = name();
    let computed = 0;
    const gate = deferred<void>();
    const make = () =>
      resilient(
        async (id: string) => {
          const n = ++computed;
          if (n > 1) await gate.promise;
          return `${id}-${n}`;
        },
        {
          cache: { name: shared, store, ttl: 1_000, staleWhileRevalidate: 60_000, lockTimeout: 0 },
        },
      );
    const a = make();
    expect(await a('k')).toBe('k-1');
    await until(async () => (await client.hexists(`bulwark:cache:{${shared}}:v`, 's:k')) === 1);
    await sleep(1_100);
    expect(await a('k')).toBe('k-1');
    expect(await a('k')).toBe('k-1');
    expect(computed).toBe(2);
    gate.resolve();
    await until(async () => (await a('k')) !== 'k-1', 3_000, 'the refreshed value');
    // One refresh at a time: a read sent before the refresh's write may still start the next one.
    expect(computed).toBeLessThanOrEqual(3);
  });

  it('while Redis is down every call runs fn (no cache), events fire, sharing resumes', async () => {
    const local = await RedisServer.start();
    const c = await connect(local.port);
    const s = redisStore(c, { commandTimeout: 100, recheckAfter: 50 });
    let calls = 0;
    const fn = resilient(async (id: string) => `${id}-${++calls}`, {
      cache: { name: name(), store: s },
    });
    const events: string[] = [];
    fn.on((e) => events.push(e.type));
    await fn('a');
    await local.kill();
    await until(() => c.status !== 'ready', 2_000, 'disconnect');
    const start = Date.now();
    expect(await fn('a')).toBe('a-2');
    expect(await fn('a')).toBe('a-3');
    expect(Date.now() - start).toBeLessThan(300);
    expect(events.filter((e) => e === 'storeUnavailable')).toHaveLength(1);
    await local.launch();
    await until(() => c.status === 'ready', 5_000, 'reconnect');
    await sleep(60);
    await fn('b');
    await sleep(20);
    expect(events).toContain('storeRecovered');
    expect(await fn('b')).toBe('b-4');
    c.disconnect();
    await local.stop();
  });
});
