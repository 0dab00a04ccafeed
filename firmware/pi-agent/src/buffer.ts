/**
 * A bounded, crash-safe FIFO on disk: every reading goes through it, so an outage or a crash loses nothing.
 *
 * Layout of the directory:
 * - `<first index, 16 digits>.seg` — segments, append-only, one JSON record per line. Record N is line
 *   `N - first` of the segment whose name is `first`. Only the newest segment (the tail) is ever written.
 * - `ack` — the mark, one line `{"acked":A,"dropped":D,"meta":M}` padded to 4 KiB and rewritten in place (a
 *   one-page `pwrite`, which a process crash cannot tear, and no new inode per write, which spares SD cards): every
 *   record below index A has been acknowledged by the broker (PUBACK); D counts records dropped because the buffer
 *   was full; M is the owner's small JSON value (the agent keeps its seq counters there). The mark is written before
 *   the segments it frees are deleted, so whatever left the buffer is covered by a mark with a current M.
 *
 * Records are handed out in order by {@link DiskQueue.next}, acknowledged by {@link DiskQueue.ack} (in any order;
 * the `acked` mark moves over the contiguous prefix), and handed out again from the mark after
 * {@link DiskQueue.rewind} (a lost connection). A segment is deleted once all its records are acknowledged. When the
 * segments would exceed `maxBytes`, the oldest segment is deleted whole and its unacknowledged records are counted as
 * dropped. After a crash the queue resumes from the last `ack` mark: records sent but not yet marked are sent again
 * (at-least-once; telemetry carries `seq` so the hub drops the duplicates). A torn last line is cut off.
 *
 * Writes are not fsync'd: a process crash loses nothing, a power cut can lose what the kernel had not yet flushed
 * (a few seconds by default), in exchange for not wearing out SD cards.
 */
