import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';

// Issue 14 part 4: the core touches no Node-only global unguarded. The core, bundled from src/, runs in
// a fresh V8 context holding web globals only, as a browser or a Cloudflare Worker has them: no
// `process`, and timers whose handles are numbers (no `unref`). `npm run test:matrix` runs the full
// behaviour suite on the real runtimes (Deno, workerd, Chromium among them); this keeps the rule inside
// `npm test`.

const root = fileURLToPath(new URL('..', import.meta.url));

interface WebTimers {
  setTimeout: (callback: () => void, ms?: number) => number;
  clearTimeout: (id: number) => void;
  pending: () => number;
}

/** Timers as a browser has them: numeric ids, nothing to ref or unref. */
function webTimers(): WebTimers {
  const live = new Map<number, ReturnType<typeof setTimeout>>();
  let next = 1;
  return {
    setTimeout(callback, ms) {
      const id = next++;
      live.set(
        id,
        setTimeout(() => {
          live.delete(id);
          callback();
        }, ms),
      );
      return id;
    },
    clearTimeout(id) {
      clearTimeout(live.get(id));
      live.delete(id);
    },
    pending: () => live.size,
  };
}

let source = '';

beforeAll(async () => {
  const result = await build({
    entryPoints: [`${root}src/index.ts`],
    bundle: true,
    write: false,
    format: 'iife',
    globalName: 'bulwark',
    platform: 'neutral',
    target: 'es2022',
    logLevel: 'silent',
  });
  source = result.outputFiles[0]!.text;
});

type Lib = typeof import('../src/index.js');

function load(timers: WebTimers, warnings: unknown[]): Lib {
  const context = {
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    performance: { now: () => performance.now() },
    AbortController,
    AbortSignal,
    Event,
    EventTarget,
    DOMException,
    queueMicrotask,
    console: { ...console, warn: (...args: unknown[]) => warnings.push(args) },
  };
  return runInNewContext(`${source}\nbulwark`, context) as Lib;
}

describe('the core with web globals only (no process, numeric timer handles)', () => {
  it('runs every stage: retry, timeout with a signal, breaker, limiter, bulkhead, cache, fallback', async () => {
    const timers = webTimers();
    const lib = load(timers, []);
    let calls = 0;
    const flaky = lib.resilient(
      async (x: number) => {
        calls++;
        if (calls === 1) throw new Error('once');
        return x * 2;
      },
      {
        retry: { maxAttempts: 2, backoff: lib.backoff.constant(1) },
        circuitBreaker: { consecutiveFailures: 5 },
        rateLimiter: { limit: 100, interval: 1_000 },
        bulkhead: { maxConcurrent: 2, maxQueue: 2 },
        cache: { ttl: 60_000 },
        timeout: 1_000,
      },
    );
    expect(await flaky(21)).toBe(42);
    expect(await flaky(21)).toBe(42); // a cache hit
    expect(calls).toBe(2);

    const controller = new AbortController();
    let attemptSignal: AbortSignal | undefined;
    const timedOut = lib.resilient({ timeout: 10, fallback: 'fell back' }).execute(
      ({ signal }) => {
        attemptSignal = signal;
        return new Promise(() => {});
      },
      { signal: controller.signal },
    );
    expect(await timedOut).toBe('fell back');
    expect(attemptSignal?.aborted).toBe(true);

    const shared = lib.resilient(() => new Promise(() => {}), { timeout: 10 });
    await expect(shared()).rejects.toMatchObject({ code: 'ERR_BULWARK_TIMEOUT' });
  });

  it('a listener that throws does not break the call when there is no process.emitWarning', async () => {
    const lib = load(webTimers(), []);
    const fn = lib.resilient(async () => 'ok', { retry: true });
    fn.on(() => {
      throw new Error('broken listener');
    });
    const failing = lib.resilient(() => Promise.reject(new Error('x')), {
      retry: { maxAttempts: 2, backoff: lib.backoff.constant(1) },
      fallback: 'fb',
    });
    failing.on(() => {
      throw new Error('broken listener');
    });
    expect(await fn()).toBe('ok');
    expect(await failing()).toBe('fb');
  });
});
