import type { SharedCache, Store } from '../../src/store.js';
import type { ManualClock } from './manual-clock.js';

/**
 * A shared cache in memory, enough of a {@link Store} for the cache stage: entries expire by the manual
 * clock, and every lock asked for is granted (one process). `keys` records the store keys written.
 */
export function memoryStore(clock: ManualClock): Store & { readonly keys: string[] } {
  const entries = new Map<string, { data: string; until: number }>();
  const keys: string[] = [];
  const unused = (): never => {
    throw new Error('not used');
  };
  const cache: SharedCache = {
    get: (key, lock) => {
      const entry = entries.get(key);
      const remaining = entry === undefined ? 0 : entry.until - clock.now();
      const stored =
        entry === undefined || remaining <= 0 ? undefined : { data: entry.data, remaining };
      return Promise.resolve({ entry: stored, lock: lock === undefined ? -1 : 0 });
    },
    set: (key, data, keepFor) => {
      keys.push(key);
      entries.set(key, { data, until: clock.now() + keepFor });
      return Promise.resolve();
    },
    release: () => Promise.resolve(),
    delete: (key) => {
      entries.delete(key);
      return Promise.resolve();
    },
    clear: () => {
      entries.clear();
      return Promise.resolve();
    },
  };
  return { forRateLimiter: unused, forCircuit: unused, forCache: () => cache, keys };
}
