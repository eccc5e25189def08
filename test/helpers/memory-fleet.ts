import type {
  BulkheadRequest,
  FleetCircuitState,
  FleetCounts,
  OutcomeCounts,
  SharedBulkhead,
  SharedCircuit,
  Store,
} from '../../src/store.js';

/** How the fake store answers a command. */
export type FleetStoreMode =
  | 'answer' // at once (after `latency` ms of the clock, when set)
  | 'fail' // rejects (Redis down; after `latency` ms: a command timeout)
  | 'hang' // never answers until `release()` (fails) or `resume()` (runs and answers)
  | 'stall'; // runs at once, but its reply waits for `resume()` (a reply slow to come back)

export type FleetCommand =
  | 'record'
  | 'open'
  | 'close'
  | 'isolate'
  | 'tryTrial'
  | 'releaseTrial'
  | 'read'
  | 'acquire'
  | 'renew'
  | 'release';

/** The time source of the fake: a manual clock, or the system clock under fake timers. */
export interface FleetClock {
  now(): number;
  setTimer(callback: () => void, ms: number): unknown;
}

interface CircuitKeys {
  /** The open key: open until `until`, or isolated (no expiry). */
  open: { isolated: boolean; until: number } | undefined;
  trial: { token: string; until: number } | undefined;
  /** The not-closed mark (set by an open, cleared by a close). */
  opened: boolean;
  generation: number;
  /** The window's buckets: slot → id (`generation:bucket`) and counts. */
  window: Map<number, { id: string; calls: number; failures: number; slow: number }>;
  subscribers: Set<{ onMessage: (s: FleetCircuitState) => void; onResync: () => void }>;
}

interface BulkheadKeys {
  /** token → lease end */
  slots: Map<string, number>;
  /** tokens in arrival order */
  queue: string[];
  /** queued token → lease end */
  waiting: Map<string, number>;
  subscribers: Set<() => void>;
}

/**
 * A fleet's circuits and bulkheads in memory, enough of a {@link Store} for store-backed breakers and
 * bulkheads in virtual time. Each command does what its Redis script does (`src/redis/scripts.ts`:
 * RECORD, OPEN, CLOSE, ISOLATE, TRIAL, RELEASE_TRIAL, READ, BULKHEAD_*), with time from the given
 * clock, and every policy built on this store with the same name shares one state, as processes share
 * one Redis key. Messages go to every subscriber of the channel (the publisher's own included, as on
 * Redis, where one store's breakers share a message connection), after `messageLatency` ms or at the
 * next microtask; `dropMessages` loses them. Commands can fail, hang or answer late, per command too.
 */
export class MemoryFleetStore implements Store {
  readonly commands: { command: FleetCommand; name: string; at: number; args: unknown[] }[] = [];
  /** How every command answers, unless `modes` says otherwise for it. */
  mode: FleetStoreMode = 'answer';
  readonly modes = new Map<FleetCommand, FleetStoreMode>();
  /** ms of the clock before an answer (or a failure) arrives. */
  latency = 0;
  /** ms of the clock before a message arrives (0: at the next microtask). */
  messageLatency = 0;
  /** Messages published meanwhile are lost (a disconnected message connection). */
  dropMessages = false;
  readonly recheckAfter: number;
  readonly partitioned = true;
  /** As redisStore's: the trial slot lasts the trial's limit + 2 command timeouts, at most this. */
  readonly trialTimeout: number;
  readonly commandTimeout: number;
  private readonly circuits = new Map<string, CircuitKeys>();
  private readonly bulkheads = new Map<string, BulkheadKeys>();
  private readonly hanging: { run: () => void; fail: () => void }[] = [];

  constructor(
    private readonly clock: FleetClock,
    options: { recheckAfter?: number; trialTimeout?: number; commandTimeout?: number } = {},
  ) {
    this.recheckAfter = options.recheckAfter ?? 1_000;
    this.trialTimeout = options.trialTimeout ?? 10_000;
    this.commandTimeout = options.commandTimeout ?? 50;
  }

