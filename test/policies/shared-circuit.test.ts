import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CircuitOpenError,
  circuitBreaker,
  resilient,
  type CircuitBreakerOptions,
  type ResilienceEvent,
} from '../../src/index.js';
import { flush, ManualClock } from '../helpers/manual-clock.js';
import { MemoryFleetStore } from '../helpers/memory-fleet.js';
import { deferred, track, type Deferred } from '../helpers/promises.js';

/**
 * The store-backed circuit breaker's own logic (src/policies/shared-circuit.ts: batching, judging the
 * fleet's window, following the fleet, the one trial per fleet, the fallbacks while the store is out of
 * reach) in virtual time, against a fleet held in memory that does what the Redis scripts do. Several
 * breakers with one name on one store are several processes. The same behaviour against a real
 * redis-server is in test/redis/circuit-breaker.test.ts and test/redis/fleet-breaker.test.ts.
 */
function fleet(storeOptions: ConstructorParameters<typeof MemoryFleetStore>[1] = {}) {
  const clock = new ManualClock();
  const store = new MemoryFleetStore(clock, storeOptions);
  /** One process's breaker and functions guarded by it. */
  const member = (options: Partial<CircuitBreakerOptions> = {}) => {
    const breaker = circuitBreaker({
      clock,
      name: 'api',
      store,
      minimumCalls: 4,
      halfOpenAfter: 1_000,
      ...options,
    });
    const events: ResilienceEvent[] = [];
    breaker.on((event) => events.push(event));
    let runs = 0;
    /** Calls that reached `fn`, with the state the breaker was in when they did. */
    const states: string[] = [];
    const pending: Deferred<string>[] = [];
    const ok = resilient(
      () => {
        runs++;
        states.push(breaker.state);
        return Promise.resolve('ok');
      },
      { clock, circuitBreaker: breaker },
    );
    const fail = resilient(
      // (not counted in runs: the failures that open a circuit are the setup)
      () => Promise.reject(new Error('down')),
      { clock, circuitBreaker: breaker },
    );
    /** A call that runs until the test settles it (`pending`). */
    const held = resilient(
      () => {
        runs++;
        states.push(breaker.state);
        const d = deferred<string>();
        pending.push(d);
        return d.promise;
      },
      { clock, circuitBreaker: breaker },
    );
    const settle = (p: Promise<unknown>): Promise<unknown> =>
      p.then(
        (value) => value,
        (error: unknown) => error,
      );
    return {
      breaker,
      events,
      ok: () => settle(ok()),
      fail: () => settle(fail()),
      held: () => track(held()),
      pending,
      states,
      get runs() {
        return runs;
      },
      types: () => events.map((e) => e.type),
    };
  };
  /** Lets the store's answers and messages land. */
  const settled = async (): Promise<void> => {
    await flush();
  };
  const count = (command: string): number =>
    store.commands.filter((c) => c.command === command).length;
  return { clock, store, member, settled, count };
}

type Member = ReturnType<ReturnType<typeof fleet>['member']>;

async function times(n: number, f: () => Promise<unknown>): Promise<unknown[]> {
  const results: unknown[] = [];
  for (let i = 0; i < n; i++) results.push(await f());
  return results;
}

/** Opens the fleet from `a` (4 failures: its own window trips) and lets every process hear it. */
async function openFrom(a: Member, settled: () => Promise<void>): Promise<void> {
  await times(4, () => a.fail());
  expect(a.breaker.state).toBe('open');
  await settled();
}

