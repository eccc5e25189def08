// A runtime-agnostic behaviour suite for the BUILT package: plain JavaScript assertions (./assert.mjs),
// no test framework, no Node API, real timers with short durations, so it runs unchanged on Node, Bun,
// Deno, a Cloudflare Worker and a browser. esm.mjs, cjs.cjs, deno.mjs, worker.mjs and browser.html run it;
// test/matrix/run.mjs runs those on every runtime. Every stage is exercised: retry, timeout (with the
// attempt's and a caller's signal), circuit breaker, rate limiter, bulkhead, cache and fallback.
import assert from './assert.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const never = () => new Promise(() => undefined);

/**
 * Runs every case against `lib` (the package's exports); returns { passed, failed, lines } (`lines`: what
 * it printed, for runtimes whose console the runner cannot see).
 */
export async function runSuite(lib, label, out = console) {
  const {
    resilient,
    resilientSync,
    backoff,
    circuitBreaker,
    rateLimiter,
    bulkhead,
    cache,
    retryBudget,
    isResilienceError,
    ResilienceError,
    TimeoutError,
    CircuitOpenError,
    RateLimitedError,
    BulkheadRejectedError,
    systemClock,
  } = lib;

  const cases = [];
  const test = (name, fn) => cases.push({ name, fn });

  test('exports', () => {
    for (const name of [
      'resilient',
      'resilientSync',
      'backoff',
      'circuitBreaker',
      'rateLimiter',
      'bulkhead',
      'cache',
      'retryBudget',
      'isResilienceError',
      'systemClock',
    ]) {
      assert.ok(lib[name] !== undefined, `missing export ${name}`);
    }
    assert.equal(typeof systemClock.now(), 'number');
  });

  test('retry: maxAttempts counts every call; a success ends it', async () => {
    let calls = 0;
    const fn = resilient(
      async (x) => {
        calls++;
        if (calls < 3) throw new Error(`fail ${calls}`);
        return x * 2;
      },
      { retry: { maxAttempts: 3, backoff: backoff.constant(1) } },
    );
    assert.equal(await fn(21), 42);
    assert.equal(calls, 3);
  });

  test('retry: the last error is rethrown unchanged', async () => {
    class MyError extends Error {}
    const errors = [];
    const fn = resilient(
      () => {
        const error = new MyError(`attempt ${errors.length + 1}`);
        errors.push(error);
        return Promise.reject(error);
      },
      { retry: { maxAttempts: 2, backoff: backoff.constant(1) } },
    );
    await assert.rejects(fn(), (error) => error === errors[1] && error instanceof MyError);
    assert.equal(errors.length, 2);
  });

  test('retry budget: retries stop at ratio + floor', async () => {
    const budget = retryBudget({ ratio: 0, minPerSecond: 0.1, window: 10_000 });
    let calls = 0;
    const fn = resilient(
      () => {
        calls++;
        return Promise.reject(new Error('down'));
      },
      { retry: { maxAttempts: 5, backoff: backoff.constant(0), budget } },
    );
    await assert.rejects(fn());
    await assert.rejects(fn());
    // One retry in all (0.1/s × 10 s), then none.
    assert.equal(calls, 3);
  });

  test('timeout: an attempt that never settles rejects with TimeoutError', async () => {
    const started = Date.now();
    const fn = resilient(never, { timeout: 20 });
    await assert.rejects(fn(), (error) => {
      assert.ok(error instanceof TimeoutError);
      assert.equal(error.scope, 'attempt');
      assert.equal(error.timeout, 20);
      assert.equal(error.code, 'ERR_BULWARK_TIMEOUT');
      return true;
    });
    assert.ok(Date.now() - started < 1_000);
  });

  test('timeout: the attempt signal is aborted with the TimeoutError', async () => {
    const policy = resilient({ timeout: { attempt: 15, total: 200 } });
    let seen;
    await assert.rejects(
      policy.execute(({ signal }) => {
        seen = signal;
        return never();
      }),
      TimeoutError,
    );
    assert.equal(seen.aborted, true);
    assert.ok(seen.reason instanceof TimeoutError);
  });

  test('timeout with a caller signal: the attempt times out, the caller signal keeps no listener', async () => {
    const policy = resilient({ timeout: 15 });
    const controller = new AbortController();
    const added = [];
    let most = 0;
    const add = controller.signal.addEventListener.bind(controller.signal);
    const remove = controller.signal.removeEventListener.bind(controller.signal);
    controller.signal.addEventListener = (type, listener, options) => {
      added.push(listener);
      most = Math.max(most, added.length);
      add(type, listener, options);
    };
    controller.signal.removeEventListener = (type, listener, options) => {
      const index = added.indexOf(listener);
      if (index >= 0) added.splice(index, 1);
      remove(type, listener, options);
    };
    let seen;
    await assert.rejects(
      policy.execute(
        ({ signal }) => {
          seen = signal;
          return never();
        },
        { signal: controller.signal },
      ),
      TimeoutError,
    );
    assert.equal(seen.aborted, true);
    assert.ok(seen.reason instanceof TimeoutError);
    assert.equal(controller.signal.aborted, false);
    assert.ok(most >= 1, 'the call watched the caller signal');
    assert.equal(added.length, 0, 'no listener left on the caller signal');
  });

  test('timeout with a caller signal: the caller aborts first and gets its reason', async () => {
    const policy = resilient({ timeout: 5_000 });
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    const call = policy.execute(never, { signal: controller.signal });
    setTimeout(() => controller.abort(reason), 5);
    await assert.rejects(call, (error) => error === reason);
  });

  test('timeout: total caps attempts and backoff together', async () => {
    let calls = 0;
    const fn = resilient(
      () => {
        calls++;
        return Promise.reject(new Error('down'));
      },
      { retry: { maxAttempts: 10, backoff: backoff.constant(30) }, timeout: { total: 50 } },
    );
    const started = Date.now();
    await assert.rejects(fn());
    assert.ok(calls >= 1 && calls <= 2, `calls ${calls}`);
    assert.ok(Date.now() - started < 500);
  });

  test('circuit breaker: opens, rejects without calling fn, half-opens, closes', async () => {
    const breaker = circuitBreaker({ consecutiveFailures: 2, halfOpenAfter: 30 });
    let fail = true;
    let calls = 0;
    const fn = resilient(
      () => {
        calls++;
        return fail ? Promise.reject(new Error('down')) : Promise.resolve('up');
      },
      { circuitBreaker: breaker },
    );
    await assert.rejects(fn());
    await assert.rejects(fn());
    assert.equal(breaker.state, 'open');
    await assert.rejects(
      fn(),
      (error) => error instanceof CircuitOpenError && error.retryAfter > 0,
    );
    assert.equal(calls, 2);
    await sleep(45);
    fail = false;
    assert.equal(await fn(), 'up');
    assert.equal(breaker.state, 'closed');
  });

  test('rate limiter: rejects past the burst with retryAfter', async () => {
    const limiter = rateLimiter({ limit: 2, interval: 60_000 });
    const fn = resilient(async () => 'ok', { rateLimiter: limiter });
    assert.equal(await fn(), 'ok');
    assert.equal(await fn(), 'ok');
    await assert.rejects(fn(), (error) => {
      assert.ok(error instanceof RateLimitedError);
      assert.ok(isResilienceError(error));
      assert.ok(error.retryAfter > 0);
      return true;
    });
  });

  test('rate limiter: maxWait waits for a token', async () => {
    const fn = resilient(async () => 'ok', {
      rateLimiter: { limit: 1, interval: 20, maxWait: 100 },
    });
    assert.equal(await fn(), 'ok');
    const started = Date.now();
    assert.equal(await fn(), 'ok');
    assert.ok(Date.now() - started >= 10);
  });

  test('bulkhead: bounds calls in flight, queues FIFO, rejects when full', async () => {
    const pool = bulkhead({ maxConcurrent: 1, maxQueue: 1 });
    let running = 0;
    let maxRunning = 0;
    const order = [];
    const fn = resilient(
      async (id) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(10);
        order.push(id);
        running--;
        return id;
      },
      { bulkhead: pool },
    );
    const a = fn('a');
    const b = fn('b');
    await assert.rejects(fn('c'), (error) => {
      assert.ok(error instanceof BulkheadRejectedError);
      assert.equal(error.reason, 'full');
      return true;
    });
    assert.deepEqual(await Promise.all([a, b]), ['a', 'b']);
    assert.deepEqual(order, ['a', 'b']);
    assert.equal(maxRunning, 1);
    assert.deepEqual(pool.stats(), { inFlight: 0, queued: 0, rejected: 1 });
  });

  test('cache: hits skip fn; failures are not stored', async () => {
    let calls = 0;
    let fail = true;
    const fn = resilient(
      (key) => {
        calls++;
        return fail ? Promise.reject(new Error('down')) : Promise.resolve(`v:${key}`);
      },
      { cache: { ttl: 1_000 } },
    );
    await assert.rejects(fn('k'));
    fail = false;
    assert.equal(await fn('k'), 'v:k');
    assert.equal(await fn('k'), 'v:k');
    assert.equal(calls, 2);
    const shared = cache({ ttl: 1_000, maxEntries: 10 });
    const g = resilient(async (key) => key.toUpperCase(), { cache: shared });
    assert.equal(await g('x'), 'X');
    assert.equal(await g('x'), 'X');
    assert.equal(shared.stats().hits, 1);
  });

  test('fallback: a value or a function; sees library rejections; never cached', async () => {
    const byValue = resilient(() => Promise.reject(new Error('down')), { fallback: 'fb' });
    assert.equal(await byValue(), 'fb');
    let seen;
    const byFunction = resilient(never, {
      timeout: 10,
      fallback: (error, x) => {
        seen = error;
        return `fb:${x}`;
      },
    });
    assert.equal(await byFunction(7), 'fb:7');
    assert.ok(seen instanceof TimeoutError);
    let calls = 0;
    const cached = resilient(
      () => {
        calls++;
        return Promise.reject(new Error('down'));
      },
      { cache: true, fallback: null },
    );
    assert.equal(await cached('k'), null);
    assert.equal(await cached('k'), null);
    assert.equal(calls, 2);
  });

  test('abort: rejects with signal.reason at once, even in a backoff sleep; no fallback', async () => {
    const policy = resilient({
      retry: { maxAttempts: 5, backoff: backoff.constant(10_000) },
      fallback: 'fb',
    });
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    const started = Date.now();
    const call = policy.execute(() => Promise.reject(new Error('down')), {
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(reason), 10);
    await assert.rejects(call, (error) => error === reason);
    assert.ok(Date.now() - started < 1_000);
  });

  test('abort: a long-lived signal option aborts waits in the bulkhead queue', async () => {
    const controller = new AbortController();
    const pool = bulkhead({ maxConcurrent: 1, maxQueue: 5 });
    const fn = resilient(() => sleep(30), { bulkhead: pool, signal: controller.signal });
    const first = fn();
    const queued = fn();
    controller.abort(new Error('shutdown'));
    await assert.rejects(queued, /shutdown/);
    await assert.rejects(first, /shutdown/);
    await sleep(40);
    assert.deepEqual(pool.stats().queued, 0);
  });

  test('resilientSync: returns the value itself, retries and falls back', () => {
    let calls = 0;
    const parse = resilientSync(
      (text) => {
        calls++;
        if (calls < 2) throw new Error('flaky');
        return JSON.parse(text);
      },
      { retry: { maxAttempts: 2 } },
    );
    assert.deepEqual(parse('{"a":1}'), { a: 1 });
    assert.equal(calls, 2);
    const safe = resilientSync(
      () => {
        throw new Error('always');
      },
      { fallback: () => 'default' },
    );
    assert.equal(safe(), 'default');
    assert.throws(() => resilientSync(() => 1, { timeout: 10 }), TypeError);
  });

  test('options: one TypeError naming the option', () => {
    assert.throws(
      () => resilient(() => 1, { retry: { maxAttempts: 0 }, timout: 5 }),
      (error) =>
        error instanceof TypeError &&
        error.message.includes('retry.maxAttempts') &&
        error.message.includes('timout'),
    );
  });

  test('describe(): the fixed order with defaults', () => {
    const fn = resilient(async () => 1, { retry: true, timeout: 100 });
    const description = fn.describe();
    assert.deepEqual(description.order, [
      'fallback',
      'cache',
      'deadline',
      'retry',
      'hedge',
      'circuitBreaker',
      'rateLimiter',
      'bulkhead',
      'timeout',
      'chaos',
    ]);
    const retry = description.stages.find((stage) => stage.stage === 'retry');
    assert.equal(retry.enabled, true);
    assert.equal(retry.maxAttempts, 3);
  });

  test('errors: one base class with stable codes', () => {
    const error = new CircuitOpenError(5);
    assert.ok(error instanceof ResilienceError);
    assert.ok(error instanceof Error);
    assert.equal(error.code, 'ERR_BULWARK_CIRCUIT_OPEN');
    assert.equal(isResilienceError(new Error('x')), false);
  });

  const lines = [];
  const print = (line) => {
    lines.push(line);
    out.log(line);
  };
  let passed = 0;
  const failed = [];
  for (const { name, fn } of cases) {
    let timer;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('case timed out after 5 s')), 5_000);
        }),
      ]);
      passed++;
    } catch (error) {
      failed.push(name);
      print(
        `  ✗ [${label}] ${name}\n    ${String(error?.stack ?? error)
          .split('\n')
          .slice(0, 6)
          .join('\n    ')}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }
  print(`[${label}] ${passed} passed, ${failed.length} failed`);
  return { passed, failed, lines };
}
