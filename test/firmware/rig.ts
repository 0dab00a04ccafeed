/**
 * Test rig for the firmware: the project's emulated board (simulator/boards AvrBoard) running a dist/ hex,
 * exposed to firmata-io through a Duplex transport, with register-file I2C devices on its TWI bus and a record of
 * every pin change. The board runs unthrottled in small slices on the event loop; a sleeping firmware is
 * fast-forwarded by the board, so emulated time usually runs ahead of wall time.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { Duplex } from "node:stream";
import type { AVRTWI, TWIEventHandler } from "avr8js";
import { AvrBoard, type PinChange } from "../../simulator/boards/avr-board.ts";
import type { McuName, ResetCause } from "../../simulator/boards/mcu.ts";

export const DIST = join(import.meta.dirname, "../../firmware/arduino/dist");
const SLICE_CYCLES = 16_000 * 2; // 2 ms of emulated time per event-loop turn

/** The part of firmata-io's Firmata class the tests use (the package ships no typings). */
export interface FirmataPin {
  supportedModes: number[];
  mode?: number;
  value: number;
  state?: number;
  analogChannel: number;
}
export interface FirmataBoard {
  MODES: {
    INPUT: number;
    OUTPUT: number;
    ANALOG: number;
    PWM: number;
    SERVO: number;
    I2C: number;
    PULLUP: number;
  };
  pins: FirmataPin[];
  analogPins: number[];
  firmware: { name: string; version: { major: number; minor: number } };
  version: { major: number; minor: number };
  RESOLUTION: { ADC: number | null; PWM: number | null };
  isReady: boolean;
  on(event: string, listener: (...args: never[]) => void): FirmataBoard;
  once(event: string, listener: (...args: never[]) => void): FirmataBoard;
  removeAllListeners(event?: string): FirmataBoard;
  pinMode(pin: number, mode: number): void;
  digitalWrite(pin: number, value: number): void;
  digitalRead(pin: number, callback: (value: number) => void): void;
  analogRead(pin: number, callback: (value: number) => void): void;
  pwmWrite(pin: number, value: number): void;
  servoConfig(pin: number, min: number, max: number): void;
  servoWrite(pin: number, value: number): void;
  queryPinState(pin: number, callback: () => void): void;
  queryFirmware(callback: () => void): void;
  reportVersion(callback: () => void): void;
  setSamplingInterval(ms: number): void;
  reportAnalogPin(pin: number, value: 0 | 1): void;
  reportDigitalPin(pin: number, value: 0 | 1): void;
  i2cConfig(delay?: number): void;
  i2cWrite(address: number, register: number, bytes: number[]): void;
  i2cReadOnce(address: number, register: number, count: number, callback: (bytes: number[]) => void): void;
  i2cRead(address: number, register: number, count: number, callback: (bytes: number[]) => void): void;
  i2cStop(address: number): void;
  sysexCommand(message: number[]): void;
  sysexResponse(command: number, handler: (this: FirmataBoard, data: number[]) => void): void;
  clearSysexResponse(command: number): void;
  reset(): void;
}
type FirmataConstructor = new (
  transport: Duplex,
  options: Record<string, unknown>,
  callback?: (error?: Error) => void,
) => FirmataBoard;

const require = createRequire(import.meta.url);
export const Firmata = (require("firmata-io") as { Firmata: FirmataConstructor }).Firmata;

/** An I2C device with 256 byte registers: a write sets the register pointer, then stores; reads auto-increment. */
export class RegisterDevice {
  readonly regs = new Uint8Array(256);
  pointer = 0;
  transactions = 0;
  constructor(readonly address: number) {}
}

/** Routes the TWI master's bus events to the devices by address; absent addresses NACK. */
class I2cBus implements TWIEventHandler {
  private current: RegisterDevice | undefined;
  private first = true;
  constructor(
    private readonly twi: AVRTWI,
    private readonly devices: ReadonlyMap<number, RegisterDevice>,
  ) {}
  start(): void {
    this.twi.completeStart();
  }
  stop(): void {
    this.current = undefined;
    this.twi.completeStop();
  }
  connectToSlave(address: number): void {
    this.current = this.devices.get(address);
    this.first = true;
    if (this.current) this.current.transactions++;
    this.twi.completeConnect(this.current !== undefined);
  }
  writeByte(value: number): void {
    const d = this.current;
    if (!d) {
      this.twi.completeWrite(false);
      return;
    }
    if (this.first) d.pointer = value;
    else d.regs[d.pointer++ & 0xff] = value;
    this.first = false;
    this.twi.completeWrite(true);
  }
  readByte(): void {
    const d = this.current;
    this.twi.completeRead(d ? d.regs[d.pointer++ & 0xff]! : 0xff);
  }
}

