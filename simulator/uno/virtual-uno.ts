/**
 * A virtual Arduino Uno: an emulated ATmega328P (avr8js, in its own worker thread) running firmware/arduino's real
 * hex, its sensors driven by physical models, and the USB cable the hub opens like a real serial port. It gives the
 * Uno's physical faults of DESIGN.md §3 a place to happen:
 *
 * | fault | where | call |
 * |---|---|---|
 * | `stuck`, `noise`, `out-of-range`, `nan` | the voltage the ADC reads on the sensor's pin | `setAnalogFault(sensor, …)` |
 * | `disconnect` | the port closes; opening it fails until plugged back | `unplug()` … `plug()` |
 * | `garbage` | random bytes on the wire | `setLineNoise(…)` |
 * | `slow` | a congested link: bursts and latency | `setSlow(…)` |
 * | `reboot` | the RESET pin | `reset()` |
 * | `power-loss` | the chip stops and the port is gone | `powerOff()` … `powerOn()` |
 *
 * ```ts
 * const uno = await startVirtualUno({ device: "uno-1", hex, inputs: [...] });
 * hubOptions.serialOpener = (link, device) => uno.open();
 * ```
 */
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { type EmulatedBoard, startEmulatedBoard } from "../boards/emulated-board.ts";
import type { Model } from "../models.ts";
import { type LineNoise, SerialCable, type SlowLink } from "./serial-cable.ts";

/** A sensor wired to the Uno, and the model that drives it. */
export type UnoInput =
  | {
      sensor: string;
      kind: "analog";
      /** Analog channel (0 = A0). */
      channel: number;
      model: Model<number>;
      /** The sensor's output voltage for a model value (0..5 V). */
      volts: (value: number) => number;
    }
  | {
      sensor: string;
      kind: "button";
      /** Digital pin; the button pulls it to ground while pressed. */
      pin: number;
      model: Model<boolean>;
    };

/** What the ADC reads on an analog sensor's pin instead of the sensor's true output. */
export type AnalogFault =
  /** Frozen at the voltage it had when the fault began (a sensor that stopped updating). */
  | { kind: "stuck" }
  /** The true voltage plus uniform noise of ± `amplitudeV` (interference on a long unshielded wire). */
  | { kind: "noise"; amplitudeV: number; random: () => number }
  /** A fixed voltage (a wire shorted to 5 V or to ground). */
  | { kind: "volts"; volts: number }
  /** Nothing connected: the wire came loose (see AvrBoard's floating input). */
  | { kind: "floating" };

/** Options of {@link startVirtualUno}. */
export interface VirtualUnoOptions {
  device: string;
  /** Path to the firmware's Intel HEX (firmware/arduino/dist/ganglion-uno.hex). */
  hex: string;
  /** Board kind or microcontroller (`uno`, `nano`, `mega`, `arduino-mega`, `atmega2560`, …); default `uno`. */
  mcu?: string;
  inputs: UnoInput[];
  /** Model tick (ms of wall time per model step); default 250. */
  tickMs?: number;
  /** The port's name in messages (default `emulated:<device>`). */
  path?: string;
  logger?: Logger;
}

/** A running virtual Uno. */
export interface VirtualUno {
  readonly device: string;
  /** The port path the hub's fleet config names. */
  readonly path: string;
  /** The emulated board (pins, stats); the same board across resets and power cycles. */
  readonly board: EmulatedBoard;
  readonly inputs: readonly UnoInput[];
  /** Wall time (epoch ms) of model tick 0; tick n is applied at `startedAt + n × tickMs`. */
  readonly startedAt: number;
  readonly tickMs: number;
  /** Whether the cable is plugged in and the board powered (the port exists). */
  readonly present: boolean;
  /** The open port, if the hub holds one. */
  readonly cable: SerialCable | undefined;
  /** Opens the port, as serialport would: a fresh stream, and a reset (a Uno's DTR line). Rejects while absent. */
  open(): Promise<Duplex>;
  setAnalogFault(sensor: string, fault: AnalogFault | null): void;
  /** Pulls the USB cable: the open port closes and opening fails until {@link plug}. */
  unplug(): void;
  plug(): void;
  setLineNoise(noise: LineNoise | null): void;
  setSlow(slow: SlowLink | null): void;
  /** Presses the RESET button: the firmware restarts (the hub sees `board_reset`, cause `external`). */
  reset(): void;
  /** Cuts the power: the chip stops and, USB-powered, the port disappears until {@link powerOn}. */
  powerOff(): void;
  powerOn(): void;
  stop(): Promise<void>;
}

