import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { resilient } from '../src/index.js';

/**
 * Listeners such as OpenTelemetry's read the async context an event fires in (the active span). The
 * first attempt's timeout normally runs off one shared timer, armed by whichever call came first;
 * while someone listens, each call's timeout fires in that call's own context. Real timers: the
 * context travels with Node's own setTimeout, which a manual clock cannot show.
 */
describe('events fire in the async context of the call they belong to', () => {
  it('a first-attempt timeout is reported in its own call context', async () => {
    const storage = new AsyncLocalStorage<string>();
    const never = (): Promise<never> => new Promise(() => undefined);
    const wrapped = resilient(never, { timeout: 15 });
    const seen: (string | undefined)[] = [];
    wrapped.on((event) => {
      if (event.type === 'timedOut') seen.push(storage.getStore());
    });
    const first = storage.run('request 1', () => wrapped().catch(() => 'timed out'));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = storage.run('request 2', () => wrapped().catch(() => 'timed out'));
    expect(await Promise.all([first, second])).toEqual(['timed out', 'timed out']);
    expect(seen).toEqual(['request 1', 'request 2']);
  });

  it('a call that settles in time leaves no timer behind', async () => {
    const wrapped = resilient(async () => 'ok', { timeout: 10_000 });
    wrapped.on(() => undefined);
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await expect(wrapped()).resolves.toBe('ok');
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(after).toBe(before);
  });
});
