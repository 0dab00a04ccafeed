/**
 * A small typed facade over firmata-io (which ships no typings), plus what Ganglion's firmware adds to Firmata:
 * the heartbeat sysex (0x0A, firmware/arduino/PROTOCOL.md) and a frame scanner that counts bytes no Firmata frame
 * accounts for. The stream is always passed in: firmata-io never opens a port itself here.
 */
import { createRequire } from "node:module";
import type { Duplex } from "node:stream";

/** One pin as firmata-io describes it after the capability query. */
export interface FirmataPin {
  supportedModes: number[];
  mode?: number;
  value: number;
  state?: number;
  /** 127 when the pin has no analog channel. */
  analogChannel: number;
}

/** The part of firmata-io's `Firmata` class the hub uses. */
export interface FirmataIo {
  MODES: { INPUT: number; OUTPUT: number; ANALOG: number; PWM: number; SERVO: number; PULLUP: number };
  pins: FirmataPin[];
  /** Digital pin numbers of the analog channels, by channel. */
  analogPins: number[];
  firmware: { name?: string; version?: { major: number; minor: number } };
  isReady: boolean;
  /** REPORT_VERSION arrived: the rest of the handshake (firmware, capabilities, analog map) follows from it. */
  versionReceived: boolean;
  /** firmata-io's own "no version yet, ask again" timer (a Node timer; cleared on close). */
  reportVersionTimeoutId?: ReturnType<typeof setTimeout>;
  on(event: string, listener: (...args: never[]) => void): FirmataIo;
  removeAllListeners(event?: string): FirmataIo;
  pinMode(pin: number, mode: number): void;
  digitalWrite(pin: number, value: number): void;
  pwmWrite(pin: number, value: number): void;
  servoConfig(pin: number, min: number, max: number): void;
  servoWrite(pin: number, value: number): void;
  reportAnalogPin(channel: number, value: 0 | 1): void;
  reportDigitalPin(pin: number, value: 0 | 1): void;
  queryPinState(pin: number, callback: () => void): void;
  reportVersion(callback: () => void): void;
  queryFirmware(callback: () => void): void;
  setSamplingInterval(ms: number): void;
  sysexCommand(message: number[]): void;
}

type FirmataConstructor = (new (
  transport: Duplex,
  options: Record<string, unknown>,
) => FirmataIo) & { SYSEX_RESPONSE: Record<number, (board: FirmataIo & { buffer: number[] }) => void> };

const require = createRequire(import.meta.url);
const Firmata = (require("firmata-io") as { Firmata: FirmataConstructor }).Firmata;

/** Ganglion's heartbeat sysex command (PROTOCOL.md, extension 1). */
export const GANGLION_HEARTBEAT = 0x0a;
/** The event a {@link FirmataIo} emits with each heartbeat's payload (the bytes between 0x0A and END_SYSEX). */
export const HEARTBEAT_EVENT = "ganglion-heartbeat";

// firmata-io keeps sysex handlers in one table shared by every instance; ours re-emits on the instance that
// received the frame, so each board actor listens to its own.
Firmata.SYSEX_RESPONSE[GANGLION_HEARTBEAT] ??= (board) => {
  (board as unknown as { emit(e: string, d: number[]): void }).emit(
    HEARTBEAT_EVENT,
    board.buffer.slice(2, -1),
  );
};

/**
 * Starts Firmata over `stream`. The instance adds listeners to the stream; {@link closeFirmata} removes them, so a
 * restarted board actor can start a fresh instance over the same open port.
 */
export function openFirmata(stream: Duplex, options: { reportVersionTimeoutMs: number }): FirmataIo {
  const before = new Map(
    ["data", "open", "close", "error"].map((e) => [e, new Set(stream.listeners(e))] as const),
  );
  const io = new Firmata(stream, { reportVersionTimeout: options.reportVersionTimeoutMs });
  added.set(
    io,
    [...before].flatMap(([event, had]) =>
      stream
        .listeners(event)
        .filter((l) => !had.has(l))
        .map((listener) => ({ event, listener: listener as (...args: unknown[]) => void })),
    ),
  );
  streams.set(io, stream);
  return io;
}