  forRateLimiter(): never {
    throw new Error('not used');
  }

  forCache(): never {
    throw new Error('not used');
  }

  /** Answers every hanging command with a failure (a timeout, seen late). */
  release(): void {
    for (const h of this.hanging.splice(0)) h.fail();
  }

  /** Runs every hanging command now and answers it (a stalled Redis that wakes up). */
  resume(): void {
    for (const h of this.hanging.splice(0)) h.run();
  }

  /** How many commands hang now. */
  get hangingCount(): number {
    return this.hanging.length;
  }

  /** The message connection came back: every subscriber resyncs (messages may have been lost). */
  reconnect(): void {
    for (const c of this.circuits.values()) for (const s of [...c.subscribers]) s.onResync();
    for (const b of this.bulkheads.values()) for (const s of [...b.subscribers]) s();
  }

  /** The circuit's keys as Redis holds them now (for tests that set up a fleet by hand). */
  circuitKeys(name: string): {
    state: 'closed' | 'open' | 'isolated';
    openFor: number;
    trialHolder: string | undefined;
    trialFor: number;
    opened: boolean;
    calls: number;
  } {
    const c = this.circuit(name);
    const now = this.clock.now();
    const open = this.liveOpen(c);
    const trial = this.liveTrial(c);
    let calls = 0;
    for (const b of c.window.values()) if (b.id.startsWith(`${c.generation}:`)) calls += b.calls;
    return {
      state: open === undefined ? 'closed' : open.isolated ? 'isolated' : 'open',
      openFor: open === undefined || open.isolated ? 0 : open.until - now,
      trialHolder: trial?.token,
      trialFor: trial === undefined ? 0 : trial.until - now,
      opened: c.opened,
      calls,
    };
  }

  /** How many listen to the circuit's or the bulkhead's messages now. */
  listeners(name: string): number {
    return (
      (this.circuits.get(name)?.subscribers.size ?? 0) +
      (this.bulkheads.get(name)?.subscribers.size ?? 0)
    );
  }

  /** Sets the fleet's trial slot as another process would (`token` for `ms`). */
  holdTrial(name: string, token: string, ms: number): void {
    this.circuit(name).trial = { token, until: this.clock.now() + ms };
  }

  /** Drops the open key, as its expiry would (a close message is then not sent). */
  expireOpen(name: string): void {
    this.circuit(name).open = undefined;
  }

  /** The bulkhead's holders and waiters now (expired leases included until a command drops them). */
  bulkheadKeys(name: string): { holders: string[]; queue: string[] } {
    const b = this.bulkhead(name);
    return { holders: [...b.slots.keys()], queue: [...b.queue] };
  }

  forCircuit(name: string, partition?: string): SharedCircuit {
    const key = partition === undefined ? name : `${name}:p:${partition}`;
    const c = this.circuit(key);
    const run = <T>(command: FleetCommand, args: unknown[], body: () => T): Promise<T> =>
      this.run(command, key, args, body);
    return {
      record: (counts, window) =>
        run('record', [counts, window], () => this.record(c, counts, window)),
      open: (ms, force) => run('open', [ms, force], () => this.open(c, ms, force)),
      close: () =>
        run('close', [], () => {
          c.open = undefined;
          c.trial = undefined;
          c.opened = false;
          c.generation++;
          this.publish(c, { state: 'closed', retryAfter: 0 });
        }),
      isolate: () =>
        run('isolate', [], () => {
          c.open = { isolated: true, until: Infinity };
          c.trial = undefined;
          this.publish(c, { state: 'isolated', retryAfter: Infinity });
        }),
      tryTrial: (token, limit) =>
        run('tryTrial', [token, limit], () => this.tryTrial(c, token, limit)),
      releaseTrial: (token) =>
        run('releaseTrial', [token], () => {
          if (this.liveTrial(c)?.token !== token) return;
          c.trial = undefined;
          this.publish(c, { state: 'halfOpen', retryAfter: 0 });
        }),
      read: () => run('read', [], () => this.state(c)),
      subscribe: (onMessage, onResync) => {
        const subscription = { onMessage, onResync };
        c.subscribers.add(subscription);
        return () => void c.subscribers.delete(subscription);
      },
    };
  }

