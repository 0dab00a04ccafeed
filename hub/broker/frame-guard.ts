/**
 * A byte-level guard between a socket and aedes. aedes 1.2's parser (mqtt-packet) takes no size limit, so a
 * client could announce a 256 MB packet and make the broker buffer it. The guard reads only MQTT's fixed header
 * (type byte + remaining length) as bytes stream past, and destroys the connection as soon as a packet announces
 * more than `maxPacketSize` bytes, or the header is not MQTT at all. Only that connection is hurt.
 */
import { Duplex } from "node:stream";

/**
 * Event-loop turns as the guards see them: a counter that one shared `setImmediate` advances after any write, which
 * then flushes the guards that batched writes in the turn.
 */
let turn = 0;
let turnEnding = false;
const corkedThisTurn: FrameGuard[] = [];

function currentTurn(): number {
  if (!turnEnding) {
    turnEnding = true;
    setImmediate(endTurn);
  }
  return turn;
}

function endTurn(): void {
  turnEnding = false;
  turn++;
  const guards = corkedThisTurn.splice(0);
  for (const guard of guards) guard.flushBatch();
}

/** Why a guard dropped its connection; `kind` tells the broker which counter to bump. */
export class FrameError extends Error {
  constructor(
    readonly kind: "oversized" | "malformed",
    message: string,
  ) {
    super(message);
    this.name = "FrameError";
  }
}

/** The socket operations the guard needs (net.Socket and tls.TLSSocket both fit). */
export interface GuardedSocket extends Duplex {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
}

enum State {
  Header,
  Length,
  Body,
}

/**
 * Wraps a socket in a Duplex that passes bytes through unchanged, checking each packet's fixed header. Writes are
 * batched per event-loop turn; destroying either side destroys both.
 */
export class FrameGuard extends Duplex {
  readonly socket: GuardedSocket;
  /** The client's address, for logs. */
  readonly remoteAddress: string | undefined;
  private state = State.Header;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private remaining = 0;
  /** The socket is corked until the turn ends (see {@link batchWithinTurn}). */
  private corked = false;
  private lastWriteTurn = -1;

  constructor(
    socket: GuardedSocket,
    private readonly maxPacketSize: number,
  ) {
    super({ allowHalfOpen: false });
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress;
    socket.on("data", (chunk: Buffer) => {
      const err = this.scan(chunk);
      if (err) {
        this.destroy(err);
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => {
      if (!this.destroyed) this.destroy();
    });
  }

  /** Walks the fixed headers in `chunk`; returns an error when a packet is too big or not MQTT. */
  private scan(chunk: Buffer): FrameError | null {
    let i = 0;
    while (i < chunk.length) {
      switch (this.state) {
        case State.Header: {
          const type = (chunk[i] ?? 0) >> 4;
          // Type 0 is reserved in MQTT 3.1.1 and 5; 15 is AUTH, which only MQTT 5 has (aedes speaks 3.1.1).
          if (type === 0 || type === 15)
            return new FrameError("malformed", `not an MQTT packet (type ${type})`);
          i++;
          this.state = State.Length;
          this.length = 0;
          this.multiplier = 1;
          this.lengthBytes = 0;
          break;
        }
        case State.Length: {
          const byte = chunk[i] ?? 0;
          i++;
          this.length += (byte & 0x7f) * this.multiplier;
          this.multiplier *= 128;
          this.lengthBytes++;
          if (byte & 0x80) {
            if (this.lengthBytes >= 4)
              return new FrameError("malformed", "remaining length longer than 4 bytes");
            break;
          }
          const total = 1 + this.lengthBytes + this.length;
          if (total > this.maxPacketSize) {
            return new FrameError(
              "oversized",
              `packet of ${total} bytes exceeds the ${this.maxPacketSize}-byte limit`,
            );
          }
          this.remaining = this.length;
          this.state = this.remaining === 0 ? State.Header : State.Body;
          break;
        }
        case State.Body: {
          const take = Math.min(this.remaining, chunk.length - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.Header;
          break;
        }
      }
    }
    return null;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) {
      callback(new Error("socket closed"));
      return;
    }
    this.batchWithinTurn();
    if (this.socket.write(chunk)) callback();
    else this.socket.once("drain", () => callback());
  }

  /** A corked batch (mqtt-packet corks for each packet it writes in pieces) goes out as one writev. */
  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    if (this.socket.destroyed) {
      callback(new Error("socket closed"));
      return;
    }
    this.batchWithinTurn();
    const own = !this.corked;
    if (own) this.socket.cork();
    let ok = true;
    for (const { chunk } of chunks) ok = this.socket.write(chunk);
    if (own) this.socket.uncork();
    if (ok) callback();
    else this.socket.once("drain", () => callback());
  }

  /**
   * The first write to a client in an event-loop turn goes straight out (a device's PUBACK is not delayed); a second
   * one in the same turn corks the socket until the turn's I/O is handled, so a subscriber receiving many devices'
   * readings gets them in one writev instead of one write syscall each — on loopback each syscall also runs the
   * receiver's TCP path. Backpressure still holds: a corked socket counts what it buffers against its high-water mark.
   */
  private batchWithinTurn(): void {
    const turn = currentTurn();
    if (this.lastWriteTurn === turn && !this.corked) {
      this.corked = true;
      this.socket.cork();
      corkedThisTurn.push(this);
    }
    this.lastWriteTurn = turn;
  }

  /** Sends what the turn batched. */
  flushBatch(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // What was batched goes first: aedes writes a refusing CONNACK and closes the connection in the same turn.
    this.flushBatch();
    this.socket.destroy();
    callback(err);
  }
}