const added = new WeakMap<FirmataIo, { event: string; listener: (...args: unknown[]) => void }[]>();
const streams = new WeakMap<FirmataIo, Duplex>();

/** Detaches a Firmata instance from its stream (the stream stays open: the link owns it). */
export function closeFirmata(io: FirmataIo): void {
  const stream = streams.get(io);
  for (const { event, listener } of added.get(io) ?? []) stream?.removeListener(event, listener);
  if (io.reportVersionTimeoutId !== undefined) clearTimeout(io.reportVersionTimeoutId);
  io.removeAllListeners();
}

/** A decoded GANGLION_HEARTBEAT (PROTOCOL.md). */
export interface Heartbeat {
  version: number;
  /** Reset cause code: 0 unknown, 1 power-on, 2 external, 3 brown-out, 4 watchdog, 5 JTAG. */
  cause: number;
  flags: number;
  source: number;
  uptimeMs: number;
  seq: number;
  /** The board's heartbeat period; 0 = periodic heartbeats off. */
  intervalMs: number;
}

/** Reset causes by heartbeat code, as events spell them. */
export const RESET_CAUSES = ["unknown", "power-on", "external", "brown-out", "watchdog", "jtag"] as const;

/** Decodes a heartbeat payload; `null` for a frame of another length or format version (PROTOCOL.md: ignore it). */
export function parseHeartbeat(data: readonly number[]): Heartbeat | null {
  if (data.length !== 13 || data[0] !== 1) return null;
  const b = (i: number) => (data[i] as number) & 0x7f;
  let uptime = 0;
  for (let i = 8; i >= 4; i--) uptime = uptime * 128 + b(i);
  return {
    version: b(0),
    cause: b(1),
    flags: b(2),
    source: b(3),
    uptimeMs: uptime,
    seq: b(9) | (b(10) << 7),
    intervalMs: b(11) | (b(12) << 7),
  };
}

/** The frame `F0 0A <lsb> <msb> F7`: set the heartbeat period (and send one heartbeat now). */
export function heartbeatIntervalCommand(ms: number): number[] {
  return [GANGLION_HEARTBEAT, ms & 0x7f, (ms >> 7) & 0x7f];
}

/**
 * Counts bytes on the wire that belong to no Firmata frame (line noise, a half-sent frame, a board printing text).
 * It follows frame boundaries the way the firmware sends them: fixed-length MIDI-style messages and sysex.
 */
export class FrameScanner {
  /** Bytes that belonged to no frame. */
  garbage = 0;
  /** Complete frames seen. */
  frames = 0;
  private expect = 0;
  private inSysex = false;

  scan(chunk: Uint8Array): void {
    for (const byte of chunk) {
      if (this.inSysex) {
        if (byte === 0xf7) {
          this.inSysex = false;
          this.frames++;
        } else if (byte >= 0x80) {
          this.garbage++; // a command byte inside sysex: the sysex was cut short
          this.inSysex = false;
          this.start(byte);
        }
        continue;
      }
      if (byte >= 0x80) {
        if (this.expect > 0) this.garbage++; // the previous frame was cut short
        this.start(byte);
        continue;
      }
      if (this.expect > 0) {
        this.expect--;
        if (this.expect === 0) this.frames++;
      } else this.garbage++;
    }
  }

  private start(byte: number): void {
    this.expect = 0;
    const high = byte & 0xf0;
    if (byte === 0xf0) this.inSysex = true;
    else if (high === 0x90 || high === 0xe0 || byte === 0xf9 || byte === 0xf4 || byte === 0xf5)
      this.expect = 2;
    else if (high === 0xc0 || high === 0xd0) this.expect = 1;
    else if (byte === 0xff) this.frames++;
    else this.garbage++;
  }
}
