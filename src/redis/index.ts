import { createHash, randomBytes } from 'node:crypto';
import type {
  BulkheadRequest,
  FleetCircuitState,
  FleetCounts,
  OutcomeCounts,
  RateLimitRequest,
  RateLimitReservation,
  SharedBulkhead,
  SharedCache,
  SharedCacheLock,
  SharedCacheRead,
  SharedCircuit,
  SharedRateLimiter,
  Store,
} from '../store.js';
import {
  BULKHEAD_ACQUIRE,
  BULKHEAD_RELEASE,
  BULKHEAD_RENEW,
  CACHE_CLEAR,
  CACHE_DELETE,
  CACHE_GET,
  CACHE_RELEASE,
  CACHE_SET,
  CLOSE,
  ISOLATE,
  OPEN,
  READ,
  RECORD,
  RELEASE_TRIAL,
  RESERVE,
  TRIAL,
} from './scripts.js';
import { adapt, type ClientAdapter, type RedisClient, type SubscriberAdapter } from './client.js';

export type { Store } from '../store.js';
export type { NodeRedisClient, RedisClient } from './client.js';

/** Options of {@link redisStore}. */
export interface RedisStoreOptions {
  /** Prepended to every key and channel. The default value is `'bulwark:'`. */
  prefix?: string;
  /**
   * How long a command may take, in ms, before the policy gives up on it and acts locally (the call
   * goes on; the command's late reply is ignored). The default value is `50`.
   */
  commandTimeout?: number;
  /**
   * After a failed or timed-out command, how long the policies act locally before they try Redis
   * again, in ms (one probe at a time). The default value is `1_000`.
   */
  recheckAfter?: number;
  /**
   * The longest a half-open trial holds the fleet's one trial slot, in ms. A trial with its own time
   * limit (an attempt timeout, or the call's total deadline) holds it for that limit plus two
   * `commandTimeout`s (time to report its outcome), if shorter: a process that died in the middle of
   * its trial frees the slot after this. The default value is `10_000`.
   */
  trialTimeout?: number;
}

export const REDIS_STORE_DEFAULTS = Object.freeze({
  prefix: 'bulwark:',
  commandTimeout: 50,
  recheckAfter: 1_000,
  trialTimeout: 10_000,
});

/** A command that did not answer within `commandTimeout`. */
export class StoreTimeoutError extends Error {
  override readonly name = 'StoreTimeoutError';
  constructor(readonly timeout: number) {
    super(`Redis did not answer within ${timeout} ms (bulwark/redis commandTimeout)`);
  }
}

interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = {
  reserve: script(RESERVE),
  record: script(RECORD),
  open: script(OPEN),
  close: script(CLOSE),
  isolate: script(ISOLATE),
  trial: script(TRIAL),
  releaseTrial: script(RELEASE_TRIAL),
  read: script(READ),
  cacheGet: script(CACHE_GET),
  cacheSet: script(CACHE_SET),
  cacheRelease: script(CACHE_RELEASE),
  cacheDelete: script(CACHE_DELETE),
  cacheClear: script(CACHE_CLEAR),
  bulkheadAcquire: script(BULKHEAD_ACQUIRE),
  bulkheadRenew: script(BULKHEAD_RENEW),
  bulkheadRelease: script(BULKHEAD_RELEASE),
};

/**
 * Cache keys longer than this many characters are stored under their SHA-256 (`h:` and 43 base64url
 * characters): a caller's 1 MB argument must not become a 1 MB Redis field.
 */
export const MAX_CACHE_KEY_LENGTH = 128;

/** What a store's scripts return for the time left of a value that never expires (see scripts.ts). */
const FOREVER = 1e14;

function cacheField(key: string): string {
  return key.length <= MAX_CACHE_KEY_LENGTH
    ? key
    : `h:${createHash('sha256').update(key).digest('base64url')}`;
}

/**
 * A policy's name goes into its keys as a Redis Cluster hash tag (`{name}`), so that all its keys share
 * one slot: a brace in it would change the tag.
 */
function policyName(name: string): string {
  if (name.includes('{') || name.includes('}')) {
    throw new TypeError(
      `Expected a policy name with a Redis store to contain no \`{\` or \`}\` (it is the Redis Cluster hash tag of the policy's keys), got \`${name}\``,
    );
  }
  return name;
}