describe('shared circuit: the fleet window', () => {
  it("opens every process when the fleet's failure rate crosses the threshold, none alone would", async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    await times(2, () => a.fail());
    await times(2, () => b.fail());
    expect([a.breaker.state, b.breaker.state]).toEqual(['closed', 'closed']);
    await clock.advance(100); // the batches go out: the fleet has 4 calls, 4 failures
    await settled();
    expect([a.breaker.state, b.breaker.state]).toEqual(['open', 'open']);
    const opens = store.commands.filter((c) => c.command === 'open');
    expect(opens).toHaveLength(1);
    expect(opens[0]!.args).toEqual([1_000, false]);
    for (const p of [a, b]) {
      expect(p.types()).toContain('circuitOpened');
      const error = await p.ok();
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect((error as CircuitOpenError).retryAfter).toBe(1_000);
    }
  });

  it('stays closed below minimumCalls fleet-wide, and below the failure rate', async () => {
    const { clock, member, settled, count } = fleet();
    const a = member({ failureRateThreshold: 0.8 });
    const b = member({ failureRateThreshold: 0.8 });
    await settled();
    await times(3, () => a.fail()); // 3 calls in the fleet: under minimumCalls
    await clock.advance(100);
    await settled();
    expect(a.breaker.state).toBe('closed');
    await times(1, () => b.ok()); // 4 calls, 3 failures: 0.75 < 0.8
    await clock.advance(100);
    await settled();
    expect([a.breaker.state, b.breaker.state]).toEqual(['closed', 'closed']);
    expect(count('open')).toBe(0);
    await times(1, () => b.fail()); // 5 calls, 4 failures: 0.8, the threshold
    await clock.advance(100);
    await settled();
    expect([a.breaker.state, b.breaker.state]).toEqual(['open', 'open']);
  });

  it("opens on the fleet's slow-call rate", async () => {
    const { clock, member, settled } = fleet();
    const options = { slowCallDuration: 50, slowCallRateThreshold: 0.5 };
    const a = member(options);
    const b = member(options);
    await settled();
    const slow = resilient(() => clock.advance(60).then(() => 'slow'), {
      clock,
      circuitBreaker: a.breaker,
    });
    await slow();
    await slow(); // a: 2 slow calls (its window: under minimumCalls)
    await times(2, () => b.ok());
    await clock.advance(100);
    await settled();
    expect([a.breaker.state, b.breaker.state]).toEqual(['open', 'open']);
  });

  it('batches outcomes: one record per 100 ms, or at once at 50 samples', async () => {
    const { clock, store, member, settled, count } = fleet();
    const a = member({ failureRateThreshold: 1 });
    await settled();
    await times(10, () => a.ok());
    await a.fail();
    expect(count('record')).toBe(0);
    await clock.advance(99);
    expect(count('record')).toBe(0);
    await clock.advance(1);
    await settled();
    const records = store.commands.filter((c) => c.command === 'record');
    expect(records.map((r) => r.args[0])).toEqual([{ calls: 11, failures: 1, slow: 0 }]);
    await times(50, () => a.ok());
    await settled();
    expect(count('record')).toBe(2); // the 50th sample sent the batch, no timer needed
    expect(store.circuitKeys('api').calls).toBe(61);
    await clock.advance(1_000);
    expect(count('record')).toBe(2); // nothing left to send
  });

  it('samples that arrive while a batch is in flight go out when it is answered', async () => {
    const { clock, store, member, settled } = fleet();
    const a = member({ failureRateThreshold: 1 });
    await settled();
    store.latency = 30;
    await times(50, () => a.ok()); // sent at once, answered at 30 ms
    await times(3, () => a.fail());
    await clock.advance(100); // the flush timer finds a batch in flight: waits for it
    await clock.advance(30);
    await settled();
    const records = store.commands.filter((c) => c.command === 'record');
    expect(records.map((r) => r.args[0])).toEqual([
      { calls: 50, failures: 0, slow: 0 },
      { calls: 3, failures: 3, slow: 0 },
    ]);
  });

  it.each([
    ['a count window', {}, { duration: 10_000, buckets: 10 }],
    [
      'a time window',
      { window: { type: 'time' as const, duration: 30_000 } },
      { duration: 30_000, buckets: 10 },
    ],
  ])('%s is summed over the fleet in a time window of its own', async (_, options, shape) => {
    const { clock, store, member, settled } = fleet();
    const a = member(options);
    await settled();
    await a.ok();
    await clock.advance(100);
    await settled();
    expect(store.commands.find((c) => c.command === 'record')!.args[1]).toEqual(shape);
  });
});