  forBulkhead(name: string, partition?: string): SharedBulkhead {
    const key = partition === undefined ? name : `${name}:p:${partition}`;
    const b = this.bulkhead(key);
    return {
      acquire: (token, request) =>
        this.run('acquire', key, [token, request], () => this.acquire(b, token, request)),
      renew: (tokens, lease) =>
        this.run('renew', key, [[...tokens], lease], () => {
          const end = this.clock.now() + Math.max(1, Math.ceil(lease));
          for (const token of tokens) {
            if (b.slots.has(token)) b.slots.set(token, end);
            if (b.waiting.has(token)) b.waiting.set(token, end);
          }
        }),
      release: (token) =>
        this.run('release', key, [token], () => {
          const index = b.queue.indexOf(token);
          if (index >= 0) b.queue.splice(index, 1);
          b.waiting.delete(token);
          if (b.slots.delete(token) && b.queue.length > 0) {
            for (const onFree of [...b.subscribers]) this.deliver(() => onFree());
          }
        }),
      subscribe: (onFree) => {
        const subscription = (): void => onFree();
        b.subscribers.add(subscription);
        return () => void b.subscribers.delete(subscription);
      },
    };
  }

  // ---- internals ----

  private run<T>(command: FleetCommand, name: string, args: unknown[], body: () => T): Promise<T> {
    this.commands.push({ command, name, at: this.clock.now(), args });
    const mode = this.modes.get(command) ?? this.mode;
    if (mode === 'stall') {
      const result = body();
      return new Promise<T>((resolve, reject) => {
        this.hanging.push({
          run: () => resolve(result),
          fail: () => reject(new Error('store timed out')),
        });
      });
    }
    if (mode === 'hang') {
      return new Promise<T>((resolve, reject) => {
        this.hanging.push({
          run: () => resolve(body()),
          fail: () => reject(new Error('store timed out')),
        });
      });
    }
    if (mode === 'fail') {
      if (this.latency <= 0) return Promise.reject(new Error('store down'));
      return new Promise<T>((_, reject) => {
        this.clock.setTimer(() => reject(new Error('store timed out')), this.latency);
      });
    }
    if (this.latency <= 0) return Promise.resolve().then(body);
    return new Promise<T>((resolve) => {
      this.clock.setTimer(() => resolve(body()), this.latency);
    });
  }

  private deliver(task: () => void): void {
    if (this.dropMessages) return;
    if (this.messageLatency > 0) this.clock.setTimer(task, this.messageLatency);
    else queueMicrotask(task);
  }

  private publish(c: CircuitKeys, state: FleetCircuitState): void {
    for (const s of [...c.subscribers]) this.deliver(() => s.onMessage(state));
  }

  private circuit(key: string): CircuitKeys {
    let c = this.circuits.get(key);
    if (c === undefined) {
      c = {
        open: undefined,
        trial: undefined,
        opened: false,
        generation: 0,
        window: new Map(),
        subscribers: new Set(),
      };
      this.circuits.set(key, c);
    }
    return c;
  }

  private bulkhead(key: string): BulkheadKeys {
    let b = this.bulkheads.get(key);
    if (b === undefined) {
      b = { slots: new Map(), queue: [], waiting: new Map(), subscribers: new Set() };
      this.bulkheads.set(key, b);
    }
    return b;
  }

  private liveOpen(c: CircuitKeys): CircuitKeys['open'] {
    if (c.open !== undefined && !c.open.isolated && c.open.until <= this.clock.now())
      c.open = undefined;
    return c.open;
  }

  private liveTrial(c: CircuitKeys): CircuitKeys['trial'] {
    if (c.trial !== undefined && c.trial.until <= this.clock.now()) c.trial = undefined;
    return c.trial;
  }

