import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CircuitOpenError,
  circuitBreaker,
  resilient,
  type CircuitBreaker,
  type CircuitState,
} from '../../src/index.js';
import { ManualClock } from '../helpers/manual-clock.js';

/**
 * Model-based test of the circuit breaker, driven through `resilient()` on a manual clock, against a
 * reference model written from the spec (issue 3) rather than from the implementation:
 *
 * - closed: every call is admitted; each finished call is one sample; the circuit opens when
 *   `consecutiveFailures` failures happened in a row, or when the window holds at least `minimumCalls`
 *   samples and failures / samples ≥ failureRateThreshold (or slow / samples ≥ slowCallRateThreshold).
 * - open: rejected with retryAfter = time left; after `halfOpenAfter` the next call turns it half-open.
 * - halfOpen: at most `halfOpenMaxCalls` trials in flight, others rejected with retryAfter 0; a failed
 *   or slow trial opens it again; `halfOpenMaxCalls` successful trials close it with a fresh window.
 * - isolated: rejected with retryAfter Infinity until reset(); reset() closes with a fresh window.
 * - an error `isFailure` rejects is no sample (and gives a trial slot back); outcomes of calls admitted
 *   before a transition are ignored.
 */

interface Config {
  readonly window: { type: 'count'; size: number } | { type: 'time'; duration: number };
  readonly minimumCalls: number;
  readonly failureRateThreshold: number;
  readonly consecutiveFailures: number | undefined;
  readonly slowCallDuration: number | undefined;
  readonly slowCallRateThreshold: number;
  readonly halfOpenAfter: number;
  readonly halfOpenMaxCalls: number;
}

interface Sample {
  readonly failure: boolean;
  readonly slow: boolean;
  /** Time-window bucket of the sample. */
  readonly bucket: number;
}

type Kind = 'ok' | 'fail' | 'ignored';

class Model {
  state: CircuitState = 'closed';
  openedAt = 0;
  samples: Sample[] = [];
  consecutive = 0;
  trials = 0;
  successes = 0;
  epoch = 0;

  constructor(readonly config: Config) {}

  private get bucketSize(): number {
    const w = this.config.window;
    return w.type === 'time' ? w.duration / 10 : Infinity;
  }

  /** Samples still in the window at `now`. */
  windowAt(now: number): Sample[] {
    if (this.config.window.type === 'count') return this.samples;
    const current = Math.floor(now / this.bucketSize);
    return this.samples.filter((s) => s.bucket > current - 10);
  }

  private transition(state: CircuitState, now: number): void {
    this.state = state;
    this.epoch++;
    this.trials = 0;
    this.successes = 0;
    if (state === 'open') this.openedAt = now;
    if (state === 'closed') {
      this.samples = [];
      this.consecutive = 0;
    }
  }

  /** The epoch of an admitted call, or a rejection's retryAfter. */
  admit(now: number): { epoch: number } | { retryAfter: number } {
    if (this.state === 'isolated') return { retryAfter: Infinity };
    if (this.state === 'closed') return { epoch: this.epoch };
    if (this.state === 'open') {
      const left = this.openedAt + this.config.halfOpenAfter - now;
      if (left > 0) return { retryAfter: left };
      this.transition('halfOpen', now);
    }
    if (this.trials >= this.config.halfOpenMaxCalls) return { retryAfter: 0 };
    this.trials++;
    return { epoch: this.epoch };
  }

  record(epoch: number, start: number, now: number, kind: Kind): void {
    if (epoch !== this.epoch) return;
    const c = this.config;
    if (kind === 'ignored') {
      if (this.state === 'halfOpen') this.trials--;
      return;
    }
    const failure = kind === 'fail';
    const slow = c.slowCallDuration !== undefined && now - start >= c.slowCallDuration;
    if (this.state === 'halfOpen') {
      this.trials--;
      if (failure || slow) return this.transition('open', now);
      if (++this.successes >= c.halfOpenMaxCalls) this.transition('closed', now);
      return;
    }
    this.samples.push({ failure, slow, bucket: Math.floor(now / this.bucketSize) });
    if (c.window.type === 'count' && this.samples.length > c.window.size) this.samples.shift();
    this.consecutive = failure ? this.consecutive + 1 : 0;
    if (c.consecutiveFailures !== undefined && this.consecutive >= c.consecutiveFailures)
      return this.transition('open', now);
    const window = this.windowAt(now);
    if (window.length < c.minimumCalls) return;
    const failures = window.filter((s) => s.failure).length;
    const slows = window.filter((s) => s.slow).length;
    if (
      failures / window.length >= c.failureRateThreshold ||
      (c.slowCallDuration !== undefined && slows / window.length >= c.slowCallRateThreshold)
    ) {
      this.transition('open', now);
    }
  }

