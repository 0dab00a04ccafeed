/**
 * The demo fleet `ganglion start --simulate` (and so `npm start`) runs next to the hub:
 *
 * - two Arduino Unos emulated on avr8js (each in its own worker thread) running firmware/arduino/dist's real hex,
 *   reached over the same serial path as a real board: the hub's `serialOpener` opens their emulated USB cable.
 *   `uno-1` sits on a workbench (LM35 thermometer, a knob, a button, an LED and a fan relay); `uno-2` by a window
 *   (LM35, a light sensor, a doorbell button, an LED and a heater relay).
 * - two virtual Raspberry Pis running the real pi-agent against virtual sysfs trees, over MQTT.
 *
 * Sensors follow physical models (temperature on a compressed day with a random wander, daylight with clouds, a knob
 * turned now and then, buttons pressed at random), each from its own seeded stream: the same seed gives the same
 * sequence of readings. Physical faults of all four boards: {@link DemoFleet.faults} (simulator/faults.ts).
 * The Pis log in with tokens made for the run; the hub's fleet only ever sees their hashes.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { serialportOpener } from "../devices/links/serial-link.ts";
import { type DeviceConfig, DeviceSchema, generateToken, hashToken } from "../hub/config.ts";
import type { SerialOpener } from "../hub/context.ts";
import type { PhysicalFaults } from "../hub/faults/contract.ts";
import { demoFaults } from "./faults.ts";
import { daylight, knob, ldrVolts, lm35Volts, randomPresses, roomTemperature } from "./models.ts";
import { startVirtualPi, type VirtualPi } from "./pi/virtual-pi.ts";
import type { VirtualSysfs } from "./pi/virtual-sysfs.ts";
import { deriveSeed, gaussian, seededRandom } from "./random.ts";
import { startVirtualUno, type UnoInput, type VirtualUno } from "./uno/virtual-uno.ts";

export { seededRandom } from "./random.ts";

/** The firmware the emulated Unos run (`make -C firmware/arduino` rebuilds it). */
export const UNO_HEX = fileURLToPath(new URL("../firmware/arduino/dist/ganglion-uno.hex", import.meta.url));

/** The Pis of the demo (ids match the virtual Pi's default sensors). */
export const DEMO_PIS = ["greenhouse-pi", "tank-pi"] as const;
/** The Unos of the demo. */
export const DEMO_UNOS = ["uno-1", "uno-2"] as const;

/** One compressed day of the demo's models: 10 minutes. */
export const DEMO_DAY_MS = 10 * 60 * 1000;
/** Wall time per model step of a Uno's sensors. */
const TICK_MS = 250;
/** Wall time per model step of a Pi's sensors (they read every 2 s or slower). */
const PI_TICK_MS = 1000;

function piDevice(id: string, tokenHash: string): DeviceConfig {
  return DeviceSchema.parse({
    id,
    board: "raspberry-pi",
    link: { type: "mqtt", tokenHash },
    sensors: [
      {
        id: "water-temp",
        kind: "thermometer",
        unit: "°C",
        periodMs: 2000,
        range: [-10, 60],
        maxRatePerS: 2,
        flatLineMs: 20_000,
      },
      {
        id: "air-temp",
        kind: "thermometer",
        unit: "°C",
        periodMs: 5000,
        range: [-20, 60],
        maxRatePerS: 2,
        flatLineMs: 30_000,
      },
      {
        id: "air-humidity",
        kind: "humidity",
        unit: "%RH",
        periodMs: 5000,
        range: [0, 100],
        maxRatePerS: 5,
        flatLineMs: 30_000,
      },
      {
        id: "air-pressure",
        kind: "analog",
        unit: "hPa",
        periodMs: 10_000,
        range: [800, 1200],
        maxRatePerS: 5,
        flatLineMs: 60_000,
      },
      { id: "door", kind: "button", periodMs: 1000 },
    ],
    actuators: [
      { id: "status-led", kind: "led" },
      { id: "pump", kind: "relay" },
    ],
  });
}

/** An LM35 on A0: a room's temperature, sampled twice a second; an ADC count is 0.49 °C. */
const lm35 = {
  id: "temp",
  kind: "thermometer",
  unit: "°C",
  pin: "A0",
  periodMs: 500,
  range: [-10, 60],
  maxRatePerS: 5,
  flatLineMs: 20_000,
} as const;

function unoDevice(id: (typeof DEMO_UNOS)[number], path: string): DeviceConfig {
  const sensors: unknown[] =
    id === "uno-1"
      ? [
          lm35,
          // Stale after 2 s rather than 3 × 200 ms: the knob is read before the board's handshake ends.
          { id: "pot", kind: "analog", pin: "A1", periodMs: 200, staleMs: 2000, flatLineMs: 20_000 },
          { id: "button", kind: "button", pin: 2, periodMs: 1000 },
        ]
      : [
          lm35,
          // An LDR divider spans 0.15..4.75 V: readings at the rails mean a shorted or open sensor.
          {
            id: "light",
            kind: "light",
            pin: "A1",
            periodMs: 1000,
            range: [10, 1000],
            // Passing clouds move it up to ~150 counts/s.
            maxRatePerS: 400,
            flatLineMs: 30_000,
          },
          { id: "bell", kind: "button", pin: 2, periodMs: 1000 },
        ];
  return DeviceSchema.parse({
    id,
    board: "arduino-uno",
    link: { type: "serial", path },
    sensors,
    actuators: [
      { id: "led", kind: "led", pin: 13 },
      id === "uno-1" ? { id: "fan", kind: "relay", pin: 7 } : { id: "heater", kind: "relay", pin: 8 },
    ],
  });
}

