import type { SharedCache, SharedCacheLock, SharedCacheRead, Store } from '../../src/store.js';
import type { ManualClock } from './manual-clock.js';

/** How the fake store answers its next commands. */
export type CacheStoreMode = 'answer' | 'fail' | 'hang';

/**
 * A fleet's shared cache in memory, enough of a {@link Store} for store-backed caches in virtual time: the
 * same decisions as the Redis scripts (`src/redis/scripts.ts` CACHE_GET / CACHE_SET / CACHE_RELEASE):
 * entries expire after `keepFor` ms of the manual clock, `get` with a lock and no fresh entry takes the
 * key's lock (or says how long another holder's lock has left), `set` and `release` free the lock only
 * for its holder's token, and at most `maxEntries` entries are kept (the soonest to expire go first).
 * Every cache built on it with the same name shares one state, as processes share Redis. It records the
 * commands, and can fail or hang them (a hanging command fails when {@link MemoryCacheStore.release}d).
 */
export class MemoryCacheStore implements Store {
  readonly commands: { op: string; key?: string; token?: string; keepFor?: number; at: number }[] =
    [];
  mode: CacheStoreMode = 'answer';
  readonly recheckAfter: number;
  private readonly entries = new Map<string, { data: string; expires: number }>();
  private readonly locks = new Map<string, { token: string; until: number }>();
  private readonly hanging: (() => void)[] = [];

  constructor(
    private readonly clock: ManualClock,
    options: { recheckAfter?: number } = {},
  ) {
    this.recheckAfter = options.recheckAfter ?? 1_000;
  }

  forRateLimiter(): never {
    throw new Error('not used');
  }

  forCircuit(): never {
    throw new Error('not used');
  }

  forCache(name: string): SharedCache {
    const k = (key: string): string => `${name}|${key}`;
    return {
      get: (key, lock) => this.run('get', key, lock?.token, () => this.get(k(key), lock)),
      set: (key, data, keepFor, maxEntries, token) =>
        this.run(
          'set',
          key,
          token,
          () => {
            this.set(k(key), data, keepFor, maxEntries, token);
          },
          keepFor,
        ),
      release: (key, token) =>
        this.run('release', key, token, () => {
          this.unlock(k(key), token);
        }),
      delete: (key) =>
        this.run('delete', key, undefined, () => {
          this.entries.delete(k(key));
        }),
      clear: () =>
        this.run('clear', undefined, undefined, () => {
          for (const key of [...this.entries.keys()])
            if (key.startsWith(`${name}|`)) this.entries.delete(key);
        }),
    };
  }

  /** Writes an entry as another process would (data as the serializer encodes it). */
  put(name: string, key: string, data: string, keepFor: number): void {
    this.entries.set(`${name}|${key}`, { data, expires: this.clock.now() + keepFor });
  }

  /** Takes a key's lock as another process would, for `ms`. */
  lock(name: string, key: string, ms: number): void {
    this.locks.set(`${name}|${key}`, { token: 'other', until: this.clock.now() + ms });
  }

  /** Stored keys of a cache, without its name. */
  keys(name: string): string[] {
    const now = this.clock.now();
    return [...this.entries]
      .filter(([key, e]) => key.startsWith(`${name}|`) && e.expires > now)
      .map(([key]) => key.slice(name.length + 1));
  }

  /** Fails every hanging command (a timeout seen late). */
  release(): void {
    for (const fail of this.hanging.splice(0)) fail();
  }

  private run<T>(
    op: string,
    key: string | undefined,
    token: string | undefined,
    task: () => T,
    keepFor?: number,
  ): Promise<T> {
    this.commands.push({
      op,
      at: this.clock.now(),
      ...(key === undefined ? {} : { key }),
      ...(token === undefined ? {} : { token }),
      ...(keepFor === undefined ? {} : { keepFor }),
    });
    if (this.mode === 'fail') return Promise.reject(new Error('store down'));
    if (this.mode === 'hang')
      return new Promise((_, reject) => {
        this.hanging.push(() => reject(new Error('store timed out')));
      });
    return Promise.resolve(task());
  }

  private get(key: string, lock: SharedCacheLock | undefined): SharedCacheRead {
    const now = this.clock.now();
    const e = this.entries.get(key);
    const remaining = e !== undefined && e.expires > now ? e.expires - now : -1;
    const entry = remaining < 0 ? undefined : { data: e!.data, remaining };
    if (lock === undefined || lock.ms <= 0 || remaining > lock.staleFor) return { entry, lock: -1 };
    const held = this.locks.get(key);
    if (held !== undefined && held.until > now)
      return { entry, lock: Math.max(1, held.until - now) };
    this.locks.set(key, { token: lock.token, until: now + lock.ms });
    return { entry, lock: 0 };
  }

  private set(
    key: string,
    data: string,
    keepFor: number,
    maxEntries: number,
    token: string | undefined,
  ): void {
    const now = this.clock.now();
    this.entries.set(key, { data, expires: keepFor === Infinity ? Infinity : now + keepFor });
    for (const [k, e] of this.entries) if (e.expires <= now) this.entries.delete(k);
    const prefix = key.slice(0, key.indexOf('|') + 1);
    const mine = [...this.entries].filter(([k]) => k.startsWith(prefix));
    if (mine.length > maxEntries) {
      mine.sort((a, b) => a[1].expires - b[1].expires);
      for (const [k] of mine.slice(0, mine.length - maxEntries)) this.entries.delete(k);
    }
    if (token !== undefined && token !== '') this.unlock(key, token);
  }

  private unlock(key: string, token: string): void {
    if (this.locks.get(key)?.token === token) this.locks.delete(key);
  }
}