import {
  closeSync,
  constants,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

/** A record and its position in the queue (what {@link DiskQueue.ack} takes). */
export interface QueueRecord<T> {
  index: number;
  data: T;
}

export interface DiskQueueOptions {
  dir: string;
  /** Upper bound of all segment files together. */
  maxBytes: number;
  /** Target segment size; defaults to maxBytes / 8 (at least 512 bytes, at most 1 MiB). */
  segmentBytes?: number;
}

/** A small JSON value stored with the mark (at most ~4000 bytes serialised). */
export type QueueMeta = Record<string, unknown>;

interface Segment {
  first: number;
  count: number;
  bytes: number;
}

/** One page: a single write of it cannot be torn by a process crash. */
const ACK_WIDTH = 4096;
const SEG_RE = /^(\d{16})\.seg$/;

function segName(first: number): string {
  return `${String(first).padStart(16, "0")}.seg`;
}

/** Parses a segment's text into records (undefined for a line that is not JSON). */
function parseLines<T>(text: string): (T | undefined)[] {
  const lines = text.split("\n");
  lines.pop(); // text ends with "\n": the last element is empty
  return lines.map((line) => {
    try {
      return JSON.parse(line) as T;
    } catch {
      return undefined;
    }
  });
}

/** The disk buffer. All methods are synchronous: one small write per reading keeps ordering trivially right. */
export class DiskQueue<T> {
  readonly dir: string;
  readonly maxBytes: number;
  readonly segmentBytes: number;
  private segments: Segment[] = [];
  private tailFd: number | undefined;
  private tailRecords: (T | undefined)[] = [];
  private cache: { first: number; records: (T | undefined)[] } | undefined;
  private ackFd: number;
  private acked = 0;
  private nextIndex = 0;
  private readIndex = 0;
  private droppedTotal = 0;
  private readonly ackedAhead = new Set<number>();
  private recoveredMeta: QueueMeta = {};
  /** The mark's page, reused: it is rewritten at every acknowledgement. */
  private readonly ackPage = Buffer.alloc(ACK_WIDTH, 0x20).fill(0x0a, ACK_WIDTH - 1);
  private metaSource: (() => QueueMeta) | undefined;

  private constructor(opts: DiskQueueOptions) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes;
    this.segmentBytes = opts.segmentBytes ?? Math.min(1 << 20, Math.max(512, Math.floor(opts.maxBytes / 8)));
    mkdirSync(this.dir, { recursive: true });
    // Not "a": positional writes to an O_APPEND descriptor would append instead of overwriting the mark.
    this.ackFd = openSync(join(this.dir, "ack"), constants.O_RDWR | constants.O_CREAT, 0o644);
  }

  /** Opens (or creates) the queue in `opts.dir`, recovering from whatever a crash left. */
  static open<T>(opts: DiskQueueOptions): DiskQueue<T> {
    const q = new DiskQueue<T>(opts);
    q.recover();
    return q;
  }

  /** Records appended and not yet acknowledged. */
  get pending(): number {
    return this.nextIndex - this.acked;
  }

  /** Records dropped because the buffer was full, since the queue was created (persisted). */
  get dropped(): number {
    return this.droppedTotal;
  }

  /** The meta value of the last mark written before this open. */
  get meta(): QueueMeta {
    return this.recoveredMeta;
  }

  /**
   * Where the mark's meta value comes from from now on: called at every mark write (acknowledgements, drops,
   * close). Until it is set, marks carry the recovered value.
   */
  setMetaSource(source: () => QueueMeta): void {
    this.metaSource = source;
  }

  /** Bytes of all segment files. */
  get bytes(): number {
    return this.segments.reduce((n, s) => n + s.bytes, 0);
  }

  /** Appends a record; drops the oldest segment(s) first if the buffer would exceed `maxBytes`. */
  append(data: T): number {
    const line = `${JSON.stringify(data)}\n`;
    const size = Buffer.byteLength(line);
    if (size > this.maxBytes)
      throw new RangeError(`record of ${size} bytes exceeds the buffer's ${this.maxBytes}`);
    let tail = this.segments.at(-1);
    if (!tail || (tail.bytes + size > this.segmentBytes && tail.count > 0)) tail = this.rotate();
    while (this.bytes + size > this.maxBytes && this.segments.length > 1) this.dropOldest();
    writeSync(this.tailFd as number, line);
    tail.count++;
    tail.bytes += size;
    this.tailRecords.push(data);
    return this.nextIndex++;
  }

  /** The next record not handed out since the last {@link rewind}, or undefined when all are out. */
  next(): QueueRecord<T> | undefined {
    if (this.readIndex < this.acked) this.readIndex = this.acked;
    while (this.readIndex < this.nextIndex) {
      const index = this.readIndex++;
      const data = this.recordAt(index);
      if (data !== undefined) return { index, data };
      this.ack(index); // a corrupt line cannot be sent: skip it for good
    }
    return undefined;
  }

  /** Marks a record as delivered. Unknown or already-acknowledged (or dropped) indexes are ignored. */
  ack(index: number): void {
    if (index < this.acked || index >= this.nextIndex) return;
    this.ackedAhead.add(index);
    const before = this.acked;
    while (this.ackedAhead.delete(this.acked)) this.acked++;
    if (this.acked !== before) {
      this.writeAck();
      this.collect();
    }
  }

  /** Calls `fn` with every unacknowledged record, oldest first, without handing them out. */
  forEachPending(fn: (data: T) => void): void {
    for (let index = this.acked; index < this.nextIndex; index++) {
      const data = this.recordAt(index);
      if (data !== undefined) fn(data);
    }
  }

  /** Hands out every unacknowledged record again from the oldest (after a lost connection). */
  rewind(): void {
    this.readIndex = this.acked;
    this.ackedAhead.clear();
  }

  /** Closes the files. The queue keeps its content for the next {@link DiskQueue.open}. */
  close(): void {
    this.writeAck();
    if (this.tailFd !== undefined) closeSync(this.tailFd);
    this.tailFd = undefined;
    closeSync(this.ackFd);
  }

  private recordAt(index: number): T | undefined {
    const seg = this.segments.find((s) => index >= s.first && index < s.first + s.count);
    if (!seg) return undefined;
    if (seg === this.segments.at(-1)) return this.tailRecords[index - seg.first];
    if (this.cache?.first !== seg.first) {
      this.cache = {
        first: seg.first,
        records: parseLines<T>(readFileSync(join(this.dir, segName(seg.first)), "utf8")),
      };
    }
    return this.cache.records[index - seg.first];
  }

  private rotate(): Segment {
    if (this.tailFd !== undefined) closeSync(this.tailFd);
    const seg: Segment = { first: this.nextIndex, count: 0, bytes: 0 };
    this.tailFd = openSync(join(this.dir, segName(seg.first)), "a");
    this.segments.push(seg);
    this.tailRecords = [];
    this.collect();
    return seg;
  }

  private dropOldest(): void {
    const seg = this.segments.shift() as Segment;
    const end = seg.first + seg.count;
    this.droppedTotal += Math.max(0, end - Math.max(this.acked, seg.first));
    this.acked = Math.max(this.acked, end);
    for (const i of this.ackedAhead) if (i < this.acked) this.ackedAhead.delete(i);
    this.writeAck();
    this.deleteSegment(seg);
  }

  /** Deletes fully acknowledged segments other than the tail. */
  private collect(): void {
    while (this.segments.length > 1) {
      const seg = this.segments[0] as Segment;
      if (seg.first + seg.count > this.acked) break;
      this.segments.shift();
      this.deleteSegment(seg);
    }
  }

  private deleteSegment(seg: Segment): void {
    rmSync(join(this.dir, segName(seg.first)), { force: true });
    if (this.cache?.first === seg.first) this.cache = undefined;
  }

  private writeAck(): void {
    const meta = this.metaSource?.() ?? this.recoveredMeta;
    const json = JSON.stringify({ acked: this.acked, dropped: this.droppedTotal, meta });
    if (Buffer.byteLength(json) >= ACK_WIDTH) {
      throw new RangeError(`queue mark of ${Buffer.byteLength(json)} bytes does not fit in ${ACK_WIDTH}`);
    }
    const page = this.ackPage;
    page.fill(0x20, page.write(json, "utf8"), ACK_WIDTH - 1); // pad with spaces; the last byte stays "\n"
    writeSync(this.ackFd, page, 0, ACK_WIDTH, 0);
  }

  private recover(): void {
    let mark: { acked: number; dropped: number; meta?: QueueMeta } = { acked: 0, dropped: 0 };
    try {
      const parsed = JSON.parse(readFileSync(join(this.dir, "ack"), "utf8")) as typeof mark;
      if (Number.isSafeInteger(parsed.acked) && Number.isSafeInteger(parsed.dropped)) mark = parsed;
      if (typeof parsed.meta === "object" && parsed.meta !== null) this.recoveredMeta = parsed.meta;
    } catch {
      // No mark yet, or a mark torn by a power cut: resend from the oldest segment (duplicates, not losses).
    }
    const names = readdirSync(this.dir)
      .map((n) => SEG_RE.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    for (const [i, first] of names.entries()) {
      const file = join(this.dir, segName(first));
      let text = readFileSync(file, "utf8");
      const cut = text.lastIndexOf("\n") + 1;
      if (cut !== text.length) {
        // A crash in the middle of an append: the torn record was never sent, cut it off.
        const fd = openSync(file, "r+");
        ftruncateSync(fd, Buffer.byteLength(text.slice(0, cut)));
        closeSync(fd);
        text = text.slice(0, cut);
      }
      const records = parseLines<T>(text);
      const prev = this.segments.at(-1);
      if (prev && prev.first + prev.count !== first) {
        // Should not happen; keep numbering consistent by trusting file names and counting the gap as dropped.
        mark.dropped += Math.max(0, first - (prev.first + prev.count));
      }
      this.segments.push({ first, count: records.length, bytes: Buffer.byteLength(text) });
      if (i === names.length - 1) this.tailRecords = records;
    }
    const last = this.segments.at(-1);
    const oldest = this.segments[0];
    this.nextIndex = last ? last.first + last.count : mark.acked;
    this.acked = Math.min(Math.max(mark.acked, oldest?.first ?? 0), this.nextIndex);
    this.readIndex = this.acked;
    this.droppedTotal = mark.dropped;
    if (last) this.tailFd = openSync(join(this.dir, segName(last.first)), "a");
    this.writeAck();
    this.collect();
  }
}