/** Partition keys longer than this many characters go into Redis keys as their SHA-256. */
const MAX_PARTITION_KEY_LENGTH = 128;

/**
 * The hash tag of a policy's keys: `{name}`, or for one partition `p:{name:key}` (a tag of its own, so
 * that each partition's keys share one slot and partitions spread over a cluster). In the key, `%`,
 * `{`, `}` and `:` are escaped as `%25`, `%7B`, `%7D`, `%3A`: a brace cannot end the tag early, and no
 * two (name, key) pairs give the same tag (the name has no brace, the escaped key no `:`, so the last
 * `:` splits them). A key longer than {@link MAX_PARTITION_KEY_LENGTH} is stored as `%h` and its SHA-256
 * (base64url), which no escaped key contains: a caller's 1 MB key must not become a 1 MB Redis key.
 */
function hashTag(name: string, partition?: string): string {
  if (partition === undefined) return `{${policyName(name)}}`;
  const key =
    partition.length > MAX_PARTITION_KEY_LENGTH
      ? `%h${createHash('sha256').update(partition).digest('base64url')}`
      : partition.replace(/[%{}:]/g, escapeChar);
  return `p:{${policyName(name)}:${key}}`;
}

function escapeChar(char: string): string {
  return char === '%' ? '%25' : char === '{' ? '%7B' : char === '}' ? '%7D' : '%3A';
}

interface Subscription {
  readonly onMessage: (message: string) => void;
  readonly onResync: () => void;
}

/**
 * A {@link Store} on Redis, for `circuitBreaker`, `rateLimiter` and `cache` options of bulwark. Give it
 * an ioredis client (`Redis` or `Cluster`) made with `enableOfflineQueue: false` (a command fails at
 * once while Redis is unreachable, instead of piling up to run late) and a small
 * `maxRetriesPerRequest`, or a connected node-redis client (`createClient` or `createCluster`) made
 * with `disableOfflineQueue: true`. On a Redis Cluster each policy's keys share one slot (its name is
 * their hash tag).
 *
 * Circuit breakers get their messages on a second connection (`client.duplicate()`), opened with the
 * first breaker; {@link RedisStore.close} closes it. The client itself stays yours to close.
 *
 * @example
 * import Redis from 'ioredis';
 * import { circuitBreaker, rateLimiter, resilient } from 'bulwark';
 * import { redisStore } from 'bulwark/redis';
 *
 * const store = redisStore(new Redis({ enableOfflineQueue: false, maxRetriesPerRequest: 1 }));
 * const getUser = resilient(fetchUser, {
 *   circuitBreaker: { name: 'users-api', store },
 *   rateLimiter: { name: 'users-api', limit: 100, store },
 * });
 */
export class RedisStore implements Store {
  readonly prefix: string;
  readonly commandTimeout: number;
  readonly recheckAfter: number;
  readonly trialTimeout: number;
  private subscriber: SubscriberAdapter | undefined = undefined;
  private readonly subscriptions = new Map<string, Set<Subscription>>();
  private readonly adapter: ClientAdapter;

