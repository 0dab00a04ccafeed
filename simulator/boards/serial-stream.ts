/**
 * The board's USART0 as a Node Duplex stream, shaped like a `serialport` stream so the hub (firmata-io,
 * johnny-five) can use it where it would use a real port: it emits 'open' (johnny-five waits for it), has `isOpen`,
 * `path`, `baudRate`, and `close()`; a listener added after the port opened still gets 'open' once. What you write goes to the firmware's receiver (paced at its baud rate by the
 * board); what the firmware transmits is emitted as 'data'.
 */
import { Duplex } from "node:stream";

/** A serial-port-like Duplex in front of an emulated board. */
export class BoardSerialStream extends Duplex {
  isOpen = false;
  readonly path: string;
  readonly baudRate: number;

  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    options: { path?: string; baudRate?: number } = {},
  ) {
    super({ allowHalfOpen: false });
    this.path = options.path ?? "emulated";
    this.baudRate = options.baudRate ?? 57600;
    process.nextTick(() => {
      if (this.destroyed) return;
      this.isOpen = true;
      this.emit("open");
    });
    // A board's stream is often handed to a client (firmata-io) after it opened: a late 'open' listener is still
    // called once, so the client does not wait forever for an event that already happened.
    this.on("newListener", (event: string | symbol, listener: (...args: unknown[]) => void) => {
      if (event === "open" && this.isOpen) {
        process.nextTick(() => {
          if (this.isOpen) listener.call(this);
        });
      }
    });
  }

  /** Bytes the firmware transmitted. */
  deliver(bytes: Uint8Array): void {
    if (this.isOpen && !this.destroyed) this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.isOpen) {
      callback(new Error("serial port is not open"));
      return;
    }
    this.sink(new Uint8Array(chunk));
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Duplex emits 'close' itself once destroyed.
    this.isOpen = false;
    callback(error);
  }

  /** Closes the port, like serialport's `close()`. */
  close(callback?: (error?: Error | null) => void): void {
    this.destroy();
    if (callback) process.nextTick(callback, null);
  }
}
