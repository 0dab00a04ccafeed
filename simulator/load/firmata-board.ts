/**
 * A protocol-level Arduino Uno running Ganglion's Firmata (firmware/arduino/PROTOCOL.md), in TypeScript: no AVR
 * emulation, just the bytes the firmware puts on the wire. The hub opens it through its `SerialOpener` like any
 * port ({@link FirmataBoard.open}), so the hub's link, board and sensor actors run unchanged — the in-process load
 * mode puts thousands of them behind one hub without sockets or ptys.
 *
 * What it answers, as the firmware does: the version and firmware name on open (and on request), the capability
 * and analog-mapping queries, pin modes, analog/digital reporting at the sampling interval the hub sets, digital
 * writes and pin-state queries (the hub's command confirmation), and the heartbeat sysex (0x0A) at the period the
 * hub asks for. Analog pins A0..A5 read an LM35 at a temperature that drifts per board (deterministic).
 *
 * Physical faults, as simulator/faults.ts injects them on the emulated Uno: {@link FirmataBoard.unplug} pulls the
 * USB cable (the port closes, and opening it fails until {@link FirmataBoard.plug}); {@link FirmataBoard.setAnalogFault}
 * freezes the LM35's voltage (`stuck`) or adds ±100 ADC counts (±49 °C, about 30 % of its range) of jitter (`noise`).
 */
import { Duplex } from "node:stream";
import { type BoardClock, PeriodicTask, sharedBoardClock, type Ticking } from "./board-clock.ts";

const REPORT_VERSION = 0xf9;
const SYSEX_START = 0xf0;
const SYSEX_END = 0xf7;
const SET_PIN_MODE = 0xf4;
const SET_DIGITAL_PIN_VALUE = 0xf5;
const DIGITAL_MESSAGE = 0x90;
const ANALOG_MESSAGE = 0xe0;
const REPORT_ANALOG = 0xc0;
const REPORT_DIGITAL = 0xd0;
const SYSTEM_RESET = 0xff;
const QUERY_FIRMWARE = 0x79;
const CAPABILITY_QUERY = 0x6b;
const CAPABILITY_RESPONSE = 0x6c;
const ANALOG_MAPPING_QUERY = 0x69;
const ANALOG_MAPPING_RESPONSE = 0x6a;
const PIN_STATE_QUERY = 0x6d;
const PIN_STATE_RESPONSE = 0x6e;
const SAMPLING_INTERVAL = 0x7a;
const GANGLION_HEARTBEAT = 0x0a;

const MODE = { INPUT: 0, OUTPUT: 1, ANALOG: 2, PWM: 3, SERVO: 4, PULLUP: 11 } as const;
const PIN_COUNT = 20;
const FIRST_ANALOG_PIN = 14;
const PWM_PINS = new Set([3, 5, 6, 9, 10, 11]);

/** The firmware name firmware/arduino reports (the hub turns on heartbeat supervision for "ganglion"). */
export const FIRMWARE_NAME = "ganglion.ino";

function capabilityFrame(): number[] {
  const out = [SYSEX_START, CAPABILITY_RESPONSE];
  for (let pin = 0; pin < PIN_COUNT; pin++) {
    if (pin >= 2) {
      out.push(MODE.INPUT, 1, MODE.OUTPUT, 1, MODE.PULLUP, 1);
      if (PWM_PINS.has(pin)) out.push(MODE.PWM, 8);
      if (pin < FIRST_ANALOG_PIN) out.push(MODE.SERVO, 14);
      else out.push(MODE.ANALOG, 10);
    }
    out.push(0x7f);
  }
  out.push(SYSEX_END);
  return out;
}

function analogMappingFrame(): number[] {
  const out = [SYSEX_START, ANALOG_MAPPING_RESPONSE];
  for (let pin = 0; pin < PIN_COUNT; pin++) out.push(pin >= FIRST_ANALOG_PIN ? pin - FIRST_ANALOG_PIN : 0x7f);
  out.push(SYSEX_END);
  return out;
}

function firmwareFrame(): number[] {
  const out = [SYSEX_START, QUERY_FIRMWARE, 2, 5];
  for (const byte of Buffer.from(FIRMWARE_NAME)) out.push(byte & 0x7f, byte >> 7);
  out.push(SYSEX_END);
  return out;
}