describe('shared circuit: following the fleet', () => {
  it('a local trip opens the fleet for its open duration, and every process follows', async () => {
    const { store, member, settled } = fleet();
    const a = member({ consecutiveFailures: 2, minimumCalls: 100, halfOpenAfter: 3_000 });
    const b = member({ halfOpenAfter: 500 }); // configured otherwise: the fleet's duration wins
    await settled();
    await times(2, () => a.fail());
    await settled();
    expect(store.commands.find((c) => c.command === 'open')!.args).toEqual([3_000, false]);
    // The samples that tripped it went out at once, with the opening.
    expect(store.commands.find((c) => c.command === 'record')!.args[0]).toEqual({
      calls: 2,
      failures: 2,
      slow: 0,
    });
    expect(b.breaker.state).toBe('open');
    expect(b.breaker.retryAfter(0)).toBe(3_000);
    expect(b.types()).toEqual(['circuitOpened']);
  });

  it("a process that trips while the fleet is open follows the fleet's time left", async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    store.dropMessages = true; // b does not hear a's opening
    await openFrom(a, settled);
    expect(b.breaker.state).toBe('closed');
    await clock.advance(400);
    store.modes.set('record', 'hang'); // b learns the fleet's state from its opening's reply alone
    await times(4, () => b.fail());
    await settled();
    expect(b.breaker.state).toBe('open');
    expect(b.breaker.retryAfter(clock.now())).toBe(600);
    expect(store.circuitKeys('api').openFor).toBe(600); // not opened again
  });

  it('a process that starts while the fleet is open reads it and opens for the time left', async () => {
    const { clock, member, settled } = fleet();
    const a = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(300);
    const late = member();
    await settled();
    expect(late.breaker.state).toBe('open');
    expect(late.breaker.retryAfter(clock.now())).toBe(700);
    expect(await late.ok()).toBeInstanceOf(CircuitOpenError);
  });

  it('isolate() and reset() act fleet-wide; a process that starts later reads the isolation', async () => {
    const { store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    a.breaker.isolate();
    await settled();
    expect(b.breaker.state).toBe('isolated');
    expect(store.circuitKeys('api').state).toBe('isolated');
    const late = member();
    await settled();
    expect(late.breaker.state).toBe('isolated');
    expect(((await late.ok()) as CircuitOpenError).retryAfter).toBe(Infinity);
    b.breaker.reset();
    await settled();
    expect([a.breaker.state, b.breaker.state, late.breaker.state]).toEqual([
      'closed',
      'closed',
      'closed',
    ]);
    expect(await a.ok()).toBe('ok');
  });

  it('an isolated process ignores an open it reads, and follows one it is told', async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    store.dropMessages = true;
    b.breaker.isolate(); // the fleet is isolated; a did not hear it
    await settled();
    store.dropMessages = false;
    // a trips: the fleet is isolated, so the reply says so and a follows it.
    await times(4, () => a.fail());
    await settled();
    expect(a.breaker.state).toBe('isolated');
    expect(b.breaker.state).toBe('isolated');
    a.breaker.reset(); // closed fleet-wide
    await settled();
    expect(b.breaker.state).toBe('closed');
    await clock.advance(1);
    expect(store.circuitKeys('api').state).toBe('closed');
  });

  it('a reconnection reads the fleet: an open read opens, a closed read does not close an open process', async () => {
    const { store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    store.dropMessages = true;
    await openFrom(a, settled);
    expect(b.breaker.state).toBe('closed');
    store.dropMessages = false;
    store.reconnect();
    await settled();
    expect(b.breaker.state).toBe('open');
    // The open key lapses (its wait is over): a read cannot tell that from a close.
    store.expireOpen('api');
    store.reconnect();
    await settled();
    expect(b.breaker.state).toBe('open');
  });

  it('an isolated process keeps its isolation against an open state it reads (only a message moves it)', async () => {
    const { store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    b.breaker.isolate();
    await settled();
    store.dropMessages = true; // b misses what follows
    a.breaker.reset();
    await settled();
    await openFrom(a, settled);
    store.dropMessages = false;
    store.reconnect(); // b reads 'open'
    await settled();
    expect(b.breaker.state).toBe('isolated');
  });

  it('a reset missed while disconnected is followed on reconnection by an isolated process', async () => {
    const { store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    a.breaker.isolate();
    await settled();
    expect(b.breaker.state).toBe('isolated');
    store.dropMessages = true;
    a.breaker.reset();
    await settled();
    expect(b.breaker.state).toBe('isolated');
    store.dropMessages = false;
    store.reconnect();
    await settled();
    expect(b.breaker.state).toBe('closed');
  });
});

describe('shared circuit: stale replies', () => {
  it('a state read that a message overtook is not applied', async () => {
    const { store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    await openFrom(a, settled);
    store.modes.set('read', 'stall');
    store.reconnect(); // b reads the fleet: open; the reply is slow
    await settled();
    store.modes.delete('read');
    a.breaker.reset(); // the fleet closes; b hears it first
    await settled();
    expect(b.breaker.state).toBe('closed');
    store.resume(); // the stale 'open' reply
    await settled();
    expect(b.breaker.state).toBe('closed');
  });

  it("a state read sent before this process's own reset is not applied", async () => {
    const { store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    await openFrom(a, settled);
    store.modes.set('read', 'stall');
    store.reconnect();
    await settled();
    store.modes.delete('read');
    store.dropMessages = true; // b learns nothing but its own action and the stale reply
    b.breaker.reset();
    await settled();
    store.resume();
    await settled();
    expect(b.breaker.state).toBe('closed');
  });

  it("an opening's reply that arrives after this process's own isolate() does not undo it", async () => {
    const { store, member, settled } = fleet();
    const a = member();
    await settled();
    store.modes.set('open', 'stall');
    await times(4, () => a.fail()); // trips; the fleet opens, the reply is slow
    await settled();
    store.modes.delete('open');
    a.breaker.isolate();
    await settled();
    store.resume();
    await settled();
    expect(a.breaker.state).toBe('isolated');
  });
});

describe('shared circuit: one trial per fleet', () => {
  it('one process runs the trial, the others reject; its success closes every process', async () => {
    const { clock, store, member, settled, count } = fleet();
    const a = member();
    const b = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    const calls = [a.held(), b.held(), a.held(), b.held()];
    await settled();
    expect(a.runs + b.runs).toBe(1);
    expect(count('tryTrial')).toBe(2); // one request per process at a time
    const rejected = calls.filter((c) => c.status === 'rejected');
    expect(rejected).toHaveLength(3);
    for (const r of rejected) expect(r.reason).toBeInstanceOf(CircuitOpenError);
    const trial = a.runs === 1 ? a : b;
    const other = trial === a ? b : a;
    expect(trial.states).toEqual(['halfOpen']);
    expect(store.circuitKeys('api').trialHolder).toBeDefined();
    trial.pending[0]!.resolve('ok');
    await settled();
    expect([a.breaker.state, b.breaker.state]).toEqual(['closed', 'closed']);
    expect(store.circuitKeys('api')).toMatchObject({ state: 'closed', trialHolder: undefined });
    expect(count('close')).toBe(1);
    expect(await other.ok()).toBe('ok');
    expect(other.types()).toEqual(['circuitOpened', 'circuitClosed']);
  });

  it('a failed trial opens the fleet again (forced) for the open duration', async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    expect(await b.fail()).toBeInstanceOf(Error);
    await settled();
    const opens = store.commands.filter((c) => c.command === 'open');
    expect(opens.filter((o) => o.args[1] === true).map((o) => [o.at, o.args[0]])).toEqual([
      [1_000, 1_000],
    ]);
    expect([a.breaker.state, b.breaker.state]).toEqual(['open', 'open']);
    expect(a.breaker.retryAfter(clock.now())).toBe(1_000);
    expect(store.circuitKeys('api')).toMatchObject({ state: 'open', trialHolder: undefined });
    await clock.advance(1_000);
    expect(await a.ok()).toBe('ok'); // the next cycle's trial, in a
    await settled();
    expect(b.breaker.state).toBe('closed');
  });

  it('a trial holds the slot for its own time limit plus two command timeouts, at most trialTimeout', async () => {
    const { clock, store, member, settled } = fleet({ trialTimeout: 10_000, commandTimeout: 50 });
    const a = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    const limited = resilient(() => new Promise(() => undefined), {
      clock,
      circuitBreaker: a.breaker,
      timeout: 3_000,
    });
    void limited().catch(() => undefined);
    await settled();
    const ask = store.commands.find((c) => c.command === 'tryTrial')!;
    expect(ask.args[1]).toBe(3_000);
    expect(store.circuitKeys('api').trialFor).toBe(3_100);

    const other = fleet({ trialTimeout: 10_000 });
    const b = other.member();
    await other.settled();
    await openFrom(b, other.settled);
    await other.clock.advance(1_000);
    b.held();
    await other.settled();
    expect(other.store.commands.find((c) => c.command === 'tryTrial')!.args[1]).toBe(Infinity);
    expect(other.store.circuitKeys('api').trialFor).toBe(10_000);
  });

  it("a trial's limit is the call's remaining total deadline when that is shorter", async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    const limited = resilient(() => new Promise(() => undefined), {
      clock,
      circuitBreaker: a.breaker,
      timeout: { attempt: 5_000, total: 2_000 },
    });
    void limited().catch(() => undefined);
    await settled();
    expect(store.commands.find((c) => c.command === 'tryTrial')!.args[1]).toBe(2_000);
  });

  it("a process waiting for the slot asks again only when the store's wait is over, on its clock", async () => {
    const { clock, store, member, settled, count } = fleet();
    const a = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    store.holdTrial('api', 'someone', 5_000);
    const first = await a.ok();
    expect(first).toBeInstanceOf(CircuitOpenError);
    expect(count('tryTrial')).toBe(1);
    await clock.advance(4_999);
    expect(await a.ok()).toBeInstanceOf(CircuitOpenError);
    expect(count('tryTrial')).toBe(1); // not asked: the store said 5 s
    await clock.advance(1);
    expect(await a.ok()).toBe('ok'); // the slot lapsed: a's trial
    expect(count('tryTrial')).toBe(2);
    expect(a.runs).toBe(1);
  });

  it('a slot handed back unused lets a waiting process ask again at once', async () => {
    const { clock, store, member, settled, count } = fleet();
    const a = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    store.holdTrial('api', 'ghost', 60_000);
    expect(await a.ok()).toBeInstanceOf(CircuitOpenError);
    await store.forCircuit('api').releaseTrial('someone else'); // not the holder: nothing
    await settled();
    expect(await a.ok()).toBeInstanceOf(CircuitOpenError);
    expect(count('tryTrial')).toBe(1);
    await store.forCircuit('api').releaseTrial('ghost');
    await settled();
    expect(await a.ok()).toBe('ok');
    expect(count('tryTrial')).toBe(2);
  });

  it('a slot handed back while the refusal is on its way: the process asks again at its next call, not after the wait the refusal gave', async () => {
    const { clock, store, member, settled, count } = fleet();
    const a = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    store.holdTrial('api', 'ghost', 10_000); // a trial request that ran late, for nobody
    store.modes.set('tryTrial', 'stall'); // the refusal (wait 10 s) is decided, its reply delayed
    const refused = a.ok();
    await settled();
    // The ghost's holder hands the slot back; its message overtakes the refusal's reply.
    await store.forCircuit('api').releaseTrial('ghost');
    await settled();
    store.modes.delete('tryTrial');
    store.resume();
    expect(await refused).toBeInstanceOf(CircuitOpenError);
    expect(await a.ok()).toBe('ok'); // asked again at once: the slot is free
    expect(count('tryTrial')).toBe(2);
  });

  it('finding the fleet isolated when asking follows it; after a reset the next cycle asks again', async () => {
    const { clock, store, member, settled, count } = fleet();
    const a = member();
    const b = member();
    await settled();
    await openFrom(a, settled);
    store.dropMessages = true;
    a.breaker.isolate(); // b does not hear it
    await settled();
    store.dropMessages = false;
    expect(b.breaker.state).toBe('open');
    await clock.advance(1_000);
    const error = await b.ok();
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(b.breaker.state).toBe('isolated');
    expect(b.breaker.retryAfter(clock.now())).toBe(Infinity);
    a.breaker.reset();
    await settled();
    expect(b.breaker.state).toBe('closed');
    await openFrom(a, settled);
    await clock.advance(1_000);
    const before = count('tryTrial');
    expect(await b.ok()).toBe('ok');
    expect(count('tryTrial')).toBe(before + 1);
    expect(b.runs).toBe(1);
  });

  it('asking as the fleet closes follows the close: the call runs, without a trial slot', async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    await openFrom(a, settled);
    store.dropMessages = true;
    await store.forCircuit('api').close(); // another process's trial closed it; b has not heard
    store.dropMessages = false;
    await clock.advance(1_000);
    expect(await b.ok()).toBe('ok');
    expect(b.states).toEqual(['closed']);
    expect(b.breaker.state).toBe('closed');
    expect(store.circuitKeys('api').trialHolder).toBeUndefined();
    expect(await b.ok()).toBe('ok');
  });

  it('opening while another process runs the trial follows the fleet, and asks once the trial ends', async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    const trial = a.held(); // a holds the fleet's slot
    await settled();
    expect(store.circuitKeys('api').trialHolder).toBeDefined();
    b.breaker.reset(); // b closes by hand: the fleet closes, a's trial slot is gone
    await settled();
    expect(a.breaker.state).toBe('closed');
    a.pending[0]!.resolve('ok');
    await settled();
    expect(trial.status).toBe('fulfilled');
  });

  it("an opening message that arrives during this process's trial does not cut the trial short", async () => {
    const { clock, store, member, settled } = fleet();
    store.messageLatency = 1_001; // a's own opening comes back very late
    const a = member();
    await settled();
    await times(4, () => a.fail());
    await clock.advance(1_000);
    const trial = a.held(); // a holds the fleet's trial slot
    await settled();
    expect(a.breaker.state).toBe('halfOpen');
    await clock.advance(1); // the old 'open' message arrives
    expect(a.breaker.state).toBe('halfOpen');
    a.pending[0]!.resolve('ok');
    await settled();
    expect(trial.status).toBe('fulfilled');
    expect(a.breaker.state).toBe('closed');
    expect(store.circuitKeys('api').state).toBe('closed');
  });

  it('a caller that gives up while the slot request hangs rejects at once; a late grant is kept for the next call', async () => {
    const { clock, store, member, settled, count } = fleet();
    const a = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    store.modes.set('tryTrial', 'hang');
    const policy = resilient({ clock, circuitBreaker: a.breaker });
    const controller = new AbortController();
    let runs = 0;
    const call = track(
      policy.execute(
        () => {
          runs++;
          return Promise.resolve('ok');
        },
        { signal: controller.signal },
      ),
    );
    await settled();
    expect(call.status).toBe('pending');
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await settled();
    expect(call.status).toBe('rejected');
    expect(call.reason).toBe(reason);
    expect(runs).toBe(0);
    store.modes.delete('tryTrial');
    store.resume(); // the store grants the slot late
    await settled();
    expect(a.breaker.state).toBe('halfOpen');
    expect(await a.ok()).toBe('ok'); // the trial, with the slot the abandoned request got
    expect(count('tryTrial')).toBe(1);
    await settled();
    expect(store.circuitKeys('api').state).toBe('closed');
  });
});

