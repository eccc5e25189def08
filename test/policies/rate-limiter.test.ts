import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import {
  backoff,
  isResilienceError,
  RateLimitedError,
  rateLimiter,
  RateLimiter,
  resilient,
  type RateLimiterOptions,
  type ResilienceEvent,
  type Store,
} from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';

function setup(options: RateLimiterOptions, clock = new ManualClock()) {
  const limiter = rateLimiter({ clock, ...options });
  const started: [string, number][] = [];
  const fn = vi.fn((name: string) => {
    started.push([name, clock.now()]);
    return Promise.resolve(name);
  });
  const call = resilient(fn, { clock, rateLimiter: limiter });
  const events: ResilienceEvent[] = [];
  call.on((event) => events.push(event));
  const settle = (name: string): Promise<unknown> =>
    call(name).then(
      (value) => value,
      (error: unknown) => error,
    );
  return { limiter, clock, fn, call, settle, started, events };
}

describe('rate limiter: defaults and GCRA', () => {
  it('describes its defaults: interval 1 s, burst = limit, maxWait 0', () => {
    expect(rateLimiter({ limit: 5 }).describe()).toEqual({
      stage: 'rateLimiter',
      name: 'none',
      limit: 5,
      interval: 1_000,
      burst: 5,
      maxWait: 0,
    });
    expect(rateLimiter({ limit: 5 })).toBeInstanceOf(RateLimiter);
  });

  it('admits a burst of `limit` at once, then rejects with retryAfter until the next token', async () => {
    const { settle, fn, clock, limiter, events } = setup({ limit: 2 });
    expect(await settle('a')).toBe('a');
    expect(await settle('b')).toBe('b');
    const error = (await settle('c')) as RateLimitedError;
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error.retryAfter).toBe(500);
    expect(error.code).toBe('ERR_BULWARK_RATE_LIMITED');
    expect(error.name).toBe('RateLimitedError');
    expect(error.message).toBe('Rate limited; retry after 500 ms');
    expect(isResilienceError(error)).toBe(true);
    expect(fn).toHaveBeenCalledTimes(2);
    expect(events).toContainEqual({ type: 'callRejected', reason: 'rateLimited', retryAfter: 500 });
    await clock.advance(499);
    expect(await settle('d')).toBeInstanceOf(RateLimitedError);
    await clock.advance(1);
    expect(await settle('e')).toBe('e');
    expect(await settle('f')).toBeInstanceOf(RateLimitedError);
    expect(limiter.stats()).toEqual({ admitted: 3, rejected: 3, waited: 0, retryAfter: 500 });
    expect(clock.pending()).toBe(0);
  });

  it('is exact with a rate that does not divide the interval', () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ limit: 3, clock });
    for (let i = 0; i < 3; i++) expect(limiter.tryAcquire(0)).toBe(true);
    expect(limiter.tryAcquire(0)).toBe(false);
    expect(limiter.retryAfter(0)).toBeCloseTo(1_000 / 3, 10);
    expect(limiter.tryAcquire(333)).toBe(false);
    expect(limiter.tryAcquire(334)).toBe(true);
    // 1 000 ms after the start, exactly 3 more tokens have been earned in all.
    expect(limiter.tryAcquire(666)).toBe(false);
    expect(limiter.tryAcquire(667)).toBe(true);
    expect(limiter.tryAcquire(999)).toBe(false);
    expect(limiter.tryAcquire(1_000)).toBe(true);
    expect(limiter.tryAcquire(1_000)).toBe(false);
  });

  it('a quiet period refills up to burst, never more', () => {
    const limiter = rateLimiter({ limit: 10, burst: 3, clock: new ManualClock() });
    let admitted = 0;
    while (limiter.tryAcquire(1e6)) admitted++;
    expect(admitted).toBe(3);
    expect(limiter.retryAfter(1e6)).toBe(100);
  });

  it('burst 1 spaces calls interval / limit apart', () => {
    const limiter = rateLimiter({ limit: 4, burst: 1, clock: new ManualClock() });
    expect(limiter.tryAcquire(0)).toBe(true);
    expect(limiter.tryAcquire(249)).toBe(false);
    expect(limiter.tryAcquire(250)).toBe(true);
    expect(limiter.tryAcquire(500)).toBe(true);
  });

  it('honours interval', () => {
    const limiter = rateLimiter({ limit: 2, interval: 60_000, clock: new ManualClock() });
    expect(limiter.tryAcquire(0) && limiter.tryAcquire(0)).toBe(true);
    expect(limiter.tryAcquire(29_999)).toBe(false);
    expect(limiter.tryAcquire(30_000)).toBe(true);
  });

  it('takes a fractional limit: 0.5 per second is one call every 2 s', () => {
    const limiter = rateLimiter({ limit: 0.5, clock: new ManualClock() });
    expect(limiter.burst).toBe(1);
    expect(limiter.tryAcquire(0)).toBe(true);
    expect(limiter.tryAcquire(1_999)).toBe(false);
    expect(limiter.tryAcquire(2_000)).toBe(true);
  });

  it('reserve() reserves a future token within maxWait, or nothing', () => {
    const limiter = rateLimiter({ limit: 1, interval: 100, clock: new ManualClock() });
    expect(limiter.reserve(0, 0)).toBe(0);
    expect(limiter.reserve(0, 50)).toBe(-1);
    expect(limiter.reserve(0, 100)).toBe(100);
    expect(limiter.reserve(0, 200)).toBe(200);
    expect(limiter.stats()).toMatchObject({ admitted: 3, rejected: 1, waited: 2 });
  });

  it('stats() reads no time before it has a clock', () => {
    expect(rateLimiter({ limit: 1 }).stats()).toEqual({
      admitted: 0,
      rejected: 0,
      waited: 0,
      retryAfter: 0,
    });
  });
});