// The same for every board: built once.
const CAPABILITIES = Buffer.from(capabilityFrame());
const ANALOG_MAPPING = Buffer.from(analogMappingFrame());
const FIRMWARE = Buffer.from(firmwareFrame());
const VERSION = Buffer.from([REPORT_VERSION, 2, 5]);

/** Counters of a fleet of models, shared (plain numbers, bumped on the hot path). */
export interface FirmataCounters {
  /** Boards whose port is open. */
  open: number;
  /** Boards the hub has configured (pin modes set after the handshake). */
  configured: number;
  /** Analog reports sent. */
  analogReports: number;
  heartbeats: number;
  /** Digital writes the hub made (commands). */
  writes: number;
}

/** An analog fault of a load board: the voltage frozen, or jitter on it. */
export type AnalogFault = "stuck" | "noise";

/** ±this many ADC counts of noise: ±49 °C on an LM35, about 30 % of a -40..125 °C range (as faults.ts's noise). */
const NOISE_COUNTS = 100;
const FAULT_NONE = 0;
const FAULT_STUCK = 1;
const FAULT_NOISE = 2;

/** No bytes of a split frame pending (shared, so an idle board holds no array of its own). */
const NO_BYTES: readonly number[] = [];

/** A fresh set of counters. */
export function newFirmataCounters(): FirmataCounters {
  return { open: 0, configured: 0, analogReports: 0, heartbeats: 0, writes: 0 };
}

/**
 * The hub's end of a board's serial port. A subclass rather than `new Duplex({ read, write, destroy })`: under tsx
 * (esbuild keepNames) each of those per-port closures would carry its own property dictionary.
 */
class BoardPort extends Duplex {
  constructor(private readonly board: FirmataBoard) {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.board.receive(chunk);
    done();
  }
  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.board.portDestroyed(this);
    done(err);
  }
}

/** One board model. Its sampling and heartbeats run on a {@link BoardClock} shared with the other boards. */
export class FirmataBoard implements Ticking {
  private port: Duplex | null = null;
  /** Pin modes (`[0, PIN_COUNT)`) and levels (`[PIN_COUNT, 2 × PIN_COUNT)`): one typed array, not two. */
  private readonly pins = new Uint16Array(2 * PIN_COUNT);
  private analogReporting = 0; // bit per channel
  private samplingMs = 19;
  private readonly sampler = new PeriodicTask(this);
  private heartbeatMs = 0;
  private readonly heart = new PeriodicTask(this);
  private beatSeq = 0;
  private bootedAt = Date.now();
  private samples = 0;
  private configured = false;
  /** Bytes of a frame split across writes. */
  private partial: readonly number[] = NO_BYTES;
  /** The cable is pulled: {@link open} fails until {@link plug}. */
  private unplugged = false;
  private analogFault = FAULT_NONE;
  /** The ADC counts of the last sample (what `stuck` freezes). */
  private lastCounts = 0;

  constructor(
    readonly id: string,
    /** Phase of this board's temperature drift. */
    private readonly index: number,
    private readonly counters: FirmataCounters,
    private readonly clock: BoardClock = sharedBoardClock,
  ) {
    for (let pin = FIRST_ANALOG_PIN; pin < PIN_COUNT; pin++) this.pins[pin] = MODE.ANALOG;
  }

  /**
   * Opens the board's serial port: a fresh stream, as if the USB cable were plugged in; the board resets on open
   * (as an Uno's DTR does) and announces its version and firmware.
   */
  open(): Duplex {
    if (this.unplugged) throw new Error(`${this.id}'s USB cable is pulled (simulated unplug): no such port`);
    this.close();
    this.reset();
    const port = new BoardPort(this);
    this.port = port;
    this.counters.open++;
    queueMicrotask(() => {
      this.send(VERSION);
      this.send(FIRMWARE);
    });
    return port;
  }

  /** The board's temperature, °C, at sample `n` (a drift each board follows at its own phase). */
  temperature(n: number): number {
    return 21 + 4 * Math.sin(n / 20 + this.index) + ((n * 7919) % 100) / 100;
  }

