/**
 * The demo fleet `ganglion start --simulate` (and so `npm start`) runs next to the hub: virtual Raspberry Pis
 * running the real pi-agent against virtual sysfs trees, with values that drift like a real room and a door switch
 * pressed now and then. Seeded, so two runs produce the same readings. The devices log in with tokens made for the
 * run; the hub's fleet only ever sees their hashes.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { type DeviceConfig, DeviceSchema, generateToken, hashToken } from "../hub/config.ts";
import { startVirtualPi, type VirtualPi } from "./pi/virtual-pi.ts";

/** A deterministic random source (LCG), so a seed replays the same fleet. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The Pis of the demo and the parts the hub knows them by (ids match the virtual Pi's default sensors). */
const DEMO_PIS = ["greenhouse-pi", "tank-pi"] as const;

function piDevice(id: string, tokenHash: string): DeviceConfig {
  return DeviceSchema.parse({
    id,
    board: "raspberry-pi",
    link: { type: "mqtt", tokenHash },
    sensors: [
      { id: "water-temp", kind: "thermometer", unit: "°C", periodMs: 2000, range: [-10, 60], maxRatePerS: 2 },
      { id: "air-temp", kind: "thermometer", unit: "°C", periodMs: 5000, range: [-20, 60] },
      { id: "air-humidity", kind: "humidity", unit: "%RH", periodMs: 5000, range: [0, 100] },
      { id: "air-pressure", kind: "analog", unit: "hPa", periodMs: 10_000, range: [800, 1200] },
      { id: "door", kind: "button", periodMs: 1000 },
    ],
    actuators: [
      { id: "status-led", kind: "led" },
      { id: "pump", kind: "relay" },
    ],
  });
}

/** A demo fleet: its device configs for the hub, and the boards once started. */
export interface DemoFleet {
  devices: DeviceConfig[];
  /** Starts the virtual boards against the hub's broker. */
  start(brokerUrl: string): Promise<void>;
  stop(): Promise<void>;
  readonly pis: ReadonlyMap<string, VirtualPi>;
}

/** Builds the demo fleet in `dir` (wiped first). */
export async function demoFleet(options: {
  dir: string;
  seed?: number;
  heartbeatMs?: number;
  logger?: Logger;
}): Promise<DemoFleet> {
  rmSync(options.dir, { recursive: true, force: true });
  mkdirSync(options.dir, { recursive: true });
  const random = seededRandom(options.seed ?? 42);
  const tokens = new Map<string, string>();
  const devices: DeviceConfig[] = [];
  for (const id of DEMO_PIS) {
    const token = generateToken();
    tokens.set(id, token);
    devices.push(piDevice(id, await hashToken(token)));
  }
  const pis = new Map<string, VirtualPi>();
  const timers: NodeJS.Timeout[] = [];

  return {
    devices,
    pis,
    async start(brokerUrl: string) {
      for (const id of DEMO_PIS) {
        const pi = await startVirtualPi({
          dir: join(options.dir, id),
          device: id,
          token: tokens.get(id) as string,
          broker: brokerUrl,
          ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
          ...(options.logger === undefined ? {} : { logger: options.logger }),
        });
        pis.set(id, pi);
        pi.sys.startDrift(1000, random);
        // Someone opens the door now and then (active-low switch: 0 = pressed).
        const door = setInterval(() => {
          if (random() < 0.1) {
            pi.sys.setGpioInput(17, 0);
            setTimeout(() => pi.sys.setGpioInput(17, 1), 1500).unref();
          }
        }, 3000);
        door.unref();
        timers.push(door);
      }
    },
    async stop() {
      for (const t of timers) clearInterval(t);
      await Promise.all([...pis.values()].map((pi) => pi.stop()));
      pis.clear();
    },
  };
}