describe('rate limiter: maxWait', () => {
  it('callers wait in FIFO order, each for its own token; beyond maxWait they are rejected', async () => {
    const { call, settle, clock, started, limiter, events } = setup({
      limit: 1,
      interval: 100,
      maxWait: 250,
    });
    const results = ['a', 'b', 'c'].map((name) => call(name));
    const rejected = (await settle('d')) as RateLimitedError;
    expect(rejected).toBeInstanceOf(RateLimitedError);
    expect(rejected.retryAfter).toBe(300);
    await clock.advance(200);
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c']);
    expect(started).toEqual([
      ['a', 0],
      ['b', 100],
      ['c', 200],
    ]);
    expect(events.filter((e) => e.type === 'rateLimitWaited')).toEqual([
      { type: 'rateLimitWaited', wait: 100 },
      { type: 'rateLimitWaited', wait: 200 },
    ]);
    expect(limiter.stats()).toMatchObject({ admitted: 3, rejected: 1, waited: 2 });
    expect(clock.pending()).toBe(0);
  });

  it('a later caller never overtakes one already waiting', async () => {
    const { call, clock, started } = setup({ limit: 1, interval: 100, maxWait: 1_000 });
    const first = call('first');
    const second = call('second');
    await clock.advance(50);
    const third = call('third');
    await clock.advance(1_000);
    await Promise.all([first, second, third]);
    expect(started.map(([name]) => name)).toEqual(['first', 'second', 'third']);
    expect(started.map(([, at]) => at)).toEqual([0, 100, 200]);
  });

  it('maxWait Infinity always waits', async () => {
    const { call, clock, started } = setup({ limit: 1, interval: 1_000, maxWait: Infinity });
    const all = Promise.all(['a', 'b', 'c', 'd'].map((n) => call(n)));
    await clock.advance(3_000);
    await all;
    expect(started.at(-1)).toEqual(['d', 3_000]);
  });

  it('a wait never runs past the total deadline: it is rejected at once instead', async () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ clock, limit: 1, interval: 200, maxWait: 1_000 });
    const fn = vi.fn(() => Promise.resolve('ok'));
    const call = resilient(fn, { clock, rateLimiter: limiter, timeout: { total: 150 } });
    await call();
    const error = await call().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfter).toBe(200);
    expect(clock.now()).toBe(0);
  });

  it('an abort during the wait rejects with the reason at once, removes its listener and gives the token back', async () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ clock, limit: 1, interval: 100, maxWait: 1_000 });
    const policy = resilient({ clock, rateLimiter: limiter });
    const started: number[] = [];
    const task = () => {
      started.push(clock.now());
      return 'ok';
    };
    await policy.execute(task);
    const controller = new AbortController();
    const waiting = policy.execute(task, { signal: controller.signal }).catch((e: unknown) => e);
    await clock.advance(10);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    expect(limiter.stats().admitted).toBe(2);
    const reason = new Error('user left');
    controller.abort(reason);
    expect(await waiting).toBe(reason);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(limiter.stats().admitted).toBe(1);
    expect(clock.pending()).toBe(0);
    // The token came back: the next caller waits for the slot the aborted one had reserved.
    const next = policy.execute(task);
    await clock.advance(90);
    await next;
    expect(started).toEqual([0, 100]);
  });

  it('an aborted wait that is not the latest reservation leaves the later waiters in place', async () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ clock, limit: 1, interval: 100, maxWait: 1_000 });
    const policy = resilient({ clock, rateLimiter: limiter });
    const started: string[] = [];
    const task = (name: string) => () => {
      started.push(`${name}@${clock.now()}`);
      return name;
    };
    await policy.execute(task('a'));
    const controller = new AbortController();
    const b = policy.execute(task('b'), { signal: controller.signal }).catch((e: unknown) => e);
    const c = policy.execute(task('c'));
    controller.abort('stop');
    expect(await b).toBe('stop');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    await clock.advance(200);
    expect(await c).toBe('c');
    expect(started).toEqual(['a@0', 'c@200']);
  });

  it('a signal already aborted rejects before taking a token', async () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ clock, limit: 1 });
    const policy = resilient({ clock, rateLimiter: limiter });
    const task = vi.fn(() => 'ok');
    const error = await policy
      .execute(task, { signal: AbortSignal.abort('gone') })
      .catch((e: unknown) => e);
    expect(error).toBe('gone');
    expect(task).not.toHaveBeenCalled();
    expect(limiter.stats().admitted).toBe(0);
  });
});