  private reset(): void {
    this.stopTimers();
    this.pins.fill(0);
    for (let pin = FIRST_ANALOG_PIN; pin < PIN_COUNT; pin++) this.pins[pin] = MODE.ANALOG;
    this.analogReporting = 0;
    this.samplingMs = 19;
    this.heartbeatMs = 0;
    this.beatSeq = 0;
    this.bootedAt = Date.now();
    this.partial = NO_BYTES;
    if (this.configured) this.counters.configured--;
    this.configured = false;
  }

  /** Pulls the USB cable: the port closes, the board loses power, and the port is gone until {@link plug}. */
  unplug(): void {
    this.unplugged = true;
    this.close();
  }

  /** Plugs the cable back in: the next open (the hub's link retrying) succeeds and the board boots. */
  plug(): void {
    this.unplugged = false;
  }

  get isUnplugged(): boolean {
    return this.unplugged;
  }

  /** Freezes (`stuck`) or jitters (`noise`) the voltage on the analog pins, or clears it (`null`). */
  setAnalogFault(fault: AnalogFault | null): void {
    this.analogFault = fault === "stuck" ? FAULT_STUCK : fault === "noise" ? FAULT_NOISE : FAULT_NONE;
  }

  get currentAnalogFault(): AnalogFault | null {
    return this.analogFault === FAULT_STUCK ? "stuck" : this.analogFault === FAULT_NOISE ? "noise" : null;
  }

  /** Pulls the cable: the port closes and the board stops. */
  close(): void {
    const port = this.port;
    if (port === null) return;
    this.port = null;
    this.counters.open--;
    this.stopTimers();
    if (this.configured) this.counters.configured--;
    this.configured = false;
    if (!port.destroyed) port.destroy();
  }

  private stopTimers(): void {
    this.clock.stop(this.sampler);
    this.clock.stop(this.heart);
  }

  /** Called by the clock when sampling or the heartbeat is due. */
  tick(task: PeriodicTask): void {
    if (task === this.sampler) this.sample();
    else this.beat();
  }

