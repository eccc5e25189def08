import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  bulkhead,
  BulkheadRejectedError,
  resilient,
  systemClock,
  TimeoutError,
  type BulkheadOptions,
  type ResilienceEvent,
} from '../../src/index.js';
import { BULKHEAD_POLL } from '../../src/policies/shared-bulkhead.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';
import { MemoryFleetStore } from '../helpers/memory-fleet.js';
import { deferred, track, type Deferred, type Tracked } from '../helpers/promises.js';

/**
 * The fleet bulkhead's own logic (src/policies/shared-bulkhead.ts: the slot requests, the fleet's FIFO
 * queue, wake-ups and polls, leases renewed while calls run or wait, the fallbacks while the store is
 * out of reach) in virtual time, against fleet slots held in memory that do what the Redis scripts do.
 * Several bulkheads with one name on one store are several processes. The link keeps its store health,
 * renewals and polls on the system clock (a bulkhead has no clock option), so these tests fake the
 * system clock's timers and `performance.now()` (vitest fake timers) and build every policy on it.
 * The same behaviour against a real redis-server is in test/redis/bulkhead.test.ts and
 * test/redis/fleet-bulkhead.test.ts.
 */
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const advance = async (ms: number): Promise<void> => {
  await vi.advanceTimersByTimeAsync(ms);
  await flush();
};

function fleet(storeOptions: ConstructorParameters<typeof MemoryFleetStore>[1] = {}) {
  const store = new MemoryFleetStore(systemClock, storeOptions);
  /** Every call that reached `fn` in any process: its label, start and end. */
  const log: { label: string; start: number; end: number | undefined }[] = [];
  let running = 0;
  let most = 0;
  /** One process's bulkhead and a function whose calls run until the test ends them. */
  const member = (options: Partial<BulkheadOptions> = {}, pipeline: object = {}) => {
    const gate = bulkhead({ name: 'api', maxConcurrent: 2, store, ...options });
    const events: ResilienceEvent[] = [];
    gate.on((event) => events.push(event));
    const pending = new Map<string, Deferred<string>>();
    const body = (label: string): Promise<string> => {
      const entry = { label, start: performance.now(), end: undefined as number | undefined };
      log.push(entry);
      most = Math.max(most, ++running);
      const d = deferred<string>();
      pending.set(label, d);
      return d.promise.finally(() => {
        running--;
        entry.end = performance.now();
      });
    };
    const fn = resilient(body, { bulkhead: gate, ...pipeline });
    const policy = resilient({ bulkhead: gate, ...pipeline });
    const call = (label: string, signal?: AbortSignal): Tracked<string> =>
      track(signal === undefined ? fn(label) : policy.execute(() => body(label), { signal }));
    /** Ends a running call. */
    const end = async (label: string, ok = true): Promise<void> => {
      const d = pending.get(label);
      if (d === undefined) throw new Error(`${label} is not running`);
      if (ok) d.resolve(label);
      else d.reject(new Error('down'));
      await flush();
    };
    return { gate, fn, call, end, events, types: () => events.map((e) => e.type) };
  };
  const started = (): string[] => log.map((e) => e.label);
  const count = (command: string): number =>
    store.commands.filter((c) => c.command === command).length;
  return {
    store,
    member,
    log,
    started,
    count,
    get running() {
      return running;
    },
    get most() {
      return most;
    },
  };
}

