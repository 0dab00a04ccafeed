/**
 * The in-process load mode: one hub and N {@link FirmataBoard}s in the same process, the boards handed to the hub
 * through its `SerialOpener` exactly where serial ports would be. No sockets and no ptys: what is measured is the
 * hub's actors (link, board, sensor per device), Firmata parsing and the history store.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { type DeviceInput, FleetConfigSchema } from "../../hub/config.ts";
import type { SerialOpener } from "../../hub/context.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { FirmataBoard, type FirmataCounters, newFirmataCounters } from "./firmata-board.ts";
import { LOAD_SENSOR, loadDeviceId } from "./fleet.ts";

/** Options of {@link startInProcessLoad}. */
export interface InProcessOptions {
  devices: number;
  /** Readings per second per board (the hub samples each board's sensor at this rate). */
  rate: number;
  /** History directory; default a fresh temporary one, removed on stop. */
  dataDir?: string;
  logger: Logger;
  /** Serve the HTTP API on this port (0 picks one); default: no API. */
  httpPort?: number;
  /** Boards whose devices are added to the hub at once while starting; default 500. */
  batch?: number;
  onProgress?: (started: number) => void;
}

/** A running in-process load. */
export interface InProcessLoad {
  hub: RunningHub;
  boards: FirmataBoard[];
  counters: FirmataCounters;
  /** Devices the hub shows online. */
  online(): number;
  stop(): Promise<void>;
}

/** The fleet-file entry of one Firmata load board: an Uno with an LM35 on A0 sampled at `rate`. */
export function loadUnoEntry(id: string, rate: number): DeviceInput {
  const periodMs = Math.max(20, Math.round(1000 / rate));
  return {
    id,
    board: "arduino-uno",
    link: { type: "serial", path: `/dev/ganglion-load/${id}` },
    sensors: [
      {
        id: LOAD_SENSOR,
        kind: "thermometer",
        unit: "°C",
        pin: "A0",
        periodMs,
        staleMs: Math.max(3 * periodMs, 10_000),
        range: [-40, 125],
      },
    ],
  };
}

/**
 * Starts a hub with N generated Unos and their board models. Devices are added through the running hub in batches
 * (`addDevice`), so the first boards report while the rest are still being added and progress can be shown.
 */
export async function startInProcessLoad(options: InProcessOptions): Promise<InProcessLoad> {
  const counters = newFirmataCounters();
  const boards: FirmataBoard[] = [];
  const byId = new Map<string, FirmataBoard>();
  for (let i = 0; i < options.devices; i++) {
    const board = new FirmataBoard(loadDeviceId(i, options.devices), i, counters);
    boards.push(board);
    byId.set(board.id, board);
  }
  const opener: SerialOpener = async (_link, device) => {
    const board = byId.get(device);
    if (board === undefined) throw new Error(`${device}: no simulated board of that name`);
    return board.open();
  };
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "ganglion-load-"));
  const config = FleetConfigSchema.parse({});
  const hub = await startHub({
    config,
    dataDir,
    mqttPort: 0,
    api: options.httpPort !== undefined,
    ...(options.httpPort === undefined ? {} : { httpPort: options.httpPort }),
    logger: options.logger,
    serialOpener: opener,
  });
  const stop = async () => {
    await hub.stop();
    for (const b of boards) b.close();
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const batch = options.batch ?? 500;
    for (let i = 0; i < boards.length; i += batch) {
      await Promise.all(
        boards.slice(i, i + batch).map((b) => hub.addDevice(loadUnoEntry(b.id, options.rate))),
      );
      options.onProgress?.(Math.min(boards.length, i + batch));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    hub,
    boards,
    counters,
    online: () => {
      let n = 0;
      for (const d of hub.devices()) if (d.status === "online") n++;
      return n;
    },
    stop,
  };
}
