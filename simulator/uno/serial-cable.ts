/**
 * The USB cable between the hub and an emulated board, as the hub's serial link sees it: a Duplex shaped like a
 * serialport stream (`path`, `isOpen`, `close()`) in front of the board's USART stream. It is where the wire's
 * faults happen: line noise (`garbage`), a congested link (`slow`) and a pulled plug (`unplug`).
 */
import { Duplex } from "node:stream";

/** How a slow link delivers: what the board sends waits and arrives in bursts; what the hub sends is late. */
export interface SlowLink {
  /** The board's bytes are held and delivered together every this many ms. */
  burstMs: number;
  /** Delay of the hub's writes to the board (ms). */
  latencyMs: number;
}

/** Line noise: random bytes that belong to no frame, in bursts. */
export interface LineNoise {
  /** A random source (seeded by the caller, so a run repeats). */
  random: () => number;
  /** Wall time between bursts (ms). */
  everyMs: number;
}

/** A serial port onto an emulated board's stream. */
export class SerialCable extends Duplex {
  isOpen = true;
  readonly baudRate: number;
  /** Bytes of noise put on the wire so far. */
  garbageBytes = 0;
  private slow: SlowLink | null = null;
  private held: Buffer[] = [];
  private burstTimer: NodeJS.Timeout | undefined;
  private noiseTimer: NodeJS.Timeout | undefined;
  private readonly writes = new Set<NodeJS.Timeout>();

  constructor(
    private readonly board: Duplex,
    readonly path: string,
    baudRate = 57600,
  ) {
    super({ allowHalfOpen: false });
    this.baudRate = baudRate;
    board.on("data", (chunk: Buffer) => {
      if (this.destroyed) return; // the hub closed the port; the board keeps talking to nobody
      if (this.slow === null) this.push(chunk);
      else this.held.push(chunk);
    });
    // The board's side went away (the board was stopped): the port is gone.
    board.once("close", () => this.destroy());
  }

  /** Puts a congested link on the wire (or takes it off with `null`; anything held is delivered at once). */
  setSlow(slow: SlowLink | null): void {
    clearInterval(this.burstTimer);
    this.burstTimer = undefined;
    this.slow = slow;
    if (slow === null) this.flushHeld();
    else {
      this.burstTimer = setInterval(() => this.flushHeld(), slow.burstMs);
      this.burstTimer.unref();
    }
  }

  /** Starts (or with `null` stops) line noise towards the hub. */
  setLineNoise(noise: LineNoise | null): void {
    clearInterval(this.noiseTimer);
    this.noiseTimer = undefined;
    if (noise === null) return;
    this.noiseTimer = setInterval(() => {
      const length = 3 + Math.floor(noise.random() * 10);
      const burst = Buffer.alloc(length);
      for (let i = 0; i < length; i++) burst[i] = Math.floor(noise.random() * 256);
      this.garbageBytes += length;
      if (this.slow === null) this.push(burst);
      else this.held.push(burst);
    }, noise.everyMs);
    this.noiseTimer.unref();
  }

  /** The plug is pulled: the port closes under the hub (serialport reports a close). */
  unplug(): void {
    this.destroy();
  }

  private flushHeld(): void {
    if (this.held.length === 0 || this.destroyed) return;
    const chunk = Buffer.concat(this.held);
    this.held = [];
    this.push(chunk);
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.board.destroyed) {
      callback(new Error("serial port closed"));
      return;
    }
    if (this.slow === null) {
      this.board.write(chunk, callback);
      return;
    }
    // A constant delay keeps the order of writes.
    const timer = setTimeout(() => {
      this.writes.delete(timer);
      if (!this.board.destroyed) this.board.write(chunk);
    }, this.slow.latencyMs);
    this.writes.add(timer);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.isOpen = false;
    clearInterval(this.burstTimer);
    clearInterval(this.noiseTimer);
    for (const t of this.writes) clearTimeout(t);
    this.writes.clear();
    callback(error);
  }

  /** Closes the port, like serialport's `close()`. */
  close(callback?: (error?: Error | null) => void): void {
    this.destroy();
    if (callback) process.nextTick(callback, null);
  }
}
