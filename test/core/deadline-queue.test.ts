import { describe, expect, it } from 'vitest';
import { DeadlineQueue, type DeadlineEntry } from '../../src/core/deadline-queue.js';
import { ManualClock } from '../helpers/manual-clock.js';

interface Entry extends DeadlineEntry {
  name: string;
}

function entry(name: string): Entry {
  return { name, deadline: 0, prev: undefined, next: undefined, queued: false };
}

function setup() {
  const clock = new ManualClock();
  const expired: string[] = [];
  const queue = new DeadlineQueue<Entry>(clock, (e) => expired.push(`${e.name}@${clock.now()}`));
  return { clock, expired, queue };
}

/** Resolves once this turn of the event loop is over (after its `setImmediate` callbacks). */
const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('DeadlineQueue', () => {
  it('expires entries in order at their deadline with a single timer, ref’d while entries wait', async () => {
    const { clock, expired, queue } = setup();
    const a = entry('a');
    const b = entry('b');
    const c = entry('c');
    queue.push(a, 100);
    await clock.advance(30);
    queue.push(b, 130);
    queue.push(c, 130);
    expect(clock.pending()).toBe(1);
    expect(clock.pending({ refOnly: true })).toBe(1);
    expect(queue.armed).toBe(true);
    await clock.advance(70);
    expect(expired).toEqual(['a@100']);
    expect(a.queued).toBe(false);
    expect(clock.pending()).toBe(1); // re-armed for b
    await clock.advance(30);
    expect(expired).toEqual(['a@100', 'b@130', 'c@130']);
    expect(queue.armed).toBe(false);
    expect(clock.pending()).toBe(0);
  });

  it('a removed entry never expires; removing twice is harmless', async () => {
    const { clock, expired, queue } = setup();
    const a = entry('a');
    const b = entry('b');
    const c = entry('c');
    queue.push(a, 10);
    queue.push(b, 10);
    queue.push(c, 10);
    queue.remove(b);
    queue.remove(b);
    expect(b.queued).toBe(false);
    expect(b.prev).toBeUndefined();
    expect(b.next).toBeUndefined();
    await clock.advance(10);
    expect(expired).toEqual(['a@10', 'c@10']);
  });

  it('removing the head and the tail keeps the links right', async () => {
    const { clock, expired, queue } = setup();
    const [a, b, c] = [entry('a'), entry('b'), entry('c')];
    queue.push(a, 10);
    queue.push(b, 20);
    queue.push(c, 30);
    queue.remove(a);
    queue.remove(c);
    const d = entry('d');
    queue.push(d, 40);
    await clock.advance(40);
    expect(expired).toEqual(['b@20', 'd@40']);
  });

  it('the timer armed for a removed head fires harmlessly and re-arms for the next entry', async () => {
    const { clock, expired, queue } = setup();
    const [a, b] = [entry('a'), entry('b')];
    queue.push(a, 10);
    queue.push(b, 50);
    queue.remove(a);
    await clock.advance(10);
    expect(expired).toEqual([]);
    expect(queue.armed).toBe(true);
    await clock.advance(40);
    expect(expired).toEqual(['b@50']);
  });

  it('an entry can be queued again after it expired', async () => {
    const { clock, expired, queue } = setup();
    const a = entry('a');
    queue.push(a, 5);
    await clock.advance(5);
    queue.push(a, 15);
    await clock.advance(10);
    expect(expired).toEqual(['a@5', 'a@15']);
  });

  it('an expiry handler may push a new entry', async () => {
    const clock = new ManualClock();
    const seen: string[] = [];
    const queue: DeadlineQueue<Entry> = new DeadlineQueue<Entry>(clock, (e) => {
      seen.push(`${e.name}@${clock.now()}`);
      if (e.name === 'a') queue.push(entry('b'), clock.now() + 5);
    });
    queue.push(entry('a'), 5);
    await clock.advance(20);
    expect(seen).toEqual(['a@5', 'b@10']);
    expect(clock.pending()).toBe(0);
  });

  it('the timer holds the process only while an entry waits: unref’d at the end of the turn in which the queue emptied, ref’d again by the next push', async () => {
    const { clock, queue } = setup();
    const [a, b, c] = [entry('a'), entry('b'), entry('c')];
    queue.push(a, 100);
    queue.push(b, 100);
    expect(clock.pending({ refOnly: true })).toBe(1);
    queue.remove(a);
    expect(clock.pending({ refOnly: true })).toBe(1); // b still waits
    queue.remove(b);
    expect(clock.pending()).toBe(1); // still armed: the next push sets no timer
    await endOfTurn();
    expect(clock.pending({ refOnly: true })).toBe(0);
    queue.push(c, 150);
    expect(clock.pending()).toBe(1);
    expect(clock.pending({ refOnly: true })).toBe(1);
    await clock.advance(100); // the old timer fires and re-arms for c, ref'd
    expect(clock.pending({ refOnly: true })).toBe(1);
    queue.remove(c);
    await endOfTurn();
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('an entry that waits across turns keeps the timer held; the turn after the last one leaves, it is released', async () => {
    const { clock, queue } = setup();
    const a = entry('a');
    queue.push(a, 100);
    await endOfTurn();
    await endOfTurn();
    expect(clock.pending({ refOnly: true })).toBe(1); // a still waits: the process must not exit
    await clock.advance(50);
    expect(clock.pending({ refOnly: true })).toBe(1);
    queue.remove(a);
    await endOfTurn();
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('entries that come and go within one turn keep the timer held: no ref/unref per entry', async () => {
    const clock = new ManualClock();
    const queue = new DeadlineQueue<Entry>(clock, () => {});
    for (let i = 0; i < 100; i++) {
      const e = entry(`e${i}`);
      queue.push(e, 100);
      queue.remove(e);
    }
    expect(clock.refToggles).toBe(0);
    expect(clock.pending({ refOnly: true })).toBe(1);
    await endOfTurn();
    expect(clock.refToggles).toBe(1); // one unref for the whole turn
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('on a clock without refTimer, the timer is cleared at the end of the turn in which the queue emptied', async () => {
    const clock = new ManualClock(0, { refTimer: false });
    const queue = new DeadlineQueue<Entry>(clock, () => {});
    const a = entry('a');
    queue.push(a, 100);
    expect(clock.pending({ refOnly: true })).toBe(1);
    queue.remove(a);
    await endOfTurn();
    expect(queue.armed).toBe(false);
    expect(clock.pending()).toBe(0);
  });
});

describe('DeadlineQueue on a host whose timers count whole milliseconds (Node)', () => {
  it('an entry with a fractional deadline expires with one timer, not early and then re-armed', async () => {
    // Node truncates a timer's delay to whole ms (237.6 → 237, and below 1 → 1): a timer armed for
    // the exact remainder fires before the deadline, and the queue must arm another for the rest.
    const clock = new ManualClock();
    let timers = 0;
    const setTimer = clock.setTimer.bind(clock);
    clock.setTimer = (callback, ms, unref) => {
      timers++;
      return setTimer(callback, ms >= 1 ? Math.trunc(ms) : 1, unref);
    };
    const expired: string[] = [];
    const queue = new DeadlineQueue<Entry>(clock, (e) => expired.push(`${e.name}@${clock.now()}`));
    const [a, b] = [entry('a'), entry('b')];
    queue.push(a, 100);
    queue.push(b, 337.6);
    await clock.advance(100);
    expect(expired).toEqual(['a@100']);
    expect(timers).toBe(2); // a's, then one re-armed for b
    await clock.advance(238);
    expect(expired).toEqual(['a@100', 'b@338']);
    expect(timers).toBe(2);
  });
});

describe('DeadlineQueue with lazy stamping (the system clock: one clock read per turn)', () => {
  function lazySetup(duration = 100) {
    const clock = new ManualClock();
    const expired: string[] = [];
    const queue = new DeadlineQueue<Entry>(
      clock,
      (e) => expired.push(`${e.name}@${clock.now()}`),
      duration,
    );
    let reads = 0;
    const now = clock.now.bind(clock);
    clock.now = () => {
      reads++;
      return now();
    };
    return { clock, expired, queue, reads: () => reads };
  }

  it('push reads no clock; the entries of one turn get their deadline from one read at its end, never early', async () => {
    const { clock, expired, queue, reads } = lazySetup(100);
    const [a, b, c] = [entry('a'), entry('b'), entry('c')];
    queue.push(a);
    clock.elapse(3); // the turn takes 3 ms
    queue.push(b);
    queue.push(c);
    queue.remove(c);
    expect(reads()).toBe(0);
    expect(queue.armed).toBe(true);
    await endOfTurn();
    expect(reads()).toBe(1);
    // Stamped at the end of the turn: a is 3 ms late, never early.
    expect([a.deadline, b.deadline]).toEqual([103, 103]);
    await clock.advance(99);
    expect(expired).toEqual([]);
    await clock.advance(1);
    expect(expired).toEqual(['a@103', 'b@103']);
    expect(queue.armed).toBe(false);
    expect(clock.pending()).toBe(0);
  });

  it('the timer armed for an entry of this turn holds the process until that entry leaves, and no longer', async () => {
    const { clock, queue } = lazySetup(100);
    const a = entry('a');
    queue.push(a);
    expect(clock.pending({ refOnly: true })).toBe(1);
    await endOfTurn();
    expect(clock.pending({ refOnly: true })).toBe(1);
    queue.remove(a);
    await endOfTurn();
    expect(clock.pending({ refOnly: true })).toBe(0);
  });

  it('entries of later turns are stamped at the end of their own turn', async () => {
    const { clock, expired, queue } = lazySetup(100);
    queue.push(entry('a'));
    await clock.advance(40);
    const b = entry('b');
    queue.push(b);
    await endOfTurn();
    expect(b.deadline).toBe(140);
    await clock.advance(100);
    expect(expired).toEqual(['a@100', 'b@140']);
  });

  it('a timer that fires before the end of the turn stamps the waiting entries with its own read', () => {
    let fire: (() => void) | undefined;
    let time = 0;
    const clock = {
      now: () => time,
      setTimer: (callback: () => void) => {
        fire = callback;
        return 1;
      },
      clearTimer: () => {},
      refTimer: () => {},
    };
    const expired: string[] = [];
    const queue = new DeadlineQueue<Entry>(clock, (e) => expired.push(e.name), 10);
    const a = entry('a');
    queue.push(a);
    time = 7;
    fire!(); // early, as a host timer may be, and before the end of the turn
    expect(a.deadline).toBe(17);
    expect(expired).toEqual([]);
    expect(a.queued).toBe(true);
    time = 17;
    fire!(); // re-armed for a
    expect(expired).toEqual(['a']);
  });

  it('removing the first unstamped entry moves the stamp on to the next', async () => {
    const { clock, queue } = lazySetup(50);
    const [a, b] = [entry('a'), entry('b')];
    queue.push(a);
    queue.push(b);
    queue.remove(a);
    clock.elapse(2);
    await endOfTurn();
    expect(b.deadline).toBe(52);
  });
});

describe('DeadlineQueue: an expiry handler that queues an entry while others wait', () => {
  it('re-arms for the entry due first, not for the new one', async () => {
    const clock = new ManualClock();
    const seen: string[] = [];
    const queue: DeadlineQueue<Entry> = new DeadlineQueue<Entry>(clock, (e) => {
      seen.push(`${e.name}@${clock.now()}`);
      if (e.name === 'a') queue.push(entry('c'), clock.now() + 15);
    });
    queue.push(entry('a'), 5);
    queue.push(entry('b'), 7);
    await clock.advance(5);
    expect(clock.pending()).toBe(1); // one timer for the queue, not one more for c
    await clock.advance(25);
    expect(seen).toEqual(['a@5', 'b@7', 'c@20']);
    expect(clock.pending()).toBe(0);
  });
});
