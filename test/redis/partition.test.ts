/**
 * Partitioned policies with a Redis store (issue 14): each partition's keys apart, in one hash slot per
 * partition key; events carrying the key; a partition with a lease, fleet slots or a fleet link still
 * busy is not at rest. Several resilient() pipelines with one policy name stand for several processes.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  RateLimitedError,
  resilient,
  type ResilienceEvent,
} from '../../src/index.js';
import { redisStore, type RedisStore } from '../../src/redis/index.js';
import type { SharedCircuit, Store } from '../../src/store.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { connect, gated, noRedis, RedisServer, until } from './server.js';

/** The hash tag of a key as Redis Cluster reads it: the slot is that of the tag. */
function tagOf(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  return close <= open + 1 ? key : key.slice(open + 1, close);
}

/** A downstream per key: `hold` waits until the test lets it go, `fail` fails, else succeeds. */
function downstream() {
  const held: (() => void)[] = [];
  const fn = (key: string, mode: 'ok' | 'fail' | 'hold' = 'ok'): Promise<string> => {
    if (mode === 'fail') return Promise.reject(new Error(`${key} down`));
    if (mode === 'hold') return new Promise((resolve) => held.push(() => resolve(key)));
    return Promise.resolve(key);
  };
  return { fn, held };
}

const byKey = { by: (key: string) => key };

