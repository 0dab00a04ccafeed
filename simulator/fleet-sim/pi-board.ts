/**
 * One Raspberry Pi of a user's fleet as a virtual Pi: the real pi-agent against a virtual sysfs tree laid out from
 * the device's fleet entry (pi-config.ts), its sensors' files driven by the default models (models.ts), logging in
 * with the device's clear token.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { DeviceConfig, SensorConfig } from "../../hub/config.ts";
import type { Model } from "../models.ts";
import { startVirtualPi, type VirtualPi } from "../pi/virtual-pi.ts";
import type { VirtualSysfs } from "../pi/virtual-sysfs.ts";
import { partSeed, pressModel, thermometerModel, waveModel } from "./models.ts";
import { type AgentSensor, piAgentParts } from "./pi-config.ts";

/** Wall time per model step of a Pi's sensors. */
const PI_TICK_MS = 1000;

/** Options of {@link startFleetPi}. */
export interface FleetPiOptions {
  device: DeviceConfig;
  token: string;
  /** `mqtt://host:port`. */
  broker: string;
  /** The Pi's directory: its sysfs tree (laid out afresh) and its agent's state and buffer (kept across runs). */
  dir: string;
  seed: number;
  prefix?: string;
  heartbeatMs?: number;
  logger?: Logger;
}

/** A running Pi of the fleet simulation. */
export interface FleetPi {
  readonly pi: VirtualPi;
  stop(): Promise<void>;
}

/** How one agent sensor's file follows its model. */
type Driver =
  | { model: Model<number>; show: (sys: VirtualSysfs, v: number) => void }
  | { press: Model<boolean>; gpio: number; activeLow: boolean };

function driverFor(sensor: AgentSensor, config: SensorConfig, seed: number): Driver {
  switch (sensor.kind) {
    case "ds18b20":
      return {
        model: thermometerModel(config, seed, PI_TICK_MS),
        show: (sys, v) => sys.setTemperature(sensor.address, v),
      };
    case "iio": {
      const model =
        sensor.channel === "temp"
          ? thermometerModel(config, seed, PI_TICK_MS)
          : waveModel(config, seed, PI_TICK_MS, sensor.channel === "pressure" ? [985, 1040] : [20, 80]);
      return { model, show: (sys, v) => sys.setIio(sensor.device, sensor.channel, v) };
    }
    case "gpio-input":
      return {
        press: pressModel(config, seed, PI_TICK_MS),
        gpio: sensor.gpio,
        activeLow: sensor.activeLow ?? false,
      };
  }
}

/**
 * Starts the agent of one Pi. The parts the agent cannot drive are logged once each (warn, naming the device and
 * the part) and left out of its config.
 */
export async function startFleetPi(o: FleetPiOptions): Promise<FleetPi> {
  const { device } = o;
  const log = o.logger?.child({ device: device.id });
  const parts = piAgentParts(device);
  for (const s of parts.skipped) {
    log?.warn(
      { sensor: s.part, kind: s.kind },
      `${device.id}/${s.part} (${s.kind}) is not simulated: ${s.reason}; the hub will show it stale`,
    );
  }
  const drivers = parts.sensors.map((s) =>
    driverFor(
      s,
      device.sensors.find((c) => c.id === s.id) as SensorConfig,
      partSeed(o.seed, device.id, s.id),
    ),
  );
  const show = (sys: VirtualSysfs) => {
    for (const d of drivers) {
      if ("model" in d) d.show(sys, d.model.value);
      // A line's level: pressed means active, and an active-low line reads 0 when active.
      else sys.setGpioInput(d.gpio, d.press.value !== d.activeLow ? 1 : 0);
    }
  };
  // The tree is laid out afresh each run; the agent's state (seq counters, buffer) is kept, as on a real Pi's SD card.
  rmSync(join(o.dir, "root"), { recursive: true, force: true });
  const pi = await startVirtualPi({
    dir: o.dir,
    device: device.id,
    token: o.token,
    broker: o.broker,
    sensors: parts.sensors,
    outputs: parts.outputs,
    // The agent's first reading is already the models' value.
    prepare: (sys) => show(sys),
    ...(o.prefix === undefined ? {} : { prefix: o.prefix }),
    ...(o.heartbeatMs === undefined ? {} : { heartbeatMs: o.heartbeatMs }),
    ...(o.logger === undefined ? {} : { logger: o.logger }),
  });
  // Ticks counted from wall time: a late timer runs the missed steps, so a seed gives the same values.
  const startedAt = Date.now();
  let ticks = 0;
  const timer = setInterval(() => {
    const due = Math.floor((Date.now() - startedAt) / PI_TICK_MS);
    if (due <= ticks) return;
    for (; ticks < due; ticks++) for (const d of drivers) ("model" in d ? d.model : d.press).step();
    show(pi.sys);
  }, PI_TICK_MS);
  timer.unref();
  return {
    pi,
    async stop() {
      clearInterval(timer);
      await pi.stop();
    },
  };
}