describe('shared circuit: while the store is out of reach', () => {
  it('the local window decides alone; one event each way; batches are dropped', async () => {
    const { clock, store, member, settled, count } = fleet();
    const a = member();
    const b = member();
    await settled();
    store.mode = 'fail';
    await a.ok();
    await clock.advance(100); // the batch fails: unavailable
    await settled();
    expect(a.types()).toEqual(['storeUnavailable']);
    expect(a.events[0]).toMatchObject({ policy: 'circuitBreaker', name: 'api' });
    await times(4, () => a.fail());
    expect(a.breaker.state).toBe('open'); // its own window
    await settled();
    expect(b.breaker.state).toBe('closed'); // nothing shared
    expect(count('open')).toBe(0); // not even tried before the next probe
    await clock.advance(1_000); // the trial is due: run locally, one per process
    expect(await a.ok()).toBe('ok');
    expect(a.breaker.state).toBe('closed');
    expect(a.types().filter((t) => t === 'storeUnavailable')).toHaveLength(1);
    store.mode = 'answer';
    await clock.advance(1_000);
    await settled();
    expect(a.types().filter((t) => t === 'storeRecovered')).toHaveLength(1);
  });

  it('an open breaker probes the store every recheckAfter, traffic or not, and follows the fleet it reads', async () => {
    const { clock, store, member, settled, count } = fleet({ recheckAfter: 500 });
    const a = member({ halfOpenAfter: 60_000 });
    const b = member({ halfOpenAfter: 60_000 });
    await settled();
    store.mode = 'fail';
    await times(4, () => a.fail()); // open locally; opening the fleet fails
    await settled();
    expect(a.types()).toEqual(['circuitOpened', 'storeUnavailable']);
    const reads = count('read');
    await clock.advance(499);
    await settled();
    expect(count('read')).toBe(reads);
    await clock.advance(1); // the probe: it fails too
    await settled();
    expect(count('read')).toBe(reads + 1);
    store.mode = 'answer';
    store.dropMessages = true;
    b.breaker.isolate(); // the fleet moves on; a misses the message
    await settled();
    expect(a.breaker.state).toBe('open');
    await clock.advance(499);
    await settled();
    expect(count('read')).toBe(reads + 1);
    await clock.advance(1); // the next probe reads the fleet, and a follows it
    await settled();
    expect(count('read')).toBe(reads + 2);
    expect(a.breaker.state).toBe('isolated');
    expect(a.types()).toEqual([
      'circuitOpened',
      'storeUnavailable',
      'storeRecovered',
      'circuitIsolated',
    ]);
    await clock.advance(5_000);
    await settled();
    expect(count('read')).toBe(reads + 2); // available: no more probes
  });

  it('a due trial runs locally in each process while the store fails (one per process)', async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    await openFrom(a, settled);
    expect(b.breaker.state).toBe('open');
    store.mode = 'fail';
    await clock.advance(1_000);
    const calls = [a.held(), a.held(), b.held(), b.held()];
    await settled();
    expect([a.runs, b.runs]).toEqual([1, 1]);
    expect(a.states).toEqual(['halfOpen']);
    expect(calls.filter((c) => c.status === 'rejected')).toHaveLength(2);
    a.pending[0]!.resolve('ok');
    b.pending[0]!.resolve('ok');
    await settled();
    expect([a.breaker.state, b.breaker.state]).toEqual(['closed', 'closed']);
    expect(a.types()).toContain('storeUnavailable');
  });

  it('a trial request that fails late (a command timeout) runs the trial locally when it fails', async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    store.mode = 'fail';
    store.latency = 50;
    const call = a.held();
    await clock.advance(49);
    expect(a.runs).toBe(0);
    await clock.advance(1);
    await settled();
    expect(a.runs).toBe(1);
    expect(a.states).toEqual(['halfOpen']);
    a.pending[0]!.resolve('ok');
    await settled();
    expect(call.status).toBe('fulfilled');
  });

  it("a caller that gives up while the store hangs rejects at once; the late failure is the store's trouble", async () => {
    const { clock, store, member, settled } = fleet();
    const a = member();
    await settled();
    await openFrom(a, settled);
    await clock.advance(1_000);
    store.mode = 'hang';
    const controller = new AbortController();
    const policy = resilient({ clock, circuitBreaker: a.breaker });
    const call = track(policy.execute(() => Promise.resolve('ok'), { signal: controller.signal }));
    await settled();
    const reason = new Error('bye');
    controller.abort(reason);
    await settled();
    expect(call.reason).toBe(reason);
    store.release();
    await settled();
    expect(a.types()).toContain('storeUnavailable');
  });
});

