import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  circuitBreaker,
  isResilienceError,
  rateLimiter,
  resilient,
  systemClock,
} from '../../src/index.js';
import { redisStore, StoreTimeoutError, type RedisStore } from '../../src/redis/index.js';
import { connect, noRedis, RedisServer, sleep, until } from './server.js';

describe.skipIf(noRedis)('redisStore', () => {
  let server: RedisServer;
  let client: Redis;
  let store: RedisStore;

  beforeAll(async () => {
    server = await RedisServer.start();
    client = await connect(server.port);
    store = redisStore(client, { commandTimeout: 2_000 });
  });
  afterAll(async () => {
    await store?.close();
    client?.disconnect();
    await server?.stop();
  });

  it('validates its client and options', () => {
    expect(() => redisStore({} as never)).toThrow(/ioredis client/);
    expect(() => redisStore(null as never)).toThrow(/ioredis client/);
    expect(() =>
      redisStore(client, { commandTimeout: 0, recheckAfter: -1, trialTimeout: Infinity }),
    ).toThrow(/commandTimeout[\s\S]*recheckAfter[\s\S]*trialTimeout/);
    expect(() => redisStore(client, { prefix: 1 as never })).toThrow(/prefix/);
    expect(new StoreTimeoutError(5).message).toMatch(/5 ms/);
  });

  it('loads its scripts again after SCRIPT FLUSH (NOSCRIPT)', async () => {
    const limiter = store.forRateLimiter('noscript');
    const request = { limit: 10, interval: 1_000, burst: 10, maxWait: 0, count: 1 };
    // The first command also counts this process in the fleet (once a second).
    await expect(limiter.reserve(request)).resolves.toEqual({ granted: 1, wait: 0, processes: 1 });
    await client.script('FLUSH');
    await expect(limiter.reserve(request)).resolves.toEqual({ granted: 1, wait: 0 });
  });

  it('a reply that arrived while the event loop was busy is not a timeout (a slow loop is not an outage)', async () => {
    const quick = redisStore(client, { commandTimeout: 20 });
    const limiter = quick.forRateLimiter('busy-loop');
    const request = { limit: 10, interval: 1_000, burst: 10, maxWait: 0, count: 1 };
    await limiter.reserve(request); // the script is loaded
    for (let i = 0; i < 5; i++) {
      // Asked now: ioredis writes it at once, node-redis in a setImmediate; the command timeout starts
      // once it is written. The loop turns until both happened, so Redis answers while the loop is busy
      // (a Redis that answers only after the busy loop is merely slow, and on a loaded machine it may
      // take longer than 20 ms: that is not what this test is about).
      const reply = limiter.reserve(request);
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      const end = performance.now() + 300; // the loop is busy for 15 command timeouts
      while (performance.now() < end) {
        // a long synchronous task (JSON, a sort, a GC pause)
      }
      await expect(reply).resolves.toMatchObject({ granted: expect.any(Number) });
    }
  });

  it('counts the processes that use a limiter (each limiter reports itself once a second)', async () => {
    const request = { limit: 10, interval: 1_000, burst: 10, maxWait: 0, count: 1 };
    const a = store.forRateLimiter('counted');
    const b = redisStore(client).forRateLimiter('counted');
    await expect(a.reserve(request)).resolves.toMatchObject({ processes: 1 });
    await expect(b.reserve(request)).resolves.toMatchObject({ processes: 2 });
    const again = await a.reserve(request); // within the second: not reported again
    expect(again).not.toHaveProperty('processes');
    expect(await client.zcard('bulwark:rl:{counted}:procs')).toBe(2);
    expect(await client.pttl('bulwark:rl:{counted}:procs')).toBeLessThanOrEqual(3_000);
  });

  it('circuit primitives: open, trial, release, isolate, close, read', async () => {
    const circuit = store.forCircuit('primitives');
    const trialKey = 'bulwark:cb:{primitives}:trial';
    await expect(circuit.read()).resolves.toEqual({ state: 'closed', retryAfter: 0 });
    await expect(circuit.tryTrial('a', Infinity)).resolves.toBeLessThan(0); // closed: nothing to try
    await expect(circuit.open(30, true)).resolves.toEqual({
      opened: true,
      circuit: { state: 'open', retryAfter: 30 },
    });
    // Half-open once the open key is gone. (Not "read() says closed": a key with under 1 ms left reads
    // as closed, PTTL 0, while the trial script still counts that last millisecond as open.)
    await until(
      async () => (await client.exists('bulwark:cb:{primitives}:open')) === 0,
      2_000,
      'half-open',
    );
    await expect(circuit.tryTrial('a', Infinity)).resolves.toBe(0); // half-open: granted
    // The slot is held under the caller's token, for the trial's own limit (+ 2 command timeouts).
    expect(await client.get(trialKey)).toBe('a');
    expect(await client.pttl(trialKey)).toBeGreaterThan(1_000);
    await expect(circuit.tryTrial('b', 100)).resolves.toBeGreaterThan(0); // held
    // Another token cannot hand it back; its holder can.
    await circuit.releaseTrial('b');
    expect(await client.get(trialKey)).toBe('a');
    await circuit.releaseTrial('a');
    expect(await client.exists(trialKey)).toBe(0);
    await expect(circuit.tryTrial('b', 100)).resolves.toBe(0);
    expect(await client.pttl(trialKey)).toBeLessThanOrEqual(100 + 2 * store.commandTimeout);
    // A trial runs: not opened without force; the caller is told to follow the fleet's trial.
    await expect(circuit.open(500, false)).resolves.toEqual({
      opened: false,
      circuit: { state: 'open', retryAfter: 0 },
    });
    await expect(circuit.open(500, true)).resolves.toMatchObject({ opened: true });
    const again = await circuit.open(500, false); // open already: its time left
    expect(again.opened).toBe(false);
    expect(again.circuit.state).toBe('open');
    expect(again.circuit.retryAfter).toBeGreaterThan(0);
    expect(again.circuit.retryAfter).toBeLessThanOrEqual(500);
    const state = await circuit.read();
    expect(state.state).toBe('open');
    await expect(circuit.tryTrial('c', Infinity)).resolves.toBeGreaterThan(0); // still open: wait
    await circuit.isolate();
    await expect(circuit.tryTrial('c', Infinity)).resolves.toBe(Infinity);
    await expect(circuit.open(500, true)).resolves.toEqual({
      opened: false,
      circuit: { state: 'isolated', retryAfter: Infinity },
    });
    await expect(circuit.read()).resolves.toEqual({ state: 'isolated', retryAfter: Infinity });
    await circuit.close();
    await expect(circuit.read()).resolves.toEqual({ state: 'closed', retryAfter: 0 });
  });

  it('subscriptions: unknown messages and channels are ignored; unsubscribe twice is harmless', async () => {
    const circuit = store.forCircuit('messages');
    const seen: string[] = [];
    const off = circuit.subscribe(
      (state) => seen.push(state.state),
      () => undefined,
    );
    const off2 = circuit.subscribe(
      () => undefined,
      () => undefined,
    );
    // Subscribed (a second connection, which a busy machine may take a while to open): a message
    // arrives. (PUBSUB NUMSUB would not do on a cluster, where it counts one node's subscribers.)
    await until(
      async () => (await client.publish('bulwark:cb:{messages}', 'closed')) >= 0 && seen.length > 0,
      5_000,
      'subscribed',
    );
    await client.publish('bulwark:cb:{messages}', 'nonsense');
    await client.publish('bulwark:cb:{messages}', 'open:x');
    await client.publish('bulwark:cb:{messages}', 'open:100');
    await client.publish('bulwark:cb:{messages}', 'isolated');
    await client.publish('bulwark:cb:{messages}', 'trial-free');
    const heard = () => seen.filter((state) => state !== 'closed');
    await until(() => heard().length === 3, 2_000, 'messages');
    // (Sorted: on a cluster, messages published through different nodes may arrive in either order.)
    expect(heard().sort()).toEqual(['halfOpen', 'isolated', 'open']);
    off();
    off();
    off2();
    await redisStore(client).close(); // never subscribed: nothing to close
  });

  it('a breaker reads the fleet state once Redis confirmed its SUBSCRIBE: an open published before is not missed', async () => {
    // A client whose message connection's SUBSCRIBE waits until the test lets it go.
    const held: (() => void)[] = [];
    const view = Object.create(client) as Redis;
    view.duplicate = ((...args: Parameters<Redis['duplicate']>) => {
      const subscriber = client.duplicate(...args) as unknown as {
        subscribe: (...a: unknown[]) => Promise<unknown>;
      };
      const subscribe = subscriber.subscribe.bind(subscriber);
      subscriber.subscribe = (...a: unknown[]) =>
        new Promise<void>((resolve) => held.push(resolve)).then(() => subscribe(...a));
      return subscriber;
    }) as Redis['duplicate'];
    const late = redisStore(view, { commandTimeout: 10_000 });
    const a = circuitBreaker({ name: 'late-subscribe', store: late });
    await until(() => held.length > 0, 5_000, 'the SUBSCRIBE');
    // Whatever a read so far has been applied (a read sent after it on its connection is answered
    // after it; a macrotask later its reply has been applied): closed.
    await late.forCircuit('late-subscribe').read();
    await sleep(0);
    expect(a.state).toBe('closed');
    // Another process opens the fleet; its message goes out before a's SUBSCRIBE is in place.
    await redisStore(client, { commandTimeout: 10_000 })
      .forCircuit('late-subscribe')
      .open(5_000, false);
    for (const release of held) release();
    await until(() => a.state === 'open', 3_000, 'the state read once subscribed');
    await late.close();
  });

  it('a cache with an infinite ttl stores without expiry', async () => {
    const shared = store.forCache('forever');
    await shared.set('k', '"v"', Infinity, 10);
    await expect(shared.get('k')).resolves.toEqual({
      entry: { data: '"v"', remaining: Infinity },
      lock: -1,
    });
    await shared.delete('k');
    await expect(shared.get('k')).resolves.toEqual({ entry: undefined, lock: -1 });
  });

  it('a time-window breaker shares its window over its own duration; slow calls count', async () => {
    const make = () =>
      circuitBreaker({
        name: 'slow-window',
        store,
        window: { type: 'time', duration: 5_000 },
        minimumCalls: 4,
        slowCallDuration: 10,
        slowCallRateThreshold: 0.5,
        failureRateThreshold: 1,
      });
    const a = make();
    const b = make();
    const slow = resilient(
      async () => {
        await sleep(15);
        return 1;
      },
      { circuitBreaker: a },
    );
    await Promise.all([slow(), slow()]);
    const slowB = resilient(
      async () => {
        await sleep(15);
        return 1;
      },
      { circuitBreaker: b },
    );
    await Promise.all([slowB(), slowB()]);
    await until(() => a.state === 'open' && b.state === 'open', 2_000, 'slow calls open the fleet');
  });

  it('reads open but close only an isolated circuit; a limiter waits for its lease', async () => {
    const a = circuitBreaker({ name: 'stale', store, minimumCalls: 1 });
    await sleep(30);
    a.isolate();
    a.link!.apply({ state: 'open', retryAfter: 100 }, false);
    expect(a.state).toBe('isolated');
    // A read that finds no open key closes an isolated circuit (a reset it missed)...
    a.link!.apply({ state: 'closed', retryAfter: 0 }, false);
    expect(a.state).toBe('closed');
    // ...but not an open one: its wait may just have ended, and a trial decides.
    a.link!.apply({ state: 'open', retryAfter: 100 }, true);
    a.link!.apply({ state: 'closed', retryAfter: 0 }, false);
    expect(a.state).toBe('open');
    a.link!.apply({ state: 'closed', retryAfter: 0 }, true); // a message does
    expect(a.state).toBe('closed');

    // burst 2, lease 2: the second lease is granted with a wait; its tokens serve waiters.
    const limiter = rateLimiter({
      name: 'lease-wait',
      limit: 20,
      burst: 2,
      lease: 2,
      maxWait: 500,
      store,
    });
    const fn = resilient(async () => Date.now(), { rateLimiter: limiter });
    const start = Date.now();
    const times = await Promise.all([fn(), fn(), fn(), fn()]);
    expect(Math.max(...times) - start).toBeGreaterThanOrEqual(80);
    expect(limiter.stats().waited).toBeGreaterThan(0);
  });

  it('flushes in batches: a full batch goes at once, samples during a flush wait for it; a flush reads the fleet state', async () => {
    const breaker = circuitBreaker({ name: 'batches', store, clock: systemClock });
    // The breaker reads the fleet's state when it is made. A read sent after it on the store's own
    // connection is answered after it, and a macrotask later its reply has been applied: only then is
    // the circuit opened behind its back (the test's SET may go on another connection, as with
    // node-redis here, and would otherwise race that first read).
    await store.forCircuit('batches').read();
    await sleep(0);
    await client.set('bulwark:cb:{batches}:open', 'open', 'PX', 5_000); // opened elsewhere, message missed
    const fn = resilient(async () => 1, { circuitBreaker: breaker });
    for (let i = 0; i < 49; i++) await fn(); // a timer is armed...
    await fn(); // ...and cleared: 50 samples flush at once
    await fn(); // during the flush
    await until(() => breaker.state === 'open', 2_000, 'the fleet state read with a flush');
    await sleep(150);
    const window = await client.hgetall('bulwark:cb:{batches}:w');
    let calls = 0;
    for (const [field, value] of Object.entries(window))
      if (field.endsWith(':c')) calls += Number(value);
    expect(calls).toBe(51);
  });

  it('a token taken but not used (bulkhead full) goes back to the lease', async () => {
    // 10 a second: the lease of 5 lasts 500 ms, longer than these calls take on a busy machine.
    const limiter = rateLimiter({ name: 'refund', limit: 10, lease: 5, store });
    const fn = resilient(
      async () => {
        await sleep(20);
        return 1;
      },
      { rateLimiter: limiter, bulkhead: 1 },
    );
    for (let i = 0; i < 3; i++) await fn(); // leases of 2, then 4: 3 tokens left
    const results = await Promise.allSettled([fn(), fn()]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect(limiter.stats().admitted).toBe(4);
    const exact = rateLimiter({ name: 'refund-exact', limit: 100, store });
    // The first call holds the bulkhead until the second is refused (both replies may land in one turn,
    // after the first call is over).
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const gn = resilient(
      async () => {
        await held;
        return 1;
      },
      { rateLimiter: exact, bulkhead: 1 },
    );
    const first = gn();
    const second = await gn().then(
      () => 'fulfilled',
      () => 'rejected',
    );
    release();
    expect([await first.then(() => 'fulfilled'), second]).toEqual(['fulfilled', 'rejected']);
    // An exact token stays spent in Redis, but the call the bulkhead refused is not counted admitted.
    expect(exact.stats().admitted).toBe(1);
  });

  it.each(['allow', 'reject'] as const)(
    'onStoreError %s answers on the fast path until the next probe',
    async (mode) => {
      const local = await RedisServer.start();
      const c = await connect(local.port);
      const s = redisStore(c, { commandTimeout: 100, recheckAfter: 10_000 });
      const limiter = rateLimiter({ name: 'fast', limit: 1, store: s, onStoreError: mode });
      const fn = resilient(async () => 1, { rateLimiter: limiter });
      await local.kill();
      await until(() => c.status !== 'ready', 2_000, 'disconnect');
      await fn().catch(() => undefined); // finds the store down
      const results = await Promise.allSettled([fn(), fn(), fn()]);
      for (const r of results) {
        if (mode === 'allow') expect(r.status).toBe('fulfilled');
        else expect(r.status === 'rejected' && isResilienceError(r.reason)).toBe(true);
      }
      c.disconnect();
    },
  );
});
