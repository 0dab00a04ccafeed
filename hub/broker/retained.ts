/**
 * A SUBSCRIBE's retained messages, found by the filter's literal prefix. aedes's memory persistence answers each
 * SUBSCRIBE by testing every retained topic against the filter with a fresh qlobber (splitting each topic into
 * words): with a retained `status` per device and a `state/` per sensor, every device's login scanned the whole
 * fleet's — O(n) per login, O(n²) for a fleet connecting (bench fleet: 8 % of the hub's CPU at 1k devices, most of
 * it at 10k). {@link indexRetained} keeps a mirror of the retained messages and answers the same streams, in the
 * same order, testing only the topics that start with the filter's part before its first wildcard, with a matcher
 * that allocates nothing. The mirror is the only copy: the memory persistence reads its own map only in the two
 * streams replaced here, so storing there too (an async call and a copy of every packet, and the hub retains a
 * `state/` per reading) bought nothing.
 */
import { Readable } from "node:stream";
import type { Aedes } from "aedes";

interface RetainedPacket {
  topic: string;
  payload: Buffer | string;
  [field: string]: unknown;
}

interface RetainedStore {
  storeRetained(packet: RetainedPacket, cb?: (err: Error | null) => void): Promise<void> | undefined;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

/**
 * MQTT topic matching as qlobber does it for aedes: `+` is one non-empty level, `#` zero or more (a valid filter
 * has `#` only last: aedes refuses others at SUBSCRIBE).
 */
export function topicMatches(filter: string, topic: string): boolean {
  let f = 0;
  let t = 0;
  for (;;) {
    const fEnd = filter.indexOf("/", f);
    const fLevelEnd = fEnd === -1 ? filter.length : fEnd;
    if (fLevelEnd - f === 1 && filter.charCodeAt(f) === 35 /* # */) return true;
    if (t > topic.length) return false; // the topic ran out of levels
    const tEnd = topic.indexOf("/", t);
    const tLevelEnd = tEnd === -1 ? topic.length : tEnd;
    const plus = fLevelEnd - f === 1 && filter.charCodeAt(f) === 43; /* + */
    if (plus) {
      if (tLevelEnd === t) return false; // qlobber's "+" needs a non-empty level
    } else {
      if (fLevelEnd - f !== tLevelEnd - t || !topic.startsWith(filter.slice(f, fLevelEnd), t)) return false;
    }
    if (fEnd === -1) return tEnd === -1;
    f = fEnd + 1;
    // No more topic levels: only a trailing "#" can still match (zero levels).
    t = tEnd === -1 ? topic.length + 1 : tEnd + 1;
  }
}

/** The part of a filter before its first wildcard level. */
function literalPrefix(filter: string): string {
  const plus = filter.indexOf("+");
  const hash = filter.indexOf("#");
  const cut = Math.min(plus === -1 ? filter.length : plus, hash === -1 ? filter.length : hash);
  // "a/#" matches "a" too (zero levels): its prefix is "a", not "a/".
  return filter.slice(0, cut === hash && cut > 0 ? cut - 1 : cut);
}

/** A topic's first two levels (`ganglion/<device>`), the index's key. */
function groupOf(topic: string): string {
  const first = topic.indexOf("/");
  const second = first === -1 ? -1 : topic.indexOf("/", first + 1);
  return second === -1 ? topic : topic.slice(0, second);
}

/** Retained messages by topic, and by their first two levels. */
class RetainedIndex {
  readonly all = new Map<string, RetainedPacket>();
  private readonly groups = new Map<string, Map<string, RetainedPacket>>();

  set(packet: RetainedPacket): void {
    this.all.set(packet.topic, packet);
    const key = groupOf(packet.topic);
    let group = this.groups.get(key);
    if (group === undefined) {
      group = new Map();
      this.groups.set(key, group);
    }
    group.set(packet.topic, packet);
  }

  delete(topic: string): void {
    this.all.delete(topic);
    const key = groupOf(topic);
    const group = this.groups.get(key);
    if (group?.delete(topic) && group.size === 0) this.groups.delete(key);
  }

  /** The messages a filter may match: one device's when its first two levels are literal, else all. */
  candidates(filter: string): Map<string, RetainedPacket> {
    const prefix = literalPrefix(filter);
    const literal = prefix.length === filter.length;
    const first = prefix.indexOf("/");
    if (!literal && (first === -1 || prefix.indexOf("/", first + 1) === -1)) return this.all;
    return this.groups.get(groupOf(prefix)) ?? new Map();
  }
}

function* matching(index: RetainedIndex, patterns: readonly string[]) {
  for (const pattern of patterns) {
    const prefix = literalPrefix(pattern);
    for (const [topic, packet] of index.candidates(pattern)) {
      if (topic.startsWith(prefix) && topicMatches(pattern, topic)) yield packet;
    }
  }
}

const STORED: Promise<void> = Promise.resolve();

/** Makes `aedes`'s (memory) persistence answer retained streams from an indexed mirror; see the module note. */
export function indexRetained(aedes: Aedes): void {
  const persistence = (aedes as unknown as { persistence: RetainedStore }).persistence;
  const retained = new RetainedIndex();
  persistence.storeRetained = (packet) => {
    if (packet.payload.length === 0) retained.delete(packet.topic);
    else retained.set({ ...packet });
    return STORED; // aedes chains .then on it
  };
  persistence.createRetainedStream = (pattern) => Readable.from(matching(retained, [pattern]));
  persistence.createRetainedStreamCombi = (patterns) => Readable.from(matching(retained, patterns));
}