  isolate(now: number): void {
    this.transition('isolated', now);
  }

  reset(now: number): void {
    this.transition('closed', now);
  }
}

interface Held {
  readonly epoch: number;
  readonly start: number;
  readonly settle: (kind: Kind) => void;
  readonly promise: Promise<unknown>;
}

const boom = new Error('boom');
const ignored = new Error('ignored');

class Real {
  readonly clock = new ManualClock();
  readonly breaker: CircuitBreaker;
  readonly call: (kind: Kind | Promise<string>) => Promise<unknown>;
  invoked = 0;
  readonly held: Held[] = [];

  constructor(config: Config) {
    this.breaker = circuitBreaker({
      clock: this.clock,
      window: config.window,
      minimumCalls: config.minimumCalls,
      failureRateThreshold: config.failureRateThreshold,
      ...(config.consecutiveFailures === undefined
        ? {}
        : { consecutiveFailures: config.consecutiveFailures }),
      ...(config.slowCallDuration === undefined
        ? {}
        : {
            slowCallDuration: config.slowCallDuration,
            slowCallRateThreshold: config.slowCallRateThreshold,
          }),
      halfOpenAfter: config.halfOpenAfter,
      halfOpenMaxCalls: config.halfOpenMaxCalls,
      isFailure: (error) => error !== ignored,
    });
    const fn = (kind: Kind | Promise<string>): Promise<string> => {
      this.invoked++;
      if (typeof kind !== 'string') return kind;
      if (kind === 'ok') return Promise.resolve('ok');
      return Promise.reject(kind === 'fail' ? boom : ignored);
    };
    const wrapped = resilient(fn, { clock: this.clock, circuitBreaker: this.breaker });
    this.call = (kind) =>
      wrapped(kind).then(
        (value) => value,
        (error: unknown) => error,
      );
  }
}

type Command = fc.AsyncCommand<Model, Real>;

/** Checks what an admission attempt did against the model's decision. */
async function checkAdmission(
  decision: ReturnType<Model['admit']>,
  invokedBefore: number,
  r: Real,
  settled?: Promise<unknown>,
): Promise<void> {
  if ('epoch' in decision) {
    expect(r.invoked, 'admitted: fn is called').toBe(invokedBefore + 1);
    return;
  }
  expect(r.invoked, 'rejected: fn is not called').toBe(invokedBefore);
  const error = await settled;
  expect(error).toBeInstanceOf(CircuitOpenError);
  expect((error as CircuitOpenError).retryAfter).toBe(decision.retryAfter);
}

function compare(m: Model, r: Real): void {
  const now = r.clock.now();
  const stats = r.breaker.stats();
  const window = m.windowAt(now);
  expect(stats.state).toBe(m.state);
  expect(stats.calls).toBe(window.length);
  expect(stats.failures).toBe(window.filter((s) => s.failure).length);
  expect(stats.slowCalls).toBe(window.filter((s) => s.slow).length);
  expect(stats.consecutiveFailures).toBe(m.consecutive);
  const retryAfter =
    m.state === 'isolated'
      ? Infinity
      : m.state === 'open'
        ? Math.max(0, m.openedAt + m.config.halfOpenAfter - now)
        : 0;
  expect(stats.retryAfter).toBe(retryAfter);
  expect(r.clock.pending()).toBe(0); // the breaker never sets a timer
}

class CallNow implements Command {
  constructor(readonly kind: Kind) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const now = r.clock.now();
    const decision = m.admit(now);
    const before = r.invoked;
    const settled = r.call(this.kind);
    await checkAdmission(decision, before, r, settled);
    if ('epoch' in decision) {
      const value = await settled;
      expect(value).toBe(this.kind === 'ok' ? 'ok' : this.kind === 'fail' ? boom : ignored);
      m.record(decision.epoch, now, now, this.kind);
    }
    compare(m, r);
  }
  toString(): string {
    return `call(${this.kind})`;
  }
}

