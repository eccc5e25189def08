/**
 * Several Node processes sharing one Redis, each running test/redis/fleet-worker.mjs on the built
 * package (dist/): the fleet behaviour that one process cannot show.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, noRedis, RedisServer, until } from './server.js';

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

interface Worker {
  readonly role: string;
  readonly options: object;
}

/**
 * Starts every worker, waits until each has printed `ready` (connected, set up), then releases them
 * all at once with `go` on stdin: a barrier, so a slow start (a busy machine) delays the run instead
 * of eating into it. Resolves with each worker's JSON report.
 */
async function runFleet(
  port: number,
  workers: Worker[],
  beforeGo: () => Promise<void> = () => Promise.resolve(),
): Promise<Record<string, unknown>[]> {
  const children = workers.map(({ role, options }) => {
    const child = spawn(process.execPath, [worker, String(port), role, JSON.stringify(options)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let onReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.startsWith('ready\n')) onReady();
    });
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const report = new Promise<Record<string, unknown>>((resolve, reject) => {
      child.on('exit', (code) => {
        clearTimeout(timer);
        if (code !== 0) return reject(new Error(`worker ${role} exited with ${code}:\n${err}`));
        resolve(JSON.parse(out.slice('ready\n'.length).trim()) as Record<string, unknown>);
      });
    });
    report.catch(() => undefined); // awaited below; a worker that dies before ready rejects there
    return { child, ready: Promise.race([ready, report.then(() => undefined)]), report };
  });
  await Promise.all(children.map((c) => c.ready));
  await beforeGo();
  for (const { child } of children) child.stdin.write('go\n');
  return Promise.all(children.map((c) => c.report));
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

  /**
   * The most calls whose tokens were surely granted within one window of `window` ms: each call's
   * token was granted between when it was made and when it ran (ms timestamps: before the next ms),
   * so the calls made at or after `a` that ran before `a + window` had theirs granted in that window.
   */
  function busiest(calls: [made: number, ran: number][], window: number): number {
    let best = 0;
    for (const [a] of calls) {
      let n = 0;
      for (const [made, ran] of calls) if (made >= a && ran + 1 <= a + window) n++;
      best = Math.max(best, n);
    }
    return best;
  }

  it.each([
    ['exact', 1],
    ['leased', 5],
  ])(
    '4 processes × 20 callers with no pause, default store settings (%s): within burst + N·t + lease (+ N·d acting locally)',
    async (_mode, lease) => {
      const limit = 40;
      const reports = await runFleet(
        server.port,
        Array.from({ length: 4 }, () => ({
          role: 'limit',
          options: { name: `fleet-limit-${lease}`, limit, lease, duration: 2_000, loops: 20 },
        })),
      );
      const admitted = reports.flatMap((r) => r.admitted as number[]);
      const calls = reports.flatMap((r) =>
        (r.admitted as number[]).map((ran, k): [number, number] => [(r.made as number[])[k]!, ran]),
      );
      // What each process may add while it acts locally (README, "When Redis is slow or down"): its
      // share of the limit × d / interval, d from the unanswered command on.
      const episodes = reports.flatMap((r) => r.episodes as [number, number, number][]);
      const local = episodes.reduce(
        (sum, [from, to, share]) => sum + (share * (to - from + 1)) / 1_000,
        0,
      );
      // The bound counts tokens when Redis grants them (README): a call's token was granted after the
      // call was made and before it ran, whenever a busy event loop got to run it. Over the whole run,
      // from the first call made to the last run (ms timestamps: +1 ms), and in the busiest second.
      const t = Math.max(...admitted) + 1 - Math.min(...calls.map(([made]) => made));
      expect(admitted.length).toBeLessThanOrEqual(limit + (limit * t) / 1_000 + lease + local);
      expect(busiest(calls, 1_000)).toBeLessThanOrEqual(limit + limit + lease + local);
      // The fleet's burst went out (every caller hammers from the barrier on), and the limit is
      // shared, not won by one process.
      expect(admitted.length).toBeGreaterThanOrEqual(limit);
      for (const report of reports) expect((report.admitted as number[]).length).toBeGreaterThan(0);
    },
    120_000,
  );

  it('one process’s failures open the circuit for all; one half-open trial across the fleet', async () => {
    const options = { name: 'fleet-breaker', halfOpenAfter: 300 };
    const reports = await runFleet(
      server.port,
      [
        { role: 'open', options },
        { role: 'watch', options },
        { role: 'watch', options },
        { role: 'watch', options },
      ],
      // Every breaker's message connection is subscribed (a message sent before would be missed).
      async () => {
        const client = await connect(server.port);
        await until(
          async () => {
            const [, subscribers] = (await client.pubsub(
              'NUMSUB',
              'bulwark:cb:{fleet-breaker}',
            )) as [string, number];
            return subscribers >= 4;
          },
          60_000,
          'every breaker subscribed',
        );
        client.disconnect();
      },
    );
    for (const report of reports) {
      expect(report.openedAfter).toBeGreaterThanOrEqual(0);
      expect(report.openedAfter).toBeLessThan(1_000);
      expect(report.state).toBe('closed');
    }
    // Exactly one run while half-open, in the whole fleet, while Redis answers (README: "Guarantees,
    // while Redis answers"). A process that saw Redis miss its commandTimeout (a redis-server starved of
    // CPU on a loaded machine) decides alone, as documented: it may run one local trial of its own.
    const trials = reports.reduce((sum, r) => sum + (r.halfOpenRuns as number), 0);
    const trouble = reports.reduce((sum, r) => sum + (r.storeTrouble as number), 0);
    if (trouble === 0) expect(trials).toBe(1);
    else {
      console.warn(
        `Redis missed its commandTimeout ${trouble} time(s) in this run (a loaded machine): ${trials} trial(s), checked against one for the fleet plus one per process that saw it`,
      );
      // The fleet's one trial, plus at most one local trial by each process that saw the store fail.
      const troubled = reports.filter((r) => (r.storeTrouble as number) > 0).length;
      expect(trials).toBeGreaterThanOrEqual(1);
      expect(trials).toBeLessThanOrEqual(1 + troubled);
      expect(trials).toBeLessThanOrEqual(reports.length);
    }
    const rejected = reports.flatMap((r) => r.rejectedWhileTrial as string[]);
    // (Timing decides how many calls came while the trial ran; each of them was an open circuit.)
    for (const code of rejected) expect(code).toBe('ERR_BULWARK_CIRCUIT_OPEN');
  }, 120_000);
});