describe('shared circuit: partitions', () => {
  it('a partition whose samples have not reached the fleet is kept; then it is dropped and stops listening', async () => {
    const clock = new ManualClock();
    const store = new MemoryFleetStore(clock);
    const call = resilient((tenant: string) => Promise.resolve(tenant), {
      clock,
      circuitBreaker: { name: 'api', store, partition: { by: (t: string) => t, maxPartitions: 1 } },
    });
    await call('a');
    await call('b');
    await flush();
    expect(store.listeners('api:p:a')).toBe(1);
    // Both have a sample waiting for its batch: neither is at rest.
    expect(call.stats().partitions?.circuitBreaker).toMatchObject({ count: 2, kept: 1 });
    await clock.advance(100);
    await flush();
    expect(store.commands.filter((c) => c.command === 'record').map((c) => c.name)).toEqual([
      'api:p:a',
      'api:p:b',
    ]);
    await call('c');
    expect(call.stats().partitions?.circuitBreaker?.count).toBe(1);
    expect(store.listeners('api:p:a')).toBe(0);
    expect(store.listeners('api:p:b')).toBe(0);
    expect(store.listeners('api:p:c')).toBe(1);
  });

  it('a partition asking for the trial slot is not dropped until its answer came', async () => {
    const clock = new ManualClock();
    const store = new MemoryFleetStore(clock);
    const call = resilient(
      (tenant: string, ok = true) =>
        ok ? Promise.resolve(tenant) : Promise.reject(new Error('x')),
      {
        clock,
        circuitBreaker: {
          name: 'api',
          store,
          minimumCalls: 2,
          halfOpenAfter: 1_000,
          partition: { by: (t: string) => t, maxPartitions: 1 },
        },
      },
    );
    for (let i = 0; i < 2; i++) await call('a', false).catch(() => undefined);
    await flush();
    await clock.advance(1_000);
    store.modes.set('tryTrial', 'hang');
    const trial = track(call('a'));
    await flush();
    await call('b');
    await clock.advance(100);
    await flush();
    await call('c');
    // a asks for its trial: kept (a dropped partition's late grant would hold the slot for nobody).
    expect(store.listeners('api:p:a')).toBe(1);
    store.modes.delete('tryTrial');
    store.resume();
    await flush();
    expect(trial.status).toBe('fulfilled');
  });
});

