/**
 * A FIFO queue on a plain array with a moving head: O(1) push and shift, compacted now and then.
 * Used for mailboxes and the run queue, where it sits on the hot path.
 */
export class Queue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Removes and returns the oldest item; `undefined` when empty. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** The item at position `index` from the oldest (0). */
  at(index: number): T | undefined {
    return this.items[this.head + index];
  }

  /** Removes the item at `index` from the oldest; used by selective receive. */
  removeAt(index: number): T | undefined {
    if (index === 0) return this.shift();
    const [item] = this.items.splice(this.head + index, 1);
    return item;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }

  toArray(): T[] {
    return this.items.slice(this.head) as T[];
  }
}
