import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backoff, resilient, TimeoutError } from '../src/index.js';
import { ManualClock, manualClock } from '../src/testing/index.js';

const DAY = 86_400_000;

describe('bulwark/testing: manualClock', () => {
  it('starts at 0 (or `start`) and moves only when told', async () => {
    const clock = manualClock();
    expect(clock.now()).toBe(0);
    await clock.advance(250);
    expect(clock.now()).toBe(250);
    expect(manualClock({ start: 1_000 }).now()).toBe(1_000);
    expect(clock).toBeInstanceOf(ManualClock);
  });

  it('advance fires due timers in order of due time, then of creation, each at its due time', async () => {
    const clock = manualClock();
    const seen: string[] = [];
    const at = (name: string) => () => seen.push(`${name}@${clock.now()}`);
    clock.setTimer(at('c'), 30);
    clock.setTimer(at('a'), 10);
    clock.setTimer(at('b1'), 20);
    clock.setTimer(at('b2'), 20);
    clock.setTimer(at('late'), 31);
    await clock.advance(30);
    expect(seen).toEqual(['a@10', 'b1@20', 'b2@20', 'c@30']);
    expect(clock.pending()).toBe(1);
  });

  it('fires, in the same advance, timers that callbacks set inside the window (not those past it)', async () => {
    const clock = manualClock();
    const seen: number[] = [];
    const tick = (): void => {
      seen.push(clock.now());
      clock.setTimer(tick, 40);
    };
    clock.setTimer(tick, 40);
    await clock.advance(100);
    expect(seen).toEqual([40, 80]);
    expect(clock.nextTimerAt()).toBe(120);
  });

  it('lets promise chains move on between timers: a retry loop with backoff and timeouts runs to its end', async () => {
    const clock = manualClock();
    let calls = 0;
    const flaky = (): Promise<string> => {
      calls++;
      // Hangs twice (the attempt timeout ends it), then answers.
      return calls < 3 ? new Promise<string>(() => {}) : Promise.resolve('ok');
    };
    const call = resilient(flaky, {
      retry: { maxAttempts: 3, backoff: backoff.constant(100) },
      timeout: 1_000,
      clock,
    })();
    await clock.advance(2_199);
    expect(calls).toBe(2); // 1 000 ms timeout + 100 ms backoff, twice: the third starts at 2 200
    await clock.advance(1);
    await expect(call).resolves.toBe('ok');
    expect(calls).toBe(3);
  });

  it('takes durations of any length (no 2³¹−1 ms limit); Infinity never fires', async () => {
    const clock = manualClock();
    let fired = 0;
    clock.setTimer(() => fired++, 30 * DAY);
    clock.setTimer(() => fired++, Infinity);
    await clock.advance(30 * DAY - 1);
    expect(fired).toBe(0);
    await clock.advance(1);
    expect(fired).toBe(1);
    await clock.runAll();
    expect(fired).toBe(1);
    expect(clock.nextTimerAt()).toBeUndefined();
  });

  it('a policy waits a 30-day timeout in virtual time', async () => {
    const clock = manualClock();
    const call = resilient(() => new Promise(() => {}), { timeout: 30 * DAY, clock })().catch(
      (error: unknown) => error,
    );
    await clock.advance(29 * DAY);
    let settled = false;
    void call.then(() => (settled = true));
    await clock.flush();
    expect(settled).toBe(false);
    await clock.advance(DAY);
    expect(await call).toBeInstanceOf(TimeoutError);
  });

  it('runAll fires every timer, however far, and those their callbacks set', async () => {
    const clock = manualClock();
    const seen: number[] = [];
    clock.setTimer(() => {
      seen.push(clock.now());
      clock.setTimer(() => seen.push(clock.now()), 5 * DAY);
    }, DAY);
    await clock.runAll();
    expect(seen).toEqual([DAY, 6 * DAY]);
    expect(clock.pending()).toBe(0);
  });

  it('runAll throws on a callback that always sets another timer, instead of running for ever', async () => {
    const clock = manualClock();
    const again = (): void => void clock.setTimer(again, 1);
    clock.setTimer(again, 1);
    await expect(clock.runAll(50)).rejects.toThrow(
      'runAll() fired 50 timers and more are pending: a callback that always sets another timer? Use advance(ms)',
    );
  });

  it('treats a negative or NaN delay as 0, as setTimeout does', async () => {
    const clock = manualClock();
    let fired = 0;
    clock.setTimer(() => fired++, -5);
    clock.setTimer(() => fired++, NaN);
    await clock.advance(0);
    expect(fired).toBe(2);
  });

  it('clearTimer cancels; refTimer and unref decide what pending({ refOnly }) counts', () => {
    const clock = manualClock();
    const kept = clock.setTimer(() => {}, 10);
    const idle = clock.setTimer(() => {}, 10, true);
    expect(clock.pending()).toBe(2);
    expect(clock.pending({ refOnly: true })).toBe(1);
    clock.refTimer(idle, true);
    clock.refTimer(kept, false);
    clock.refTimer(999, true); // unknown handle: nothing
    expect(clock.pending({ refOnly: true })).toBe(1);
    clock.clearTimer(kept);
    clock.clearTimer(kept);
    expect(clock.pending()).toBe(1);
  });

  it('elapse moves time without firing; the next advance fires what became due', async () => {
    const clock = manualClock();
    let fired = 0;
    clock.setTimer(() => fired++, 10);
    clock.elapse(50);
    expect(fired).toBe(0);
    await clock.advance(0);
    expect(fired).toBe(1);
    expect(clock.now()).toBe(50);
  });

  it.each([-1, NaN, Infinity, '5'])('advance(%s) is a RangeError', async (ms) => {
    await expect(manualClock().advance(ms as number)).rejects.toThrow(RangeError);
  });

  it('refuses a start that is not a finite number', () => {
    expect(() => manualClock({ start: NaN })).toThrow(
      'Expected `start` to be a finite number of ms, got NaN',
    );
  });
});

describe('bulwark/testing: the published subpath', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const script = `
    const clock = manualClock();
    let fired = 0;
    clock.setTimer(() => fired++, 40 * 86_400_000);
    clock.advance(40 * 86_400_000).then(() => console.log(fired, clock.now()));
  `;

  it.each([
    ['ESM', `import { manualClock } from 'bulwark/testing';${script}`, 'module'],
    ['CJS', `const { manualClock } = require('bulwark/testing');${script}`, 'commonjs'],
  ])(
    '%s: import { manualClock } from "bulwark/testing" (the built package)',
    (_kind, code, type) => {
      const out = execFileSync(process.execPath, ['--input-type', type, '-e', code], {
        cwd: root,
        encoding: 'utf8',
      });
      expect(out.trim()).toBe(`1 ${40 * 86_400_000}`);
    },
  );
});
