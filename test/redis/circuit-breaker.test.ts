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
import { connect, noRedis, RedisServer, sleep, until } from './server.js';

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
    store = redisStore(client, { commandTimeout: 200, recheckAfter: 100, trialTimeout: 2_000 });
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
    await until(() => a.state === 'open' && b.state === 'open', 2_000, 'fleet open');
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
    await sleep(250);
    const window = await client.hgetall(`bulwark:cb:{${a.name!}}:w`);
    let calls = 0;
    for (const [field, value] of Object.entries(window))
      if (field.endsWith(':c')) calls += Number(value);
    expect(calls).toBe(60);
    expect(a.state).toBe('closed');
    expect(b.state).toBe('closed');
  });

  it('runs one half-open trial across the fleet, and its success closes every process', async () => {
    const [a, b] = pair();
    const fa = resilient(fail, { circuitBreaker: a });
    for (let i = 0; i < 4; i++) await fa().catch(() => undefined);
    await until(() => b.state === 'open', 2_000, 'fleet open');
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
    await until(() => a.state === 'closed' && b.state === 'closed', 2_000, 'fleet closed');
    await expect(gb()).resolves.toBe('ok');
  });

  it('a failed trial opens the fleet again', async () => {
    const [a, b] = pair();
    const fa = resilient(fail, { circuitBreaker: a });
    const fb = resilient(fail, { circuitBreaker: b });
    for (let i = 0; i < 4; i++) await fa().catch(() => undefined);
    await until(() => b.state === 'open', 2_000, 'fleet open');
    await sleep(350);
    await fb().catch(() => undefined); // b takes the trial, which fails
    await until(() => a.state === 'open' && b.state === 'open', 2_000, 'open again');
    expect(await client.get(`bulwark:cb:{${a.name!}}:open`)).toBe('open');
    expect(isOpenError(await fa().catch((e: unknown) => e))).toBe(true);
  });

  it('isolate() and reset() act fleet-wide; a process that starts later reads the state', async () => {
    const [a, b] = pair();
    a.isolate();
    await until(() => b.state === 'isolated', 2_000, 'isolated');
    const c = circuitBreaker({ name: a.name!, store, minimumCalls: 4 });
    await until(() => c.state === 'isolated', 2_000, 'late joiner isolated');
    b.reset();
    await until(() => a.state === 'closed' && c.state === 'closed', 2_000, 'reset');
    expect(await client.exists(`bulwark:cb:{${a.name!}}:open`)).toBe(0);
  });

  it('a process that starts while the fleet is open opens too', async () => {
    const [a] = pair();
    const fa = resilient(fail, { circuitBreaker: a });
    for (let i = 0; i < 4; i++) await fa().catch(() => undefined);
    await until(() => a.state === 'open', 2_000, 'open');
    await sleep(50);
    const late = circuitBreaker({ name: a.name!, store, minimumCalls: 4, halfOpenAfter: 300 });
    await until(() => late.state === 'open', 2_000, 'late joiner open');
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
    await sleep(50);
    await local.kill();
    await until(() => c.status !== 'ready', 2_000, 'disconnect');
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
    await until(() => events.includes('storeRecovered'), 2_000, 'storeRecovered');
    const fb = resilient(fail, { circuitBreaker: b });
    for (let i = 0; i < 4; i++) await fb().catch(() => undefined);
    await until(() => a.state === 'open', 3_000, 'sharing resumed');
    await s.close();
    c.disconnect();
    await local.stop();
  });
});