describe('rate limiter: retries', () => {
  it('each retry attempt takes a token', async () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ clock, limit: 10 });
    const fn = vi
      .fn<() => Promise<string>>()
      .mockRejectedValueOnce(new Error('1'))
      .mockRejectedValueOnce(new Error('2'))
      .mockResolvedValue('ok');
    const call = resilient(fn, {
      clock,
      rateLimiter: limiter,
      retry: { maxAttempts: 3, backoff: backoff.constant(0) },
    });
    expect(await call()).toBe('ok');
    expect(limiter.stats().admitted).toBe(3);
  });

  it('a retry without a token is rejected: the downstream is protected from our retries too', async () => {
    const clock = new ManualClock();
    const limiter = rateLimiter({ clock, limit: 2 });
    const fn = vi.fn(() => Promise.reject(new Error('down')));
    const call = resilient(fn, {
      clock,
      rateLimiter: limiter,
      retry: { maxAttempts: 3, backoff: backoff.constant(10) },
    });
    const result = call().catch((e: unknown) => e);
    await clock.advance(20);
    expect(await result).toBeInstanceOf(RateLimitedError);
    expect(fn).toHaveBeenCalledTimes(2);
  });
});

describe('rate limiter: option validation', () => {
  it.each<[string, unknown, RegExp]>([
    ['missing limit', {}, /`rateLimiter.limit` to be a number > 0 \(calls per interval\)/],
    ['limit 0', { limit: 0 }, /`rateLimiter.limit` to be a number > 0, got `0`/],
    ['limit string', { limit: '5' }, /`rateLimiter.limit`.*\(string\)/],
    ['interval 0', { limit: 1, interval: 0 }, /`rateLimiter.interval`/],
    ['burst 0', { limit: 1, burst: 0 }, /`rateLimiter.burst`/],
    ['burst 1.5', { limit: 1, burst: 1.5 }, /`rateLimiter.burst` to be an integer/],
    ['maxWait -1', { limit: 1, maxWait: -1 }, /`rateLimiter.maxWait`/],
    ['clock', { limit: 1, clock: 5 }, /`rateLimiter.clock`/],
    ['name', { limit: 1, name: 5 }, /`rateLimiter.name`/],
    ['unknown', { limit: 1, rate: 5 }, /Unknown option `rateLimiter.rate`/],
    ['not an object', 5, /`rateLimiter` to be an options object/],
  ])('%s fails at wrap time naming the option', (_, options, message) => {
    expect(() => resilient(() => 1, { rateLimiter: options as RateLimiterOptions })).toThrow(
      TypeError,
    );
    expect(() => resilient(() => 1, { rateLimiter: options as RateLimiterOptions })).toThrow(
      message,
    );
    expect(() => rateLimiter(options as RateLimiterOptions)).toThrow(message);
  });

  it('a standalone limiter names itself', () => {
    const limiter = rateLimiter({ limit: 1, name: 'api' });
    expect(limiter.name).toBe('api');
    expect(limiter.describe().name).toBe('api');
  });
});

