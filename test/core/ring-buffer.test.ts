import { describe, expect, it } from 'vitest';
import { RingBuffer } from '../../src/core/ring-buffer.js';

describe('RingBuffer', () => {
  it('is a FIFO of fixed capacity', () => {
    const ring = new RingBuffer<number>(3);
    expect(ring.push(1)).toBe(true);
    expect(ring.push(2)).toBe(true);
    expect(ring.push(3)).toBe(true);
    expect(ring.push(4)).toBe(false);
    expect(ring.length).toBe(3);
    expect(ring.shift()).toBe(1);
    expect(ring.push(4)).toBe(true);
    expect([ring.shift(), ring.shift(), ring.shift()]).toEqual([2, 3, 4]);
    expect(ring.shift()).toBeUndefined();
    expect(ring.length).toBe(0);
  });

  it('wraps around many times', () => {
    const ring = new RingBuffer<number>(4);
    const out: number[] = [];
    for (let i = 0; i < 50; i++) {
      ring.push(i);
      if (i % 2 === 1) {
        out.push(ring.shift()!);
        out.push(ring.shift()!);
      }
    }
    expect(out).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('removes an item anywhere, keeping the others in order, across the wrap point', () => {
    const ring = new RingBuffer<string>(4);
    ring.push('x');
    ring.push('y');
    ring.shift();
    ring.shift(); // head is now at index 2
    for (const item of ['a', 'b', 'c', 'd']) ring.push(item);
    expect(ring.remove('b')).toBe(true);
    expect(ring.remove('zz')).toBe(false);
    expect(ring.length).toBe(3);
    expect(ring.push('e')).toBe(true);
    expect([ring.shift(), ring.shift(), ring.shift(), ring.shift()]).toEqual(['a', 'c', 'd', 'e']);
  });

  it('removes the first and the last item', () => {
    const ring = new RingBuffer<number>(3);
    ring.push(1);
    ring.push(2);
    ring.push(3);
    expect(ring.remove(3)).toBe(true);
    expect(ring.remove(1)).toBe(true);
    expect(ring.length).toBe(1);
    expect(ring.shift()).toBe(2);
    expect(ring.remove(2)).toBe(false);
  });

  it('capacity 0 (a bulkhead without queue) takes nothing', () => {
    const ring = new RingBuffer<number>(0);
    expect(ring.push(1)).toBe(false);
    expect(ring.length).toBe(0);
    expect(ring.shift()).toBeUndefined();
  });

  it('a very large or infinite capacity grows lazily and keeps FIFO order', () => {
    const ring = new RingBuffer<number>(Infinity);
    const n = (1 << 16) + 10;
    let pushed = 0;
    for (let i = 0; i < n; i++) if (ring.push(i)) pushed++;
    expect(pushed).toBe(n);
    expect(ring.length).toBe(n);
    let inOrder = 0;
    for (let i = 0; i < n; i++) if (ring.shift() === i) inOrder++;
    expect(inOrder).toBe(n);
  });

  it('grows from a wrapped state', () => {
    const ring = new RingBuffer<number>((1 << 16) + 5);
    for (let i = 0; i < 1 << 16; i++) ring.push(i);
    for (let i = 0; i < 10; i++) ring.shift(); // head moves forward
    for (let i = 0; i < 15; i++) expect(ring.push((1 << 16) + i)).toBe(true); // wraps, then grows
    expect(ring.push(-1)).toBe(false);
    let inOrder = 0;
    for (let i = 10; i < (1 << 16) + 15; i++) if (ring.shift() === i) inOrder++;
    expect(inOrder).toBe((1 << 16) + 5);
    expect(ring.length).toBe(0);
  });
});
