/**
 * The demo fleet's physical faults (DESIGN.md §3): a {@link PhysicalFaults} the hub reaches through
 * `startHub({ physicalFaults })` and `/api/faults`. Each fault happens at the layer where it happens on real hardware,
 * so the hub meets it exactly as it would meet the real thing:
 *
 * | kind | Uno (emulated, serial) | Pi (virtual, MQTT) |
 * |---|---|---|
 * | `stuck` | the analog pin's voltage frozen | the sysfs value frozen |
 * | `noise` | ± 30 % of the sensor's range added to the pin's voltage | ± 30 % of the range on the sysfs value |
 * | `out-of-range` | the sensor wire shorted to 5 V (or to ground, whichever reads outside the range) | the value past the range's top |
 * | `nan` | the sensor wire comes loose: a floating input (rail-to-rail garbage, see AvrBoard) | DS18B20 1-Wire CRC error (`crc=.. NO`) |
 * | `disconnect` | USB cable pulled: the port closes, opening it fails until cleared | the agent's TCP link to the broker cut |
 * | `partition` | refused: a serial board has no network | the agent's TCP link to the broker cut |
 * | `garbage` | random bytes on the wire towards the hub | refused: TCP checksums drop corrupt segments |
 * | `slow` | a congested link: bytes arrive in bursts 2 s apart, writes 0.5 s late | refused (serial links only) |
 * | `reboot` | the RESET pin (cause `external`) | the Pi reboots (new boot id: the agent reports `power-on`) |
 * | `power-loss` | the chip stops and its USB port disappears until cleared | the agent dies until cleared, then boots |
 *
 * Digital inputs (buttons, switches) take no value faults: a stuck button looks like one nobody presses.
 */
import type { Logger } from "pino";
import { convert } from "../devices/boards/firmata-pins.ts";
import type { DeviceConfig, SensorConfig } from "../hub/config.ts";
import {
  FAULT_KINDS,
  type FaultUndo,
  type FaultView,
  HUB_SIDE_KINDS,
  type PhysicalFaults,
} from "../hub/faults/contract.ts";
import type { VirtualPi } from "./pi/virtual-pi.ts";
import type { SysfsValue } from "./pi/virtual-sysfs.ts";
import { deriveSeed, seededRandom } from "./random.ts";
import type { SlowLink } from "./uno/serial-cable.ts";
import type { AnalogFault, VirtualUno } from "./uno/virtual-uno.ts";

/** What {@link demoFaults} drives. */
export interface DemoFaultsOptions {
  /** The fleet's device configs (ranges and kinds of the sensors). */
  devices(): readonly DeviceConfig[];
  pis: ReadonlyMap<string, VirtualPi>;
  unos: ReadonlyMap<string, VirtualUno>;
  /** Seeds the faults' own randomness (noise, line garbage), so a run repeats. */
  seed: number;
  /** The congested link of `slow` (default: bursts every 2000 ms, writes 500 ms late). */
  slow?: SlowLink;
  logger?: Logger;
}

/** The share of a sensor's range (or scale) that `noise` swings the value by, either way. */
const NOISE_SHARE = 0.3;
/** How often `noise` on a Pi redraws the value in its sysfs file (faster than any sensor reads it). */
const PI_NOISE_REDRAW_MS = 250;
/** Line noise on a serial wire: one burst of random bytes this often. */
const GARBAGE_EVERY_MS = 250;
/**
 * Bursts 2 s apart leave a sensor sampled every 500 ms without a reading for longer than its stale window
 * (3 × period), yet keep the board's 1 s heartbeat inside the hub's 3 s silence limit: late, not lost.
 */
const DEFAULT_SLOW: SlowLink = { burstMs: 2000, latencyMs: 500 };

/** Why a fault cannot happen on a board; the hub answers 400 with the message. */
export class PhysicalFaultError extends Error {
  override readonly name = "PhysicalFaultError";
}

const ADC_MAX = 1023;