/** Transport in front of the board, shaped like a serial port for firmata-io ('open', isOpen). */
class BoardTransport extends Duplex {
  isOpen = true;
  constructor(private readonly sink: (bytes: Uint8Array) => void) {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.sink(new Uint8Array(chunk));
    callback();
  }
}

export interface Heartbeat {
  version: number;
  cause: number;
  flags: number;
  source: number;
  uptimeMs: number;
  seq: number;
  intervalMs: number;
}

/** Decodes a GANGLION_HEARTBEAT payload (the bytes between 0x0A and END_SYSEX), as PROTOCOL.md specifies. */
export function parseHeartbeat(data: readonly number[]): Heartbeat {
  if (data.length !== 13) throw new Error(`heartbeat payload must be 13 bytes, got ${data.length}`);
  const b = (i: number) => data[i]!;
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

export class FirmwareRig {
  readonly board: AvrBoard;
  readonly transport: BoardTransport;
  readonly pinChanges: PinChange[] = [];
  readonly resets: ResetCause[] = [];
  /** Every byte the firmware sent, with the emulated cycle of the slice it came out in. */
  readonly received: { cycles: number; bytes: Uint8Array }[] = [];
  private readonly devices = new Map<number, RegisterDevice>();
  private timer: NodeJS.Immediate | undefined;

  constructor(mcu: McuName, hexFile: string, bootloaderPath?: string) {
    this.board = new AvrBoard({
      mcu,
      hex: readFileSync(join(DIST, hexFile), "utf8"),
      ...(bootloaderPath ? { bootloader: readFileSync(bootloaderPath, "utf8") } : {}),
    });
    this.transport = new BoardTransport((bytes) => this.board.receive(bytes));
    this.board.hooks.onTransmit = (bytes) => {
      this.received.push({ cycles: this.board.cycles, bytes });
      this.transport.push(Buffer.from(bytes));
    };
    this.board.hooks.onPinChange = (change) => this.pinChanges.push(change);
    this.board.hooks.onReset = (cause) => this.resets.push(cause);
    this.board.attachI2c((twi) => new I2cBus(twi, this.devices));
  }

  /** Adds a device on the I2C bus. */
  addI2cDevice(device: RegisterDevice): RegisterDevice {
    this.devices.set(device.address, device);
    return device;
  }

  /** Emulated milliseconds since power-on. */
  get ms(): number {
    return this.board.cycles / 16_000;
  }

  start(): void {
    const turn = () => {
      this.board.run(SLICE_CYCLES);
      this.timer = setImmediate(turn);
    };
    this.timer = setImmediate(turn);
    process.nextTick(() => this.transport.emit("open"));
  }

  stop(): void {
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
    this.transport.isOpen = false;
    this.transport.destroy();
  }

  /** Resolves once `predicate` holds (checked every turn), rejects after `timeoutMs` of wall time. */
  waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve, reject) => {
      const check = () => {
        if (predicate()) return resolve();
        if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
        setImmediate(check);
      };
      check();
    });
  }

  /** Lets `ms` of emulated time pass. */
  async advance(ms: number): Promise<void> {
    const until = this.ms + ms;
    await this.waitFor(() => this.ms >= until, `${ms} emulated ms`, 10_000 + ms * 5);
  }

  /** Connects firmata-io and resolves when it is ready (version, firmware, capabilities, analog mapping). */
  connect(options: Record<string, unknown> = {}): Promise<FirmataBoard> {
    return new Promise((resolve, reject) => {
      const io = new Firmata(this.transport, { reportVersionTimeout: 2000, ...options }, (error) => {
        if (error) reject(error);
        else resolve(io);
      });
    });
  }
}

/** Fraction of time pin `pin` was high between two emulated cycle counts, from the recorded pin changes. */
export function dutyCycle(changes: readonly PinChange[], pin: number, from: number, to: number): number {
  const own = changes.filter((c) => c.pin === pin);
  let level = own.filter((c) => c.cycles <= from).at(-1)?.level === "high";
  let last = from;
  let high = 0;
  for (const c of own) {
    if (c.cycles <= from || c.cycles > to) continue;
    if (level) high += c.cycles - last;
    level = c.level === "high";
    last = c.cycles;
  }
  if (level) high += to - last;
  return high / (to - from);
}
