import { isPrimitiveKey, type Cache, type CacheEntry } from '../policies/cache.js';
import { callWith, collect, type Task } from './call.js';
import { FastPath } from './fast-path.js';

/**
 * The compiled pipeline of one wrapped function, in three layers, one story per file:
 *
 * - pipeline.ts (this file): the entry points and the cache stage, the outermost stage a call meets;
 * - fast-path.ts: the first attempt, synchronous admission and one `.then` (no async, no allocation);
 * - slow-path.ts: the only async code: retries, backoff sleeps, queue waits, aborts, the fallback.
 *
 * Each layer extends the one below it (stages.ts holds what `resilientSync` shares), so a file imports
 * only the layers under it and V8 sees one class: the call sites stay monomorphic.
 */
export class Pipeline extends FastPath {
  // ---------------------------------------------------------------------------------------------
  // Entry points
  // ---------------------------------------------------------------------------------------------

  /** A call of the wrapped function: cache, then the rest of the pipeline. */
  call(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    const cache = this.cache;
    if (cache === undefined)
      return this.invoke(thisArg, argc, a0, a1, a2, a3, rest, undefined, undefined, undefined);
    // A hit on the default key (the first argument) in memory: a Map read, nothing else. The rest is a
    // method of its own, which keeps this one small enough for V8 to inline into the wrapper.
    if (
      cache.keyOf === undefined &&
      cache.shared === undefined &&
      argc <= 1 &&
      isPrimitiveKey(a0)
    ) {
      const entry = cache.lookup(a0);
      if (entry !== undefined && entry.fresh && !this.listening()) {
        cache.hits++;
        return cache.promiseOf(entry);
      }
      return this.found(cache, a0, entry, thisArg, argc, a0, a1, a2, a3, rest);
    }
    return this.keyed(cache, thisArg, argc, a0, a1, a2, a3, rest);
  }