/** Starts the emulated board and its models. */
export async function startVirtualUno(options: VirtualUnoOptions): Promise<VirtualUno> {
  const { device } = options;
  const path = options.path ?? `emulated:${device}`;
  const tickMs = options.tickMs ?? 250;
  const log = options.logger?.child({ device, port: path });
  const board = await startEmulatedBoard({ mcu: options.mcu ?? "uno", hex: options.hex });
  const analogFaults = new Map<string, AnalogFault>();
  /** The voltage last put on each analog sensor's pin (`null`: floating). */
  const applied = new Map<string, number | null>();
  let plugged = true;
  let powered = true;
  let cable: SerialCable | undefined;
  let noise: LineNoise | null = null;
  let slow: SlowLink | null = null;
  let stopped = false;

  const analogInput = (sensor: string) => {
    const input = options.inputs.find((i) => i.sensor === sensor);
    if (input?.kind !== "analog") throw new Error(`${device} has no analog sensor "${sensor}"`);
    return input;
  };

  const apply = () => {
    for (const input of options.inputs) {
      if (input.kind === "button") {
        // Released, the pin reads high (the firmware's pull-up); pressed, the button grounds it.
        const level = input.model.value ? 0 : 1;
        if (applied.get(input.sensor) === level) continue;
        applied.set(input.sensor, level);
        board.setDigitalInput(input.pin, level === 1);
        continue;
      }
      const fault = analogFaults.get(input.sensor);
      const truth = input.volts(input.model.value);
      let volts: number | null;
      switch (fault?.kind) {
        case undefined:
          volts = truth;
          break;
        case "stuck":
          volts = applied.get(input.sensor) ?? truth;
          break;
        case "noise":
          volts = truth + (fault.random() * 2 - 1) * fault.amplitudeV;
          break;
        case "volts":
          volts = fault.volts;
          break;
        case "floating":
          volts = null;
          break;
      }
      if (volts !== null) volts = Math.min(5, Math.max(0, volts));
      if (applied.has(input.sensor) && applied.get(input.sensor) === volts) continue;
      applied.set(input.sensor, volts);
      board.setAnalog(input.channel, volts);
    }
  };

  // Ticks are counted from wall time, so a late timer runs the missed steps: the same seed, the same values.
  const startedAt = Date.now();
  let ticks = 0;
  apply();
  const ticker = setInterval(() => {
    const due = Math.floor((Date.now() - startedAt) / tickMs);
    if (due <= ticks) return;
    for (; ticks < due; ticks++) for (const input of options.inputs) input.model.step();
    apply();
  }, tickMs);
  ticker.unref();

  const portGone = () =>
    new Error(
      `serial port ${path} not found: plug ${device} in or fix link.path in fleet.yaml` +
        (powered ? "" : " (the board has no power)"),
    );

  const uno: VirtualUno = {
    device,
    path,
    board,
    inputs: options.inputs,
    startedAt,
    tickMs,
    get present() {
      return plugged && powered;
    },
    get cable() {
      return cable?.destroyed === false ? cable : undefined;
    },
    async open() {
      if (stopped) throw new Error(`serial port ${path}: the simulator stopped ${device}`);
      if (!plugged || !powered) throw portGone();
      cable?.destroy();
      cable = new SerialCable(board.openSerial(), path);
      cable.setLineNoise(noise);
      cable.setSlow(slow);
      log?.debug(`${device}: port ${path} opened (board reset by DTR)`);
      return cable;
    },
    setAnalogFault(sensor, fault) {
      analogInput(sensor);
      if (fault === null) analogFaults.delete(sensor);
      else analogFaults.set(sensor, fault);
      apply();
    },
    unplug() {
      plugged = false;
      cable?.unplug();
      log?.info(`${device}: USB cable pulled`);
    },
    plug() {
      plugged = true;
      log?.info(`${device}: USB cable plugged back in`);
    },
    setLineNoise(next) {
      noise = next;
      cable?.setLineNoise(next);
    },
    setSlow(next) {
      slow = next;
      cable?.setSlow(next);
    },
    reset() {
      board.reset("external");
      log?.info(`${device}: reset button pressed`);
    },
    powerOff() {
      powered = false;
      board.setPower(false);
      cable?.unplug();
      log?.info(`${device}: power cut`);
    },
    powerOn() {
      if (powered) return;
      powered = true;
      board.setPower(true);
      log?.info(`${device}: power back`);
    },
    async stop() {
      stopped = true;
      clearInterval(ticker);
      cable?.destroy();
      await board.stop();
    },
  };
  return uno;
}