describe('fleet bulkhead: slots and the queue', () => {
  it('at most maxConcurrent calls run across processes; queued callers get slots FIFO, fleet-wide', async () => {
    const f = fleet();
    const a = f.member({ maxQueue: 10 });
    const b = f.member({ maxQueue: 10 });
    const calls = [a.call('a1'), b.call('b1')];
    await flush();
    calls.push(b.call('b2'));
    await flush();
    calls.push(a.call('a2'));
    await flush();
    calls.push(b.call('b3'));
    await flush();
    expect(f.started()).toEqual(['a1', 'b1']);
    expect(f.store.bulkheadKeys('api').queue).toHaveLength(3);
    expect(a.gate.stats()).toMatchObject({ inFlight: 1, queued: 1 });
    expect(b.gate.stats()).toMatchObject({ inFlight: 1, queued: 2 });
    await a.end('a1'); // the freed slot goes to the oldest waiter, in the other process
    await flush();
    expect(f.started()).toEqual(['a1', 'b1', 'b2']);
    await b.end('b1');
    await flush();
    expect(f.started()).toEqual(['a1', 'b1', 'b2', 'a2']);
    await b.end('b2');
    await a.end('a2');
    await flush();
    expect(f.started()).toEqual(['a1', 'b1', 'b2', 'a2', 'b3']);
    await b.end('b3');
    expect(calls.map((c) => c.status)).toEqual(Array(5).fill('fulfilled'));
    expect(f.most).toBe(2);
    expect(f.store.bulkheadKeys('api')).toEqual({ holders: [], queue: [] });
    // Woken by messages, not by polls: no time passed.
    expect(performance.now()).toBe(0);
  });

  it('without a queue a full fleet rejects at once; maxQueue bounds the waiters fleet-wide', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 1 });
    const b = f.member({ maxConcurrent: 1, maxQueue: 1 });
    const c = f.member({ maxConcurrent: 1 }); // no queue
    a.call('a1');
    await flush();
    const waiting = b.call('b1'); // the fleet's one place in the queue
    await flush();
    const overflow = a.call('a2');
    const noQueue = c.call('c1');
    await flush();
    for (const rejected of [overflow, noQueue]) {
      expect(rejected.status).toBe('rejected');
      expect(rejected.reason).toBeInstanceOf(BulkheadRejectedError);
      expect((rejected.reason as BulkheadRejectedError).reason).toBe('full');
    }
    expect(f.store.commands.filter((x) => x.command === 'acquire').map((x) => x.args[1])).toEqual([
      { maxConcurrent: 1, maxQueue: 1, queue: true, lease: 5_000 },
      { maxConcurrent: 1, maxQueue: 1, queue: true, lease: 5_000 },
      { maxConcurrent: 1, maxQueue: 1, queue: true, lease: 5_000 },
      { maxConcurrent: 1, maxQueue: 0, queue: false, lease: 5_000 },
    ]);
    expect(a.gate.stats().rejected).toBe(1);
    expect(c.gate.stats().rejected).toBe(1);
    expect(waiting.status).toBe('pending');
    await a.end('a1');
    await flush();
    expect(f.started()).toEqual(['a1', 'b1']);
  });

  it('queueTimeout ends a wait, gives its place back, and the next waiter gets the slot', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5, queueTimeout: 100 });
    const b = f.member({ maxConcurrent: 1, maxQueue: 5 });
    a.call('a1');
    await flush();
    const late = a.call('a2');
    await flush();
    const next = b.call('b1');
    await flush();
    await advance(99);
    expect(late.status).toBe('pending');
    await advance(1);
    expect(late.status).toBe('rejected');
    expect((late.reason as BulkheadRejectedError).reason).toBe('queueTimeout');
    expect(a.gate.stats()).toMatchObject({ queued: 0, rejected: 1 });
    expect(f.store.bulkheadKeys('api').queue).toHaveLength(1); // b1's place only
    await a.end('a1');
    await flush();
    expect(f.started()).toEqual(['a1', 'b1']);
    expect(next.status).toBe('pending'); // running
  });

  it("a call's total deadline ends its wait with a TimeoutError (not a bulkhead rejection)", async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5, queueTimeout: 1_000 });
    const b = f.member({ maxConcurrent: 1, maxQueue: 5 }, { timeout: { total: 300 } });
    a.call('a1');
    await flush();
    const waiting = b.call('b1');
    await flush();
    await advance(300);
    expect(waiting.status).toBe('rejected');
    expect(waiting.reason).toBeInstanceOf(TimeoutError);
    expect(b.gate.stats().rejected).toBe(0);
    expect(f.store.bulkheadKeys('api').queue).toEqual([]);
  });

  it("a caller's abort leaves the queue at once, and its place goes back", async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5 });
    a.call('a1');
    await flush();
    const controller = new AbortController();
    const waiting = a.call('a2', controller.signal);
    await flush();
    expect(f.store.bulkheadKeys('api').queue).toHaveLength(1);
    const reason = new Error('bye');
    controller.abort(reason);
    await flush();
    expect(waiting.status).toBe('rejected');
    expect(waiting.reason).toBe(reason);
    expect(f.store.bulkheadKeys('api').queue).toEqual([]);
    expect(a.gate.stats()).toMatchObject({ queued: 0, rejected: 0 });
  });

  it('an abort while the slot request is in flight rejects at once; a slot granted late is handed back', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5 });
    f.store.mode = 'hang';
    const controller = new AbortController();
    const call = a.call('a1', controller.signal);
    await flush();
    const reason = new Error('bye');
    controller.abort(reason);
    await flush();
    expect(call.status).toBe('rejected');
    expect(call.reason).toBe(reason);
    expect(f.count('release')).toBe(0); // the answer decides
    f.store.mode = 'answer';
    f.store.resume(); // granted, for nobody: handed back
    await flush();
    expect(f.store.bulkheadKeys('api').holders).toEqual([]);
    expect(f.started()).toEqual([]);
    expect(a.gate.stats()).toMatchObject({ inFlight: 0, queued: 0 });
    expect(a.call('a2').status).toBe('pending');
    await flush();
    expect(f.started()).toEqual(['a2']);
  });

  it('a wait that times out while its request is in flight hands back the place the store gave', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5, queueTimeout: 50 });
    a.call('a1');
    await flush();
    f.store.latency = 80;
    const late = a.call('a2');
    await advance(50);
    expect((late.reason as BulkheadRejectedError).reason).toBe('queueTimeout');
    await advance(30); // queued at 80 ms, for nobody: given back (answered 80 ms later)
    expect(f.count('release')).toBe(1);
    await advance(80);
    expect(f.store.bulkheadKeys('api').queue).toEqual([]);
  });

  it('a slot freed while a poll is in flight is asked for again at once, not at the next poll', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5 });
    const b = f.member({ maxConcurrent: 1, maxQueue: 5 });
    a.call('a1');
    await flush();
    b.call('b1');
    await flush();
    f.store.modes.set('acquire', 'stall'); // b's next ask runs (still queued), its reply is slow
    f.store.dropMessages = true;
    await advance(BULKHEAD_POLL);
    f.store.modes.delete('acquire');
    f.store.dropMessages = false;
    await a.end('a1'); // the free message arrives while b's poll is in flight
    f.store.resume(); // 'still queued': b asks again at once
    await flush();
    expect(f.started()).toEqual(['a1', 'b1']);
    expect(f.log[1]!.start).toBe(BULKHEAD_POLL);
  });

  it('a waiter whose place lapsed and that finds the queue full is rejected, never run past the limit', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 1, slotLease: 600 });
    const b = f.member({ maxConcurrent: 1, maxQueue: 1, slotLease: 600 });
    const c = f.member({ maxConcurrent: 1, maxQueue: 1, slotLease: 600 });
    a.call('a1');
    await flush();
    const waiting = b.call('b1');
    await flush();
    f.store.mode = 'hang'; // a stalled Redis: b's renewals and polls wait (a's lease is renewed below)
    await advance(700); // b1's place lapsed (600 ms without a renewal)
    f.store.mode = 'answer';
    await f.store.forBulkhead('api').renew(f.store.bulkheadKeys('api').holders, 600); // (a's slot stays held)
    c.call('c1'); // takes the fleet's one place in the queue
    await flush();
    f.store.resume(); // b's poll finds b1 gone from the queue, and no room
    await flush();
    expect(waiting.status).toBe('rejected');
    expect((waiting.reason as BulkheadRejectedError).reason).toBe('full');
    expect(f.most).toBe(1);
  });

  it('a lost message is made up for by a poll every 250 ms', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5 });
    const b = f.member({ maxConcurrent: 1, maxQueue: 5 });
    a.call('a1');
    await flush();
    b.call('b1');
    await flush();
    f.store.dropMessages = true;
    await advance(100);
    await a.end('a1'); // at 100 ms; the message is lost
    expect(f.started()).toEqual(['a1']);
    await advance(BULKHEAD_POLL - 101);
    expect(f.started()).toEqual(['a1']);
    await advance(1); // b's poll, 250 ms after it queued
    expect(f.started()).toEqual(['a1', 'b1']);
    const asked = f.count('acquire');
    await advance(10 * BULKHEAD_POLL);
    expect(f.count('acquire')).toBe(asked); // nobody waits: no more polls
  });

  it('a reconnection wakes the waiters (messages may have been missed)', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5 });
    const b = f.member({ maxConcurrent: 1, maxQueue: 5 });
    a.call('a1');
    await flush();
    b.call('b1');
    await flush();
    f.store.dropMessages = true;
    await a.end('a1');
    f.store.dropMessages = false;
    f.store.reconnect();
    await flush();
    expect(f.started()).toEqual(['a1', 'b1']);
    expect(performance.now()).toBe(0);
  });
});