class Start implements Command {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const now = r.clock.now();
    const decision = m.admit(now);
    const before = r.invoked;
    let settle!: (kind: Kind) => void;
    const inner = new Promise<string>((resolve, reject) => {
      settle = (kind) => {
        if (kind === 'ok') resolve('ok');
        else reject(kind === 'fail' ? boom : ignored);
      };
    });
    const promise = r.call(inner);
    if ('epoch' in decision) {
      await checkAdmission(decision, before, r);
      r.held.push({ epoch: decision.epoch, start: now, settle, promise });
    } else {
      settle('ok');
      await checkAdmission(decision, before, r, promise);
    }
    compare(m, r);
  }
  toString(): string {
    return 'start';
  }
}

class Finish implements Command {
  constructor(
    readonly index: number,
    readonly kind: Kind,
  ) {}
  check(m: Readonly<Model>): boolean {
    void m;
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    if (r.held.length === 0) return;
    const [held] = r.held.splice(this.index % r.held.length, 1);
    held!.settle(this.kind);
    await held!.promise;
    m.record(held!.epoch, held!.start, r.clock.now(), this.kind);
    compare(m, r);
  }
  toString(): string {
    return `finish(#${this.index}, ${this.kind})`;
  }
}

class Advance implements Command {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.clock.advance(this.ms);
    compare(m, r);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

class Isolate implements Command {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.breaker.isolate();
    m.isolate(r.clock.now());
    compare(m, r);
  }
  toString(): string {
    return 'isolate()';
  }
}

class Reset implements Command {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.breaker.reset();
    m.reset(r.clock.now());
    compare(m, r);
  }
  toString(): string {
    return 'reset()';
  }
}

const kind = fc.constantFrom<Kind>('ok', 'ok', 'fail', 'fail', 'ignored');

const commands = fc.commands(
  [
    kind.map((k) => new CallNow(k)),
    kind.map((k) => new CallNow(k)),
    kind.map((k) => new CallNow(k)),
    fc.constant(new Start()),
    fc.constant(new Start()),
    fc.tuple(fc.nat(5), kind).map(([i, k]) => new Finish(i, k)),
    fc.tuple(fc.nat(5), kind).map(([i, k]) => new Finish(i, k)),
    fc.constantFrom(1, 50, 99, 100, 250, 500, 1_000, 2_000).map((ms) => new Advance(ms)),
    fc.constantFrom(1, 50, 99, 100, 250, 500, 1_000, 2_000).map((ms) => new Advance(ms)),
    // Isolation is sticky until a reset: rarer, so that the other states get their share.
    fc.constantFrom<Command>(new Isolate(), new Reset(), new Reset(), new Reset()),
  ],
  { maxCommands: 60, size: 'max' },
);

const config: fc.Arbitrary<Config> = fc
  .record({
    type: fc.constantFrom('count', 'time'),
    size: fc.integer({ min: 1, max: 6 }),
    minimumFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    failureRateThreshold: fc.constantFrom(0.25, 0.5, 0.75, 1),
    consecutiveFailures: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
    slowCallDuration: fc.option(fc.constantFrom(50, 100, 300), { nil: undefined }),
    slowCallRateThreshold: fc.constantFrom(0.5, 1),
    halfOpenAfter: fc.constantFrom(0, 100, 1_000),
    halfOpenMaxCalls: fc.integer({ min: 1, max: 3 }),
  })
  .map((c): Config => ({
    window:
      c.type === 'count' ? { type: 'count', size: c.size } : { type: 'time', duration: 1_000 },
    minimumCalls: 1 + Math.floor(c.minimumFraction * (c.size - 1)),
    failureRateThreshold: c.failureRateThreshold,
    consecutiveFailures: c.consecutiveFailures,
    slowCallDuration: c.slowCallDuration,
    slowCallRateThreshold: c.slowCallRateThreshold,
    halfOpenAfter: c.halfOpenAfter,
    halfOpenMaxCalls: c.halfOpenMaxCalls,
  }));

describe('circuit breaker: model-based', () => {
  it('agrees with the reference model on state, admission, rejections and counts', async () => {
    await fc.assert(
      fc.asyncProperty(config, commands, async (c, cmds) => {
        await fc.asyncModelRun(() => ({ model: new Model(c), real: new Real(c) }), cmds);
      }),
      { seed: 20_261_127, numRuns: 300 },
    );
    // 300 seeded runs in virtual time: about a second on a quiet machine, several on a loaded 2-core one.
  }, 60_000);
});