  private send(bytes: Buffer | number[]): void {
    const port = this.port;
    if (port === null || port.destroyed) return;
    port.push(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  /** The hub destroyed the port: the cable is pulled from the hub's side. */
  portDestroyed(port: Duplex): void {
    if (this.port === port) this.close();
  }

  /** Bytes from the hub. */
  receive(chunk: Buffer): void {
    const bytes = this.partial.length > 0 ? [...this.partial, ...chunk] : chunk;
    this.partial = NO_BYTES;
    let i = 0;
    while (i < bytes.length) {
      const b = bytes[i] as number;
      if (b === SYSEX_START) {
        let end = i + 1;
        while (end < bytes.length && bytes[end] !== SYSEX_END) end++;
        if (end >= bytes.length) break;
        this.sysex(Array.prototype.slice.call(bytes, i + 1, end) as number[]);
        i = end + 1;
        continue;
      }
      const size =
        b === REPORT_VERSION || b === SYSTEM_RESET ? 1 : b >= 0xc0 && b < 0xe0 ? 2 : b >= 0x80 ? 3 : 1;
      if (i + size > bytes.length) break;
      this.midi(b, (bytes[i + 1] ?? 0) as number, (bytes[i + 2] ?? 0) as number);
      i += size;
    }
    if (i < bytes.length) this.partial = Array.prototype.slice.call(bytes, i) as number[];
  }

  private midi(cmd: number, a: number, b: number): void {
    if (cmd === REPORT_VERSION) this.send(VERSION);
    else if (cmd === SYSTEM_RESET) this.reset();
    else if (cmd === SET_PIN_MODE) {
      if (a < PIN_COUNT) this.pins[a] = b;
      this.markConfigured();
    } else if (cmd === SET_DIGITAL_PIN_VALUE) this.write(a, b);
    else if ((cmd & 0xf0) === DIGITAL_MESSAGE) {
      const port = cmd & 0x0f;
      const mask = a | (b << 7);
      for (let bit = 0; bit < 8; bit++) {
        const pin = port * 8 + bit;
        if (pin < PIN_COUNT && this.pins[pin] === MODE.OUTPUT) this.write(pin, (mask >> bit) & 1);
      }
    } else if ((cmd & 0xf0) === ANALOG_MESSAGE) {
      const pin = cmd & 0x0f;
      if (pin < PIN_COUNT) this.pins[PIN_COUNT + pin] = a | (b << 7); // PWM or servo
    } else if ((cmd & 0xf0) === REPORT_ANALOG) {
      const channel = cmd & 0x0f;
      this.markConfigured();
      this.analogReporting = a
        ? this.analogReporting | (1 << channel)
        : this.analogReporting & ~(1 << channel);
      this.armSampling();
    }
    // REPORT_DIGITAL: digital inputs report changes only, and nothing drives them here.
    else if ((cmd & 0xf0) === REPORT_DIGITAL) return;
  }

  private markConfigured(): void {
    if (this.configured) return;
    this.configured = true;
    this.counters.configured++;
  }

  private write(pin: number, value: number): void {
    if (pin >= PIN_COUNT) return;
    this.pins[PIN_COUNT + pin] = value ? 1 : 0;
    this.counters.writes++;
  }

  private sysex(data: number[]): void {
    const command = data[0];
    if (command === QUERY_FIRMWARE) this.send(FIRMWARE);
    else if (command === CAPABILITY_QUERY) this.send(CAPABILITIES);
    else if (command === ANALOG_MAPPING_QUERY) this.send(ANALOG_MAPPING);
    else if (command === PIN_STATE_QUERY) {
      const pin = data[1] ?? 0;
      const state = pin < PIN_COUNT ? (this.pins[PIN_COUNT + pin] as number) : 0;
      this.send([
        SYSEX_START,
        PIN_STATE_RESPONSE,
        pin,
        pin < PIN_COUNT ? (this.pins[pin] as number) : 0,
        state & 0x7f,
        (state >> 7) & 0x7f,
        SYSEX_END,
      ]);
    } else if (command === SAMPLING_INTERVAL) {
      this.samplingMs = Math.max(10, (data[1] ?? 0) | ((data[2] ?? 0) << 7));
      this.armSampling();
    } else if (command === GANGLION_HEARTBEAT) {
      this.heartbeatMs = (data[1] ?? 0) | ((data[2] ?? 0) << 7);
      this.beat();
      if (this.heartbeatMs > 0) this.clock.every(this.heart, this.heartbeatMs);
      else this.clock.stop(this.heart);
    }
  }

  private armSampling(): void {
    if (this.analogReporting === 0) this.clock.stop(this.sampler);
    else this.clock.every(this.sampler, this.samplingMs);
  }

  private sample(): void {
    const n = this.samples++;
    // LM35: 10 mV/°C on a 5 V, 10-bit ADC.
    let counts = Math.max(0, Math.min(1023, Math.round((this.temperature(n) * 10 * 1023) / 5000)));
    if (this.analogFault === FAULT_STUCK) counts = this.lastCounts;
    else if (this.analogFault === FAULT_NOISE) {
      // A cheap deterministic jitter (Weyl sequence on the sample number): no per-board random state to keep.
      const r = ((n * 0.6180339887 + this.index * 0.7548776662) % 1) * 2 - 1;
      counts = Math.max(0, Math.min(1023, counts + Math.round(r * NOISE_COUNTS)));
    }
    this.lastCounts = counts;
    for (let channel = 0; channel < 6; channel++) {
      if ((this.analogReporting & (1 << channel)) === 0) continue;
      this.send([ANALOG_MESSAGE | channel, counts & 0x7f, (counts >> 7) & 0x7f]);
      this.counters.analogReports++;
    }
  }

  /** A heartbeat frame (PROTOCOL.md): version 1, cause power-on, uptime (35 bits), seq, period. */
  private beat(): void {
    const uptime = Date.now() - this.bootedAt;
    const seq = this.beatSeq++ & 0x3fff;
    const frame = [SYSEX_START, GANGLION_HEARTBEAT, 1, 1, 0, 0];
    let u = uptime;
    for (let i = 0; i < 5; i++) {
      frame.push(u % 128);
      u = Math.floor(u / 128);
    }
    frame.push(seq & 0x7f, seq >> 7, this.heartbeatMs & 0x7f, (this.heartbeatMs >> 7) & 0x7f, SYSEX_END);
    this.send(frame);
    this.counters.heartbeats++;
  }
}