describe('fleet bulkhead: leases', () => {
  it("a dead process's slot comes back after its lease; a waiter gets it at the next poll", async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5, slotLease: 1_000 });
    // A process that took a slot and died: nobody renews it.
    await f.store
      .forBulkhead('api')
      .acquire('dead', { maxConcurrent: 1, maxQueue: 5, queue: true, lease: 1_100 });
    a.call('a1');
    await flush();
    await advance(1_249);
    expect(f.started()).toEqual([]);
    await advance(1);
    expect(f.started()).toEqual(['a1']);
    expect(f.log[0]!.start).toBe(1_250); // the poll after the lease ended
  });

  it("a pipeline on a manual clock: leases are renewed in real time, queueTimeout runs on the pipeline's clock", async () => {
    const f = fleet();
    const manual = new ManualClock();
    const options = { maxConcurrent: 1, maxQueue: 5, slotLease: 900, queueTimeout: 1_000 };
    const a = f.member(options, { clock: manual });
    const b = f.member(options, { clock: manual });
    a.call('a1');
    await flush();
    const waiting = b.call('b1');
    await flush();
    // Real time passes, the pipelines' clock stands still: the slot and the place are kept alive, and
    // the wait has not timed out (its 1 s is the pipeline's).
    await advance(5_000);
    expect(f.count('renew')).toBeGreaterThanOrEqual(2 * Math.floor(5_000 / 300) - 2);
    expect(f.store.bulkheadKeys('api').holders).toHaveLength(1);
    expect(f.store.bulkheadKeys('api').queue).toHaveLength(1);
    expect(waiting.status).toBe('pending');
    await manual.advance(1_000);
    await flush();
    expect(waiting.status).toBe('rejected');
    expect(waiting.reason).toBeInstanceOf(BulkheadRejectedError);
    expect(waiting.reason).toMatchObject({ reason: 'queueTimeout' });
    expect(f.store.bulkheadKeys('api').queue).toHaveLength(0); // its place given back
    await a.end('a1');
  });

  it('a running call and a waiting one keep their slot and place past slotLease: renewed every slotLease / 3', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5, slotLease: 900 });
    const b = f.member({ maxConcurrent: 1, maxQueue: 5, slotLease: 900 });
    a.call('a1');
    await flush();
    b.call('b1');
    await flush();
    const c = f.member({ maxConcurrent: 1, maxQueue: 5, slotLease: 900 });
    await advance(5_000);
    const late = c.call('c1'); // behind b1, which kept its place
    await flush();
    expect(f.started()).toEqual(['a1']);
    const renewals = f.store.commands.filter((x) => x.command === 'renew');
    expect(renewals.length).toBeGreaterThanOrEqual(2 * Math.floor(5_000 / 300) - 2);
    expect(renewals.every((r) => r.args[1] === 900)).toBe(true);
    expect(renewals.find((r) => r.name === 'api')!.at).toBe(300);
    await a.end('a1');
    await flush();
    expect(f.started()).toEqual(['a1', 'b1']);
    expect(late.status).toBe('pending');
  });

  it('renews every slot and place of the process in one command, and stops when it holds none', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 2, maxQueue: 5, slotLease: 600 });
    a.call('a1');
    a.call('a2');
    await flush();
    a.call('a3');
    await flush();
    await advance(200);
    const renew = f.store.commands.filter((x) => x.command === 'renew');
    expect(renew).toHaveLength(1);
    expect(renew[0]!.args[0]).toHaveLength(3);
    await a.end('a1');
    await a.end('a2');
    await a.end('a3');
    const before = f.count('renew');
    await advance(2_000);
    expect(f.count('renew')).toBeLessThanOrEqual(before + 1);
  });
});

