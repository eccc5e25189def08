/**
 * A real redis-server for the tests: one per test file, on a free loopback port, with no persistence.
 * Without a redis-server the Redis suites skip with a printed reason, unless BULWARK_REQUIRE_REDIS=1
 * (CI), where they fail instead.
 *
 * The same suites run in three vitest projects (vitest.config.ts): on ioredis, on node-redis
 * (BULWARK_REDIS_CLIENT=node-redis), and on a 3-master Redis Cluster started here
 * (BULWARK_REDIS_CLUSTER=1, through ioredis `Cluster`, or node-redis `createCluster` with both set).
 * `connect()` gives the tests a client of that kind for the store; the ioredis-style methods the tests
 * use to look into Redis go to an ioredis connection beside it (see `hybrid`).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';

/** Which client the store gets in this run. */
export const CLIENT: 'ioredis' | 'node-redis' =
  process.env.BULWARK_REDIS_CLIENT === 'node-redis' ? 'node-redis' : 'ioredis';
/** Whether the tests run against a 3-master Redis Cluster. */
export const CLUSTER = process.env.BULWARK_REDIS_CLUSTER === '1';

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

/** A port that is free, with the port 10,000 above it (a cluster node's bus) free too. */
async function freeClusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10_000 > 65_535) continue;
    const bus = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port + 10_000, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (bus) return port;
  }
}

/**
 * One redis-server process, or (BULWARK_REDIS_CLUSTER=1) a cluster of three masters; `port` is then
 * the first node's, and kill/launch/stop act on all three.
 */
export class RedisServer {
  private children: ChildProcess[] = [];
  private created = false;
  private readonly dir: string | undefined;

  private constructor(readonly ports: number[]) {
    this.dir = CLUSTER ? mkdtempSync(join(tmpdir(), 'bulwark-cluster-')) : undefined;
  }

  get port(): number {
    return this.ports[0]!;
  }

  static async start(): Promise<RedisServer> {
    if (REDIS_BIN === undefined) {
      throw new Error('redis-server is required (BULWARK_REQUIRE_REDIS=1) but was not found');
    }
    const ports = CLUSTER
      ? [await freeClusterPort(), await freeClusterPort(), await freeClusterPort()]
      : [await freePort()];
    const server = new RedisServer(ports);
    await server.launch();
    return server;
  }

  /** Starts (again) on the same port(s); a cluster is created the first time, and waited for. */
  async launch(): Promise<void> {
    await Promise.all(this.ports.map((port) => this.launchNode(port)));
    if (!CLUSTER) return;
    if (!this.created) {
      const created = spawnSync(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...this.ports.map((port) => `127.0.0.1:${port}`),
          '--cluster-replicas',
          '0',
          '--cluster-yes',
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      if (created.status !== 0)
        throw new Error(`redis-cli --cluster create failed:\n${created.stdout}${created.stderr}`);
      this.created = true;
    }
    // A loaded machine may take a while to agree: every node must say cluster_state:ok.
    await until(
      async () => {
        for (const port of this.ports) {
          const info = spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info'], {
            encoding: 'utf8',
            timeout: 10_000,
          });
          if (!info.stdout?.includes('cluster_state:ok')) return false;
        }
        return true;
      },
      60_000,
      'cluster_state:ok on every node',
    );
  }

  private async launchNode(port: number): Promise<void> {
    const cluster =
      this.dir === undefined
        ? []
        : [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            `nodes-${port}.conf`,
            '--dir',
            this.dir,
            '--cluster-node-timeout',
            '5000',
          ];
    const child = spawn(
      REDIS_BIN!,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        // DEBUG SLEEP makes Redis slow in the fault tests (Redis 7 refuses it by default).
        '--enable-debug-command',
        'local',
        ...cluster,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.children.push(child);
    running.add(child);
    child.once('exit', () => running.delete(child));
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(
        () => reject(new Error(`redis-server did not start:\n${output}`)),
        30_000,
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

  /** Kills the server (every node) at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /**
   * Freezes the server (SIGSTOP): connections stay open, commands wait unanswered in the socket, and
   * run when {@link RedisServer.resume} wakes it: a stall, deterministic where `DEBUG SLEEP` races.
   */
  pause(): void {
    for (const child of this.children) child.kill('SIGSTOP');
  }

  /** Wakes a server frozen by {@link RedisServer.pause}. */
  resume(): void {
    for (const child of this.children) child.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM');
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const children = this.children;
    this.children = [];
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.removeAllListeners('exit');
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill(signal);
        if (signal !== 'SIGKILL') child.kill('SIGCONT'); // a paused server acts on it once woken
        await exited;
        running.delete(child);
      }),
    );
  }
}

/**
 * A client as bulwark/redis wants one (no offline queue, one retry, quick reconnects), ready, of this
 * run's kind. Typed as ioredis: the tests look into Redis with ioredis methods.
 */
export async function connect(port: number): Promise<Redis> {
  const admin = await connectIoredis(port);
  if (CLIENT === 'ioredis') return admin;
  const url = `redis://127.0.0.1:${port}`;
  const client = CLUSTER
    ? createCluster({
        rootNodes: [{ url }],
        defaults: { disableOfflineQueue: true, socket: { reconnectStrategy: () => 50 } },
      })
    : createClient({ url, disableOfflineQueue: true, socket: { reconnectStrategy: () => 50 } });
  client.on('error', () => undefined);
  await client.connect();
  return hybrid(client, admin);
}