/**
 * Faults can overlap (two `disconnect`s on one board, `stuck` then `noise` on one sensor), and each undo must
 * remove only its own. A switch (a cable, a power line, a CRC error) is held while any fault holds it; a value
 * fault is layered: the newest one shows, and clearing it uncovers the one beneath.
 */
class Layers<T> {
  private readonly stacks = new Map<string, { id: string; layer: T }[]>();

  /** Adds a layer; `show` gets the newest layer of `key` (or null when none is left) whenever that changes. */
  async push(
    key: string,
    id: string,
    layer: T,
    show: (top: T | null) => void | Promise<void>,
  ): Promise<() => Promise<void>> {
    const stack = this.stacks.get(key) ?? [];
    this.stacks.set(key, stack);
    stack.push({ id, layer });
    await show(layer);
    return async () => {
      const at = stack.findIndex((l) => l.id === id);
      if (at < 0) return;
      const wasTop = at === stack.length - 1;
      stack.splice(at, 1);
      if (stack.length === 0) this.stacks.delete(key);
      if (wasTop) await show(stack.at(-1)?.layer ?? null);
    };
  }

  /** Whether `id` is the layer showing on `key`. */
  isTop(key: string, id: string): boolean {
    return this.stacks.get(key)?.at(-1)?.id === id;
  }
}

/** A reading of an analog sensor on a Uno as a function of volts on its pin (the firmware's 10-bit ADC at 5 V). */
const readingAt = (sensor: SensorConfig, volts: number) =>
  Number(convert(sensor, Math.min(ADC_MAX, Math.floor((volts / 5) * 1024))));

/** Volts on the pin per unit of reading (°C for an LM35, counts otherwise). */
const voltsPerUnit = (sensor: SensorConfig) => (sensor.kind === "thermometer" ? 0.01 : 5 / 1024);

