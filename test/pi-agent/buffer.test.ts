import { appendFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DiskQueue } from "../../firmware/pi-agent/src/buffer.ts";
import { tempDir } from "./helpers.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function open(dir: string, maxBytes = 1 << 20, segmentBytes?: number) {
  const q = DiskQueue.open<{ n: number }>({ dir, maxBytes, ...(segmentBytes ? { segmentBytes } : {}) });
  return q;
}

function drain(q: DiskQueue<{ n: number }>): { index: number; n: number }[] {
  const out: { index: number; n: number }[] = [];
  for (let r = q.next(); r; r = q.next()) out.push({ index: r.index, n: r.data.n });
  return out;
}

function segBytes(dir: string): number {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".seg"))
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

describe("DiskQueue", () => {
  it("hands out records in order and forgets them only once acknowledged", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const q = open(t.dir);
    for (let n = 0; n < 5; n++) q.append({ n });
    const out = drain(q);
    expect(out.map((r) => r.n)).toEqual([0, 1, 2, 3, 4]);
    expect(q.next()).toBeUndefined();
    q.ack(out[1]!.index); // out of order: the mark waits for 0
    expect(q.pending).toBe(5);
    q.ack(out[0]!.index);
    expect(q.pending).toBe(3);
    q.rewind(); // connection lost: 2, 3, 4 are handed out again
    expect(drain(q).map((r) => r.n)).toEqual([2, 3, 4]);
    q.close();
  });

  it("survives a reopen: unacknowledged records come back in order, acknowledged ones do not", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const q = open(t.dir, 1 << 20, 200);
    for (let n = 0; n < 40; n++) q.append({ n });
    for (const r of drain(q).slice(0, 25)) q.ack(r.index);
    q.close(); // as a crash would leave it: every write is synchronous
    const q2 = open(t.dir, 1 << 20, 200);
    expect(q2.pending).toBe(15);
    expect(drain(q2).map((r) => r.n)).toEqual(Array.from({ length: 15 }, (_, i) => 25 + i));
    q2.append({ n: 40 });
    expect(drain(q2).map((r) => r.n)).toEqual([40]);
    q2.close();
  });

  it("deletes segments once fully acknowledged", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const q = open(t.dir, 1 << 20, 100);
    for (let n = 0; n < 50; n++) q.append({ n });
    expect(readdirSync(t.dir).filter((f) => f.endsWith(".seg")).length).toBeGreaterThanOrEqual(4);
    for (const r of drain(q)) q.ack(r.index);
    expect(q.pending).toBe(0);
    expect(readdirSync(t.dir).filter((f) => f.endsWith(".seg")).length).toBe(1); // only the tail
    q.close();
  });

  it("stays within maxBytes, dropping the oldest records and counting them (persisted)", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const q = open(t.dir, 4096);
    for (let n = 0; n < 1000; n++) {
      q.append({ n });
      expect(segBytes(t.dir)).toBeLessThanOrEqual(4096);
    }
    expect(q.dropped).toBeGreaterThan(500);
    expect(q.dropped + q.pending).toBe(1000);
    const kept = drain(q).map((r) => r.n);
    expect(kept.at(-1)).toBe(999);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 1000 - kept.length + i)); // newest, contiguous
    q.close();
    const q2 = open(t.dir, 4096);
    expect(q2.dropped).toBe(1000 - kept.length);
    expect(drain(q2).map((r) => r.n)).toEqual(kept);
    q2.close();
  });

  it("acknowledgements of dropped records are ignored", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const q = open(t.dir, 4096);
    q.append({ n: 0 });
    const first = q.next()!;
    for (let n = 1; n < 500; n++) q.append({ n });
    q.ack(first.index); // already dropped
    expect(q.dropped + q.pending).toBe(500);
    expect(q.next()!.data.n).toBeGreaterThan(0);
    q.close();
  });

  it("keeps its owner's meta value in the mark, written before acknowledged segments are deleted", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const q = open(t.dir, 1 << 20, 100);
    expect(q.meta).toEqual({});
    let counter = 0;
    q.setMetaSource(() => ({ counter }));
    for (let n = 0; n < 30; n++) {
      q.append({ n });
      counter = n;
    }
    for (const r of drain(q)) q.ack(r.index);
    expect(readdirSync(t.dir).filter((f) => f.endsWith(".seg"))).toHaveLength(1);
    // Not closed: as after a SIGKILL, only what was written at the last acknowledgement counts.
    const q2 = open(t.dir, 1 << 20, 100);
    expect(q2.meta).toEqual({ counter: 29 });
    expect(q2.pending).toBe(0);
    q2.append({ n: 30 }); // a mark written before setMetaSource carries the recovered value on
    q2.close();
    expect(open(t.dir).meta).toEqual({ counter: 29 });
  });

  it("refuses a meta value that does not fit in the one-page mark", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const q = open(t.dir);
    q.setMetaSource(() => ({ big: "x".repeat(5000) }));
    q.append({ n: 1 });
    expect(() => q.ack(q.next()!.index)).toThrow(/does not fit in 4096/);
  });

  it("cuts a torn last line and skips corrupt ones", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const q = open(t.dir);
    q.append({ n: 1 });
    q.append({ n: 2 });
    q.close();
    const seg = readdirSync(t.dir).find((f) => f.endsWith(".seg"))!;
    appendFileSync(join(t.dir, seg), 'not json\n{"n":3}\n{"n":'); // a corrupt line, a good one, a torn one
    const q2 = open(t.dir);
    expect(drain(q2).map((r) => r.n)).toEqual([1, 2, 3]);
    q2.append({ n: 4 });
    expect(drain(q2).map((r) => r.n)).toEqual([4]);
    q2.close();
    const q3 = open(t.dir);
    expect(drain(q3).map((r) => r.n)).toEqual([1, 2, 3, 4]);
    q3.close();
  });
});