  /** READ: the state and the open key's time left. */
  private state(c: CircuitKeys): FleetCircuitState {
    const open = this.liveOpen(c);
    if (open === undefined) return { state: 'closed', retryAfter: 0 };
    if (open.isolated) return { state: 'isolated', retryAfter: Infinity };
    return { state: 'open', retryAfter: open.until - this.clock.now() };
  }

  private record(
    c: CircuitKeys,
    counts: OutcomeCounts,
    shape: { readonly duration: number; readonly buckets: number },
  ): FleetCounts {
    const size = Math.max(1, Math.ceil(shape.duration / shape.buckets));
    const n = shape.buckets;
    const b = Math.floor(this.clock.now() / size);
    const id = (bucket: number): string => `${c.generation}:${bucket}`;
    if (counts.calls > 0) {
      let slot = c.window.get(b % n);
      if (slot?.id !== id(b)) {
        slot = { id: id(b), calls: 0, failures: 0, slow: 0 };
        c.window.set(b % n, slot);
      }
      slot.calls += counts.calls;
      slot.failures += counts.failures;
      slot.slow += counts.slow;
    }
    let calls = 0;
    let failures = 0;
    let slow = 0;
    for (let i = 0; i < n; i++) {
      const slot = c.window.get((b - i) % n);
      if (slot?.id === id(b - i)) {
        calls += slot.calls;
        failures += slot.failures;
        slow += slot.slow;
      }
    }
    return { calls, failures, slow, circuit: this.state(c) };
  }

  private open(
    c: CircuitKeys,
    ms: number,
    force: boolean,
  ): { opened: boolean; circuit: FleetCircuitState } {
    const open = this.liveOpen(c);
    if (open?.isolated === true)
      return { opened: false, circuit: { state: 'isolated', retryAfter: Infinity } };
    if (!force) {
      if (open !== undefined)
        return {
          opened: false,
          circuit: { state: 'open', retryAfter: Math.max(1, open.until - this.clock.now()) },
        };
      if (this.liveTrial(c) !== undefined)
        return { opened: false, circuit: { state: 'open', retryAfter: 0 } };
    }
    const px = Math.max(1, Math.ceil(ms));
    c.open = { isolated: false, until: this.clock.now() + px };
    c.opened = true;
    c.trial = undefined;
    this.publish(c, { state: 'open', retryAfter: px });
    return { opened: true, circuit: { state: 'open', retryAfter: px } };
  }

  private tryTrial(c: CircuitKeys, token: string, limit: number): number {
    const ttl = Math.max(
      1,
      Math.ceil(Math.min(this.trialTimeout, limit + 2 * this.commandTimeout)),
    );
    const open = this.liveOpen(c);
    if (open?.isolated === true) return Infinity;
    if (open !== undefined) return Math.max(1, open.until - this.clock.now());
    if (!c.opened) return -2;
    const trial = this.liveTrial(c);
    if (trial === undefined) {
      c.trial = { token, until: this.clock.now() + ttl };
      return 0;
    }
    return Math.max(1, trial.until - this.clock.now());
  }

  private acquire(b: BulkheadKeys, token: string, r: BulkheadRequest): number {
    const now = this.clock.now();
    const lease = Math.max(1, Math.ceil(r.lease));
    for (const [t, end] of b.slots) if (end <= now) b.slots.delete(t);
    for (const [t, end] of b.waiting) {
      if (end > now) continue;
      b.waiting.delete(t);
      b.queue.splice(b.queue.indexOf(t), 1);
    }
    const free = r.maxConcurrent - b.slots.size;
    const rank = b.queue.indexOf(token);
    const ahead = rank >= 0 ? rank : b.queue.length;
    if (ahead < free) {
      b.slots.set(token, now + lease);
      if (rank >= 0) {
        b.queue.splice(rank, 1);
        b.waiting.delete(token);
      }
      return 1;
    }
    if (rank < 0) {
      if (!r.queue || (r.maxQueue !== Infinity && ahead >= r.maxQueue)) return -1;
      b.queue.push(token);
    }
    b.waiting.set(token, now + lease);
    return 0;
  }
}
