/**
 * Several Node processes sharing one Redis, each running test/redis/fleet-worker.mjs on the built
 * package (dist/): the fleet behaviour that one process cannot show.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noRedis, RedisServer } from './server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const worker = fileURLToPath(new URL('./fleet-worker.mjs', import.meta.url));

/** Builds dist/ when it is missing or older than a source file. */
function ensureBuilt(): void {
  const built = join(root, 'dist/redis/index.js');
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
        entry.isDirectory()
          ? newest(join(dir, entry.name))
          : statSync(join(dir, entry.name)).mtimeMs,
      ),
    );
  if (existsSync(built) && statSync(built).mtimeMs >= newest(join(root, 'src'))) return;
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
}

function runWorker(port: number, role: string, options: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [worker, String(port), role, JSON.stringify(options)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`worker ${role} exited with ${code}:\n${err}`));
      resolve(JSON.parse(out.trim()) as Record<string, unknown>);
    });
  });
}

describe.skipIf(noRedis)('a fleet of processes on one Redis', () => {
  let server: RedisServer;

  beforeAll(async () => {
    ensureBuilt();
    server = await RedisServer.start();
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  /** The most calls admitted in any window of `window` ms. */
  function busiest(times: number[], window: number): number {
    const sorted = [...times].sort((a, b) => a - b);
    let best = 0;
    let start = 0;
    for (let end = 0; end < sorted.length; end++) {
      while (sorted[end]! - sorted[start]! >= window) start++;
      best = Math.max(best, end - start + 1);
    }
    return best;
  }

  it.each([
    ['exact', 1],
    ['leased', 5],
  ])(
    'holds a limit of N per second across 4 processes (%s), within burst + N·t + lease',
    async (_mode, lease) => {
      const limit = 40;
      const duration = 2_000;
      const options = {
        name: `fleet-limit-${lease}`,
        limit,
        lease,
        duration,
        startAt: Date.now() + 1_000,
      };
      const reports = await Promise.all(
        Array.from({ length: 4 }, () => runWorker(server.port, 'limit', options)),
      );
      const admitted = reports.flatMap((r) => r.admitted as number[]);
      // Over the whole run: at most burst + limit × t (+ lease), and not much less.
      const bound = limit + (limit * duration) / 1_000 + lease;
      expect(admitted.length).toBeLessThanOrEqual(bound);
      expect(admitted.length).toBeGreaterThanOrEqual(0.8 * (limit + (limit * duration) / 1_000));
      // In any one-second window: burst + limit (+ lease).
      expect(busiest(admitted, 1_000)).toBeLessThanOrEqual(2 * limit + lease);
      // Every process got some: the limit is shared, not won by one.
      for (const report of reports) expect((report.admitted as number[]).length).toBeGreaterThan(0);
    },
    30_000,
  );

  it('one process’s failures open the circuit for all; one half-open trial across the fleet', async () => {
    const options = { name: 'fleet-breaker', halfOpenAfter: 300, startAt: Date.now() + 1_000 };
    const reports = await Promise.all([
      runWorker(server.port, 'open', options),
      runWorker(server.port, 'watch', options),
      runWorker(server.port, 'watch', options),
      runWorker(server.port, 'watch', options),
    ]);
    for (const report of reports) {
      expect(report.openedAfter).toBeGreaterThanOrEqual(0);
      expect(report.openedAfter).toBeLessThan(1_000);
      expect(report.state).toBe('closed');
    }
    // Exactly one run while half-open, in the whole fleet.
    expect(reports.reduce((sum, r) => sum + (r.halfOpenRuns as number), 0)).toBe(1);
    const rejected = reports.flatMap((r) => r.rejectedWhileTrial as string[]);
    // (Timing decides how many calls came while the trial ran; each of them was an open circuit.)
    for (const code of rejected) expect(code).toBe('ERR_BULWARK_CIRCUIT_OPEN');
  }, 30_000);
});