/** Builds the demo fleet's {@link PhysicalFaults}. */
export function demoFaults(options: DemoFaultsOptions): PhysicalFaults {
  const log = options.logger?.child({ service: "simulator-faults" });
  const slow = options.slow ?? DEFAULT_SLOW;

  const configOf = (device: string) => options.devices().find((d) => d.id === device);

  const sensorOf = (config: DeviceConfig, fault: FaultView): SensorConfig => {
    const sensor = config.sensors.find((s) => s.id === fault.sensor);
    if (sensor === undefined) {
      const known = config.sensors.map((s) => s.id).join(", ") || "none";
      throw new PhysicalFaultError(
        `${config.id} has no sensor "${fault.sensor ?? ""}" (sensors: ${known}); ${fault.kind} needs one`,
      );
    }
    return sensor;
  };

  const refuse = (message: string): never => {
    throw new PhysicalFaultError(message);
  };

  const randomFor = (fault: FaultView) => seededRandom(deriveSeed(options.seed, `fault/${fault.id}`));
  const layers = new Layers<unknown>();
  /** Holds a switch (`on` when the first fault takes it, `off` when the last lets go). */
  const hold = (key: string, id: string, on: () => void | Promise<void>, off: () => void | Promise<void>) =>
    layers.push(key, id, true, (top) => (top === null ? off() : on()));

  async function injectUno(uno: VirtualUno, config: DeviceConfig, fault: FaultView): Promise<FaultUndo> {
    const device = uno.device;
    const kind = fault.kind;
    if (FAULT_KINDS[kind] === "sensor") {
      const sensor = sensorOf(config, fault);
      const input = uno.inputs.find((i) => i.sensor === sensor.id);
      if (input?.kind !== "analog") {
        refuse(`${device}/${sensor.id} is a digital input; ${kind} applies to analog sensors`);
      }
      let analog: AnalogFault;
      if (kind === "stuck") analog = { kind: "stuck" };
      else if (kind === "nan") analog = { kind: "floating" };
      else if (kind === "noise") {
        const span = sensor.range
          ? sensor.range[1] - sensor.range[0]
          : readingAt(sensor, 5) - readingAt(sensor, 0);
        analog = {
          kind: "noise",
          amplitudeV: NOISE_SHARE * span * voltsPerUnit(sensor),
          random: randomFor(fault),
        };
      } else {
        // out-of-range: a wire shorted to a rail, whichever rail reads outside the configured range.
        const range =
          sensor.range ??
          refuse(`${device}/${sensor.id} has no range in the fleet file, so no reading is out of range`);
        const rail = [5, 0].find((v) => {
          const r = readingAt(sensor, v);
          return r < range[0] || r > range[1];
        });
        if (rail === undefined) {
          refuse(
            `${device}/${sensor.id}: its range [${range[0]}, ${range[1]}] covers everything the ADC can read`,
          );
        }
        analog = { kind: "volts", volts: rail as number };
      }
      const remove = await layers.push(`${device}/${sensor.id}`, fault.id, analog, (top) =>
        uno.setAnalogFault(sensor.id, top as AnalogFault | null),
      );
      log?.info(
        { device, sensor: sensor.id, fault: kind, id: fault.id },
        `${device}/${sensor.id}: ${kind} on its pin`,
      );
      return async () => {
        await remove();
        log?.info(
          { device, sensor: sensor.id, fault: kind, id: fault.id },
          `${device}/${sensor.id}: ${kind} cleared`,
        );
      };
    }
    /** Holds one of the board's switches for this fault. */
    const held = async (what: string, on: () => void, off: () => void): Promise<FaultUndo> => {
      const release = await hold(`${device}:${kind}`, fault.id, on, off);
      log?.info({ device, fault: kind, id: fault.id }, `${device}: ${what}`);
      return async () => {
        await release();
        log?.info({ device, fault: kind, id: fault.id }, `${device}: ${kind} cleared`);
      };
    };
    switch (kind) {
      case "disconnect":
        return held(
          "USB cable pulled",
          () => uno.unplug(),
          () => uno.plug(),
        );
      case "garbage":
        return held(
          "noise on the serial line",
          () => uno.setLineNoise({ random: randomFor(fault), everyMs: GARBAGE_EVERY_MS }),
          () => uno.setLineNoise(null),
        );
      case "slow":
        return held(
          `serial link congested (bursts every ${slow.burstMs} ms)`,
          () => uno.setSlow(slow),
          () => uno.setSlow(null),
        );
      case "reboot":
        uno.reset();
        log?.info({ device, fault: kind, id: fault.id }, `${device}: reset`);
        return async () => undefined;
      case "power-loss":
        return held(
          "power cut",
          () => uno.powerOff(),
          () => uno.powerOn(),
        );
      case "partition":
        return refuse(
          `${device} is an Arduino on a serial cable: it has no network to partition (try disconnect)`,
        );
      default:
        return refuse(`${kind} is not a physical fault of ${device}`);
    }
  }

  /** The sysfs value a Pi sensor reads, or a refusal for a digital input. */
  const piValue = (pi: VirtualPi, device: string, sensor: SensorConfig, kind: string): SysfsValue => {
    const agentSensor = pi.sensors.find((s) => s.id === sensor.id);
    if (agentSensor?.kind === "ds18b20") return { w1: agentSensor.address };
    if (agentSensor?.kind === "iio") return { iio: agentSensor.device, channel: agentSensor.channel };
    return refuse(`${device}/${sensor.id} is a digital input; ${kind} applies to sensors with a value`);
  };

  async function injectPi(pi: VirtualPi, config: DeviceConfig, fault: FaultView): Promise<FaultUndo> {
    const device = config.id;
    const kind = fault.kind;
    if (FAULT_KINDS[kind] === "sensor") {
      const sensor = sensorOf(config, fault);
      const fields = { device, sensor: sensor.id, fault: kind, id: fault.id };
      if (kind === "nan") {
        const agentSensor = pi.sensors.find((s) => s.id === sensor.id);
        if (agentSensor?.kind !== "ds18b20") {
          refuse(`nan on a Pi is a DS18B20's 1-Wire CRC error; ${device}/${sensor.id} is not on 1-Wire`);
        }
        const address = (agentSensor as { address: string }).address;
        const release = await hold(
          `${device}:crc:${address}`,
          fault.id,
          () => pi.sys.setCrcError(address, true),
          () => pi.sys.setCrcError(address, false),
        );
        log?.info(fields, `${device}/${sensor.id}: 1-Wire CRC errors`);
        return async () => {
          await release();
          log?.info(fields, `${device}/${sensor.id}: CRC errors cleared`);
        };
      }
      const target = piValue(pi, device, sensor, kind);
      const key = `${device}/${sensor.id}`;
      let shape: (truth: number) => number;
      let redraw: NodeJS.Timeout | undefined;
      if (kind === "stuck") {
        const frozen = pi.sys.valueOf(target);
        shape = () => frozen;
      } else if (kind === "noise") {
        const span = sensor.range ? sensor.range[1] - sensor.range[0] : 20;
        const random = randomFor(fault);
        shape = (v) => v + (random() * 2 - 1) * NOISE_SHARE * span;
        // Redrawn faster than any sensor reads, so each reading sees fresh noise (while this layer shows).
        redraw = setInterval(() => {
          if (layers.isTop(key, fault.id)) pi.sys.setValueFault(target, shape);
        }, PI_NOISE_REDRAW_MS);
        redraw.unref();
      } else {
        const range =
          sensor.range ??
          refuse(`${device}/${sensor.id} has no range in the fleet file, so no reading is out of range`);
        const beyond = range[1] + 0.25 * (range[1] - range[0]);
        shape = () => beyond;
      }
      const remove = await layers.push(key, fault.id, shape, (top) =>
        pi.sys.setValueFault(target, (top as ((truth: number) => number) | null) ?? undefined),
      );
      log?.info(fields, `${device}/${sensor.id}: ${kind} on its sysfs value`);
      return async () => {
        clearInterval(redraw);
        await remove();
        log?.info(fields, `${device}/${sensor.id}: ${kind} cleared`);
      };
    }
    const fields = { device, fault: kind, id: fault.id };
    switch (kind) {
      case "disconnect":
      case "partition": {
        // One network link: a disconnect and a partition hold the same switch.
        const release = await hold(
          `${device}:network`,
          fault.id,
          () => pi.partition(true),
          () => pi.partition(false),
        );
        log?.info(fields, `${device}: cut off the broker`);
        return async () => {
          await release();
          log?.info(fields, `${device}: ${kind} cleared`);
        };
      }
      case "reboot":
        await pi.reboot();
        log?.info(fields, `${device}: rebooted`);
        return async () => undefined;
      case "power-loss": {
        const release = await hold(
          `${device}:power`,
          fault.id,
          () => pi.powerOff(),
          () => pi.powerOn(),
        );
        log?.info(fields, `${device}: power cut`);
        return async () => {
          await release();
          log?.info(fields, `${device}: power back`);
        };
      }
      case "garbage":
        return refuse(
          `${device} talks MQTT over TCP, whose checksums drop corrupt segments: garbage is a serial-wire fault`,
        );
      case "slow":
        return refuse(`slow is simulated on serial links; ${device} is on MQTT`);
      default:
        return refuse(`${kind} is not a physical fault of ${device}`);
    }
  }

  return {
    simulates: (device) => options.unos.has(device) || configOf(device)?.link.type === "mqtt",
    async inject(fault) {
      if (HUB_SIDE_KINDS.has(fault.kind)) refuse(`${fault.kind} is injected by the hub, not on a board`);
      const device = fault.device ?? refuse(`${fault.kind} needs a device`);
      const config = configOf(device) ?? refuse(`${device} is not a simulated board`);
      const uno = options.unos.get(device);
      if (uno !== undefined) return injectUno(uno, config, fault);
      const pi = options.pis.get(device);
      if (pi === undefined) refuse(`${device} is not running in the simulator yet`);
      return injectPi(pi as VirtualPi, config, fault);
    },
  };
}
