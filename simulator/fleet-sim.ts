/**
 * Virtual boards for a user's own fleet file (DESIGN.md §3, `ganglion simulate --config fleet.yaml --tokens FILE`):
 * one board per device, against any hub.
 *
 * - Serial Arduinos (Uno, Nano, Mega) run firmware/arduino/dist's hex on the emulator, each on a pseudo-terminal
 *   (socat) the hub opens like a real port (simulator/fleet-sim/uno-board.ts).
 * - Raspberry Pis run the real pi-agent against a virtual sysfs tree laid out from their sensors and actuators,
 *   logging in to the broker with the clear token from the tokens file (simulator/fleet-sim/pi-board.ts).
 * - Sensors follow default models per kind, each on its own seeded stream (simulator/fleet-sim/models.ts).
 * - Its own HTTP API serves `/api/faults` for the boards' physical faults (simulator/fleet-sim/fault-api.ts), kept
 *   by the hub's FaultBook and injected by simulator/faults.ts, exactly as `ganglion start --simulate` does.
 *
 * ```ts
 * const sim = await startFleetSimulation({ config: await loadFleetConfig("fleet.yaml"), tokens, logger });
 * sim.boards;          // [{ device: "uno-1", kind: "serial", linkPath, ptyPath }, { device: "tank-pi", kind: "mqtt" }]
 * sim.apiUrl;          // http://127.0.0.1:PORT — POST /api/faults {"kind":"disconnect","device":"uno-1"}
 * await sim.stop();
 * ```
 */
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { pino } from "pino";
import type { DeviceConfig, FleetConfig } from "../hub/config.ts";
import type { PhysicalFaults } from "../hub/faults/contract.ts";
import { demoFaults } from "./faults.ts";
import { type FaultApi, startFaultApi } from "./fleet-sim/fault-api.ts";
import { type FleetPi, startFleetPi } from "./fleet-sim/pi-board.ts";
import { FIRMWARE_HEX, type FleetUno, startFleetUno } from "./fleet-sim/uno-board.ts";
import type { VirtualPi } from "./pi/virtual-pi.ts";
import type { VirtualUno } from "./uno/virtual-uno.ts";

export { type FleetSimulationCliOptions, runFleetSimulationCli } from "./fleet-sim/cli.ts";

/** Options of {@link startFleetSimulation}. */
export interface FleetSimulationOptions {
  /** The user's fleet file, validated (`loadFleetConfig`). */
  config: FleetConfig;
  /** Clear device tokens by device id (`parseTokensFile`); every MQTT device needs one. */
  tokens: ReadonlyMap<string, string>;
  /** Where the tokens came from, for messages (default `the tokens file`). */
  tokensFile?: string;
  /** The hub's broker, `mqtt://HOST:PORT` (default: the fleet file's hub.mqtt.broker, else hub.mqtt host:port). */
  broker?: string;
  /** The simulation's own API (default 127.0.0.1, port 0 = a free one). */
  httpHost?: string;
  httpPort?: number;
  /** Bearer token for its API's POST and DELETE; required when `httpHost` is not a loopback address. */
  apiToken?: string;
  /** Where the pty links (`<dir>/<device>.tty`) and the Pis' trees and state go (default a fresh temp dir). */
  dir?: string;
  /** Same seed, same readings (default 42). */
  seed?: number;
  /** The Pis' heartbeat period (default the fleet file's hub.heartbeatMs). */
  heartbeatMs?: number;
  logger?: Logger;
}

/** One board of the simulation. */
export type SimulatedBoard =
  | {
      device: string;
      kind: "serial";
      /** A stable symlink to the pty: what the fleet file's `link.path` names. */
      linkPath: string;
      /** The pty it points at now (`/dev/pts/N`), undefined while the cable is pulled. */
      readonly ptyPath: string | undefined;
    }
  | { device: string; kind: "mqtt"; broker: string };

/** A running fleet simulation. */
export interface FleetSimulation {
  readonly boards: readonly SimulatedBoard[];
  /** `http://HOST:PORT` of its own `/api/faults`. */
  readonly apiUrl: string;
  /** The broker the Pis log in to. */
  readonly broker: string;
  readonly unos: ReadonlyMap<string, VirtualUno>;
  readonly pis: ReadonlyMap<string, VirtualPi>;
  /** The physical faults of its boards (what `/api/faults` injects). */
  readonly faults: PhysicalFaults;
  /** Clears the faults, stops every board (each Pi says offline), removes the ptys and closes the API. */
  stop(): Promise<void>;
}

