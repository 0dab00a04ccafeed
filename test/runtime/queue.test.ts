import { describe, expect, it } from "vitest";
import { Queue } from "../../hub/runtime/queue.ts";

describe("Queue (mailbox ring buffer)", () => {
  it("keeps FIFO order across growth and wrap-around", () => {
    const q = new Queue<number>();
    const expected: number[] = [];
    let next = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 7 + round; i++) {
        q.push(next);
        expected.push(next++);
      }
      for (let i = 0; i < 5 + (round % 3); i++) expect(q.shift()).toBe(expected.shift());
    }
    expect(q.toArray()).toEqual(expected);
    expect(q.length).toBe(expected.length);
  });

  it("removes from the middle keeping the rest in order (selective receive)", () => {
    const q = new Queue<string>();
    for (const s of ["a", "b", "c", "d", "e", "f", "g", "h", "i"]) q.push(s);
    q.shift();
    q.push("j");
    expect(q.removeAt(3)).toBe("e");
    expect(q.toArray()).toEqual(["b", "c", "d", "f", "g", "h", "i", "j"]);
    expect(q.at(0)).toBe("b");
    expect(q.at(8)).toBeUndefined();
    expect(q.shift()).toBe("b");
  });

  it("is empty after draining and shift on empty gives undefined", () => {
    const q = new Queue<number>();
    q.push(1);
    expect(q.shift()).toBe(1);
    expect(q.shift()).toBeUndefined();
    expect(q.length).toBe(0);
  });
});
