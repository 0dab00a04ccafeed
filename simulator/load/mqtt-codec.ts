/**
 * The few MQTT 3.1.1 packets a load device needs, encoded and decoded by hand. A device keeps one
 * {@link PacketReader} and writes pre-sized buffers: no per-client parser object graph, no packet objects on the
 * hot path, which is what lets one process hold 10k connections (mqtt.js allocates tens of KB per client).
 */

/** Control packet types (MQTT 3.1.1 §2.2.1). */
export const CONNECT = 1;
export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const SUBSCRIBE = 8;
export const SUBACK = 9;
export const PINGREQ = 12;
export const PINGRESP = 13;
export const DISCONNECT = 14;

/** CONNACK return codes (MQTT 3.1.1 §3.2.2.3), for messages. */
export const CONNACK_REASONS: Readonly<Record<number, string>> = {
  1: "unacceptable protocol version",
  2: "identifier rejected",
  3: "server unavailable",
  4: "bad user name or password",
  5: "not authorized",
};

function lengthBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

function writeLength(buf: Buffer, at: number, n: number): number {
  let o = at;
  let x = n;
  do {
    let byte = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) byte |= 0x80;
    buf[o++] = byte;
  } while (x > 0);
  return o;
}

function frame(header: number, bodyLength: number): { buf: Buffer; at: number } {
  const buf = Buffer.allocUnsafe(1 + lengthBytes(bodyLength) + bodyLength);
  buf[0] = header;
  return { buf, at: writeLength(buf, 1, bodyLength) };
}

function writeString(buf: Buffer, at: number, s: Buffer): number {
  buf.writeUInt16BE(s.length, at);
  s.copy(buf, at + 2);
  return at + 2 + s.length;
}

/** What a CONNECT carries. */
export interface ConnectFields {
  clientId: string;
  username?: string;
  password?: string;
  keepaliveS: number;
  clean: boolean;
  will?: { topic: string; payload: string; qos: 0 | 1; retain: boolean };
}

/** Encodes a CONNECT (protocol level 4). */
export function encodeConnect(c: ConnectFields): Buffer {
  const id = Buffer.from(c.clientId);
  const user = c.username === undefined ? undefined : Buffer.from(c.username);
  const pass = c.password === undefined ? undefined : Buffer.from(c.password);
  const willTopic = c.will ? Buffer.from(c.will.topic) : undefined;
  const willPayload = c.will ? Buffer.from(c.will.payload) : undefined;
  let flags = c.clean ? 0x02 : 0;
  let length = 10 + 2 + id.length;
  if (c.will && willTopic && willPayload) {
    flags |= 0x04 | (c.will.qos << 3) | (c.will.retain ? 0x20 : 0);
    length += 4 + willTopic.length + willPayload.length;
  }
  if (user) {
    flags |= 0x80;
    length += 2 + user.length;
  }
  if (pass) {
    flags |= 0x40;
    length += 2 + pass.length;
  }
  const { buf, at } = frame(CONNECT << 4, length);
  let o = writeString(buf, at, Buffer.from("MQTT"));
  buf[o++] = 4;
  buf[o++] = flags;
  buf.writeUInt16BE(c.keepaliveS, o);
  o = writeString(buf, o + 2, id);
  if (willTopic && willPayload) o = writeString(buf, writeString(buf, o, willTopic), willPayload);
  if (user) o = writeString(buf, o, user);
  if (pass) writeString(buf, o, pass);
  return buf;
}

/** Encodes a PUBLISH; `messageId` is required for QoS 1. */
export function encodePublish(
  topic: string,
  payload: string | Buffer,
  qos: 0 | 1,
  retain: boolean,
  messageId = 0,
  dup = false,
): Buffer {
  const t = Buffer.from(topic);
  const p = typeof payload === "string" ? Buffer.from(payload) : payload;
  const header = (PUBLISH << 4) | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0);
  const { buf, at } = frame(header, 2 + t.length + (qos > 0 ? 2 : 0) + p.length);
  let o = writeString(buf, at, t);
  if (qos > 0) {
    buf.writeUInt16BE(messageId, o);
    o += 2;
  }
  p.copy(buf, o);
  return buf;
}

/** Encodes a PUBACK. */
export function encodePuback(messageId: number): Buffer {
  return Buffer.from([PUBACK << 4, 2, messageId >> 8, messageId & 0xff]);
}

/** Encodes a SUBSCRIBE of one filter. */
export function encodeSubscribe(messageId: number, filter: string, qos: 0 | 1): Buffer {
  const f = Buffer.from(filter);
  const { buf, at } = frame((SUBSCRIBE << 4) | 0x02, 2 + 2 + f.length + 1);
  buf.writeUInt16BE(messageId, at);
  const o = writeString(buf, at + 2, f);
  buf[o] = qos;
  return buf;
}

/** PINGREQ and DISCONNECT are constant. */
export const PINGREQ_PACKET = Buffer.from([PINGREQ << 4, 0]);
export const DISCONNECT_PACKET = Buffer.from([DISCONNECT << 4, 0]);

/** A decoded PUBLISH. */
export interface PublishPacket {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  messageId: number;
}

/** Receives whole packets: `type` (high nibble), `flags` (low nibble) and the body (variable header + payload). */
export type PacketHandler = (type: number, flags: number, body: Buffer) => void;

/** A packet announced more bytes than the reader accepts, or a malformed length. */
export class PacketError extends Error {
  override readonly name = "PacketError";
}

/**
 * Splits a byte stream into packets. Holds at most one partial packet between chunks; whole packets inside a chunk
 * are handed out as views of it, without copying.
 */
export class PacketReader {
  private pending: Buffer | null = null;

  constructor(
    private readonly onPacket: PacketHandler,
    private readonly maxPacket = 256 * 1024,
  ) {}

  /** Feeds bytes; throws {@link PacketError} on a malformed or oversized packet. */
  push(chunk: Buffer): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    let o = 0;
    while (o < buf.length) {
      if (buf.length - o < 2) break;
      let length = 0;
      let multiplier = 1;
      let i = o + 1;
      let complete = false;
      for (let n = 0; n < 4 && i < buf.length; n++) {
        const byte = buf[i++] as number;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
        if (n === 3) throw new PacketError("malformed remaining length");
      }
      if (!complete) break;
      if (length > this.maxPacket) throw new PacketError(`packet of ${length} bytes is too large`);
      if (buf.length - i < length) break;
      const first = buf[o] as number;
      this.onPacket(first >> 4, first & 0x0f, buf.subarray(i, i + length));
      o = i + length;
    }
    if (o < buf.length) {
      buf = buf.subarray(o);
      // Copy the tail so the chunk it came from can be collected.
      this.pending = Buffer.from(buf);
    }
  }
}

/** Decodes a PUBLISH body given its fixed-header flags. */
export function decodePublish(flags: number, body: Buffer): PublishPacket {
  const qos = (flags >> 1) & 0x03;
  const topicLength = body.readUInt16BE(0);
  const topic = body.toString("utf8", 2, 2 + topicLength);
  let o = 2 + topicLength;
  let messageId = 0;
  if (qos > 0) {
    messageId = body.readUInt16BE(o);
    o += 2;
  }
  return { topic, payload: body.subarray(o), qos, retain: (flags & 1) === 1, messageId };
}
