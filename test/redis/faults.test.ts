import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isResilienceError, resilient, type ResilienceEvent } from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { connect, noRedis, RedisServer, sleep, until } from './server.js';

/**
 * Redis killed mid-run, restarted, and paused, under steady traffic through a pipeline whose
 * breaker, limiter and cache all share state in it: no call is lost or hangs past its own timeout.
 */
describe.skipIf(noRedis)('Redis trouble under traffic', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('SIGKILL, a restart and a pause (SIGSTOP): every call settles in time, events fire, sharing resumes', async () => {
    const client = await connect(server.port);
    const store = redisStore(client, { commandTimeout: 50, recheckAfter: 100 });
    const fn = resilient(async (id: number) => id, {
      timeout: 500,
      circuitBreaker: { name: 'faults', store, failureRateThreshold: 1 },
      // The local bucket starts empty when Redis goes (README, "The rate limit while Redis is out of
      // reach"): a call that finds the connection closed gets its first local token 0.1 ms later at this
      // limit, so it may wait that long (without maxWait it would be refused, as documented).
      rateLimiter: { name: 'faults', limit: 10_000, store, maxWait: 5 },
      cache: { name: 'faults', store, ttl: 1 },
    });
    const events: ResilienceEvent[] = [];
    fn.on((e) => events.push(e));

    let settled = 0;
    let slowest = 0;
    const failures: unknown[] = [];
    let running = true;
    const traffic = (async () => {
      for (let i = 0; running; i++) {
        const start = performance.now();
        try {
          expect(await fn(i % 50)).toBe(i % 50);
        } catch (error) {
          failures.push(error);
        }
        slowest = Math.max(slowest, performance.now() - start);
        settled++;
        await sleep(1);
      }
    })();
    // `n` more calls settle. A call that hangs fails this (no call settles for 10 s, against a 500 ms
    // timeout and 50 ms commands); calls that merely run slowly on a loaded machine do not (a count in
    // a fixed time would measure the machine, not the library).
    const calls = async (n: number): Promise<void> => {
      const target = settled + n;
      let seen = settled;
      let since = performance.now();
      while (settled < target) {
        if (settled !== seen) {
          seen = settled;
          since = performance.now();
        } else if (performance.now() - since > 10_000)
          throw new Error(
            `no call settled for 10 s (${settled - (target - n)} of ${n} calls settled, slowest so far ${Math.round(slowest)} ms): a call hangs`,
          );
        await sleep(10);
      }
    };

    await calls(50);
    await server.kill();
    await calls(50);
    const stores = (type: string): string[] =>
      events.filter((e) => e.type === type).map((e) => (e as { policy: string }).policy);
    await until(() => stores('storeUnavailable').length >= 3, 3_000, 'unavailable events');
    expect(new Set(stores('storeUnavailable'))).toEqual(
      new Set(['circuitBreaker', 'rateLimiter', 'cache']),
    );

    await server.launch();
    await until(() => client.status === 'ready', 5_000, 'reconnect');
    await until(() => stores('storeRecovered').length >= 3, 5_000, 'recovered events');
    await calls(50);
    // Sharing resumed: the limiter's state and the breaker's window are written again.
    await until(
      async () => (await client.exists('bulwark:rl:{faults}')) === 1,
      2_000,
      'limiter key',
    );
    await until(
      async () => (await client.exists('bulwark:cb:{faults}:w')) === 1,
      2_000,
      'breaker window',
    );

    // Redis paused (SIGSTOP: connections open, nothing answers) while 20 calls settle without it.
    server.pause();
    try {
      await calls(20);
    } finally {
      server.resume();
    }
    await calls(20);
    running = false;
    await traffic;
    await store.close();
    client.disconnect();

    // Nothing lost: every call settled with its value. None waited past its own timeout: such a call
    // would have failed with a TimeoutError (the wall time of the slowest, which a busy machine
    // stretches after the fact, is no measure of that).
    expect(failures).toEqual([]);
    expect(slowest).toBeGreaterThan(0);
    expect(events.some((e) => isResilienceError((e as { error?: unknown }).error))).toBe(false);
  }, 120_000); // phases wait for progress, not for a time: a loaded machine takes longer
});
