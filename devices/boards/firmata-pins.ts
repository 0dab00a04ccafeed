/**
 * How a device's sensors and actuators map onto an Arduino's pins under Firmata: which pin and analog channel each
 * part uses, the modes and reporting to set, how raw values become readings, and what each command op drives.
 *
 * Readings by sensor kind (10-bit ADC, 5 V reference):
 * - `analog`, `light`, `humidity`: the raw ADC count, 0..1023.
 * - `thermometer` on an analog pin: an LM35 (10 mV/°C), so °C = counts × 5000 mV / 1023 / 10 mV, two decimals.
 * - `button`, `digital-in`: the pin level (1 high, 0 low) with the internal pull-up on, so a button wired to
 *   ground reads 0 while pressed; the sensor actor turns it into a boolean.
 * Bus-addressed parts (I2C) are not driven on an Arduino yet.
 */
import type { ActuatorConfig, DeviceConfig, SensorConfig } from "../../hub/config.ts";
import type { TimerHandle } from "../../hub/runtime/index.ts";
import type { ReadingValue } from "../../hub/store.ts";
import type { FirmataIo } from "./firmata.ts";

/** Servo pulse range in µs (the firmware maps 0..180° onto it). */
const SERVO_US: [number, number] = [544, 2400];

/** Sensor kinds read from an analog input. */
export const ANALOG_KINDS: ReadonlySet<string> = new Set(["analog", "thermometer", "light", "humidity"]);

/** A sensor on a pin, with what the board actor keeps for it. */
export interface Input {
  config: SensorConfig;
  /** Digital pin number. */
  pin: number;
  /** Analog channel, for analog kinds. */
  channel: number | null;
  latest: number | null;
  /** A reading arrived since the last one was forwarded. */
  fresh: boolean;
  seq: number;
  timer: TimerHandle | null;
}

/** An actuator on a pin, with its level and blink timer. */
export interface Output {
  config: ActuatorConfig;
  pin: number;
  level: boolean;
  blink: TimerHandle | null;
  blinkHalfMs: number;
}

/** A part the board cannot drive, and what to fix in fleet.yaml. */
export interface PinProblem {
  part: string;
  actuator: boolean;
  message: string;
}

/** The parts of `config` resolved against the board's capabilities (pin count, analog map). */
export function resolvePins(
  config: DeviceConfig,
  io: Pick<FirmataIo, "pins" | "analogPins">,
): { inputs: Map<string, Input>; outputs: Map<string, Output>; problems: PinProblem[] } {
  const device = config.id;
  const inputs = new Map<string, Input>();
  const outputs = new Map<string, Output>();
  const problems: PinProblem[] = [];
  const digitalPin = (pin: string | number | undefined): number | null => {
    if (pin === undefined) return null;
    if (typeof pin === "number") return pin < io.pins.length ? pin : null;
    return io.analogPins[Number(pin.slice(1))] ?? null;
  };
  for (const s of config.sensors) {
    const pin = digitalPin(s.pin);
    if (pin === null) {
      const what =
        s.pin === undefined
          ? `bus address ${s.address} is not supported on an Arduino yet`
          : `pin ${s.pin} does not exist on this board`;
      problems.push({
        part: s.id,
        actuator: false,
        message: `${device}/${s.id}: ${what}; fix it in fleet.yaml`,
      });
      continue;
    }
    let channel: number | null = null;
    if (ANALOG_KINDS.has(s.kind)) {
      channel = io.pins[pin]?.analogChannel ?? 127;
      if (channel === 127) {
        problems.push({
          part: s.id,
          actuator: false,
          message: `${device}/${s.id}: pin ${s.pin} has no analog input; a ${s.kind} needs one of A0..A${io.analogPins.length - 1}: fix its pin in fleet.yaml`,
        });
        continue;
      }
    }
    inputs.set(s.id, { config: s, pin, channel, latest: null, fresh: false, seq: 0, timer: null });
  }
  for (const a of config.actuators) {
    const pin = digitalPin(a.pin);
    if (pin === null) {
      const what = a.pin === undefined ? "an actuator on a bus address" : `pin ${a.pin}`;
      problems.push({
        part: a.id,
        actuator: true,
        message: `${device}/${a.id}: ${what} cannot be driven on this board; fix it in fleet.yaml`,
      });
      continue;
    }
    outputs.set(a.id, { config: a, pin, level: false, blink: null, blinkHalfMs: 0 });
  }
  return { inputs, outputs, problems };
}

/** The longest sampling interval Firmata's SAMPLING_INTERVAL carries (14 bits) and the firmware accepts. */
export const MAX_SAMPLING_MS = 16_383;

/**
 * Analog sampling period: twice per the fastest analog sensor's period (so a fresh value is there at each of the
 * board actor's samples), within 19 ms .. {@link MAX_SAMPLING_MS}; 1 s on a board without analog sensors. Every
 * analog report is a frame the hub parses, so a board read every minute is sampled every 16 s, not every second.
 */
export function samplingMs(config: DeviceConfig): number {
  const periods = config.sensors.filter((s) => ANALOG_KINDS.has(s.kind)).map((s) => s.periodMs);
  if (periods.length === 0) return 1000;
  return Math.max(19, Math.min(MAX_SAMPLING_MS, Math.floor(Math.min(...periods) / 2)));
}

/** Pin modes, sampling and reporting: sent after the handshake and again after every board reset. */
export function configurePins(
  io: FirmataIo,
  inputs: Iterable<Input>,
  outputs: Iterable<Output>,
  sampling: number,
): void {
  io.setSamplingInterval(sampling);
  for (const input of inputs) {
    if (input.channel !== null) {
      // firmata-io takes the analog channel here (and the firmware starts analog pins in ANALOG mode).
      io.pinMode(input.channel, io.MODES.ANALOG);
      io.reportAnalogPin(input.channel, 1);
    } else {
      io.pinMode(input.pin, io.MODES.PULLUP);
      io.reportDigitalPin(input.pin, 1);
    }
  }
  for (const out of outputs) {
    const kind = out.config.kind;
    if (kind === "servo") io.servoConfig(out.pin, SERVO_US[0], SERVO_US[1]);
    else io.pinMode(out.pin, kind === "pwm" ? io.MODES.PWM : io.MODES.OUTPUT);
  }
}

/** A reading's value from the pin's raw value (see the module comment for the formulas). */
export function convert(config: SensorConfig, raw: number): ReadingValue {
  if (config.kind === "thermometer") return Math.round(((raw * 5000) / 1023 / 10) * 100) / 100;
  return raw;
}

/** What an op leaves the output at (a level, an angle or duty, `blink:<periodMs>`), or `undefined` if unknown. */
export function commandValue(
  out: Output,
  op: string,
  args: Record<string, unknown>,
): ReadingValue | undefined {
  switch (op) {
    case "on":
    case "close":
      return true;
    case "off":
    case "open":
      return false;
    case "toggle":
      return !out.level;
    case "blink":
      return `blink:${Number(args.periodMs)}`;
    case "to":
      return Number(args.deg);
    case "set":
      return typeof args.value === "number" && (out.config.kind === "servo" || out.config.kind === "pwm")
        ? args.value
        : args.value === true || args.value === 1;
    default:
      return undefined;
  }
}

// Shared with the Pi's board actor; kept importable from here for the Arduino side.
export { restoreCommand } from "../sensors/actuator.ts";