  constructor(
    readonly client: RedisClient,
    options: RedisStoreOptions = {},
  ) {
    this.adapter = adapt(client);
    const problems: string[] = [];
    const number = (key: keyof RedisStoreOptions, min: number): number => {
      const value = options[key] ?? REDIS_STORE_DEFAULTS[key];
      if (typeof value !== 'number' || !(value >= min) || value === Infinity) {
        problems.push(`Expected \`${key}\` to be a finite number >= ${min}, got ${String(value)}`);
        return REDIS_STORE_DEFAULTS[key] as number;
      }
      return value;
    };
    this.commandTimeout = number('commandTimeout', 1);
    this.recheckAfter = number('recheckAfter', 0);
    this.trialTimeout = number('trialTimeout', 1);
    const prefix = options.prefix ?? REDIS_STORE_DEFAULTS.prefix;
    if (typeof prefix !== 'string') problems.push(`Expected \`prefix\` to be a string`);
    this.prefix = typeof prefix === 'string' ? prefix : REDIS_STORE_DEFAULTS.prefix;
    if (problems.length > 0) {
      throw new TypeError(
        `Invalid redisStore options:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      );
    }
  }

  /** Each partition of a partitioned policy has keys (and messages) of its own, in a slot of its own. */
  readonly partitioned = true;

  forRateLimiter(name: string, partition?: string): SharedRateLimiter {
    const key = `${this.prefix}rl:${hashTag(name, partition)}`;
    const processes = `${key}:procs`;
    // This limiter's id in the fleet's count of active processes, sent once a second.
    const id = randomBytes(8).toString('hex');
    let nextBeat = 0;
    return {
      reserve: async (r: RateLimitRequest): Promise<RateLimitReservation> => {
        const now = performance.now();
        const beat = now >= nextBeat;
        if (beat) nextBeat = now + 1_000;
        let reply;
        try {
          reply = (await this.run(
            SCRIPTS.reserve,
            [key, processes],
            [r.limit, r.interval, r.burst, r.maxWait, r.count, beat ? id : '', r.giveBack ?? 0],
          )) as [number, string, number];
        } catch (error) {
          if (beat) nextBeat = 0; // the next command counts this process
          throw error;
        }
        const [granted, value, active] = reply;
        const reservation =
          granted === 0
            ? { granted: 0 as const, retryAfter: Number(value) }
            : { granted, wait: Number(value) };
        return active > 0 ? { ...reservation, processes: active } : reservation;
      },
    };
  }

  forCircuit(name: string, partition?: string): SharedCircuit {
    const base = `${this.prefix}cb:${hashTag(name, partition)}`;
    const open = `${base}:open`;
    const trial = `${base}:trial`;
    const generation = `${base}:gen`;
    const window = `${base}:w`;
    const notClosed = `${base}:opened`;
    const channel = base;
    return {
      record: async (counts: OutcomeCounts, shape): Promise<FleetCounts> => {
        const [calls, failures, slow, state, ttl] = (await this.run(
          SCRIPTS.record,
          [open, generation, window],
          [
            counts.calls,
            counts.failures,
            counts.slow,
            Math.max(1, Math.ceil(shape.duration / shape.buckets)),
            shape.buckets,
          ],
        )) as [number, number, number, string, number];
        return { calls, failures, slow, circuit: circuitState(state, ttl) };
      },
      open: async (ms: number, force: boolean) => {
        const [opened, left] = (await this.run(
          SCRIPTS.open,
          [open, trial, notClosed],
          [Math.max(1, Math.ceil(ms)), force ? '1' : '0', channel],
        )) as [number, number];
        const circuit: FleetCircuitState =
          opened < 0
            ? { state: 'isolated', retryAfter: Infinity }
            : { state: 'open', retryAfter: left };
        return { opened: opened === 1, circuit };
      },
      close: async (): Promise<void> => {
        await this.run(SCRIPTS.close, [open, trial, generation, notClosed], [channel]);
      },
      isolate: async (): Promise<void> => {
        await this.run(SCRIPTS.isolate, [open, trial], [channel]);
      },
      tryTrial: async (token: string, limit: number): Promise<number> => {
        const ttl = Math.max(
          1,
          Math.ceil(Math.min(this.trialTimeout, limit + 2 * this.commandTimeout)),
        );
        const request = this.send(SCRIPTS.trial, [open, trial, notClosed], [token, ttl]);
        let wait: number;
        try {
          wait = (await this.timed(request)) as number;
        } catch (error) {
          // Redis may still run the request when it wakes (a stall, a replayed command): a slot
          // granted to a caller that gave up is handed back at once, not held on behalf of nobody.
          request.then((late) => {
            if (late === 0) this.run(SCRIPTS.releaseTrial, [trial], [token, channel]).catch(ignore);
          }, ignore);
          throw error;
        }
        return wait === -1 ? Infinity : wait;
      },
      releaseTrial: async (token: string): Promise<void> => {
        await this.run(SCRIPTS.releaseTrial, [trial], [token, channel]);
      },
      read: async (): Promise<FleetCircuitState> => {
        const [state, ttl] = (await this.run(SCRIPTS.read, [open], [])) as [string, number];
        return circuitState(state, ttl);
      },
      subscribe: (onMessage, onResync) =>
        this.subscribe(channel, {
          onMessage: (message) => {
            const state = parseMessage(message);
            if (state !== undefined) onMessage(state);
          },
          onResync,
        }),
    };
  }

  forCache(name: string): SharedCache {
    const base = `${this.prefix}cache:${hashTag(name)}:`;
    const values = `${base}v`;
    const expiries = `${base}e`;
    const lock = (field: string): string => `${base}l:${field}`;
    return {
      get: async (key: string, wanted?: SharedCacheLock): Promise<SharedCacheRead> => {
        const field = cacheField(key);
        const [data, remaining, held] = (await this.run(
          SCRIPTS.cacheGet,
          [values, expiries, lock(field)],
          wanted === undefined
            ? [field, 0, '', 0]
            : [field, Math.max(1, Math.ceil(wanted.ms)), wanted.token, wanted.staleFor],
        )) as [string | null, number, number];
        return {
          entry:
            data === null || remaining < 0
              ? undefined
              : { data, remaining: remaining >= FOREVER ? Infinity : remaining },
          lock: held,
        };
      },
      set: async (key, data, keepFor, maxEntries, token = ''): Promise<void> => {
        const field = cacheField(key);
        await this.run(
          SCRIPTS.cacheSet,
          [values, expiries, lock(field)],
          [
            field,
            data,
            keepFor === Infinity ? -1 : Math.max(1, Math.ceil(keepFor)),
            maxEntries,
            token,
          ],
        );
      },
      release: async (key: string, token: string): Promise<void> => {
        await this.run(SCRIPTS.cacheRelease, [lock(cacheField(key))], [token]);
      },
      delete: async (key: string): Promise<void> => {
        await this.run(SCRIPTS.cacheDelete, [values, expiries], [cacheField(key)]);
      },
      clear: async (): Promise<void> => {
        await this.run(SCRIPTS.cacheClear, [values, expiries], []);
      },
    };
  }

  forBulkhead(name: string, partition?: string): SharedBulkhead {
    const base = `${this.prefix}bh:${hashTag(name, partition)}`;
    const keys = [`${base}:slots`, `${base}:queue`, `${base}:waiting`, `${base}:seq`];
    const channel = base;
    return {
      acquire: async (token: string, r: BulkheadRequest): Promise<number> =>
        (await this.run(SCRIPTS.bulkheadAcquire, keys, [
          token,
          r.maxConcurrent,
          Math.max(1, Math.ceil(r.lease)),
          r.maxQueue === Infinity ? -1 : r.maxQueue,
          r.queue ? '1' : '0',
        ])) as number,
      renew: async (tokens: readonly string[], lease: number): Promise<void> => {
        await this.run(SCRIPTS.bulkheadRenew, keys, [Math.max(1, Math.ceil(lease)), ...tokens]);
      },
      release: async (token: string): Promise<void> => {
        await this.run(SCRIPTS.bulkheadRelease, keys.slice(0, 3), [token, channel]);
      },
      // A freed slot wakes the waiters; after a reconnection (messages may be lost) too.
      subscribe: (onFree) =>
        this.subscribe(channel, { onMessage: () => onFree(), onResync: () => onFree() }),
    };
  }

  /** Closes the connection that carries the circuit breakers' messages (the client stays open). */
  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.subscriptions.clear();
    if (subscriber === undefined) return;
    subscriber.close();
    return Promise.resolve();
  }

  // ---- internals ----

  private subscribe(channel: string, subscription: Subscription): () => void {
    let set = this.subscriptions.get(channel);
    if (set === undefined) {
      set = new Set();
      this.subscriptions.set(channel, set);
    }
    set.add(subscription);
    const subscriber = this.connectSubscriber();
    // A message published before Redis confirms the SUBSCRIBE is lost: the state is read (again)
    // once it has.
    if (subscriber.ready) void subscriber.subscribe([channel]).then(subscription.onResync);
    return () => {
      const current = this.subscriptions.get(channel);
      if (current === undefined || !current.delete(subscription) || current.size > 0) return;
      this.subscriptions.delete(channel);
      this.subscriber?.unsubscribe(channel);
    };
  }

  private connectSubscriber(): SubscriberAdapter {
    if (this.subscriber !== undefined) return this.subscriber;
    const subscriber = this.adapter.subscriber(
      (channel, message) => {
        const set = this.subscriptions.get(channel);
        if (set === undefined) return;
        for (const subscription of set) subscription.onMessage(message);
      },
      () => {
        const channels = [...this.subscriptions.keys()];
        if (channels.length === 0) return;
        // Messages may have been missed while disconnected: every circuit reads its state again, every
        // fleet bulkhead's waiters ask again, once Redis has confirmed the SUBSCRIBE (a state read
        // before it could miss a message published in between, and the message would be lost too).
        void subscriber.subscribe(channels).then(() => {
          for (const set of this.subscriptions.values())
            for (const subscription of set) subscription.onResync();
        });
      },
    );
    this.subscriber = subscriber;
    return subscriber;
  }

  private run(script: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.timed(this.send(script, keys, args));
  }

  /** Runs a script without the command timeout (its caller races the reply). */
  private send(script: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    const first = this.adapter.firstConnection();
    if (first === undefined) return this.evaluate(script, keys, args);
    // A connection still being made is not an outage: the command waits for it, within the command
    // timeout its caller applies, and is not sent at all once that caller gave up on it.
    const timeout = this.commandTimeout;
    const giveUpAt = performance.now() + timeout;
    return first.then(() => {
      if (performance.now() > giveUpAt) throw new StoreTimeoutError(timeout);
      return this.evaluate(script, keys, args);
    });
  }

  private evaluate(script: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    const client = this.adapter;
    return client.evalsha(script.sha, keys, args).catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(script.source, keys, args);
    });
  }

  private timed<T>(promise: Promise<T>): Promise<T> {
    const timeout = this.commandTimeout;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      // The timeout counts from when the command is written: node-redis writes the commands it is
      // given in a setImmediate (ioredis at once), which runs before this one. A busy event loop
      // between the call and that write is not Redis's time.
      setImmediate(() => {
        if (settled) return;
        // A busy event loop runs the timer late, in the same turn as the socket read that holds the
        // reply: timers run first. setImmediate waits for this turn's I/O, so a reply that is already
        // here wins, and only a Redis that has not answered times out. (A slow answer is not an
        // outage.)
        timer = setTimeout(() => {
          setImmediate(() => {
            if (settled) return;
            settled = true;
            reject(new StoreTimeoutError(timeout));
          });
        }, timeout);
        timer.unref();
      });
      promise.then(
        (value) => {
          clearTimeout(timer);
          if (settled) return;
          settled = true;
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          if (settled) return;
          settled = true;
          reject(error);
        },
      );
    });
  }
}

function circuitState(state: string, ttl: number): FleetCircuitState {
  if (state === 'isolated') return { state: 'isolated', retryAfter: Infinity };
  if (state === 'open' && ttl > 0) return { state: 'open', retryAfter: ttl };
  return { state: 'closed', retryAfter: 0 };
}

function parseMessage(message: string): FleetCircuitState | undefined {
  if (message === 'closed') return { state: 'closed', retryAfter: 0 };
  if (message === 'trial-free') return { state: 'halfOpen', retryAfter: 0 };
  if (message === 'isolated') return { state: 'isolated', retryAfter: Infinity };
  if (message.startsWith('open:')) {
    const ms = Number(message.slice(5));
    if (ms >= 0) return { state: 'open', retryAfter: ms };
  }
  return undefined;
}

/**
 * Makes a {@link RedisStore}: pass it as `store` to `circuitBreaker`, `rateLimiter` and `cache` options
 * (each with a `name`; the same name in two processes means the same shared state).
 *
 * @example
 * const store = redisStore(new Redis({ enableOfflineQueue: false, maxRetriesPerRequest: 1 }), {
 *   prefix: 'checkout:',
 * });
 */
export function redisStore(client: RedisClient, options: RedisStoreOptions = {}): RedisStore {
  return new RedisStore(client, options);
}

function ignore(): void {
  // failures here are seen through the commands' health
}