async function connectIoredis(port: number): Promise<Redis> {
  const options = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: () => 50,
  };
  if (CLUSTER) {
    const cluster = new Cluster([{ host: '127.0.0.1', port }], {
      redisOptions: options,
      enableOfflineQueue: false,
      clusterRetryStrategy: () => 50,
      // A loaded machine can take longer than ioredis's default 1 s to answer CLUSTER SLOTS.
      slotsRefreshTimeout: 10_000,
      lazyConnect: true,
    });
    cluster.on('error', () => undefined);
    await cluster.connect();
    // ioredis connects to a Cluster's nodes lazily, on their first command: a test's first command
    // would pay for a connection (100+ ms on a loaded machine, past a short commandTimeout). Every
    // master is connected before the test begins, as in a process that has been running a while.
    const admin = clusterAdmin(cluster);
    await until(() => admin.status === 'ready', 10_000, 'every cluster master connected');
    return admin;
  }
  const client = new Redis({ port, host: '127.0.0.1', ...options, lazyConnect: true });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * An ioredis Cluster whose key-less commands that the tests use (KEYS, SCRIPT) run on every master,
 * as on one server. Everything else (keyed commands) is routed by ioredis.
 */
function clusterAdmin(cluster: Cluster): Redis {
  const everywhere =
    (method: 'keys' | 'script') =>
    async (...args: unknown[]): Promise<unknown> => {
      const results = await Promise.all(
        cluster
          .nodes('master')
          .map((node) => (node[method] as (...a: unknown[]) => Promise<unknown>)(...args)),
      );
      return method === 'keys' ? results.flat() : results[0];
    };
  const keys = everywhere('keys');
  const script = everywhere('script');
  return new Proxy(cluster, {
    get(target, property, receiver) {
      if (property === 'keys') return keys;
      if (property === 'script') return script;
      // A Cluster stays 'ready' long after its nodes died (a node not connected yet, 'wait', never
      // notices): ready here means the three masters' connections are. Reading it connects a master
      // that waits, lazily, for a command.
      if (property === 'status') {
        const masters = target.nodes('master');
        for (const node of masters)
          if (node.status === 'wait') node.connect().catch(() => undefined);
        return target.status === 'ready' &&
          masters.length === 3 &&
          masters.every((node) => node.status === 'ready')
          ? 'ready'
          : 'reconnecting';
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as unknown as Redis;
}

/** What the node-redis client answers itself (what bulwark/redis uses of it); the rest goes to ioredis. */
const NODE_REDIS = new Set<PropertyKey>([
  'sendCommand',
  'duplicate',
  'isOpen',
  'isReady',
  'masters',
  'on',
  'once',
  'off',
  'emit',
  'removeListener',
]);

/**
 * A node-redis client that the store adapts as node-redis, with the ioredis methods the tests use to
 * look into Redis answered by `admin`, an ioredis connection to the same server(s). `status` and
 * `disconnect` are the node-redis client's, in ioredis terms.
 */
function hybrid(client: object, admin: Redis): Redis {
  const node = client as { isOpen: boolean; isReady?: boolean; destroy(): void };
  return new Proxy(client, {
    get(target, property) {
      if (property === 'status')
        return node.isOpen && node.isReady !== false ? 'ready' : 'reconnecting';
      if (property === 'disconnect')
        return () => {
          node.destroy();
          admin.disconnect();
        };
      const from: object = NODE_REDIS.has(property) ? target : admin;
      const value: unknown = Reflect.get(from, property);
      return typeof value === 'function' ? value.bind(from) : value;
    },
  }) as unknown as Redis;
}

/**
 * A view of `client` (either kind) whose script commands (EVALSHA, EVAL) wait until the test lets them
 * go: `held` gets one release function per command, in the order they were sent.
 */
export function gated(client: Redis): { client: Redis; held: (() => void)[] } {
  const held: (() => void)[] = [];
  const gate = (): Promise<void> => new Promise<void>((resolve) => held.push(resolve));
  const view = Object.create(client) as Redis & { sendCommand: (...args: unknown[]) => unknown };
  if (CLIENT === 'node-redis') {
    const send = (client as unknown as { sendCommand: (...args: unknown[]) => Promise<unknown> })
      .sendCommand;
    view.sendCommand = (...args: unknown[]) => gate().then(() => send(...args));
  } else {
    view.evalsha = ((...args: Parameters<Redis['evalsha']>) =>
      gate().then(() => client.evalsha(...args))) as Redis['evalsha'];
    view.eval = ((...args: Parameters<Redis['eval']>) =>
      gate().then(() => client.eval(...args))) as Redis['eval'];
  }
  return { client: view, held };
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

/**
 * Resolves once `count` connections listen to `channel` (a store's message connection, one per store):
 * a barrier for tests that need a breaker's or bulkhead's subscription confirmed before they go on. On
 * a cluster, the subscribers of every master are counted.
 */
export async function subscribed(client: Redis, channel: string, count = 1): Promise<void> {
  const nodes = (): Redis[] =>
    CLUSTER ? (client as unknown as Cluster).nodes('master') : [client];
  await until(
    async () => {
      let listening = 0;
      for (const node of nodes()) {
        const reply = (await node.pubsub('NUMSUB', channel)) as [string, number];
        listening += Number(reply[1]);
      }
      return listening >= count;
    },
    10_000,
    `${count} subscriber(s) of ${channel}`,
  );
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