describe('fleet bulkhead: while the store is out of reach', () => {
  it("'local' (default) runs this process's own bulkhead: maxConcurrent per process", async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 2 });
    const b = f.member({ maxConcurrent: 2 });
    f.store.mode = 'fail';
    const calls = [a.call('a1')];
    await flush(); // a's first command fails: a acts alone from now on
    calls.push(a.call('a2'), a.call('a3'), b.call('b1'));
    await flush();
    calls.push(b.call('b2'));
    await flush();
    expect(f.started()).toEqual(['a1', 'a2', 'b1', 'b2']);
    expect(calls[2]!.status).toBe('rejected');
    expect((calls[2]!.reason as BulkheadRejectedError).reason).toBe('full');
    expect(a.gate.stats()).toMatchObject({ inFlight: 2, rejected: 1 });
    expect(a.types()).toEqual(['storeUnavailable']);
    expect(a.events[0]).toMatchObject({ policy: 'bulkhead', name: 'api' });
    // One command noticed it; the others did not ask (recheckAfter: 1 s).
    expect(f.store.commands.filter((x) => x.command === 'acquire')).toHaveLength(2);
    await a.end('a1'); // its local slot comes back
    expect(a.call('a4').status).toBe('pending');
    await flush();
    expect(f.started()).toContain('a4');
  });

  it("'allow' runs every call without a slot; 'reject' refuses every call", async () => {
    for (const onStoreError of ['allow', 'reject'] as const) {
      const f = fleet();
      const a = f.member({ maxConcurrent: 1, onStoreError });
      f.store.mode = 'fail';
      const calls = [a.call('a1'), a.call('a2'), a.call('a3')];
      await flush();
      if (onStoreError === 'allow') {
        expect(f.started()).toEqual(['a1', 'a2', 'a3']);
        expect(a.gate.stats().inFlight).toBe(0); // no slot taken
      } else {
        expect(f.started()).toEqual([]);
        for (const c of calls) expect((c.reason as BulkheadRejectedError).reason).toBe('full');
        expect(a.gate.stats().rejected).toBe(3);
      }
    }
  });

  it('probes the store once per recheckAfter, and shares again when it answers', async () => {
    const f = fleet({ recheckAfter: 500 });
    const a = f.member({ maxConcurrent: 1, onStoreError: 'reject' });
    f.store.mode = 'fail';
    a.call('a1');
    await flush();
    await advance(499);
    a.call('a2');
    await flush();
    expect(f.count('acquire')).toBe(1);
    f.store.mode = 'answer';
    await advance(1);
    a.call('a3'); // the probe: granted by the store
    await flush();
    expect(f.started()).toEqual(['a3']);
    expect(a.types()).toEqual(['storeUnavailable', 'storeRecovered']);
    a.call('a4'); // shared again: the fleet's slot is taken
    await flush();
    expect(f.count('acquire')).toBe(3);
    expect(f.started()).toEqual(['a3']);
  });

  it('a slot request that fails late falls back when it fails', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5 });
    f.store.mode = 'fail';
    f.store.latency = 50;
    a.call('a1');
    await advance(49);
    expect(f.started()).toEqual([]);
    await advance(1);
    expect(f.started()).toEqual(['a1']); // its local slot
    expect(f.log[0]!.start).toBe(50);
  });

  it('waiters fall back when the store fails while they wait', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, maxQueue: 5 });
    const b = f.member({ maxConcurrent: 1, maxQueue: 5, onStoreError: 'allow' });
    a.call('a1');
    await flush();
    b.call('b1');
    b.call('b2');
    await flush();
    f.store.mode = 'fail';
    await advance(BULKHEAD_POLL); // b's poll fails: every waiter falls back ('allow': they run)
    expect(f.started()).toEqual(['a1', 'b1', 'b2']);
    expect(b.gate.stats().queued).toBe(0);
    expect(b.types()).toEqual(['storeUnavailable']);
  });

  it('while the store is unavailable a fleet slot is not released (its lease ends it), until a probe is due', async () => {
    const f = fleet({ recheckAfter: 500 });
    const a = f.member({ maxConcurrent: 2, slotLease: 1_000 });
    a.call('a1'); // a fleet slot
    await flush();
    f.store.mode = 'fail';
    a.call('a2'); // fails: the store is unavailable; a2 runs on a local slot
    await flush();
    f.store.mode = 'answer';
    await a.end('a1');
    expect(f.count('release')).toBe(0);
    expect(f.store.bulkheadKeys('api').holders).toHaveLength(1);
    await advance(500);
    a.call('a3'); // the probe: the store answers again
    await flush();
    expect(a.types()).toEqual(['storeUnavailable', 'storeRecovered']);
  });

  it('a release that fails is the store trouble; the slot lapses with its lease', async () => {
    const f = fleet();
    const a = f.member({ maxConcurrent: 1, slotLease: 1_000 });
    a.call('a1');
    await flush();
    f.store.modes.set('release', 'fail');
    await a.end('a1');
    expect(a.types()).toEqual(['storeUnavailable']);
    expect(f.store.bulkheadKeys('api').holders).toHaveLength(1);
    f.store.modes.delete('release');
    await advance(1_000);
    a.call('a2');
    await flush();
    expect(f.started()).toEqual(['a1', 'a2']);
  });
});