describe('shared circuit: describe() and stats()', () => {
  it('describes a shared breaker, and its stats follow the fleet', async () => {
    const { clock, member, settled } = fleet();
    const a = member();
    const b = member();
    await settled();
    expect(a.breaker.describe()).toMatchObject({ name: 'api', store: 'shared' });
    expect(circuitBreaker({ name: 'x' }).describe()).not.toHaveProperty('store');
    await openFrom(a, settled);
    await clock.advance(250);
    expect(b.breaker.stats()).toMatchObject({ state: 'open', retryAfter: 750, calls: 0 });
    expect(
      resilient(() => Promise.resolve(1), { clock, circuitBreaker: b.breaker }).stats(),
    ).toMatchObject({ circuitBreaker: { state: 'open', retryAfter: 750 } });
  });
});

describe('shared circuit: the fleet bound', () => {
  it('property: while the store answers, at most one trial runs fleet-wide, whatever the interleaving', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          processes: fc.integer({ min: 2, max: 4 }),
          latency: fc.constantFrom(0, 5, 40),
          messageLatency: fc.constantFrom(0, 10, 300),
          steps: fc.array(
            fc.record({
              who: fc.nat(),
              action: fc.constantFrom('fail', 'ok', 'hold', 'settleOk', 'settleFail', 'advance'),
              ms: fc.integer({ min: 0, max: 700 }),
            }),
            { minLength: 5, maxLength: 60 },
          ),
        }),
        async ({ processes, latency, messageLatency, steps }) => {
          const { clock, store, member, settled } = fleet({ trialTimeout: 1e9 });
          store.latency = latency;
          store.messageLatency = messageLatency;
          let trials = 0;
          let most = 0;
          let all = 0;
          const members = Array.from({ length: processes }, () => {
            const m = member({ halfOpenAfter: 500 });
            const inFlight: { d: Deferred<string>; trial: boolean }[] = [];
            const run = (outcome: 'ok' | 'fail' | 'hold') =>
              resilient(
                () => {
                  const trial = m.breaker.state === 'halfOpen';
                  if (trial) {
                    trials++;
                    all++;
                    most = Math.max(most, trials);
                  }
                  const d = deferred<string>();
                  inFlight.push({ d, trial });
                  if (outcome === 'ok') settle(inFlight.length - 1, true);
                  if (outcome === 'fail') settle(inFlight.length - 1, false);
                  return d.promise;
                },
                { clock, circuitBreaker: m.breaker },
              )().catch(() => undefined);
            const settle = (index: number, success: boolean): void => {
              const entry = inFlight.splice(index, 1)[0];
              if (entry === undefined) return;
              if (entry.trial) trials--;
              if (success) entry.d.resolve('ok');
              else entry.d.reject(new Error('down'));
            };
            return { run, settle, inFlight };
          });
          await settled();
          for (const step of steps) {
            const m = members[step.who % processes]!;
            if (step.action === 'advance') await clock.advance(step.ms);
            else if (step.action === 'settleOk' || step.action === 'settleFail')
              m.settle(0, step.action === 'settleOk');
            else void m.run(step.action);
            await settled();
          }
          expect(most).toBeLessThanOrEqual(1);
          return all >= 0;
        },
      ),
      { numRuns: 100 },
    );
  });
});