describe.skipIf(noRedis)('partitioned policies with a Redis store', () => {
  let server: RedisServer;
  let client: Redis;
  let store: RedisStore;
  let n = 0;
  const name = (): string => `part-${++n}`;

  beforeAll(async () => {
    server = await RedisServer.start();
    client = await connect(server.port);
    // Patient: Redis answers in well under 2 s even on a loaded machine; the outage test makes its own.
    store = redisStore(client, { commandTimeout: 2_000, recheckAfter: 100 });
  });
  afterAll(async () => {
    await store?.close();
    client?.disconnect();
    await server?.stop();
  });

  it('a limit per tenant held across processes; each partition has keys of its own, in one slot per key', async () => {
    const policy = name();
    const limiter = { name: policy, limit: 2, interval: 60_000, store, partition: byKey };
    const one = resilient(async (tenant: string) => tenant, { rateLimiter: limiter });
    const two = resilient(async (tenant: string) => tenant, { rateLimiter: limiter });
    const events: ResilienceEvent[] = [];
    two.on((e) => events.push(e));
    await one('acme');
    await two('acme');
    // The tenant's two tokens are spent fleet-wide; another tenant (a key a brace or a colon would
    // otherwise break out of the hash tag) has its own.
    await expect(two('acme')).rejects.toBeInstanceOf(RateLimitedError);
    const odd = 'we{ird}:50%';
    expect(await one(odd)).toBe(odd);
    expect(await two(odd)).toBe(odd);
    await expect(one(odd)).rejects.toBeInstanceOf(RateLimitedError);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'callRejected', reason: 'rateLimited', partition: 'acme' }),
    );
    const keys = await client.keys(`bulwark:rl:*${policy}*`);
    const tags = new Set(keys.map(tagOf));
    expect([...tags].sort()).toEqual([`${policy}:acme`, `${policy}:we%7Bird%7D%3A50%25`]);
    expect(keys).toContain(`bulwark:rl:p:{${policy}:acme}`);
    // Nothing under the unpartitioned policy's own keys.
    expect(await client.keys(`bulwark:rl:{${policy}}*`)).toEqual([]);
  });

  it('a policy name the hash tag cannot hold is refused when the policy is made, partitioned or not', () => {
    for (const options of [
      { circuitBreaker: { name: 'a{b}', store, partition: byKey } },
      { rateLimiter: { name: 'a}b', limit: 1, store, partition: byKey } },
      { bulkhead: { name: '{ab', store, partition: byKey } },
    ])
      expect(() => resilient(async (key: string) => key, options)).toThrow(
        'to contain no `{` or `}`',
      );
  });

  it('a partition key longer than 128 characters goes into its keys as its SHA-256', async () => {
    const policy = name();
    const call = resilient(async (tenant: string) => tenant.length, {
      rateLimiter: { name: policy, limit: 1, interval: 60_000, store, partition: byKey },
    });
    const long = 'x'.repeat(10_000);
    expect(await call(long)).toBe(10_000);
    await expect(call(long)).rejects.toBeInstanceOf(RateLimitedError);
    expect(await call(`${long}y`)).toBe(10_001); // another key, another partition
    const keys = await client.keys(`bulwark:rl:p:{${policy}:*`);
    expect(keys.length).toBeGreaterThanOrEqual(2);
    for (const key of keys) expect(key.length).toBeLessThan(120);
    expect(keys.every((key) => /^[^{]*\{part-\d+:%h[\w-]{43}\}/.test(key))).toBe(true);
  });

  it('a circuit per host across processes: one host opening its fleet circuit leaves the others closed', async () => {
    const policy = name();
    const breaker = {
      name: policy,
      store,
      consecutiveFailures: 1,
      halfOpenAfter: 60_000,
      partition: byKey,
    };
    const { fn } = downstream();
    const one = resilient(fn, { circuitBreaker: breaker });
    const two = resilient(fn, { circuitBreaker: breaker });
    const events: ResilienceEvent[] = [];
    two.on((e) => events.push(e));
    expect(await two('dead')).toBe('dead'); // two's partition of `dead` listens to the fleet
    expect(await two('alive')).toBe('alive');
    await one('dead', 'fail').catch(() => undefined);
    // `dead` opens in the fleet: two hears it for that host only.
    await until(
      () => two.stats().partitions?.circuitBreaker?.byKey.dead?.state === 'open',
      10_000,
      'the fleet circuit of dead open in process two',
    );
    await expect(two('dead')).rejects.toBeInstanceOf(CircuitOpenError);
    expect(await two('alive')).toBe('alive');
    expect(await one('alive')).toBe('alive');
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'circuitOpened', partition: 'dead' }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'callRejected', reason: 'circuitOpen', partition: 'dead' }),
    );
    expect(await client.exists(`bulwark:cb:p:{${policy}:dead}:open`)).toBe(1);
    expect(await client.exists(`bulwark:cb:p:{${policy}:alive}:open`)).toBe(0);
    for (const key of await client.keys(`bulwark:cb:*${policy}*`))
      expect([`${policy}:dead`, `${policy}:alive`]).toContain(tagOf(key));
    // A process that makes the partition afterwards reads the fleet's open circuit.
    const three = resilient(fn, { circuitBreaker: breaker });
    await three('dead').catch(() => undefined);
    await until(
      () => three.stats().partitions?.circuitBreaker?.byKey.dead?.state === 'open',
      10_000,
      'process three reads the open circuit',
    );
  });

  it('fleet slots per customer: a busy customer is refused in every process, the others are not', async () => {
    const policy = name();
    const pool = { name: policy, store, maxConcurrent: 1, partition: byKey };
    const { fn, held } = downstream();
    const one = resilient(fn, { bulkhead: pool });
    const two = resilient(fn, { bulkhead: pool });
    const events: ResilienceEvent[] = [];
    two.on((e) => events.push(e));
    const busy = one('acme', 'hold');
    await until(() => held.length === 1, 10_000, 'acme running in process one');
    await expect(two('acme')).rejects.toBeInstanceOf(BulkheadRejectedError);
    expect(await two('globex')).toBe('globex');
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'callRejected', reason: 'bulkheadFull', partition: 'acme' }),
    );
    for (const key of await client.keys(`bulwark:bh:*${policy}*`))
      expect([`${policy}:acme`, `${policy}:globex`]).toContain(tagOf(key));
    held[0]!();
    await busy;
    // The slot is back fleet-wide (its release is fire-and-forget).
    await until(
      async () =>
        (await two('acme')
          .then(() => true)
          .catch(() => false)) === true,
      10_000,
      'acme admitted again',
    );
  });

  it('a leased limiter partition is not at rest while its lease may still be spent', async () => {
    const clock = new ManualClock();
    const call = resilient(async (tenant: string) => tenant, {
      clock,
      rateLimiter: {
        name: name(),
        limit: 100,
        lease: 10,
        store,
        partition: { by: (tenant: string) => tenant, maxPartitions: 1 },
      },
    });
    await call('a'); // a lease of 2 tokens (they accrue in 20 ms): one left to spend
    await call('b');
    let partitions = call.stats().partitions!.rateLimiter!;
    expect(Object.keys(partitions.byKey).sort()).toEqual(['a', 'b']);
    expect(partitions.kept).toBe(1);
    await clock.advance(20); // both leases have run out
    await call('c');
    partitions = call.stats().partitions!.rateLimiter!;
    expect(Object.keys(partitions.byKey)).toEqual(['c']);
    expect(partitions.evicted).toBe(2);
  });

  it('a fleet bulkhead partition is not at rest while it holds a slot', async () => {
    const { fn, held } = downstream();
    const call = resilient(fn, {
      bulkhead: {
        name: name(),
        store,
        maxConcurrent: 2,
        partition: { by: (key: string) => key, maxPartitions: 1 },
      },
    });
    const busy = call('a', 'hold');
    await until(() => held.length === 1, 10_000, 'a running');
    await call('b');
    let partitions = call.stats().partitions!.bulkhead!;
    expect(Object.keys(partitions.byKey).sort()).toEqual(['a', 'b']);
    expect(partitions.kept).toBe(1);
    expect(partitions.byKey.a).toMatchObject({ inFlight: 1 });
    held[0]!();
    await busy;
    await call('c');
    partitions = call.stats().partitions!.bulkhead!;
    expect(Object.keys(partitions.byKey)).toEqual(['c']);
  });

  it('a circuit partition whose samples have not reached the fleet is not at rest', async () => {
    const clock = new ManualClock();
    const policy = name();
    const call = resilient(downstream().fn, {
      clock,
      circuitBreaker: {
        name: policy,
        store,
        minimumCalls: 100,
        partition: { by: (host: string) => host, maxPartitions: 1 },
      },
    });
    await call('a', 'fail').catch(() => undefined); // closed, its failure waits for the next flush
    await call('b');
    let partitions = call.stats().partitions!.circuitBreaker!;
    expect(Object.keys(partitions.byKey).sort()).toEqual(['a', 'b']);
    expect(partitions.kept).toBe(1);
    await clock.advance(100); // the batches go out
    const window = `bulwark:cb:p:{${policy}:a}:w`;
    await until(async () => (await client.exists(window)) === 1, 10_000, 'a’s sample flushed');
    // Dropped once quiet (its flush answered), when a partition is made.
    let i = 0;
    await until(
      async () => {
        await call(`h${++i}`);
        return call.stats().partitions?.circuitBreaker?.byKey.a === undefined;
      },
      10_000,
      'a dropped',
    );
    partitions = call.stats().partitions!.circuitBreaker!;
    expect(partitions.evicted).toBeGreaterThan(0);
  });

  it('a dropped circuit partition stops listening to its fleet circuit', async () => {
    const live = new Set<string>();
    // The store, counting the subscriptions each partition's circuit holds.
    const counting: Store = {
      partitioned: true,
      recheckAfter: store.recheckAfter,
      forRateLimiter: (n, p) => store.forRateLimiter(n, p),
      forCache: (n) => store.forCache(n),
      forCircuit: (n, p): SharedCircuit => {
        const circuit = store.forCircuit(n, p);
        return {
          ...circuit,
          subscribe: (onMessage, onResync) => {
            live.add(p!);
            const off = circuit.subscribe(onMessage, onResync);
            return () => {
              live.delete(p!);
              off();
            };
          },
        };
      },
    };
    const call = resilient(async (host: string) => host, {
      circuitBreaker: {
        name: name(),
        store: counting,
        partition: { by: (host: string) => host, maxPartitions: 1 },
      },
    });
    await call('a');
    expect(live.has('a')).toBe(true);
    // Partitions made one after another: once `a`'s sample has reached the fleet, it is dropped.
    let i = 0;
    await until(
      async () => {
        await call(`h${++i}`);
        return call.stats().partitions?.circuitBreaker?.byKey.a === undefined;
      },
      10_000,
      'a dropped',
    );
    // Exactly the live partitions listen (the others made meanwhile are live, or kept until quiet).
    expect(live.has('a')).toBe(false);
    expect([...live].sort()).toEqual(
      Object.keys(call.stats().partitions!.circuitBreaker!.byKey).sort(),
    );
    expect(call.stats().partitions!.circuitBreaker!.evicted).toBeGreaterThan(0);
  });

  it('store events carry the partition key', async () => {
    const slow = gated(client);
    const impatient = redisStore(slow.client, { commandTimeout: 50, recheckAfter: 60_000 });
    const call = resilient(async (tenant: string) => tenant, {
      rateLimiter: { name: name(), limit: 10, store: impatient, partition: byKey },
    });
    const events: ResilienceEvent[] = [];
    call.on((e) => events.push(e));
    // Redis does not answer in time: the call goes on with this process's share of the limit.
    await call('acme').catch(() => undefined);
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'storeUnavailable',
        policy: 'rateLimiter',
        partition: 'acme',
      }),
    );
    for (const release of slow.held) release();
  });
});
