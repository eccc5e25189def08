import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  circuitBreaker,
  isResilienceError,
  resilient,
  resilientSync,
  type CircuitBreaker,
  type ResilienceEvent,
} from '../../src/index.js';
import { redisStore, type RedisStore } from '../../src/redis/index.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { connect, noRedis, RedisServer, sleep, subscribed, until } from './server.js';

const fail = async (): Promise<never> => {
  throw new Error('down');
};
const ok = async (): Promise<string> => 'ok';
const isOpenError = (e: unknown): boolean =>
  isResilienceError(e) && e.code === 'ERR_BULWARK_CIRCUIT_OPEN';

describe.skipIf(noRedis)('circuitBreaker with a Redis store', () => {
  let server: RedisServer;
  let client: Redis;
  let store: RedisStore;
  let n = 0;
  const name = (): string => `breaker-${++n}`;

  beforeAll(async () => {
    server = await RedisServer.start();
    client = await connect(server.port);
    // Patient: Redis answers in well under 2 s even on a loaded machine (a timed-out command would make
    // a breaker act alone for recheckAfter); tests of Redis trouble make their own stores.
    store = redisStore(client, { commandTimeout: 2_000, recheckAfter: 100, trialTimeout: 10_000 });
  });
  afterAll(async () => {
    await store?.close();
    client?.disconnect();
    await server?.stop();
  });

  /** Two breakers with one name: two processes as far as the store can tell. */
  function pair(
    options: Parameters<typeof circuitBreaker>[0] = {},
  ): [CircuitBreaker, CircuitBreaker] {
    const shared = name();
    const make = (): CircuitBreaker =>
      circuitBreaker({ name: shared, store, minimumCalls: 4, halfOpenAfter: 300, ...options });
    return [make(), make()];
  }

  it('opens for every process when the fleet-wide rate crosses the threshold', async () => {
    const [a, b] = pair();
    const events: ResilienceEvent[] = [];
    b.on((e) => events.push(e));
    // Two failures each: neither window reaches minimumCalls, the fleet's does.
    for (const breaker of [a, b]) {
      const fn = resilient(fail, { circuitBreaker: breaker });
      await fn().catch(() => undefined);
      await fn().catch(() => undefined);
    }
    expect(a.state).toBe('closed');
    await until(() => a.state === 'open' && b.state === 'open', 5_000, 'fleet open');
    expect(events.map((e) => e.type)).toContain('circuitOpened');
    const error = await resilient(ok, { circuitBreaker: a })().catch((e: unknown) => e);
    expect(isOpenError(error)).toBe(true);
    expect(a.describe()).toMatchObject({ store: 'shared' });
  });

  it('a success-only fleet stays closed; the happy path batches its samples', async () => {
    const [a, b] = pair();
    const fa = resilient(ok, { circuitBreaker: a });
    const fb = resilient(ok, { circuitBreaker: b });
    for (let i = 0; i < 30; i++) await Promise.all([fa(), fb()]);
    const fleetCalls = async (): Promise<number> => {
      const window = await client.hgetall(`bulwark:cb:{${a.name!}}:w`);
      let calls = 0;
      for (const [field, value] of Object.entries(window))
        if (field.endsWith(':c')) calls += Number(value);
      return calls;
    };
    // Batches leave every 100 ms (later on a loaded machine): wait for them, then check that every
    // sample arrived once.
    await until(async () => (await fleetCalls()) >= 60, 10_000, 'the batches in Redis');
    await sleep(150); // (one more batch period: a sample sent twice would show)
    expect(await fleetCalls()).toBe(60);
    expect(a.state).toBe('closed');
    expect(b.state).toBe('closed');
  });

  it('runs one half-open trial across the fleet, and its success closes every process', async () => {
    const [a, b] = pair();
    const fa = resilient(fail, { circuitBreaker: a });
    for (let i = 0; i < 4; i++) await fa().catch(() => undefined);
    await until(() => b.state === 'open', 5_000, 'fleet open');
    await sleep(350);
    let runs = 0;
    const slow = async (): Promise<string> => {
      runs++;
      await sleep(100);
      return 'ok';
    };
    const ga = resilient(slow, { circuitBreaker: a });
    const gb = resilient(slow, { circuitBreaker: b });
    const results = await Promise.allSettled([ga(), gb(), ga(), gb()]);
    expect(runs).toBe(1);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(isOpenError(r.reason)).toBe(true);
    await until(() => a.state === 'closed' && b.state === 'closed', 5_000, 'fleet closed');
    await expect(gb()).resolves.toBe('ok');
  });

  it('a failed trial opens the fleet again', async () => {
    // Open for 1.5 s: long enough that the fleet's second open outlives the checks below on a
    // loaded machine; the first one's end is waited for, not slept through.
    const [a, b] = pair({ halfOpenAfter: 1_500 });
    const key = `bulwark:cb:{${a.name!}}:open`;
    const fa = resilient(fail, { circuitBreaker: a });
    const fb = resilient(fail, { circuitBreaker: b });
    for (let i = 0; i < 4; i++) await fa().catch(() => undefined);
    await until(() => b.state === 'open', 5_000, 'fleet open');
    await until(
      async () => b.retryAfter(performance.now()) === 0 && (await client.exists(key)) === 0,
      5_000,
      'the open time over, in b and in Redis',
    );
    await fb().catch(() => undefined); // b takes the trial, which fails
    await until(() => a.state === 'open' && b.state === 'open', 5_000, 'open again');
    expect(isOpenError(await fa().catch((e: unknown) => e))).toBe(true);
    // (The fleet's OPEN may land a moment after b's own state changed.)
    await until(async () => (await client.get(key)) === 'open', 5_000, 'open in Redis');
  });

  it('isolate() and reset() act fleet-wide; a process that starts later reads the state', async () => {
    const [a, b] = pair();
    a.isolate();
    await until(() => b.state === 'isolated', 5_000, 'isolated');
    const c = circuitBreaker({ name: a.name!, store, minimumCalls: 4 });
    await until(() => c.state === 'isolated', 5_000, 'late joiner isolated');
    b.reset();
    await until(() => a.state === 'closed' && c.state === 'closed', 5_000, 'reset');
    expect(await client.exists(`bulwark:cb:{${a.name!}}:open`)).toBe(0);
  });

  it('a process that starts while the fleet is open opens too', async () => {
    const [a] = pair();
    const fa = resilient(fail, { circuitBreaker: a });
    for (let i = 0; i < 4; i++) await fa().catch(() => undefined);
    await until(() => a.state === 'open', 5_000, 'open');
    await sleep(50);
    const late = circuitBreaker({ name: a.name!, store, minimumCalls: 4, halfOpenAfter: 300 });
    await until(() => late.state === 'open', 5_000, 'late joiner open');
    expect(late.retryAfter(performance.now())).toBeGreaterThan(0);
  });

  it('validates: a store needs a name; no store in resilientSync', () => {
    expect(() => circuitBreaker({ store })).toThrow(/circuitBreaker\.name/);
    expect(() => circuitBreaker({ name: 'x', store: 42 as never })).toThrow(
      /circuitBreaker\.store/,
    );
    expect(() => resilientSync(() => 1, { circuitBreaker: { name: 'x', store } })).toThrow(
      /circuitBreaker\.store/,
    );
    const shared = circuitBreaker({ name: name(), store });
    expect(() => resilientSync(() => 1, { circuitBreaker: shared })).toThrow(
      /circuitBreaker\.store/,
    );
  });

  it('while Redis is down the local window decides alone; sharing resumes after', async () => {
    const local = await RedisServer.start();
    const c = await connect(local.port);
    const s = redisStore(c, { commandTimeout: 100, recheckAfter: 50 });
    const shared = name();
    const a = circuitBreaker({ name: shared, store: s, minimumCalls: 4, halfOpenAfter: 200 });
    const b = circuitBreaker({ name: shared, store: s, minimumCalls: 4, halfOpenAfter: 200 });
    const events: string[] = [];
    a.on((e) => events.push(e.type));
    await subscribed(c, `bulwark:cb:{${shared}}`);
    await local.kill();
    await until(() => c.status !== 'ready', 5_000, 'disconnect');
    const fa = resilient(fail, { circuitBreaker: a });
    for (let i = 0; i < 4; i++) await fa().catch(() => undefined);
    expect(a.state).toBe('open'); // its own window
    await sleep(150);
    expect(events).toContain('storeUnavailable');
    expect(b.state).toBe('closed'); // nothing shared meanwhile
    // Half-open with the store down: a local trial.
    await sleep(100);
    await expect(resilient(ok, { circuitBreaker: a })()).resolves.toBe('ok');
    expect(a.state).toBe('closed');
    await local.launch();
    await until(() => c.status === 'ready', 5_000, 'reconnect');
    await sleep(100);
    // The next flush finds the store back.
    await resilient(ok, { circuitBreaker: a })();
    await until(() => events.includes('storeRecovered'), 5_000, 'storeRecovered');
    const fb = resilient(fail, { circuitBreaker: b });
    for (let i = 0; i < 4; i++) await fb().catch(() => undefined);
    await until(() => a.state === 'open', 3_000, 'sharing resumed');
    await s.close();
    c.disconnect();
    await local.stop();
  });

  /** Fails `breaker`'s window (minimumCalls 4) and waits until `watcher` has heard the fleet open. */
  async function openFleet(breaker: CircuitBreaker, watcher: CircuitBreaker): Promise<void> {
    const fn = resilient(fail, { circuitBreaker: breaker });
    for (let i = 0; i < 4; i++) await fn().catch(() => undefined);
    await until(() => watcher.state === 'open', 5_000, 'fleet open');
  }

  it('#11.6: finding the circuit isolated does not stop a process asking for trials after a reset', async () => {
    const [a, b] = pair({ halfOpenAfter: 200 });
    await openFleet(a, b);
    // The fleet is isolated by a message b never hears (it was disconnected, say).
    await client.set(`bulwark:cb:{${a.name!}}:open`, 'isolated');
    await sleep(250);
    let runs = 0;
    const gb = resilient(
      async () => {
        runs++;
        return 'ok';
      },
      { circuitBreaker: b },
    );
    // b asks for the trial, learns the fleet is isolated, and follows it.
    expect(isOpenError(await gb().catch((e: unknown) => e))).toBe(true);
    expect(b.state).toBe('isolated');
    a.reset();
    await until(() => b.state === 'closed', 5_000, 'reset heard');
    await openFleet(a, b);
    await sleep(250);
    // The next half-open cycle: b asks again, gets the trial and closes the fleet.
    await until(
      async () => {
        await gb().catch(() => undefined);
        return runs > 0;
      },
      5_000,
      'a trial in b',
    );
    expect(runs).toBe(1);
    await until(() => a.state === 'closed', 5_000, 'fleet closed');
  });

  it('#11.5: a trial request abandoned in a Redis stall frees its slot when Redis wakes', async () => {
    const local = await RedisServer.start();
    const ca = await connect(local.port);
    const cb = await connect(local.port);
    // Default trialTimeout (10 s): the slot must not be held for it on behalf of nobody.
    const sa = redisStore(ca, { commandTimeout: 50, recheckAfter: 50 });
    const sb = redisStore(cb, { commandTimeout: 50, recheckAfter: 50 });
    const shared = name();
    const options = { name: shared, minimumCalls: 4, halfOpenAfter: 200 };
    const a = circuitBreaker({ ...options, store: sa });
    const b = circuitBreaker({ ...options, store: sb });
    try {
      await subscribed(ca, `bulwark:cb:{${shared}}`, 2); // both stores' message connections
      await openFleet(a, b);
      await sleep(250);
      const aEvents: string[] = [];
      a.on((e) => aEvents.push(e.type));
      local.pause();
      // a's trial request times out: a runs a local trial (the store is in trouble) and closes.
      await expect(resilient(ok, { circuitBreaker: a })()).resolves.toBe('ok');
      expect(aEvents).toContain('storeUnavailable');
      expect(a.state).toBe('closed');
      local.resume();
      // Redis runs a's request when it wakes; a hands the slot back at once.
      const trialKey = `bulwark:cb:{${shared}}:trial`;
      await until(async () => (await cb.exists(trialKey)) === 0, 5_000, 'slot handed back');
      // b gets the trial against the healthy downstream within moments, not after 10 s.
      let runs = 0;
      const gb = resilient(
        async () => {
          runs++;
          return 'ok';
        },
        { circuitBreaker: b },
      );
      await until(
        async () => {
          await gb().catch(() => undefined);
          return runs > 0;
        },
        5_000,
        'b runs the trial',
      );
      expect(b.state).toBe('closed');
    } finally {
      local.resume();
      await sa.close();
      await sb.close();
      ca.disconnect();
      cb.disconnect();
      await local.stop();
    }
  }, 15_000);

  it('#11.5: a waiting process may ask again at once when the slot is handed back', async () => {
    const [a, b] = pair({ halfOpenAfter: 200 });
    await openFleet(a, b);
    await until(async () => (await client.exists(`bulwark:cb:{${a.name!}}:open`)) === 0);
    const trialKey = `bulwark:cb:{${a.name!}}:trial`;
    await client.set(trialKey, 'ghost', 'PX', 60_000);
    await sleep(250);
    let runs = 0;
    const gb = resilient(
      async () => {
        runs++;
        return 'ok';
      },
      { circuitBreaker: b },
    );
    expect(isOpenError(await gb().catch((e: unknown) => e))).toBe(true); // held: wait ~60 s
    await store.forCircuit(a.name!).releaseTrial('ghost');
    await until(
      async () => {
        await gb().catch(() => undefined);
        return runs > 0;
      },
      5_000,
      'b runs the trial',
    );
    expect(runs).toBe(1);
  });

  it('#11.5: a trial holds the slot for its own time limit, not trialTimeout', async () => {
    const [a, b] = pair({ halfOpenAfter: 200 });
    await openFleet(a, b);
    await sleep(250);
    let release = (): void => undefined;
    const trial = resilient(
      () =>
        new Promise<string>((resolve) => {
          release = () => resolve('ok');
        }),
      { circuitBreaker: b, timeout: 3_000 },
    )();
    const trialKey = `bulwark:cb:{${a.name!}}:trial`;
    await until(async () => (await client.exists(trialKey)) === 1, 5_000, 'slot taken');
    const ttl = await client.pttl(trialKey);
    expect(ttl).toBeGreaterThan(0);
    // 3 s + 2 command timeouts (5 s), well under trialTimeout (10 s).
    expect(ttl).toBeLessThanOrEqual(3_000 + 2 * store.commandTimeout);
    release();
    await trial.catch(() => undefined); // (on a very slow machine it may have timed out: not the point)
  });

  it('#10.20: a fleet-opened circuit stays open for exactly its duration in every process, then one trial', async () => {
    // Two processes with their own (virtual) clocks; b is configured with a shorter halfOpenAfter (a
    // deploy in progress, say): the fleet's duration is a's, and b follows it, not its own.
    const shared = name();
    const clockA = new ManualClock(1_000);
    const clockB = new ManualClock(50_000);
    const a = circuitBreaker({
      name: shared,
      store,
      minimumCalls: 4,
      halfOpenAfter: 5_000,
      clock: clockA,
    });
    const b = circuitBreaker({
      name: shared,
      store,
      minimumCalls: 4,
      halfOpenAfter: 1_000,
      clock: clockB,
    });
    const openKey = `bulwark:cb:{${shared}}:open`;
    const trialKey = `bulwark:cb:{${shared}}:trial`;
    await subscribed(client, `bulwark:cb:{${shared}}`); // (both breakers share one store)
    const before = performance.now();
    const fa = resilient(fail, { circuitBreaker: a, clock: clockA });
    for (let i = 0; i < 4; i++) await fa().catch(() => undefined);
    expect(a.state).toBe('open');
    await until(() => b.state === 'open', 5_000, 'b follows the fleet');
    // In Redis: open for a's duration (PX 5000), less the real time this test has taken since.
    const ttl = await client.pttl(openKey);
    const elapsed = performance.now() - before;
    expect(ttl).toBeLessThanOrEqual(5_000);
    expect(ttl).toBeGreaterThanOrEqual(5_000 - Math.ceil(elapsed) - 1);
    // In every process: exactly the fleet's duration on its own clock.
    // (Either may learn it from a read of the open key's PTTL rather than from its own open or the
    // message: a few ms less, the real time that passed meanwhile.)
    for (const [breaker, clock] of [
      [a, clockA],
      [b, clockB],
    ] as const) {
      expect(breaker.retryAfter(clock.now())).toBeLessThanOrEqual(5_000);
      expect(breaker.retryAfter(clock.now())).toBeGreaterThanOrEqual(
        5_000 - Math.ceil(elapsed) - 1,
      );
    }
    let runs = 0;
    const trial = async (): Promise<string> => {
      runs++;
      await sleep(50);
      return 'ok';
    };
    const ga = resilient(trial, { circuitBreaker: a, clock: clockA });
    const gb = resilient(trial, { circuitBreaker: b, clock: clockB });
    // Just before any process's wait can be over: a wait learnt from the open key's PTTL is shorter by
    // at most the real time since the fleet opened (on a loaded machine, more than a few ms; a process
    // asked at 4,999 would be told to wait that PTTL, on its own clock).
    const notYet = 5_000 - Math.ceil(performance.now() - before) - 1;
    await clockA.advance(notYet);
    await clockB.advance(notYet);
    for (const g of [ga, gb]) expect(isOpenError(await g().catch((e: unknown) => e))).toBe(true);
    expect(runs).toBe(0);
    expect(await client.exists(trialKey)).toBe(0); // nobody asked for the trial yet
    await clockA.advance(5_000 - notYet);
    await clockB.advance(5_000 - notYet);
    // The fleet's open key lapses at the same moment (its PX, checked above; here by hand, as real
    // time runs at its own pace): both processes race for the trial, several calls each.
    await client.del(openKey);
    const results = await Promise.allSettled([ga(), gb(), ga(), gb(), ga(), gb()]);
    expect(runs).toBe(1);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(isOpenError(r.reason)).toBe(true);
    await until(() => a.state === 'closed' && b.state === 'closed', 5_000, 'fleet closed');
  });

  it('#10.20: a process asking for the trial as the fleet closes follows the close (the call runs, no trial)', async () => {
    const [a, b] = pair({ halfOpenAfter: 200 });
    await openFleet(a, b);
    const base = `bulwark:cb:{${a.name!}}`;
    // The fleet closed (another process's trial succeeded), and b has not heard it yet: the keys are
    // gone, the message is late.
    await client.del(`${base}:open`, `${base}:trial`, `${base}:opened`);
    await sleep(250); // b's own open wait is over
    expect(b.state).toBe('open');
    let runs = 0;
    const gb = resilient(
      async () => {
        runs++;
        return 'ok';
      },
      { circuitBreaker: b },
    );
    // b asks for the trial; the store says the fleet is closed: b closes and runs the call as a
    // closed-circuit call, without holding a trial slot.
    await expect(gb()).resolves.toBe('ok');
    expect(runs).toBe(1);
    expect(b.state).toBe('closed');
    expect(await client.exists(`${base}:trial`)).toBe(0);
    await expect(gb()).resolves.toBe('ok');
  });

  it('#11.7: asks for the trial slot again on the policy clock, not Date.now()', async () => {
    const clock = new ManualClock(1_000);
    const shared = name();
    const a = circuitBreaker({ name: shared, store, minimumCalls: 4, halfOpenAfter: 300 });
    const b = circuitBreaker({ name: shared, store, minimumCalls: 4, halfOpenAfter: 300, clock });
    await subscribed(client, `bulwark:cb:{${shared}}`);
    await openFleet(a, b);
    const trialKey = `bulwark:cb:{${shared}}:trial`;
    await until(async () => (await client.exists(`bulwark:cb:{${shared}}:open`)) === 0);
    await client.set(trialKey, 'someone', 'PX', 60_000);
    let runs = 0;
    const gb = resilient(
      async () => {
        runs++;
        return 'ok';
      },
      { circuitBreaker: b, clock },
    );
    await clock.advance(301);
    expect(isOpenError(await gb().catch((e: unknown) => e))).toBe(true); // the slot is held
    // The holder vanished without a word; b asks again once the slot's time is up on its clock.
    await client.del(trialKey);
    expect(isOpenError(await gb().catch((e: unknown) => e))).toBe(true); // not yet
    expect(runs).toBe(0);
    await clock.advance(60_000);
    await expect(gb()).resolves.toBe('ok');
    expect(runs).toBe(1);
  });

  it('#11.7: an open breaker notices the store is back within recheckAfter, traffic or not', async () => {
    const local = await RedisServer.start();
    const c = await connect(local.port);
    const s = redisStore(c, { commandTimeout: 50, recheckAfter: 1_000 });
    const clock = new ManualClock();
    const shared = name();
    const breaker = circuitBreaker({
      name: shared,
      store: s,
      minimumCalls: 4,
      halfOpenAfter: 60_000,
      clock,
    });
    const events: string[] = [];
    breaker.on((e) => events.push(e.type));
    try {
      // Subscribed before Redis freezes (a subscription confirmed only after it wakes reads the state
      // then: an early storeRecovered).
      await subscribed(c, `bulwark:cb:{${shared}}`);
      local.pause();
      const fn = resilient(fail, { circuitBreaker: breaker, clock });
      for (let i = 0; i < 4; i++) await fn().catch(() => undefined);
      expect(breaker.state).toBe('open'); // its own window; opening the fleet's times out
      await until(() => events.includes('storeUnavailable'), 5_000, 'storeUnavailable');
      local.resume();
      await clock.advance(999);
      await sleep(100);
      expect(events).not.toContain('storeRecovered'); // the next probe is not due yet
      await clock.advance(1);
      await until(() => events.includes('storeRecovered'), 5_000, 'storeRecovered');
      // No call was made meanwhile: the breaker is still open, and tells the fleet now.
      expect(breaker.state).toBe('open');
    } finally {
      local.resume();
      await s.close();
      c.disconnect();
      await local.stop();
    }
  });
});
