/**
 * The pi-agent configuration a virtual Pi of a user's fleet runs with, derived from the device's entry in the fleet
 * file: each sensor and actuator mapped to the agent's hardware kinds.
 *
 * | fleet kind | agent | where |
 * |---|---|---|
 * | `thermometer` | `ds18b20` | `address: 28-…` (or one derived from the ids); `address: iio:NAME` → `iio` `temp` |
 * | `humidity` | `iio` `humidityrelative` | `address: iio:NAME`, else an IIO device named after the sensor |
 * | `analog` with unit hPa | `iio` `pressure` | as humidity |
 * | `button`, `digital-in` | `gpio-input` | `pin` as the GPIO number (a button is active-low: to ground, pulled up) |
 * | `led`, `relay`, `digital-out` | `led`, `relay`, `output` | `pin` as the GPIO number |
 *
 * Anything else (`light`, a plain `analog`, `servo`, `pwm`) has no sysfs driver in the agent: it is skipped, and
 * the caller warns once per part.
 */
import type { AgentConfigInput } from "../../firmware/pi-agent/src/config.ts";
import type { ActuatorConfig, DeviceConfig, SensorConfig } from "../../hub/config.ts";
import { deriveSeed } from "../random.ts";

export type AgentSensor = NonNullable<AgentConfigInput["sensors"]>[number];
export type AgentOutput = NonNullable<AgentConfigInput["outputs"]>[number];

/** A part of the device the agent cannot drive, and why. */
export interface SkippedPart {
  part: string;
  kind: string;
  reason: string;
}

/** The agent's sensors and outputs for one Pi, and the parts left out. */
export interface PiAgentParts {
  sensors: AgentSensor[];
  outputs: AgentOutput[];
  skipped: SkippedPart[];
}

/** GPIO lines free on a Pi header (no I2C, SPI, UART or 1-Wire pins), handed out to parts that name no pin. */
const FREE_GPIOS = [5, 6, 12, 13, 16, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27];

const W1_ADDRESS = /^28-[0-9a-f]{12}$/;
const IIO_ADDRESS = /^iio:(.+)$/;

/** A stable DS18B20 address for a thermometer that names none (the same ids give the same address). */
export function derivedW1Address(device: string, sensor: string): string {
  const a = deriveSeed(0x28, `${device}/${sensor}`).toString(16).padStart(8, "0");
  const b = deriveSeed(0x1e, `${device}/${sensor}`).toString(16).padStart(8, "0");
  return `28-${(a + b).slice(0, 12)}`;
}

/** Maps a Pi's fleet entry to the agent's config (see the module comment). */
export function piAgentParts(device: DeviceConfig): PiAgentParts {
  const used = new Set<number>();
  for (const part of [...device.sensors, ...device.actuators])
    if (typeof part.pin === "number") used.add(part.pin);
  const free = FREE_GPIOS.filter((g) => !used.has(g));
  const gpioOf = (part: SensorConfig | ActuatorConfig): number | undefined => {
    if (typeof part.pin === "number") return part.pin;
    return free.shift();
  };
  const iioName = (sensor: SensorConfig) => IIO_ADDRESS.exec(sensor.address ?? "")?.[1] ?? sensor.id;
  const period = (sensor: SensorConfig) => ({ periodMs: Math.max(10, sensor.periodMs) });

  const out: PiAgentParts = { sensors: [], outputs: [], skipped: [] };
  const skip = (part: SensorConfig | ActuatorConfig, reason: string) =>
    out.skipped.push({ part: part.id, kind: part.kind, reason });

  for (const sensor of device.sensors) {
    const { id } = sensor;
    switch (sensor.kind) {
      case "thermometer":
        if (IIO_ADDRESS.test(sensor.address ?? "")) {
          out.sensors.push({ id, kind: "iio", device: iioName(sensor), channel: "temp", ...period(sensor) });
        } else if (sensor.address !== undefined && !W1_ADDRESS.test(sensor.address)) {
          skip(sensor, `address ${sensor.address} is neither a DS18B20 (28-…) nor an IIO device (iio:NAME)`);
        } else {
          const address = sensor.address ?? derivedW1Address(device.id, id);
          out.sensors.push({ id, kind: "ds18b20", address, ...period(sensor) });
        }
        break;
      case "humidity":
        out.sensors.push({
          id,
          kind: "iio",
          device: iioName(sensor),
          channel: "humidityrelative",
          ...period(sensor),
        });
        break;
      case "analog":
        if (sensor.unit === "hPa") {
          out.sensors.push({
            id,
            kind: "iio",
            device: iioName(sensor),
            channel: "pressure",
            ...period(sensor),
          });
        } else {
          skip(sensor, "the agent reads analog values only from an IIO pressure channel (unit hPa)");
        }
        break;
      case "button":
      case "digital-in": {
        const gpio = gpioOf(sensor);
        if (gpio === undefined) skip(sensor, "no free GPIO line left; give it a pin");
        else
          out.sensors.push({
            id,
            kind: "gpio-input",
            gpio,
            activeLow: sensor.kind === "button",
            ...period(sensor),
          });
        break;
      }
      case "light":
        skip(sensor, "the agent has no light-sensor driver (only DS18B20, IIO and GPIO inputs)");
        break;
    }
  }
  for (const actuator of device.actuators) {
    const kind =
      actuator.kind === "led"
        ? "led"
        : actuator.kind === "relay"
          ? "relay"
          : actuator.kind === "digital-out"
            ? "output"
            : undefined;
    if (kind === undefined) {
      skip(actuator, "the agent drives only on/off GPIO outputs (led, relay, digital-out)");
      continue;
    }
    const gpio = gpioOf(actuator);
    if (gpio === undefined) skip(actuator, "no free GPIO line left; give it a pin");
    else out.outputs.push({ id: actuator.id, kind, gpio });
  }
  return out;
}
