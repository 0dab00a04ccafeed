/**
 * The main-thread handle of an emulated board that runs in its own worker thread, so the hub's event loop stays
 * responsive whatever the firmware does. Serial bytes, pin and ADC control, resets and queries cross the thread
 * boundary as messages. The worker is an esbuild bundle of worker.ts, made once per process, so it runs the same
 * under tsx, vitest or plain node.
 */
import { EventEmitter } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { PinChange, PinLevel } from "./avr-board.ts";
import { BOARD_MCU, type McuName, type McuSpec, mcuSpec, type ResetCause } from "./mcu.ts";
import type { EmulationStats, FromWorker, ToWorker, WorkerBoardConfig } from "./protocol.ts";
import { BoardSerialStream } from "./serial-stream.ts";

/** Options of {@link startEmulatedBoard}. */
export interface EmulatedBoardOptions {
  /** Microcontroller (`atmega328p`, `atmega2560`) or board kind (`uno`, `nano`, `mega`, `arduino-uno`, ...). */
  mcu: McuName | string;
  /** Application firmware: a path to an Intel HEX file, or the HEX text itself. */
  hex?: string;
  /** Bootloader (path or HEX text); the board then resets into the boot section, like a BOOTRST-fused chip. */
  bootloader?: string;
  /** Initial EEPROM contents. */
  eeprom?: Uint8Array;
  /** Also expose the board as a pseudo-terminal: `true` for a path in a fresh temp dir, or the symlink path. */
  pty?: boolean | string;
  /** Opening the pty resets the board, like a Uno's DTR auto-reset (default true). */
  resetOnOpen?: boolean;
  /** Pace to wall time (default true); false runs as fast as the host allows. */
  realtime?: boolean;
}

/** Events of an {@link EmulatedBoard}. */
export interface EmulatedBoardEvents {
  /** The firmware changed a pin's level or direction. */
  pin: [change: PinChange];
  /** The board reset; `mcusr` is MCUSR as the firmware will find it. */
  reset: [cause: ResetCause, mcusr: number];
  /** A program opened / closed the pty. */
  "pty-open": [];
  "pty-close": [];
  /** The pty can be opened (again): after a close, socat makes a fresh one, which takes a few ms. */
  "pty-ready": [];
  /** The worker failed; the board is gone. */
  error: [error: Error];
}

/** Why a board could not start or was lost. */
export class EmulatedBoardError extends Error {
  override readonly name = "EmulatedBoardError";
}

/** A running emulated board. Create with {@link startEmulatedBoard}. */
export class EmulatedBoard extends EventEmitter<EmulatedBoardEvents> {
  /** USART0 as a serial-port-like stream, open since power-on (it emits 'open'). */
  serial: BoardSerialStream;
  /** Path of the pty symlink, when one was asked for. */
  readonly ptyPath: string | undefined;
  readonly spec: McuSpec;
  private readonly pending = new Map<number, (value: unknown) => void>();
  private nextId = 1;
  private stopped = false;
  private readonly exited: Promise<void>;

  /** @internal use {@link startEmulatedBoard} */
  constructor(
    private readonly worker: Worker,
    spec: McuSpec,
    ptyPath: string | undefined,
    private readonly ptyDir: string | undefined,
  ) {
    super();
    this.spec = spec;
    this.ptyPath = ptyPath;
    this.serial = this.makeStream();
    this.exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    worker.on("message", (message: FromWorker) => this.onMessage(message));
    worker.on("error", (error) => this.fail(error));
  }

  /**
   * Opens the serial port again: a new stream, and an external reset as a Uno's DTR gives. The previous stream is
   * closed.
   */
  openSerial(): BoardSerialStream {
    this.serial.destroy();
    this.serial = this.makeStream();
    this.reset("external");
    return this.serial;
  }

  /**
   * Sets the voltage on analog input `channel` (0 = A0; also accepts "A0".."A15"), 0..5 V; `null` leaves the input
   * floating (a loose sensor wire: the ADC reads rail-to-rail garbage, see AvrBoard).
   */
  setAnalog(channel: number | `A${number}`, volts: number | null): void {
    const n = typeof channel === "string" ? Number(channel.slice(1)) : channel;
    if (!Number.isInteger(n) || n < 0 || n >= this.spec.analogChannels) {
      throw new RangeError(`analog input ${channel} does not exist on ${this.spec.name}`);
    }
    if (volts !== null && !Number.isFinite(volts)) {
      throw new RangeError(`analog voltage must be a finite number, got ${volts}`);
    }
    this.send({ type: "analog", channel: n, volts });
  }

  /**
   * Cuts or restores the board's power. Off, the chip stops (no serial, every pin reads low); on, it boots with a
   * power-on reset (RAM lost, flash and EEPROM kept), like a Uno whose USB cable was pulled and plugged back.
   */
  setPower(on: boolean): void {
    this.send({ type: "power", on });
  }

  /** Drives Arduino pin `pin` high or low from outside; `null` leaves it floating again. */
  setDigitalInput(pin: number, high: boolean | null): void {
    if (!Number.isInteger(pin) || pin < 0 || pin >= this.spec.digitalPins.length) {
      throw new RangeError(`pin ${pin} does not exist on ${this.spec.name}`);
    }
    this.send({ type: "digital", pin, high });
  }

  /** Resets the board (`external` = RESET pin, `power-on`, `brown-out`, `watchdog`). */
  reset(cause: ResetCause = "external"): void {
    this.send({ type: "reset", cause });
  }