describe('rate limiter: a store that fails (local fallback)', () => {
  /**
   * A store whose rate limiter fails every command (Redis down, or slower than its timeout), after
   * `grants` granted ones that say how many processes share the limit.
   */
  function failingStore(grants = 0, processes = 1): Store {
    const unused = (): never => {
      throw new Error('not used');
    };
    let left = grants;
    return {
      forRateLimiter: () => ({
        reserve: () =>
          left-- > 0
            ? Promise.resolve({ granted: 1, wait: 0, processes })
            : Promise.reject(new Error('down')),
      }),
      forCircuit: unused,
      forCache: unused,
      recheckAfter: 1_000,
    };
  }

  it('starts the local bucket empty: a stall does not release a burst, tokens come at the limit', async () => {
    const { call, clock, started, events } = setup({
      name: 'api',
      limit: 10,
      store: failingStore(),
    });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => call('a')));
    // 10 tokens a second from the failure on: none yet (a full bucket would have admitted 10).
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(0);
    expect(events.filter((e) => e.type === 'storeUnavailable')).toHaveLength(1);
    await clock.advance(100);
    await Promise.allSettled(Array.from({ length: 5 }, () => call('b')));
    expect(started).toHaveLength(1);
    // Up to the probe (recheckAfter 1 s, which fails again): limit × d / interval in all.
    await clock.advance(900);
    await Promise.allSettled(Array.from({ length: 20 }, () => call('c')));
    expect(started).toHaveLength(10);
  });

  it('acts on its share of the limit: limit / the processes the store counted', async () => {
    const { call, clock, started, limiter } = setup({
      name: 'api',
      limit: 40,
      store: failingStore(1, 4),
    });
    await call('granted'); // through the store: 4 processes share the limit
    await Promise.allSettled(Array.from({ length: 5 }, () => call('a')));
    expect(started).toHaveLength(1);
    expect(limiter.retryAfter(clock.now())).toBe(100); // 10 a second, from empty
    await clock.advance(500);
    await Promise.allSettled(Array.from({ length: 20 }, () => call('b')));
    expect(started).toHaveLength(1 + 5);
    // A wait within maxWait is served from the share too.
    const waiting = rateLimiter({
      clock,
      name: 'w',
      limit: 40,
      maxWait: 200,
      store: failingStore(1, 4),
    });
    const wait = resilient(async () => clock.now(), { clock, rateLimiter: waiting });
    await wait();
    const at = wait(); // the store fails: empty at 500, a token every 100 ms
    await clock.advance(100);
    await expect(at).resolves.toBe(600);
    expect(waiting.stats()).toMatchObject({ admitted: 2, waited: 1 });
  });
  describe('expectedProcesses: the fewest processes assumed to share the limit while acting locally', () => {
    it('a process that never reached the store takes limit / expectedProcesses (and its burst share)', async () => {
      const { call, clock, started, limiter } = setup({
        name: 'api',
        limit: 40,
        store: failingStore(),
        expectedProcesses: 4,
      });
      await Promise.allSettled(Array.from({ length: 5 }, () => call('a')));
      expect(started).toHaveLength(0); // the local bucket starts empty
      expect(limiter.retryAfter(clock.now())).toBe(100); // 40 / 4 = 10 a second, not 40
      await clock.advance(900); // up to the probe (recheckAfter 1 s)
      await Promise.allSettled(Array.from({ length: 40 }, () => call('b')));
      expect(started).toHaveLength(9); // a quarter of the 36 the whole limit would have admitted
      // A quiet process saves up a quarter of the burst (10), not the whole burst (40).
      await clock.advance(120_000);
      await Promise.allSettled(Array.from({ length: 40 }, () => call('c')));
      expect(started).toHaveLength(9 + 10);
    });

    it('a larger count from the store wins; a smaller one does not go below expectedProcesses', async () => {
      const counted8 = setup({
        name: 'api',
        limit: 40,
        store: failingStore(1, 8),
        expectedProcesses: 4,
      });
      await counted8.call('granted');
      await Promise.allSettled(Array.from({ length: 5 }, () => counted8.call('a')));
      expect(counted8.limiter.retryAfter(counted8.clock.now())).toBe(200); // 40 / 8 = 5 a second
      await counted8.clock.advance(800);
      await Promise.allSettled(Array.from({ length: 40 }, () => counted8.call('b')));
      expect(counted8.started).toHaveLength(1 + 4);

      const counted2 = setup({
        name: 'api',
        limit: 40,
        store: failingStore(1, 2),
        expectedProcesses: 4,
      });
      await counted2.call('granted');
      await Promise.allSettled(Array.from({ length: 5 }, () => counted2.call('a')));
      expect(counted2.limiter.retryAfter(counted2.clock.now())).toBe(100); // max(2, 4) = 4
      await counted2.clock.advance(800);
      await Promise.allSettled(Array.from({ length: 40 }, () => counted2.call('b')));
      expect(counted2.started).toHaveLength(1 + 8);
    });

    it('defaults to 1 and shows in describe()', () => {
      const store = failingStore();
      expect(rateLimiter({ name: 'a', limit: 1, store }).describe()).toMatchObject({
        store: 'shared',
        expectedProcesses: 1,
      });
      expect(
        rateLimiter({ name: 'a', limit: 1, store, expectedProcesses: 20 }).describe(),
      ).toMatchObject({ expectedProcesses: 20 });
      expect(rateLimiter({ limit: 1 }).describe()).not.toHaveProperty('expectedProcesses');
    });

    it.each<[string, unknown, RegExp]>([
      ['0', 0, /Expected `rateLimiter.expectedProcesses` to be an integer >= 1, got `0`/],
      ['-2', -2, /`rateLimiter.expectedProcesses` to be an integer >= 1, got `-2`/],
      ['2.5', 2.5, /`rateLimiter.expectedProcesses` to be an integer >= 1, got `2.5`/],
      [
        'Infinity',
        Infinity,
        /`rateLimiter.expectedProcesses` to be an integer >= 1, got `Infinity`/,
      ],
      [
        'a string',
        '4',
        /`rateLimiter.expectedProcesses` to be an integer >= 1, got `"4"` \(string\)/,
      ],
    ])('expectedProcesses %s fails at wrap time naming the option', (_, value, message) => {
      const options = { name: 'a', limit: 1, store: failingStore(), expectedProcesses: value };
      expect(() => rateLimiter(options as RateLimiterOptions)).toThrow(TypeError);
      expect(() => rateLimiter(options as RateLimiterOptions)).toThrow(message);
      expect(() => resilient(() => 1, { rateLimiter: options as RateLimiterOptions })).toThrow(
        message,
      );
    });

    it('expectedProcesses without a store fails at wrap time', () => {
      const message = /`rateLimiter.expectedProcesses` applies to a limiter with a `store`/;
      expect(() => rateLimiter({ limit: 1, expectedProcesses: 2 })).toThrow(TypeError);
      expect(() => rateLimiter({ limit: 1, expectedProcesses: 2 })).toThrow(message);
      expect(() => resilient(() => 1, { rateLimiter: { limit: 1, expectedProcesses: 2 } })).toThrow(
        message,
      );
    });
  });
});
