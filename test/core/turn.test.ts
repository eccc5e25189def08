import { afterEach, describe, expect, it, vi } from 'vitest';
import { atTurnEnd, turnEndScheduled } from '../../src/core/turn.js';

/** Resolves once this turn of the event loop is over (after its `setImmediate` callbacks). */
const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('atTurnEnd', () => {
  it('runs every task of a turn once, at its end, with one immediate', async () => {
    await endOfTurn();
    const immediate = vi.spyOn(globalThis, 'setImmediate');
    const ran: string[] = [];
    expect(turnEndScheduled()).toBe(false);
    atTurnEnd(() => ran.push('a'));
    expect(turnEndScheduled()).toBe(true);
    atTurnEnd(() => {
      ran.push('b');
      atTurnEnd(() => ran.push('queued while running')); // runs in the same pass
    });
    await Promise.resolve();
    expect(ran).toEqual([]);
    expect(immediate).toHaveBeenCalledTimes(1);
    immediate.mockRestore();
    await endOfTurn();
    expect(ran).toEqual(['a', 'b', 'queued while running']);
    expect(turnEndScheduled()).toBe(false);
  });

  it('a task that throws leaves the others for another pass, and its error goes on', () => {
    const callbacks: (() => void)[] = [];
    vi.stubGlobal('setImmediate', (callback: () => void) => callbacks.push(callback));
    const ran: string[] = [];
    const boom = new Error('boom');
    atTurnEnd(() => ran.push('a'));
    atTurnEnd(() => {
      throw boom;
    });
    atTurnEnd(() => ran.push('c'));
    expect(callbacks).toHaveLength(1);
    expect(() => callbacks[0]!()).toThrow(boom);
    expect(ran).toEqual(['a']);
    expect(callbacks).toHaveLength(2); // the rest is scheduled again
    callbacks[1]!();
    expect(ran).toEqual(['a', 'c']);
    expect(turnEndScheduled()).toBe(false);
  });

  it('without setImmediate (a browser), a 0 ms timer', async () => {
    vi.stubGlobal('setImmediate', undefined);
    const ran: string[] = [];
    atTurnEnd(() => ran.push('a'));
    expect(turnEndScheduled()).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 0)); // after the runner’s, set first
    expect(ran).toEqual(['a']);
  });
});
