import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Issue 10 item 9, as a user meets it: `node script.mjs`. A call waiting on its timeout keeps the
// process alive until the timeout (and the fallback) ran; once every call settled, nothing of the library
// holds the process. The library is bundled from src/ into a temporary folder, next to the scripts.

const root = fileURLToPath(new URL('..', import.meta.url));
let dir = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-keep-alive-'));
  await build({
    entryPoints: [join(root, 'src/index.ts')],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    outfile: join(dir, 'bulwark.mjs'),
    logLevel: 'silent',
  });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node <script>`; a process still alive after 30 s is killed (then `signal` says so). */
function runScript(name: string, source: string): Promise<Run> {
  const file = join(dir, name);
  writeFileSync(file, source);
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [file],
      { cwd: dir, timeout: 30_000 },
      (_error, stdout, stderr) => {
        resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
      },
    );
  });
}

const header = `import { once, EventEmitter } from 'node:events';
import { resilient } from './bulwark.mjs';
const events = new EventEmitter();
// Waits for an event that never comes: no timer, no socket, nothing that keeps the process alive.
const waitForEvent = () => once(events, 'ready');
`;

describe('node script.mjs', () => {
  it('a call waiting on its timeout keeps the process alive: the fallback is printed, exit 0', async () => {
    const run = await runScript(
      'waits.mjs',
      `${header}
const fn = resilient(waitForEvent, { timeout: 500, fallback: 'gave up' });
console.log(await fn());
`,
    );
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('gave up');
    expect(run.code).toBe(0);
  });

  it.each([
    [
      'with a listener attached (a timer per call)',
      `fn.on(() => {});\nconsole.log(await fn.execute(waitForEvent));`,
    ],
    [
      'with a caller signal (the slow path)',
      `console.log(await fn.execute(waitForEvent, { signal: new AbortController().signal }));`,
    ],
  ])('so does one %s', async (_name, call) => {
    const run = await runScript(
      'waits-more.mjs',
      `${header}
const fn = resilient({ timeout: 500, fallback: 'gave up' });
${call}
`,
    );
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('gave up');
    expect(run.code).toBe(0);
  });

  it('a script whose calls all settled exits without waiting for any of the library’s timers', async () => {
    // Ten minutes of timeout, cache ttl, breaker window and limiter interval: a process held by any of
    // them would be killed after 30 s (signal set, no exit code).
    const run = await runScript(
      'settled.mjs',
      `${header}
const TEN_MINUTES = 600_000;
const fn = resilient(async (x) => x * 2, {
  timeout: { attempt: TEN_MINUTES, total: TEN_MINUTES },
  retry: true,
  cache: { ttl: TEN_MINUTES },
  circuitBreaker: { window: { type: 'time', duration: TEN_MINUTES } },
  rateLimiter: { limit: 1_000, interval: TEN_MINUTES },
  bulkhead: { maxConcurrent: 2, maxQueue: 10 },
  fallback: -1,
});
const results = await Promise.all([1, 2, 3, 4, 5].map((x) => fn(x)));
const timed = resilient(async () => 'in time', { timeout: TEN_MINUTES });
results.push(await timed(), await timed());
console.log(results.join(','));
`,
    );
    expect(run.stderr).toBe('');
    expect(run.signal).toBeNull();
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe('2,4,6,8,10,in time,in time');
  });
});