  /** Emulation counters: cycles, instructions, sleep, lag, resets, flash writes. */
  stats(): Promise<EmulationStats> {
    return this.query("stats") as Promise<EmulationStats>;
  }

  /** A copy of the whole flash memory. */
  readFlash(): Promise<Uint8Array> {
    return this.query("flash") as Promise<Uint8Array>;
  }

  /** A copy of the EEPROM. */
  readEeprom(): Promise<Uint8Array> {
    return this.query("eeprom") as Promise<Uint8Array>;
  }

  /** The level of every Arduino pin, indexed by pin number. */
  pinLevels(): Promise<PinLevel[]> {
    return this.query("pins") as Promise<PinLevel[]>;
  }

  /** Stops the board, its pty and its worker. Safe to call twice. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.serial.destroy();
      this.worker.postMessage({ type: "stop" } satisfies ToWorker);
      const timeout = setTimeout(() => void this.worker.terminate(), 3000);
      await this.exited;
      clearTimeout(timeout);
      if (this.ptyDir) rmSync(this.ptyDir, { recursive: true, force: true });
      for (const resolve of this.pending.values()) resolve(undefined);
      this.pending.clear();
    }
    await this.exited;
  }

  private makeStream(): BoardSerialStream {
    return new BoardSerialStream((bytes) => this.send({ type: "rx", bytes }), {
      path: this.ptyPath ?? `emulated:${this.spec.name}`,
    });
  }

  private send(message: ToWorker): void {
    if (this.stopped) return;
    this.worker.postMessage(message);
  }

  private query(what: "stats" | "flash" | "eeprom" | "pins"): Promise<unknown> {
    if (this.stopped) return Promise.reject(new EmulatedBoardError("board is stopped"));
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.send({ type: "query", id, what });
    });
  }

  private onMessage(message: FromWorker): void {
    switch (message.type) {
      case "turn":
        if (message.tx) this.serial.deliver(message.tx);
        if (message.pins) for (const change of message.pins) this.emit("pin", change);
        break;
      case "reset":
        this.emit("reset", message.cause, message.mcusr);
        break;
      case "pty":
        this.emit(`pty-${message.event}`);
        break;
      case "reply": {
        const resolve = this.pending.get(message.id);
        this.pending.delete(message.id);
        resolve?.(message.value);
        break;
      }
      case "error":
        if (message.fatal) this.fail(new EmulatedBoardError(message.message));
        else if (this.listenerCount("error") > 0) this.emit("error", new EmulatedBoardError(message.message));
        break;
      default:
        break;
    }
  }

  private fail(error: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", error);
    void this.stop();
  }
}

let bundle: Promise<string> | undefined;

/** The worker's code: worker.ts and avr8js bundled to one CommonJS script (built once per process). */
function workerSource(): Promise<string> {
  bundle ??= (async () => {
    const { build } = await import("esbuild");
    const result = await build({
      entryPoints: [fileURLToPath(new URL("./worker.ts", import.meta.url))],
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node20",
      write: false,
      logLevel: "silent",
    });
    return result.outputFiles[0]!.text;
  })();
  return bundle;
}

function readHex(value: string | undefined, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (value.trimStart().startsWith(":")) return value;
  try {
    return readFileSync(value, "utf8");
  } catch (error) {
    throw new EmulatedBoardError(`cannot read ${what} ${value}: ${(error as Error).message}`);
  }
}

/**
 * Starts an emulated board in its own worker thread and resolves once it runs (and its pty, if asked for, exists).
 *
 * ```ts
 * const board = await startEmulatedBoard({ mcu: "uno", hex: "firmware/arduino/dist/ganglion-uno.hex", pty: true });
 * board.serial.on("data", (b) => ...);   // or open board.ptyPath with any serial program
 * board.setAnalog(0, 2.5);
 * board.on("pin", (c) => ...);
 * await board.stop();
 * ```
 * HEX errors (bad checksum, image too large) reject with the loader's message.
 */
export async function startEmulatedBoard(options: EmulatedBoardOptions): Promise<EmulatedBoard> {
  const mcuName = (BOARD_MCU[options.mcu] ?? options.mcu) as McuName;
  const spec = mcuSpec(mcuName);
  let ptyDir: string | undefined;
  let ptyPath: string | undefined;
  if (options.pty) {
    if (typeof options.pty === "string") ptyPath = options.pty;
    else {
      ptyDir = mkdtempSync(join(tmpdir(), "ganglion-board-"));
      ptyPath = join(ptyDir, "tty");
    }
  }
  const config: WorkerBoardConfig = {
    mcu: mcuName,
    hex: readHex(options.hex, "firmware"),
    bootloader: readHex(options.bootloader, "bootloader"),
    eeprom: options.eeprom,
    realtime: options.realtime ?? true,
    ptyPath,
    resetOnOpen: options.resetOnOpen ?? true,
  };
  const worker = new Worker(await workerSource(), { eval: true, workerData: config });
  const board = new EmulatedBoard(worker, spec, ptyPath, ptyDir);
  try {
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: FromWorker) => {
        if (message.type === "ready") done(null);
        else if (message.type === "error" && message.fatal) done(new EmulatedBoardError(message.message));
      };
      const onExit = () => done(new EmulatedBoardError("board worker exited during start-up"));
      const done = (error: Error | null) => {
        worker.off("message", onMessage);
        worker.off("exit", onExit);
        if (error) reject(error);
        else resolve();
      };
      worker.on("message", onMessage);
      worker.on("exit", onExit);
    });
  } catch (error) {
    await worker.terminate();
    if (ptyDir) rmSync(ptyDir, { recursive: true, force: true });
    throw error;
  }
  return board;
}