describe('fleet bulkhead: describe(), stats() and partitions', () => {
  it('describes its store settings', () => {
    const f = fleet();
    expect(f.member({ slotLease: 2_000, onStoreError: 'allow' }).gate.describe()).toMatchObject({
      name: 'api',
      maxConcurrent: 2,
      store: 'shared',
      slotLease: 2_000,
      onStoreError: 'allow',
    });
  });

  it('a partition holding a fleet slot is kept; once released it is dropped and stops listening', async () => {
    const store = new MemoryFleetStore(systemClock);
    const pending: Deferred<string>[] = [];
    const call = resilient(
      (tenant: string) => {
        const d = deferred<string>();
        pending.push(d);
        return d.promise.then(() => tenant);
      },
      {
        bulkhead: {
          name: 'api',
          maxConcurrent: 1,
          maxQueue: 1,
          store,
          partition: { by: (t: string) => t, maxPartitions: 1 },
        },
      },
    );
    const a1 = track(call('a'));
    await flush();
    const a2 = track(call('a')); // waits in a's fleet queue: a listens for freed slots
    await flush();
    expect(store.listeners('api:p:a')).toBe(1);
    track(call('b'));
    await flush();
    expect(call.stats().partitions?.bulkhead).toMatchObject({ count: 2, kept: 1 });
    pending[0]!.resolve('');
    await flush();
    pending[1]!.resolve('');
    pending[2]!.resolve('');
    await flush();
    expect([a1.status, a2.status]).toEqual(['fulfilled', 'fulfilled']);
    track(call('c'));
    await flush();
    expect(call.stats().partitions?.bulkhead?.count).toBe(1);
    expect(store.listeners('api:p:a')).toBe(0);
  });
});

