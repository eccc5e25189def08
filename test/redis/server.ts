/**
 * A real redis-server for the tests: one per test file, on a free loopback port, with no persistence.
 * Without a redis-server the Redis suites skip with a printed reason, unless BULWARK_REQUIRE_REDIS=1
 * (CI), where they fail instead.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

function findRedis(): string | undefined {
  const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (found.status === 0) return 'redis-server';
  for (const path of [
    '/usr/bin/redis-server',
    '/usr/local/bin/redis-server',
    '/usr/sbin/redis-server',
  ])
    if (existsSync(path)) return path;
  return undefined;
}

export const REDIS_BIN = findRedis();
const required = process.env.BULWARK_REQUIRE_REDIS === '1';

/** True when the Redis suites must skip (no redis-server here, and CI did not require it). */
export const noRedis = REDIS_BIN === undefined && !required;
if (noRedis) {
  console.warn(
    'bulwark: redis-server not found, skipping the Redis tests (apt-get install redis-server; BULWARK_REQUIRE_REDIS=1 makes this a failure)',
  );
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Servers still running: killed when the test process exits, even after a failed assertion. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** One redis-server process. */
export class RedisServer {
  private child: ChildProcess | undefined = undefined;

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    if (REDIS_BIN === undefined) {
      throw new Error('redis-server is required (BULWARK_REQUIRE_REDIS=1) but was not found');
    }
    const server = new RedisServer(await freePort());
    await server.launch();
    return server;
  }

  /** Starts (again) on the same port. */
  async launch(): Promise<void> {
    const child = spawn(
      REDIS_BIN!,
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        // DEBUG SLEEP makes Redis slow in the fault tests (Redis 7 refuses it by default).
        '--enable-debug-command',
        'local',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    running.add(child);
    child.once('exit', () => running.delete(child));
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(
        () => reject(new Error(`redis-server did not start:\n${output}`)),
        10_000,
      );
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          child.stdout.off('data', onData);
          child.stdout.resume();
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.resume();
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${output}`));
      });
    });
  }

  /** Kills the server at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child?.exitCode !== null || child.signalCode !== null) return;
    child.removeAllListeners('exit');
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
    running.delete(child);
  }
}

/** A client as bulwark/redis wants one: no offline queue, one retry, quick reconnects; ready. */
export async function connect(port: number): Promise<Redis> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: () => 50,
    lazyConnect: true,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Resolves when `predicate` holds, polling every 10 ms; rejects after `timeout` ms. */
export async function until(
  predicate: () => boolean | Promise<boolean>,
  timeout = 3_000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeout;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Builds dist/ (which the worker processes import) when it is missing or older than a source file. */
export function ensureBuilt(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
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
