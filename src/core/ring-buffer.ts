/** A preallocated FIFO of fixed capacity (bulkhead queue). */
export class RingBuffer<T> {
  private items: (T | undefined)[];
  private head = 0;
  length = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(Math.max(1, Math.min(capacity, 1 << 16))).fill(undefined);
  }

  /** Appends; returns false when full. */
  push(item: T): boolean {
    if (this.length >= this.capacity) return false;
    if (this.length === this.items.length) this.grow();
    this.items[(this.head + this.length) % this.items.length] = item;
    this.length++;
    return true;
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.length--;
    return item;
  }

  /** Removes one item wherever it is, keeping the others in order. O(n), n ≤ capacity. */
  remove(item: T): boolean {
    const size = this.items.length;
    for (let i = 0; i < this.length; i++) {
      if (this.items[(this.head + i) % size] !== item) continue;
      for (let j = i; j < this.length - 1; j++) {
        this.items[(this.head + j) % size] = this.items[(this.head + j + 1) % size];
      }
      this.items[(this.head + this.length - 1) % size] = undefined;
      this.length--;
      return true;
    }
    return false;
  }

  /** Only for capacities above the initial allocation (very large queues are allocated lazily). */
  private grow(): void {
    const size = this.items.length;
    const next = new Array<T | undefined>(Math.min(this.capacity, size * 2)).fill(undefined);
    for (let i = 0; i < this.length; i++) next[i] = this.items[(this.head + i) % size];
    this.items = next;
    this.head = 0;
  }
}
