import type { Cluster, Redis } from 'ioredis';

/**
 * A node-redis (`redis` v5) client or cluster (`createClient()`, `createCluster()`), as far as
 * `bulwark/redis` uses it. Declared here so that the types need neither package installed.
 */
export interface NodeRedisClient {
  sendCommand(...args: never[]): Promise<unknown>;
  duplicate(...args: never[]): unknown;
  readonly isOpen: boolean;
}

/** A client `redisStore` accepts: ioredis `Redis` or `Cluster`, or node-redis `createClient()` / `createCluster()`. */
export type RedisClient = Redis | Cluster | NodeRedisClient;

type Arg = string | number;

/** @internal what the store needs of a client: scripts, and messages on a second connection. */
export interface ClientAdapter {
  readonly kind: 'ioredis' | 'node-redis';
  readonly cluster: boolean;
  /**
   * While the client's first connection is being made (it has never been ready): resolves when it is
   * ready. Otherwise `undefined`: commands go out now (and fail at once while a later reconnection runs,
   * as a client without an offline queue does).
   */
  firstConnection(): Promise<void> | undefined;
  evalsha(sha: string, keys: readonly string[], args: readonly Arg[]): Promise<unknown>;
  eval(source: string, keys: readonly string[], args: readonly Arg[]): Promise<unknown>;
  /** A second connection for messages; `ready` runs whenever it (re)connects. */
  subscriber(
    message: (channel: string, message: string) => void,
    ready: () => void,
  ): SubscriberAdapter;
}

/** @internal a connection that listens to channels. */
export interface SubscriberAdapter {
  /** True when a SUBSCRIBE sent now would be heard (otherwise `ready` will subscribe). */
  readonly ready: boolean;
  /** Resolves once Redis confirmed the subscription (or the attempt failed: `ready` runs again). */
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channel: string): void;
  close(): void;
}

function ignore(): void {
  // connection errors are seen through the commands' health
}

/** Emitter methods both clients have (an optional peer's types are not needed for these). */
interface Events {
  on(event: string, listener: (...args: never[]) => void): unknown;
  once(event: string, listener: (...args: never[]) => void): unknown;
}

/**
 * The first-connection wait of {@link ClientAdapter.firstConnection}: `ready()` says whether the client
 * is ready now, `connecting()` whether a first connection is under way, and the client emits `event`
 * when it becomes ready; one listener at most.
 */
function firstConnection(
  client: Events,
  ready: () => boolean,
  connecting: () => boolean,
  event = 'ready',
): () => Promise<void> | undefined {
  let everReady = ready();
  let waiting: Promise<void> | undefined;
  return () => {
    if (everReady) return undefined;
    if (ready()) {
      everReady = true;
      return undefined;
    }
    if (!connecting()) return undefined;
    waiting ??= new Promise<void>((resolve) => {
      client.once(event, () => {
        everReady = true;
        resolve();
      });
    });
    return waiting;
  };
}

/** @internal wraps an ioredis or node-redis client; a `TypeError` for anything else. */
export function adapt(client: unknown): ClientAdapter {
  if (typeof client === 'object' && client !== null) {
    const c = client as Record<string, unknown>;
    // node-redis has `isOpen` (ioredis has not); ioredis has `evalsha` (lower case) and `status`.
    if (typeof c.sendCommand === 'function' && typeof c.duplicate === 'function' && 'isOpen' in c)
      return nodeRedisAdapter(client as NodeRedisLike);
    if (typeof c.evalsha === 'function' && typeof c.status === 'string')
      return ioredisAdapter(client as Redis | Cluster);
  }
  throw new TypeError(
    'Expected `redisStore(client)` to get an ioredis client (Redis or Cluster) or a node-redis client (createClient or createCluster)',
  );
}

function ioredisAdapter(client: Redis | Cluster): ClientAdapter {
  return {
    kind: 'ioredis',
    cluster: client.isCluster,
    firstConnection: firstConnection(
      client as unknown as Events,
      () => client.status === 'ready',
      () => client.status === 'connecting' || client.status === 'connect',
    ),
    evalsha: (sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
    eval: (source, keys, args) => client.eval(source, keys.length, ...keys, ...args),
    subscriber(message, ready) {
      // (A Cluster duplicates into a Cluster, which has the same methods used here.)
      const subscriber = (client as Redis).duplicate();
      // Connection errors are seen by the commands' own health checks; keep ioredis from logging them.
      subscriber.on('error', ignore);
      subscriber.on('ready', ready);
      subscriber.on('message', message);
      if (subscriber.status === 'wait') subscriber.connect().catch(ignore);
      return {
        get ready() {
          return subscriber.status === 'ready';
        },
        subscribe: (channels) => subscriber.subscribe(...channels).then(ignore, ignore),
        unsubscribe: (channel) => void subscriber.unsubscribe(channel).catch(ignore),
        close: () => subscriber.disconnect(),
      };
    },
  };
}

/** node-redis, as this file calls it (client and cluster differ in `sendCommand`). */
interface NodeRedisLike extends Events {
  readonly isOpen: boolean;
  readonly isReady?: boolean;
  readonly masters?: unknown;
  sendCommand(...args: unknown[]): Promise<unknown>;
  duplicate(): NodeRedisLike;
  connect(): Promise<unknown>;
  subscribe(
    channels: string[],
    listener: (message: string, channel: string) => void,
  ): Promise<void>;
  unsubscribe(channel: string, listener: (message: string, channel: string) => void): Promise<void>;
  destroy(): void;
}

function nodeRedisAdapter(client: NodeRedisLike): ClientAdapter {
  const cluster = client.masters !== undefined;
  // A cluster routes a command by its first key; a plain client takes the arguments alone.
  const send = (command: string, first: string, keys: readonly string[], args: readonly Arg[]) => {
    const argv = [command, first, String(keys.length), ...keys, ...args.map(String)];
    return cluster ? client.sendCommand(keys[0], false, argv) : client.sendCommand(argv);
  };
  return {
    kind: 'node-redis',
    cluster,
    // `connect()` called but not awaited: the socket is open, the client not ready yet. A cluster (no
    // `isReady`) is open once `connect()` is called and knows its masters once it has connected
    // (`connect`); it connects to a master itself before sending it a command.
    firstConnection: cluster
      ? firstConnection(
          client,
          () => Array.isArray(client.masters) && client.masters.length > 0,
          () => client.isOpen,
          'connect',
        )
      : firstConnection(
          client,
          () => client.isReady !== false,
          () => client.isOpen,
        ),
    evalsha: (sha, keys, args) => send('EVALSHA', sha, keys, args),
    eval: (source, keys, args) => send('EVAL', source, keys, args),
    subscriber(message, ready) {
      const subscriber = client.duplicate();
      let connected = false;
      const listener = (text: string, channel: string): void => message(channel, text);
      subscriber.on('error', ignore);
      // A plain client says 'ready' on every (re)connection; a cluster says it per node.
      subscriber.on(cluster ? 'node-ready' : 'ready', () => {
        connected = true;
        ready();
      });
      subscriber.on(cluster ? 'node-reconnecting' : 'reconnecting', () => (connected = false));
      subscriber.connect().then(() => {
        if (cluster && !connected) {
          connected = true;
          ready();
        }
      }, ignore);
      return {
        get ready() {
          return connected;
        },
        subscribe: (channels) => subscriber.subscribe([...channels], listener).then(ignore, ignore),
        unsubscribe: (channel) => void subscriber.unsubscribe(channel, listener).catch(ignore),
        close: () => subscriber.destroy(),
      };
    },
  };
}