/** The models behind a demo Uno's sensors, each on its own seeded stream (fresh ones each call). */
export function demoUnoInputs(id: (typeof DEMO_UNOS)[number], seed: number): UnoInput[] {
  const s = (part: string) => deriveSeed(seed, `${id}/${part}`);
  const workbench = id === "uno-1";
  const temp = roomTemperature({
    seed: s("temp"),
    tickMs: TICK_MS,
    dayMs: DEMO_DAY_MS,
    // A heated workshop; the other Uno sits by a window and feels the day more.
    meanC: workbench ? 21 : 17,
    swingC: workbench ? 2 : 5,
    noiseC: 0.4,
  });
  const inputs: UnoInput[] = [{ sensor: "temp", kind: "analog", channel: 0, model: temp, volts: lm35Volts }];
  if (workbench) {
    const pot = knob({ seed: s("pot"), turnChancePerTick: 0.01 });
    inputs.push({ sensor: "pot", kind: "analog", channel: 1, model: pot, volts: (p) => 5 * p });
    inputs.push({
      sensor: "button",
      kind: "button",
      pin: 2,
      model: randomPresses({ seed: s("button"), pressChancePerTick: 0.01, holdTicks: 2 }),
    });
  } else {
    const light = daylight({ seed: s("light"), tickMs: TICK_MS, dayMs: DEMO_DAY_MS });
    inputs.push({ sensor: "light", kind: "analog", channel: 1, model: light, volts: ldrVolts });
    inputs.push({
      sensor: "bell",
      kind: "button",
      pin: 2,
      model: randomPresses({ seed: s("bell"), pressChancePerTick: 0.004, holdTicks: 1 }),
    });
  }
  return inputs;
}

/** What a demo Pi's sensors measure, one model per value, each on its own seeded stream (fresh ones each call). */
export function demoPiModels(id: (typeof DEMO_PIS)[number], seed: number) {
  const s = (part: string) => deriveSeed(seed, `${id}/${part}`);
  const greenhouse = id === "greenhouse-pi";
  const tick = { tickMs: PI_TICK_MS, dayMs: DEMO_DAY_MS };
  const air = roomTemperature({
    seed: s("air-temp"),
    ...tick,
    meanC: greenhouse ? 23 : 16,
    swingC: greenhouse ? 6 : 3,
    noiseC: 0.3,
  });
  // Water has a large heat capacity: it follows the air slowly (a first-order lag).
  let water = air.value - 2;
  const probe = seededRandom(s("water-temp"));
  const pressure = seededRandom(s("air-pressure"));
  let hPa = 1013;
  let jitter = 0;
  // Relative humidity falls as the air warms (same moisture, more capacity): about 3 %RH per °C.
  const humidity = (airC: number) =>
    Math.min(98, Math.max(15, (greenhouse ? 70 : 50) - 3 * (airC - (greenhouse ? 23 : 16))));
  /** The sensors' values at the current tick (°C, %RH, hPa); the DS18B20 jitters by about one step (1/16 °C). */
  const values = () => ({
    water: water + jitter,
    air: air.value,
    humidity: humidity(air.value),
    pressure: hPa,
  });
  return {
    values,
    /** Advances every model one tick and returns the new values. */
    step() {
      const airC = air.step();
      water += (airC - 2 - water) * 0.02;
      jitter = gaussian(probe) * 0.05;
      hPa = Math.min(1040, Math.max(985, hPa + (pressure() - 0.5) * 0.2));
      return values();
    },
  };
}

/** Shows a Pi's model values in its sysfs tree. */
function showPiValues(sys: VirtualSysfs, address: string | undefined, v: ReturnType<PiValues>): void {
  if (address !== undefined) sys.setTemperature(address, v.water);
  sys.setIio("bme280", "temp", v.air);
  sys.setIio("bme280", "humidityrelative", v.humidity);
  sys.setIio("bme280", "pressure", v.pressure);
}
type PiValues = ReturnType<typeof demoPiModels>["values"];

/** A demo fleet: its device configs for the hub, its boards, and what the hub needs to reach them. */
export interface DemoFleet {
  devices: DeviceConfig[];
  /** The seed the models draw from. */
  readonly seed: number;
  /** Starts the virtual Pis against the hub's broker (the Unos run from the start: the hub opens them). */
  start(brokerUrl: string): Promise<void>;
  stop(): Promise<void>;
  readonly pis: ReadonlyMap<string, VirtualPi>;
  readonly unos: ReadonlyMap<string, VirtualUno>;
  /** Hand to `startHub({ serialOpener })`: opens the emulated Unos' ports, and real ones with serialport. */
  readonly serialOpener: SerialOpener;
  /** Hand to `startHub({ physicalFaults })`: the boards' physical faults (simulator/faults.ts). */
  readonly faults: PhysicalFaults;
}

