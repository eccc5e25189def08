/**
 * #11.16: four processes share one bulkhead on a real redis-server; one of them is killed (SIGKILL)
 * while it holds slots. At most maxConcurrent calls run fleet-wide at any time, and the dead
 * process's slots come back within slotLease. Processes start on a barrier; every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { connect, ensureBuilt, noRedis, RedisServer, until } from './server.js';

const worker = fileURLToPath(new URL('./fleet-bulkhead-worker.mjs', import.meta.url));

interface Report {
  runs: [number, number][];
  rejected: number;
  storeUnavailable: number;
}

function start(port: number, options: object): { child: ChildProcess; report: Promise<Report> } {
  const child = spawn(process.execPath, [worker, String(port), JSON.stringify(options)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const report = new Promise<Report>((resolve, reject) => {
    child.on('exit', (code, signal) => {
      if (code !== 0) return reject(new Error(`worker exited with ${code ?? signal}:\n${err}`));
      resolve(JSON.parse(out.trim()) as Report);
    });
  });
  report.catch(() => undefined); // awaited by the test; one it no longer awaits (it failed) is no noise
  return { child, report };
}

/** The most intervals overlapping at one instant. */
function mostAtOnce(runs: [number, number][]): number {
  const edges = runs.flatMap(([s, e]): [number, number][] => [
    [s, 1],
    [e, -1],
  ]);
  // Ends before starts at the same millisecond: a slot handed over is not two calls at once.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, step] of edges) most = Math.max(most, (now += step));
  return most;
}

describe.skipIf(noRedis)('#11.16: one bulkhead for a fleet of processes', () => {
  let server: RedisServer;
  let client: Redis;

  beforeAll(async () => {
    ensureBuilt();
    server = await RedisServer.start();
    client = await connect(server.port);
  }, 400_000); // a build on a loaded 2-core machine takes minutes
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('at most maxConcurrent in flight across 4 processes; a killed holder’s slots come back within slotLease', async () => {
    const name = 'fleet-pool';
    const maxConcurrent = 5;
    const slotLease = 1_000;
    const hold = 3;
    const common = { name, maxConcurrent, slotLease, calls: 60, hold };
    const victim = start(server.port, { ...common, id: 0, role: 'victim' });
    const workers = [1, 2, 3].map((id) => start(server.port, { ...common, id, role: 'worker' }));
    const count = async (key: string): Promise<number> => Number(await client.get(key));
    const slots = `bulwark:bh:{${name}}:slots`;
    try {
      await until(async () => (await count(`${name}:ready`)) === 4, 30_000, 'workers ready');
      // The victim takes its slots (its calls never end); then the others share what is left.
      await client.publish(`${name}:control`, 'go:victim');
      await until(async () => (await count(`${name}:victim`)) === hold, 10_000, 'victim holds');
      const victimStart = Date.now();
      await client.publish(`${name}:control`, 'go:worker');
      await until(async () => (await count(`${name}:done`)) >= 20, 30_000, 'work under way');
      // The victim's tokens: the holders still there 300 ms later (the survivors' calls last 20-40 ms).
      const first = await client.zrange(slots, '0', '-1');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const second = new Set(await client.zrange(slots, '0', '-1'));
      const held = first.filter((token) => second.has(token));
      expect(held.length).toBeGreaterThanOrEqual(hold);
      victim.child.kill('SIGKILL');
      const killedAt = Date.now();
      await victim.report.catch(() => undefined);
      // Its slots lapse within slotLease (the survivors, queued, take them at once).
      await until(
        async () => {
          for (const token of held) if ((await client.zscore(slots, token)) !== null) return false;
          return true;
        },
        slotLease + 5_000,
        'the dead process’s slots back',
      );
      const reclaimed = Date.now() - killedAt;
      const reports = await Promise.all(workers.map((w) => w.report));
      const back = await client.zcard(slots);
      const runs = reports.flatMap((r) => r.runs);
      // The victim's calls ran from when they started until it died.
      const all: [number, number][] = [
        ...runs,
        ...Array.from({ length: hold }, (): [number, number] => [victimStart, killedAt]),
      ];
      const afterKill = runs.filter(([s]) => s > killedAt + slotLease);
      console.log(
        `#11.16 slots of the killed process back after ${reclaimed} ms (slotLease ${slotLease}); most calls at once: fleet ${mostAtOnce(all)} (limit ${maxConcurrent}), survivors while it lived ${mostAtOnce(runs.filter(([, e]) => e < killedAt))}, after slotLease ${mostAtOnce(afterKill)}`,
      );
      // Renewed every slotLease / 3, so its last lease ends at most slotLease after the kill (the
      // margin is for polling a loaded machine).
      expect(reclaimed).toBeLessThan(slotLease + 1_000);
      expect(runs).toHaveLength(180);
      for (const report of reports) {
        expect(report.rejected).toBe(0);
        expect(report.storeUnavailable).toBe(0);
      }
      expect(mostAtOnce(all)).toBeLessThanOrEqual(maxConcurrent);
      // While the victim lived, the survivors had maxConcurrent - hold slots.
      expect(mostAtOnce(runs.filter(([, e]) => e < killedAt))).toBeLessThanOrEqual(
        maxConcurrent - hold,
      );
      // Everything was handed back at the end.
      expect(back).toBe(0);
    } finally {
      for (const w of [victim, ...workers]) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    }
  }, 120_000);
});
