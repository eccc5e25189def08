/**
 * Fleet single flight of a cache with a Redis store: four Node processes (test/redis/cache-worker.mjs on
 * the built package) call the same keys at once, released together by a barrier (a line on stdin once
 * every process is connected), never at a wall-clock time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, ensureBuilt, noRedis, RedisServer, sleep, until } from './server.js';

const worker = fileURLToPath(new URL('./cache-worker.mjs', import.meta.url));

interface Report {
  ready?: boolean;
  computing?: string;
  at?: number;
  phase?: string;
  computed?: Record<string, number>;
  values?: string[];
  unavailable?: string[];
  done?: number;
}

/** A worker process and the JSON lines it printed. */
class Worker {
  readonly reports: Report[] = [];
  readonly child: ChildProcess;
  private stderr = '';

  constructor(port: number, options: object) {
    this.child = spawn(process.execPath, [worker, String(port), JSON.stringify(options)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) =>
      this.reports.push(JSON.parse(line) as Report),
    );
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
  }

  /** Resolves with the first report that `match` accepts (waits up to 60 s: a busy machine starts Node slowly). */
  async next(match: (report: Report) => boolean): Promise<Report> {
    await until(
      () => this.reports.some(match) || this.child.exitCode !== null,
      60_000,
      'a worker report',
    );
    const report = this.reports.find(match);
    if (report === undefined) throw new Error(`worker exited:\n${this.stderr}`);
    return report;
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }
}

describe.skipIf(noRedis)('a cache shared by 4 processes: one computation per key per fleet', () => {
  let server: RedisServer;
  let workers: Worker[] = [];
  const keys = ['a', 'b', 'c'];

  beforeAll(async () => {
    ensureBuilt();
    server = await RedisServer.start();
  }, 400_000); // a build on a loaded 2-core machine takes minutes (as in the other fleet tests)
  afterEach(() => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    workers = [];
  });
  afterAll(async () => {
    await server?.stop();
  });

  const start = async (count: number, options: object): Promise<Worker[]> => {
    const started = Array.from({ length: count }, () => new Worker(server.port, options));
    workers.push(...started);
    await Promise.all(started.map((w) => w.next((r) => r.ready === true)));
    return started;
  };
  const phase = async (fleet: Worker[], name: string): Promise<Report[]> => {
    for (const w of fleet) w.send(`go ${name}`); // the barrier: every process is connected
    return Promise.all(fleet.map((w) => w.next((r) => r.phase === name)));
  };
  const computations = (reports: Report[], key: string): number =>
    reports.reduce((sum, r) => sum + (r.computed![key] ?? 0), 0);

  it('on a cold key and again when it expires: one computation per key, every process gets it', async () => {
    const options = { name: 'fleet-cold', keys, ttl: 2_000, computeMs: 200 };
    const fleet = await start(4, options);
    const client = await connect(server.port);
    for (const round of ['cold', 'expired']) {
      const reports = await phase(fleet, round);
      for (const report of reports) expect(report.unavailable).toEqual([]);
      for (const [i, key] of keys.entries()) {
        expect(computations(reports, key)).toBe(1);
        expect(new Set(reports.map((r) => r.values![i])).size).toBe(1);
      }
      // Until every value expired in Redis: then the next round is a stampede without the lock.
      await until(
        async () =>
          (await client.zcount(
            'bulwark:cache:{fleet-cold}:e',
            `(${await redisNow(client)}`,
            '+inf',
          )) === 0,
        10_000,
        'expiry',
      );
    }
    client.disconnect();
    for (const w of fleet) w.send('exit');
  }, 180_000);

  it('a holder killed mid-computation blocks the others no longer than its lock', async () => {
    const lockTimeout = 1_000;
    const options = { name: 'fleet-killed', keys, ttl: 10_000, computeMs: 100, lockTimeout };
    const [holder] = await start(1, { ...options, keys: ['a'], hang: true });
    const waiters = await start(3, options);
    holder!.send('go held');
    const locked = await holder!.next((r) => r.computing === 'a');
    const reports = phase(waiters, 'after');
    await sleep(100);
    holder!.child.kill('SIGKILL');
    const done = await reports;
    for (const key of keys) expect(computations(done, key)).toBe(1);
    // Key a: served once the dead holder's lock expired, not after a waiter's whole wait (lockTimeout
    // from its own first look, which came later), and not before the lock's time was up.
    for (const report of done) {
      expect(report.done! - locked.at!).toBeGreaterThanOrEqual(lockTimeout - 50);
      expect(report.done! - locked.at!).toBeLessThan(lockTimeout + 1_500);
    }
  }, 180_000);
});

async function redisNow(client: Awaited<ReturnType<typeof connect>>): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
}
