import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  RateLimitedError,
  ResilienceError,
  TimeoutError,
  isResilienceError,
  resilient,
  resilientFetch,
} from '../src/index.js';
import { isLocalRejection } from '../src/errors.js';
import { ManualClock } from './helpers/manual-clock.js';

interface Copy {
  TimeoutError: new (timeout: number) => Error;
  isResilienceError: (e: unknown) => boolean;
  resilient?: typeof resilient;
}

const root = join(import.meta.dirname, '..');
const require = createRequire(import.meta.url);

describe('error classes', () => {
  it('TimeoutError: code, name, message, timeout, scope (attempt by default)', () => {
    const error = new TimeoutError(250);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toBeInstanceOf(ResilienceError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('ERR_BULWARK_TIMEOUT');
    expect(error.name).toBe('TimeoutError');
    expect(error.message).toBe('Attempt timed out after 250 ms');
    expect(error.timeout).toBe(250);
    expect(error.scope).toBe('attempt');
    expect(String(error)).toBe('TimeoutError: Attempt timed out after 250 ms');
    const total = new TimeoutError(3_000, 'total');
    expect(total.scope).toBe('total');
    expect(total.message).toBe('Call timed out after 3000 ms');
  });

  it('CircuitOpenError: retryAfter, rounded up in the message; Infinity means isolated', () => {
    const error = new CircuitOpenError(1_234.2);
    expect(error.code).toBe('ERR_BULWARK_CIRCUIT_OPEN');
    expect(error.name).toBe('CircuitOpenError');
    expect(error.retryAfter).toBe(1_234.2);
    expect(error.message).toBe('Circuit is open; retry after 1235 ms');
    const isolated = new CircuitOpenError(Infinity);
    expect(isolated.message).toBe('Circuit is isolated');
    expect(isolated.retryAfter).toBe(Infinity);
  });

  it('RateLimitedError: retryAfter, rounded up in the message', () => {
    const error = new RateLimitedError(0.4);
    expect(error.code).toBe('ERR_BULWARK_RATE_LIMITED');
    expect(error.name).toBe('RateLimitedError');
    expect(error.retryAfter).toBe(0.4);
    expect(error.message).toBe('Rate limited; retry after 1 ms');
  });

  it('BulkheadRejectedError: reason full or queueTimeout', () => {
    const full = new BulkheadRejectedError('full');
    expect(full.code).toBe('ERR_BULWARK_BULKHEAD_REJECTED');
    expect(full.name).toBe('BulkheadRejectedError');
    expect(full.reason).toBe('full');
    expect(full.message).toBe('Bulkhead is full');
    const waited = new BulkheadRejectedError('queueTimeout');
    expect(waited.reason).toBe('queueTimeout');
    expect(waited.message).toBe('Bulkhead queue wait timed out');
  });

  it('every class is a ResilienceError with a stack trace', () => {
    for (const error of [
      new TimeoutError(1),
      new CircuitOpenError(1),
      new RateLimitedError(1),
      new BulkheadRejectedError('full'),
    ]) {
      expect(error).toBeInstanceOf(ResilienceError);
      expect(isResilienceError(error)).toBe(true);
      expect(error.stack).toContain(error.name);
    }
  });
});

describe('isResilienceError', () => {
  it.each([
    ['an Error', new Error('x')],
    ['a TypeError', new TypeError('x')],
    ['an Error named TimeoutError', Object.assign(new Error('x'), { name: 'TimeoutError' })],
    ['an object with a bulwark-like code', { code: 'ERR_BULWARK_TIMEOUT' }],
    ['a marker that is not exactly true', { [Symbol.for('bulwark.ResilienceError')]: 'true' }],
    ['a marker under a string key', { 'bulwark.ResilienceError': true }],
    ['null', null],
    ['undefined', undefined],
    ['a string', 'TimeoutError'],
    ['a number', 42],
    ['a function', () => {}],
  ])('is false for %s', (_label, value) => {
    expect(isResilienceError(value)).toBe(false);
  });

  it('is true for an object carrying the global marker (how a second copy of the package is recognised)', () => {
    const foreign = Object.assign(new Error('from another copy'), {
      [Symbol.for('bulwark.ResilienceError')]: true,
      code: 'ERR_BULWARK_TIMEOUT',
    });
    expect(isResilienceError(foreign)).toBe(true);
    expect(foreign instanceof ResilienceError).toBe(false);
  });

  it('recognises errors the pipeline itself raised', async () => {
    const clock = new ManualClock();
    const call = resilient(() => new Promise(() => {}), { timeout: 5, clock })();
    const caught = call.catch((e: unknown) => e);
    await clock.advance(5);
    expect(isResilienceError(await caught)).toBe(true);
  });

  describe('across separately bundled copies of the package (ESM and CJS side by side)', () => {
    let dir: string;
    const copies: [string, Copy][] = [];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'bulwark-copies-'));
      for (const format of ['esm', 'cjs'] as const) {
        const outfile = join(dir, format === 'esm' ? 'copy.mjs' : 'copy.cjs');
        await build({
          entryPoints: [join(root, 'src/index.ts')],
          bundle: true,
          format,
          platform: 'node',
          target: 'node20',
          outfile,
          logLevel: 'silent',
        });
        copies.push([
          `fresh ${format} bundle`,
          format === 'esm'
            ? ((await import(pathToFileURL(outfile).href)) as Copy)
            : (require(outfile) as Copy),
        ]);
      }
      // The package's own build, when one is there.
      const cjs = join(root, 'dist/index.cjs');
      const esm = join(root, 'dist/index.js');
      if (existsSync(cjs)) copies.push(['dist/index.cjs', require(cjs) as Copy]);
      if (existsSync(esm)) {
        copies.push(['dist/index.js', (await import(pathToFileURL(esm).href)) as Copy]);
      }
      // Two esbuild bundles and four imports: over 10 s on a loaded 2-core machine.
    }, 120_000);

    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it('an inner total TimeoutError from one copy is never retried by an outer pipeline of the other', async () => {
      const esm = copies[0]![1];
      const cjs = copies[1]![1];
      for (const [inner, outer] of [
        [esm, cjs],
        [cjs, esm],
      ] as const) {
        const clock = new ManualClock();
        let calls = 0;
        const innerFn = inner.resilient!(
          () => {
            calls++;
            return new Promise(() => {});
          },
          { timeout: { total: 10 }, clock },
        );
        const outerFn = outer.resilient!(innerFn, {
          retry: { maxAttempts: 3, backoff: () => 0 },
          clock,
        });
        const caught = outerFn().catch((e: unknown) => e);
        for (let i = 0; i < 5; i++) await clock.advance(10);
        const error = (await caught) as { name: string; scope: string };
        expect(error).toBeInstanceOf(inner.TimeoutError);
        expect(error.scope).toBe('total');
        expect(calls).toBe(1);
      }
    });

    it('resilientFetch retries an attempt TimeoutError from the other copy, as its own', async () => {
      for (const [, copy] of copies.slice(0, 2)) {
        let sends = 0;
        const http = resilientFetch({
          retry: { maxAttempts: 2, backoff: () => 0 },
          // A fetch that is itself wrapped by the other copy and timed out on its first attempt.
          fetch: () => {
            sends++;
            return sends === 1
              ? Promise.reject(new copy.TimeoutError(5))
              : Promise.resolve(new Response('ok'));
          },
        });
        const response = await http('http://127.0.0.1:9/');
        expect(await response.text()).toBe('ok');
        expect(sends).toBe(2);
      }
    });

    it('each copy is a distinct class, yet every guard recognises every copy’s errors', () => {
      expect(copies.length).toBeGreaterThanOrEqual(2);
      const all: [string, Copy][] = [['source', { TimeoutError, isResilienceError }], ...copies];
      for (const [, copy] of copies) expect(copy.TimeoutError).not.toBe(TimeoutError);
      for (const [maker, from] of all) {
        const error = new from.TimeoutError(10);
        for (const [checker, by] of all) {
          expect(by.isResilienceError(error), `${checker} recognises an error of ${maker}`).toBe(
            true,
          );
          expect(by.isResilienceError(new Error('plain'))).toBe(false);
        }
      }
    });
  });
});

describe('isLocalRejection (not retried, not a breaker failure)', () => {
  it('is true for an open circuit, a rate limit and a full bulkhead', () => {
    expect(isLocalRejection(new CircuitOpenError(1))).toBe(true);
    expect(isLocalRejection(new RateLimitedError(1))).toBe(true);
    expect(isLocalRejection(new BulkheadRejectedError('queueTimeout'))).toBe(true);
  });

  it('is false for a timeout, a plain error and non-errors', () => {
    expect(isLocalRejection(new TimeoutError(1))).toBe(false);
    expect(isLocalRejection(new Error('x'))).toBe(false);
    expect(isLocalRejection(undefined)).toBe(false);
  });

  it('recognises a local rejection of another copy by its code', () => {
    const foreign = {
      [Symbol.for('bulwark.ResilienceError')]: true,
      code: 'ERR_BULWARK_RATE_LIMITED',
    };
    expect(isLocalRejection(foreign)).toBe(true);
  });
});