/** Options of {@link demoFleet}. */
export interface DemoOptions {
  /** Where the Pis' sysfs trees and state live (wiped first). */
  dir: string;
  /** Same seed, same readings (default 42). */
  seed?: number;
  /** The Pis' heartbeat period. */
  heartbeatMs?: number;
  /** Emulate the Unos (default true; false when firmware/arduino/dist has no hex, with a warning). */
  unos?: boolean;
  /** Opens serial devices that are not the demo's (default: serialport). */
  fallbackOpener?: SerialOpener;
  logger?: Logger;
}

/** Builds the demo fleet in `dir` and starts its emulated Unos. */
export async function demoFleet(options: DemoOptions): Promise<DemoFleet> {
  rmSync(options.dir, { recursive: true, force: true });
  mkdirSync(options.dir, { recursive: true });
  const seed = options.seed ?? 42;
  const log = options.logger;
  const tokens = new Map<string, string>();
  const devices: DeviceConfig[] = [];
  const unos = new Map<string, VirtualUno>();
  let withUnos = options.unos ?? true;
  if (withUnos && !existsSync(UNO_HEX)) {
    log?.warn({ hex: UNO_HEX }, "no Uno firmware to emulate; run make -C firmware/arduino");
    withUnos = false;
  }
  if (withUnos) {
    const started = await Promise.allSettled(
      DEMO_UNOS.map((id) =>
        startVirtualUno({
          device: id,
          hex: UNO_HEX,
          inputs: demoUnoInputs(id, seed),
          tickMs: TICK_MS,
          ...(log === undefined ? {} : { logger: log }),
        }),
      ),
    );
    for (const result of started)
      if (result.status === "fulfilled") unos.set(result.value.device, result.value);
    const failed = started.find((r) => r.status === "rejected");
    if (failed) {
      await Promise.all([...unos.values()].map((u) => u.stop()));
      throw failed.reason;
    }
    for (const uno of unos.values())
      devices.push(unoDevice(uno.device as (typeof DEMO_UNOS)[number], uno.path));
  }
  for (const id of DEMO_PIS) {
    const token = generateToken();
    tokens.set(id, token);
    devices.push(piDevice(id, await hashToken(token)));
  }
  const pis = new Map<string, VirtualPi>();
  const timers: NodeJS.Timeout[] = [];
  const fallback = options.fallbackOpener ?? serialportOpener();
  // By id and port: a real board of the user's fleet.yaml that happens to share a demo id keeps its real port.
  const serialOpener: SerialOpener = (link, device) => {
    const uno = unos.get(device);
    return uno !== undefined && link.path === uno.path ? uno.open() : fallback(link, device);
  };

  const fleet: DemoFleet = {
    devices,
    seed,
    pis,
    unos,
    serialOpener,
    faults: demoFaults({
      devices: () => devices,
      pis,
      unos,
      seed,
      ...(log === undefined ? {} : { logger: log }),
    }),
    async start(brokerUrl: string) {
      for (const id of DEMO_PIS) {
        // The models advance in ticks counted from wall time (a late timer runs the missed ones): seed → values.
        const models = demoPiModels(id, seed);
        const pi = await startVirtualPi({
          dir: join(options.dir, id),
          device: id,
          token: tokens.get(id) as string,
          broker: brokerUrl,
          // The first values the agent reads are the models', not the tree's defaults (no jump at start-up).
          prepare: (sys, w1) => showPiValues(sys, w1[0], models.values()),
          ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
          ...(log === undefined ? {} : { logger: log }),
        });
        pis.set(id, pi);
        const startedAt = Date.now();
        let ticks = 0;
        const weather = setInterval(() => {
          const due = Math.floor((Date.now() - startedAt) / PI_TICK_MS);
          if (due <= ticks) return;
          for (; ticks < due; ticks++) models.step();
          showPiValues(pi.sys, pi.w1Addresses[0], models.values());
        }, PI_TICK_MS);
        weather.unref();
        timers.push(weather);
        // Someone opens the door now and then (active-low switch: 0 = pressed).
        const door = seededRandom(deriveSeed(seed, `${id}/door`));
        const timer = setInterval(() => {
          if (door() < 0.1) {
            pi.sys.setGpioInput(17, 0);
            setTimeout(() => pi.sys.setGpioInput(17, 1), 1500).unref();
          }
        }, 3000);
        timer.unref();
        timers.push(timer);
      }
    },
    async stop() {
      for (const t of timers) clearInterval(t);
      await Promise.all([...pis.values()].map((pi) => pi.stop()));
      pis.clear();
      await Promise.all([...unos.values()].map((uno) => uno.stop()));
    },
  };
  return fleet;
}
