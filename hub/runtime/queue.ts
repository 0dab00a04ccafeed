/**
 * A FIFO queue on a ring buffer: O(1) push and shift, grows by doubling, never compacts. Used for mailboxes and
 * the run queue, where it sits on the hot path.
 */
export class Queue<T> {
  private items: (T | undefined)[];
  private head = 0;
  private size = 0;
  private mask: number;

  constructor(capacity = 8) {
    let cap = 8;
    while (cap < capacity) cap *= 2;
    this.items = new Array<T | undefined>(cap);
    this.mask = cap - 1;
  }

  get length(): number {
    return this.size;
  }

  push(item: T): void {
    if (this.size === this.items.length) this.grow();
    this.items[(this.head + this.size) & this.mask] = item;
    this.size++;
  }

  /** Removes and returns the oldest item; `undefined` when empty. */
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    return item;
  }

  /** The item at position `index` from the oldest (0). */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.size) return undefined;
    return this.items[(this.head + index) & this.mask];
  }

  /** Removes the item at `index` from the oldest, keeping the order of the rest; used by selective receive. */
  removeAt(index: number): T | undefined {
    if (index < 0 || index >= this.size) return undefined;
    if (index === 0) return this.shift();
    const item = this.items[(this.head + index) & this.mask];
    for (let i = index; i < this.size - 1; i++) {
      this.items[(this.head + i) & this.mask] = this.items[(this.head + i + 1) & this.mask];
    }
    this.items[(this.head + this.size - 1) & this.mask] = undefined;
    this.size--;
    return item;
  }

  clear(): void {
    this.items = new Array<T | undefined>(8);
    this.mask = 7;
    this.head = 0;
    this.size = 0;
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.size; i++) out.push(this.items[(this.head + i) & this.mask] as T);
    return out;
  }

  private grow(): void {
    const old = this.items;
    const next = new Array<T | undefined>(old.length * 2);
    for (let i = 0; i < this.size; i++) next[i] = old[(this.head + i) & this.mask];
    this.items = next;
    this.head = 0;
    this.mask = next.length - 1;
  }
}