/** A device of the fleet file with no token in the tokens file. */
export class MissingTokenError extends Error {
  override readonly name = "MissingTokenError";
  constructor(
    readonly devices: readonly string[],
    file: string,
  ) {
    const list = devices.join(", ");
    super(
      `${file} has no token for ${list} (MQTT devices log in with one; the fleet file keeps only its hash): ` +
        `add a line ${devices[0]}=<token>, or re-create the device with \`ganglion device remove ${devices[0]}\` ` +
        `and \`ganglion device add ${devices[0]} --board raspberry-pi --tokens ${file}\``,
    );
  }
}

/**
 * Where the simulation in `dir` puts a serial board's pty link: `<dir>/<device>.tty`. The same every run, so the
 * fleet file's `link.path` can name it and the hub opens the virtual board like a real one.
 */
export function simulatedLinkPath(dir: string, device: string): string {
  return join(dir, `${device}.tty`);
}

/** The broker a fleet file's devices connect to: `hub.mqtt.broker`, else the embedded broker's host and port. */
export function fleetBroker(config: FleetConfig): string {
  if (config.hub.mqtt.broker !== undefined) return config.hub.mqtt.broker;
  const host =
    config.hub.mqtt.host === "0.0.0.0" || config.hub.mqtt.host === "::" ? "127.0.0.1" : config.hub.mqtt.host;
  return `mqtt://${host.includes(":") ? `[${host}]` : host}:${config.hub.mqtt.port}`;
}

/**
 * Starts one virtual board per device of `config` and the simulation's own API. Rejects, with nothing left running,
 * when an MQTT device has no token ({@link MissingTokenError}), a board's firmware is missing, or socat cannot make
 * a pty.
 */
export async function startFleetSimulation(o: FleetSimulationOptions): Promise<FleetSimulation> {
  const { config } = o;
  const log = o.logger ?? pino({ level: "info" });
  const seed = o.seed ?? 42;
  const broker = o.broker ?? fleetBroker(config);
  const missing = config.devices
    .filter((d) => d.link.type === "mqtt" && !o.tokens.has(d.id))
    .map((d) => d.id);
  if (missing.length > 0) throw new MissingTokenError(missing, o.tokensFile ?? "the tokens file");
  for (const d of config.devices) {
    if (d.link.type !== "serial") continue;
    const hex = FIRMWARE_HEX[d.board as keyof typeof FIRMWARE_HEX];
    if (!existsSync(hex))
      throw new Error(`${d.id}: no firmware to emulate at ${hex}; run make -C firmware/arduino`);
  }
  const dir = o.dir ?? join(tmpdir(), `ganglion-simulate-${process.pid}`);
  mkdirSync(dir, { recursive: true });

  const unos = new Map<string, FleetUno>();
  const pis = new Map<string, FleetPi>();
  let api: FaultApi | undefined;
  const stopAll = async () => {
    await api?.close();
    await Promise.all(
      [...pis.values()].map((p) => p.stop().catch((err: Error) => log.error({ err }, "Pi stop failed"))),
    );
    await Promise.all(
      [...unos.values()].map((u) => u.stop().catch((err: Error) => log.error({ err }, "board stop failed"))),
    );
  };
  try {
    for (const device of config.devices) {
      if (device.link.type !== "serial") continue;
      unos.set(
        device.id,
        await startFleetUno({ device, linkPath: simulatedLinkPath(dir, device.id), seed, logger: log }),
      );
    }
    for (const device of config.devices) {
      if (device.link.type !== "mqtt") continue;
      pis.set(
        device.id,
        await startFleetPi({
          device,
          token: o.tokens.get(device.id) as string,
          broker,
          dir: join(dir, device.id),
          seed,
          prefix: config.hub.mqtt.topicPrefix,
          heartbeatMs: o.heartbeatMs ?? config.hub.heartbeatMs,
          logger: log,
        }),
      );
    }
    const unoBoards = new Map([...unos].map(([id, u]) => [id, u.uno]));
    const piBoards = new Map([...pis].map(([id, p]) => [id, p.pi]));
    const devices: readonly DeviceConfig[] = config.devices;
    const faults = demoFaults({ devices: () => devices, unos: unoBoards, pis: piBoards, seed, logger: log });
    api = await startFaultApi({
      host: o.httpHost ?? "127.0.0.1",
      port: o.httpPort ?? 0,
      devices,
      physical: faults,
      ...(o.apiToken === undefined ? {} : { token: o.apiToken }),
      logger: log,
    });
    const boards: SimulatedBoard[] = config.devices.map((d) => {
      const uno = unos.get(d.id);
      if (uno === undefined) return { device: d.id, kind: "mqtt", broker };
      return {
        device: d.id,
        kind: "serial",
        linkPath: uno.linkPath,
        get ptyPath() {
          return uno.ptyPath();
        },
      };
    });
    const running = api;
    return {
      boards,
      apiUrl: running.url,
      broker,
      unos: unoBoards,
      pis: piBoards,
      faults,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