  /** A call whose key is not the default one, or that goes to the store: the key, then {@link found}. */
  private keyed(
    cache: Cache,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    let key: unknown;
    if (cache.keyOf === undefined) {
      if (argc > 1 || !isPrimitiveKey(a0)) return Promise.reject(this.keyError(argc, a0));
      key = a0;
    } else {
      try {
        key = callWith(cache.keyOf, thisArg, argc, a0, a1, a2, a3, rest);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (cache.shared !== undefined)
      return this.sharedCall(cache, key, thisArg, argc, a0, a1, a2, a3, rest);
    return this.found(cache, key, cache.lookup(key), thisArg, argc, a0, a1, a2, a3, rest);
  }

  /** What the in-memory cache holds for `key` (`entry`, or undefined) decides: a hit, a join or a miss. */
  private found(
    cache: Cache,
    key: unknown,
    entry: CacheEntry | undefined,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    if (entry !== undefined) {
      // Freshness is timer-driven (see Cache): a hit reads no clock and allocates nothing.
      if (entry.fresh) {
        cache.hits++;
        if (this.listening()) {
          // eslint-disable-next-line no-restricted-syntax -- built only when someone listens
          this.emit({ type: 'cacheHit', key });
        }
        return cache.promiseOf(entry);
      }
      // Within `staleWhileRevalidate` past its ttl: the stale value now, one refresh in the background.
      if (cache.staleWhileRevalidate > 0 && entry.expires !== -Infinity) {
        const past = this.clock.now() - entry.expires;
        if (cache.revalidates(past))
          return this.staleHit(cache, entry, past, thisArg, argc, a0, a1, a2, a3, rest);
      }
      if (entry.flight !== undefined) {
        cache.hits++;
        if (this.listening()) {
          // eslint-disable-next-line no-restricted-syntax -- built only when someone listens
          this.emit({ type: 'cacheJoined', key });
        }
        return this.withFallback(entry.flight, thisArg, argc, a0, a1, a2, a3, rest);
      }
    }
    return this.miss(cache, key, entry, thisArg, argc, a0, a1, a2, a3, rest);
  }

  /** @internal A call of a wrapped function whose pipeline has no cache stage: the first attempt. */
  callUncached(
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    if (this.plain) return this.invokePlain(thisArg, argc, a0, a1, a2, a3, rest);
    return this.invoke(thisArg, argc, a0, a1, a2, a3, rest, undefined, undefined, undefined);
  }

  /** `policy.execute(task, { signal })`: no cache (there are no arguments to key on). */
  execute(task: Task, signal: AbortSignal | undefined): Promise<unknown> {
    return this.invoke(
      undefined,
      0,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      task,
      signal,
      undefined,
    );
  }

  /**
   * `execute` whose partitioned stages are keyed on `by(input, init)` (resilientFetch's request); the
   * task ignores them (it gets its attempt context), and there is no cache stage.
   */
  executeRouted(
    task: Task,
    signal: AbortSignal | undefined,
    input: unknown,
    init: unknown,
  ): Promise<unknown> {
    return this.invoke(
      undefined,
      2,
      input,
      init,
      undefined,
      undefined,
      undefined,
      task,
      signal,
      undefined,
    );
  }

  /* eslint-disable no-restricted-syntax -- slow path: runs only when a call misses, fails, waits or carries a signal */
  // ---------------------------------------------------------------------------------------------
  // Cache stage (miss path)
  // ---------------------------------------------------------------------------------------------

  private miss(
    cache: Cache,
    key: unknown,
    existing: CacheEntry | undefined,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    cache.misses++;
    if (this.listening()) this.emit({ type: 'cacheMiss', key });
    const entry = existing ?? cache.insert(key, undefined);
    const inner = this.invoke(thisArg, argc, a0, a1, a2, a3, rest, undefined, undefined, entry);
    // On the fast path the call itself fills the entry (one `.then` for every stage, the cache's
    // included, and the fallback applied there), and its promise is already the entry's flight.
    if (entry.flight === inner) return inner;
    // Otherwise (a signal, a wait, an early rejection): the cache watches the call's promise.
    const flight = inner.then(
      (value) => {
        cache.storeNow(entry, value);
        return value;
      },
      (error: unknown) => this.missFailed(entry, error),
    );
    entry.flight = flight;
    return this.withFallback(flight, thisArg, argc, a0, a1, a2, a3, rest);
  }

  /**
   * A stale value served at once; the first such call starts the key's refresh, which runs through the
   * rest of the pipeline on its own: no caller waits on it, so no caller's fallback applies to it, and
   * only the pipeline's `signal` (shutdown) stops it.
   */
  private staleHit(
    cache: Cache,
    entry: CacheEntry,
    past: number,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    cache.hits++;
    cache.staleHits++;
    const refreshing = entry.flight === undefined;
    if (this.listening())
      this.emit({ type: 'cacheStaleHit', key: entry.key, age: past + cache.ttl, refreshing });
    if (refreshing) {
      const inner = this.invoke(
        thisArg,
        argc,
        a0,
        a1,
        a2,
        a3,
        rest,
        undefined,
        undefined,
        undefined,
      );
      const flight = inner.then(
        (value) => {
          cache.store(entry, value, this.clock.now());
          return value;
        },
        (error: unknown) => this.refreshFailed(cache, entry, error),
      );
      entry.flight = flight;
      // Calls that join it (once the stale window is over) handle its outcome; nobody else may.
      flight.then(undefined, ignore);
    }
    return cache.promiseOf(entry);
  }

  /**
   * A background refresh failed: the stale value stays (within `staleWhileRevalidate`, then as
   * `staleIfError` allows) for the calls that joined it; the entry is dropped only when neither allows.
   */
  private refreshFailed(cache: Cache, entry: CacheEntry, error: unknown): unknown {
    cache.refreshFailures++;
    if (this.listening()) this.emit({ type: 'cacheRefreshFailed', key: entry.key, error });
    if (cache.revalidates(this.clock.now() - entry.expires)) {
      entry.flight = undefined;
      return entry.value;
    }
    return this.missFailed(entry, error);
  }

  /**
   * A cache with a store: values live in the store (read on every call); single flight is fleet-wide
   * through the store's key locks (see Cache.fetch); concurrent calls here share one read and one call.
   */
  private sharedCall(
    cache: Cache,
    key: unknown,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    let storeKey: string;
    try {
      storeKey = cache.storeKey(key);
    } catch (error) {
      return Promise.reject(error);
    }
    const joined = cache.lookup(key)?.flight;
    if (joined !== undefined) {
      cache.hits++;
      if (this.listening()) this.emit({ type: 'cacheJoined', key });
      return this.withFallback(joined, thisArg, argc, a0, a1, a2, a3, rest);
    }
    const flight = this.sharedFlight(cache, key, storeKey, thisArg, argc, a0, a1, a2, a3, rest);
    const entry = cache.create(key, flight);
    // The local entry only carries the call in flight.
    const forget = (): void => cache.drop(entry);
    void flight.then(forget, forget);
    return this.withFallback(flight, thisArg, argc, a0, a1, a2, a3, rest);
  }

  private async sharedFlight(
    cache: Cache,
    key: unknown,
    storeKey: string,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    const read = await cache.fetch(storeKey);
    const stored = read.stored;
    if (stored?.fresh === true) {
      cache.hits++;
      if (this.listening()) {
        if (read.joined) this.emit({ type: 'cacheJoined', key });
        else this.emit({ type: 'cacheHit', key });
      }
      return stored.value;
    }
    // Within `staleWhileRevalidate`: the stale value now. The refresh is this process's when it holds
    // the key's lock (one across the fleet), or, without fleet locks, when none runs here yet.
    if (stored !== undefined && cache.revalidates(stored.age - cache.ttl)) {
      const refreshing =
        read.token !== '' || (cache.lockTimeout === 0 && !cache.refreshing.has(storeKey));
      cache.hits++;
      cache.staleHits++;
      if (this.listening()) this.emit({ type: 'cacheStaleHit', key, age: stored.age, refreshing });
      if (refreshing)
        this.sharedRefresh(cache, key, storeKey, read.token, thisArg, argc, a0, a1, a2, a3, rest);
      return stored.value;
    }
    cache.misses++;
    if (this.listening()) this.emit({ type: 'cacheMiss', key });
    let value: unknown;
    try {
      value = await this.invoke(
        thisArg,
        argc,
        a0,
        a1,
        a2,
        a3,
        rest,
        undefined,
        undefined,
        undefined,
      );
    } catch (error) {
      cache.release(storeKey, read.token); // another process may compute it now
      // The store keeps a value `staleFor` ms past its ttl: one within `staleIfError` may be served.
      if (
        stored === undefined ||
        this.isAbort(error) ||
        stored.age - cache.ttl > cache.staleIfError
      )
        throw error;
      cache.staleServed++;
      if (this.listening()) this.emit({ type: 'staleServed', key, age: stored.age, error });
      return stored.value;
    }
    void cache.put(storeKey, value, read.token);
    return value;
  }

  /** A shared cache's background refresh: stores its value and releases the key's lock, never rejects. */
  private sharedRefresh(
    cache: Cache,
    key: unknown,
    storeKey: string,
    token: string,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): void {
    cache.refreshing.add(storeKey);
    const failed = (error: unknown): void => {
      cache.refreshFailures++;
      if (this.listening()) this.emit({ type: 'cacheRefreshFailed', key, error });
    };
    void this.invoke(thisArg, argc, a0, a1, a2, a3, rest, undefined, undefined, undefined).then(
      (value) => {
        // Until the value is written, a read still finds the stale one: no second refresh meanwhile.
        const done = (): void => void cache.refreshing.delete(storeKey);
        try {
          void cache.put(storeKey, value, token).then(done);
        } catch (error) {
          done();
          failed(error); // a value the serializer refuses: the stale one stays
        }
      },
      (error: unknown) => {
        cache.refreshing.delete(storeKey);
        cache.release(storeKey, token);
        failed(error);
      },
    );
  }

  private withFallback(
    promise: Promise<unknown>,
    thisArg: unknown,
    argc: number,
    a0: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
    rest: unknown[] | undefined,
  ): Promise<unknown> {
    if (this.fallback === undefined) return promise;
    return promise.then(undefined, (error: unknown) =>
      this.isAbort(error)
        ? Promise.reject(error)
        : this.applyFallback(error, thisArg, collect(argc, a0, a1, a2, a3, rest)),
    );
  }
  /* eslint-enable no-restricted-syntax */
}

function ignore(): void {
  // A background refresh that nobody joined: its failure was reported as a `cacheRefreshFailed` event.
}
