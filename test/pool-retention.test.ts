import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * The fast path keeps its per-call state in a pool and, to save stores, clears on release only the
 * fields a call set. Whatever the call, once it settled nothing of it may stay reachable from the pool:
 * not its `this`, its arguments, its result nor its promise. Measured on the built package in a child
 * process with `--expose-gc` (WeakRefs read after full collections).
 */
const root = fileURLToPath(new URL('..', import.meta.url));
let survivors: Record<string, string[]>;

beforeAll(() => {
  if (!existsSync(`${root}dist/index.js`)) {
    throw new Error('dist/ is missing: run `npm run build` (npm test runs it as pretest)');
  }
  const output = execFileSync(
    process.execPath,
    ['--expose-gc', `${root}test/alloc/retention.mjs`],
    { encoding: 'utf8', timeout: 120_000 },
  );
  survivors = JSON.parse(output) as Record<string, string[]>;
}, 130_000);

describe('a settled call leaves nothing alive in the pooled per-call state', () => {
  it.each([
    ['timeout', 'a timed call with one argument'],
    ['timeoutFourArgs', 'a timed call with four arguments'],
    ['timeoutSixArgs', 'a timed call with six arguments (a rest array)'],
    ['timeoutFails', 'a timed call whose fn rejects'],
    ['timedOut', 'a call that timed out, once fn settled'],
    ['retry', 'an untimed call (retry)'],
    ['allButTimeout', 'an untimed call through retry, breaker, bulkhead and fallback'],
  ])('%s: %s', (name) => {
    expect(survivors[name]).toEqual([]);
  });

  // Kept, the promise of the call that filled an entry lived as long as the entry: a cache that misses
  // much moved each one to the old generation of the heap. A hit makes its own (Cache.promiseOf).
  it.each([
    ['cached', 'a cache miss'],
    ['cachedTimeout', 'a cache miss through a timeout'],
  ])('%s: %s keeps its result cached, not its promise', (name) => {
    expect(survivors[name]).toEqual(['result']);
  });
});