describe('fleet bulkhead: the fleet bound', () => {
  it('property: while the store answers, never more than maxConcurrent run fleet-wide, and every admitted call runs', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          processes: fc.integer({ min: 1, max: 4 }),
          maxConcurrent: fc.integer({ min: 1, max: 3 }),
          maxQueue: fc.constantFrom(0, 2, Infinity),
          latency: fc.constantFrom(0, 5, 40),
          dropMessages: fc.boolean(),
          steps: fc.array(
            fc.record({
              who: fc.nat(),
              action: fc.constantFrom('call', 'call', 'end', 'advance'),
              ms: fc.integer({ min: 0, max: 400 }),
            }),
            { minLength: 5, maxLength: 50 },
          ),
        }),
        async ({ processes, maxConcurrent, maxQueue, latency, dropMessages, steps }) => {
          const f = fleet();
          f.store.latency = latency;
          f.store.dropMessages = dropMessages;
          const members = Array.from({ length: processes }, () =>
            f.member({ maxConcurrent, maxQueue }),
          );
          const calls: Tracked<string>[] = [];
          let n = 0;
          for (const step of steps) {
            const m = members[step.who % processes]!;
            if (step.action === 'call') calls.push(m.call(`c${n++}`));
            else if (step.action === 'advance') await advance(step.ms);
            else {
              const running = f.log.find((e) => e.end === undefined);
              if (running !== undefined)
                for (const x of members) await x.end(running.label).catch(() => undefined);
            }
            await flush();
          }
          // Drain: end whatever runs until every call settled.
          for (let i = 0; i < 200 && calls.some((c) => c.status === 'pending'); i++) {
            for (const e of f.log.filter((x) => x.end === undefined))
              for (const x of members) await x.end(e.label).catch(() => undefined);
            await advance(BULKHEAD_POLL);
          }
          expect(f.most).toBeLessThanOrEqual(maxConcurrent);
          expect(calls.filter((c) => c.status === 'pending')).toEqual([]);
          for (const c of calls)
            if (c.status === 'rejected') expect(c.reason).toBeInstanceOf(BulkheadRejectedError);
          expect(calls.filter((c) => c.status === 'fulfilled')).toHaveLength(f.log.length);
        },
      ),
      { numRuns: 60 },
    );
  });
});
