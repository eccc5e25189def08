import { afterEach, describe, expect, it, vi } from 'vitest';
import { backoff, circuitBreaker, resilient, type ResilienceEvent } from '../src/index.js';
import { Emitter } from '../src/events.js';
import { ManualClock } from './helpers/manual-clock.js';

afterEach(() => {
  vi.unstubAllGlobals();
});

const event = (delay: number): ResilienceEvent => ({
  type: 'retryScheduled',
  attempt: 1,
  delay,
  error: undefined,
});

describe('Emitter', () => {
  it('is not listening until a listener is attached, and stops when the last one leaves', () => {
    const emitter = new Emitter();
    expect(emitter.listening).toBe(false);
    const off1 = emitter.on(() => {});
    const off2 = emitter.on(() => {});
    expect(emitter.listening).toBe(true);
    off1();
    expect(emitter.listening).toBe(true);
    off2();
    expect(emitter.listening).toBe(false);
    emitter.emit(event(1)); // nobody listens: a no-op
  });

  it('calls every listener in the order they were attached', () => {
    const emitter = new Emitter();
    const calls: string[] = [];
    emitter.on(() => calls.push('a'));
    emitter.on(() => calls.push('b'));
    emitter.on(() => calls.push('c'));
    emitter.emit(event(1));
    expect(calls).toEqual(['a', 'b', 'c']);
  });

  it('unsubscribes exactly the listener given; calling the disposer twice is harmless', () => {
    const emitter = new Emitter();
    const calls: string[] = [];
    emitter.on(() => calls.push('a'));
    const offB = emitter.on(() => calls.push('b'));
    emitter.on(() => calls.push('c'));
    offB();
    offB();
    emitter.emit(event(1));
    expect(calls).toEqual(['a', 'c']);
  });

  it('removing a listener that is not attached changes nothing', () => {
    const emitter = new Emitter();
    const a = vi.fn();
    const b = vi.fn();
    emitter.on(a);
    emitter.on(b);
    (emitter as unknown as { off(listener: unknown): void }).off(() => {});
    emitter.emit(event(1));
    expect(a).toHaveBeenCalledTimes(1);
    expect(b).toHaveBeenCalledTimes(1);
    const single = new Emitter();
    single.on(a);
    (single as unknown as { off(listener: unknown): void }).off(b);
    single.emit(event(2));
    expect(a).toHaveBeenCalledTimes(2);
    expect(single.listening).toBe(true);
  });

  it('the same function attached twice is called twice, and each disposer removes one', () => {
    const emitter = new Emitter();
    const listener = vi.fn();
    const off1 = emitter.on(listener);
    const off2 = emitter.on(listener);
    emitter.emit(event(1));
    expect(listener).toHaveBeenCalledTimes(2);
    off1();
    emitter.emit(event(2));
    expect(listener).toHaveBeenCalledTimes(3);
    off2();
    off1();
    emitter.emit(event(3));
    expect(listener).toHaveBeenCalledTimes(3);
    expect(emitter.listening).toBe(false);
  });

  it('a listener may unsubscribe others while an event is being delivered (they still get this one)', () => {
    const emitter = new Emitter();
    const calls: string[] = [];
    let offC: () => void = () => {};
    emitter.on(() => {
      calls.push('a');
      offC();
    });
    emitter.on(() => calls.push('b'));
    offC = emitter.on(() => calls.push('c'));
    emitter.emit(event(1));
    emitter.emit(event(2));
    expect(calls).toEqual(['a', 'b', 'c', 'a', 'b']);
  });

  it('a throwing listener does not stop the others; its error becomes a process warning', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const emitter = new Emitter();
    const boom = new Error('listener broke');
    const after = vi.fn();
    emitter.on(() => {
      throw boom;
    });
    emitter.on(after);
    expect(() => emitter.emit(event(1))).not.toThrow();
    expect(after).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toMatch(/listener threw on a `retryScheduled` event/);
    expect(warn.mock.calls[0]![1]).toMatchObject({
      code: 'BULWARK_LISTENER_ERROR',
      detail: expect.stringContaining('listener broke') as unknown,
    });
    warn.mockRestore();
  });

  it('a single throwing listener does not throw from emit either, whatever it throws', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const emitter = new Emitter();
    emitter.on(() => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a listener may throw anything
      throw 'not an error';
    });
    expect(() => emitter.emit(event(1))).not.toThrow();
    expect(warn.mock.calls[0]![1]).toMatchObject({ detail: 'not an error' });
    warn.mockRestore();
  });
});

describe('on() of wrapped functions and policies', () => {
  it('delivers typed events and stops after unsubscribe', async () => {
    const clock = new ManualClock();
    const error = new Error('x');
    const wrapped = resilient(() => Promise.reject(error), {
      retry: { maxAttempts: 2, backoff: backoff.constant(5) },
      clock,
    });
    const events: ResilienceEvent[] = [];
    const off = wrapped.on((e) => events.push(e));
    const first = wrapped().catch(() => 'failed');
    await clock.advance(5);
    await expect(first).resolves.toBe('failed');
    expect(events.map((e) => e.type)).toEqual(['retryScheduled', 'retriesExhausted']);
    off();
    const second = wrapped().catch(() => 'failed');
    await clock.advance(5);
    await second;
    expect(events).toHaveLength(2);
  });

  it('rejects a listener that is not a function', () => {
    expect(() => resilient(() => 1).on(42 as never)).toThrow(TypeError);
    expect(() => resilient({}).on(undefined as never)).toThrow(TypeError);
  });

  it('a throwing listener changes neither the result nor the retries', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const clock = new ManualClock();
    const fn = vi.fn().mockRejectedValueOnce(new Error('x')).mockResolvedValueOnce('ok');
    const wrapped = resilient(fn, {
      retry: { backoff: backoff.constant(5) },
      timeout: 100,
      fallback: 'fb',
      clock,
    });
    wrapped.on(() => {
      throw new Error('listener broke');
    });
    const call = wrapped();
    await clock.advance(5);
    await expect(call).resolves.toBe('ok');
    expect(fn).toHaveBeenCalledTimes(2);
    expect(warn).toHaveBeenCalled();

    const failing = resilient(() => Promise.reject(new Error('y')), { fallback: 'fb' });
    failing.on(() => {
      throw new Error('listener broke');
    });
    await expect(failing()).resolves.toBe('fb');
    warn.mockRestore();
  });

  it('events are only built when someone listens (a listener attached later sees later events only)', async () => {
    const clock = new ManualClock();
    const wrapped = resilient(() => Promise.reject(new Error('x')), {
      retry: { maxAttempts: 2, backoff: backoff.constant(5) },
      clock,
    });
    const early = wrapped().catch(() => undefined);
    await clock.advance(0);
    const events: ResilienceEvent[] = [];
    wrapped.on((e) => events.push(e));
    await clock.advance(5);
    await early;
    expect(events.map((e) => e.type)).toEqual(['retriesExhausted']);
  });

  it('a policy’s on() also hears its shared circuit breaker, until unsubscribed', () => {
    const breaker = circuitBreaker();
    const policy = resilient({ circuitBreaker: breaker });
    const events: ResilienceEvent[] = [];
    const off = policy.on((e) => events.push(e));
    breaker.isolate();
    expect(events).toEqual([{ type: 'circuitIsolated' }]);
    off();
    breaker.reset();
    expect(events).toHaveLength(1);
  });
});
