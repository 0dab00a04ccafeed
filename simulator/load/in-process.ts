/**
 * The in-process load mode: one hub and N {@link FirmataBoard}s in the same process, the boards handed to the hub
 * through its `SerialOpener` exactly where serial ports would be. No sockets and no ptys: what is measured is the
 * hub's actors (link, board, sensor per device), Firmata parsing and the history store.
 *
 * Faults ({@link InProcessLoad.inject}, `--faulty 10%`): a board's cable pulled (its link backs off to `down` and
 * returns once plugged back in), or its LM35 stuck or noisy (the sensor goes `faulty`, and `ok` once cleared).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { MAX_SERIAL_HEARTBEAT_MS } from "../../hub/config/schema.ts";
import { type DeviceInput, FleetConfigSchema } from "../../hub/config.ts";
import type { SerialOpener } from "../../hub/context.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { BoardClock } from "./board-clock.ts";
import { type AnalogFault, FirmataBoard, type FirmataCounters, newFirmataCounters } from "./firmata-board.ts";
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

/** A physical fault of a load board. */
export type LoadFaultKind = "unplug" | AnalogFault;
export const LOAD_FAULT_KINDS: readonly LoadFaultKind[] = ["unplug", "stuck", "noise"];

/** A running in-process load. */
export interface InProcessLoad {
  hub: RunningHub;
  boards: FirmataBoard[];
  counters: FirmataCounters;
  /** Devices the hub shows online. */
  online(): number;
  /** Readings the hub has committed to its history since it started. */
  stored(): number;
  /** Devices by the hub's status. */
  statuses(): { online: number; offline: number; down: number };
  /** Injects a fault on one board; returns its undo (plug the cable back in, free the pin). */
  inject(board: FirmataBoard, kind: LoadFaultKind): () => void;
  /**
   * Keeps about `fraction` of the boards under a fault: every `everyMs` the faulty set is cleared and a fresh random
   * one picked, its kinds taking turns (unplug, stuck, noise). Returns a stop function that clears them all.
   */
  chaos(fraction: number, options?: { everyMs?: number; random?: () => number }): () => void;
  /** Faults in place now, by kind. */
  activeFaults(): Record<LoadFaultKind, number>;
  stop(): Promise<void>;
}

/**
 * The heartbeat period of a load board reporting every `periodMs`: the default 1 s up to rate 1, one heartbeat per
 * reading below it (up to the firmware's 16383 ms), so a slow board costs the hub a fraction of a frame a second
 * instead of a heartbeat every second. Silence is still noticed after 3 of them.
 */
export function loadHeartbeatMs(periodMs: number): number {
  return Math.min(MAX_SERIAL_HEARTBEAT_MS, Math.max(1000, periodMs));
}

/**
 * V8 heap an in-process board takes at its peak (hub actors, firmata-io, fleet state, the model): ~27 KB after GC
 * at 100k boards (Node 20), and the collector needs room above that.
 */
export const HEAP_PER_BOARD_BYTES = 40 * 1024;

/**
 * The V8 heap limit (MB, whole GB) `devices` boards need with a quarter to spare (a heap near its limit spends its
 * time collecting), or `null` when this process's limit already fits them.
 */
export function heapNeededMb(devices: number, heapLimitBytes: number): number | null {
  const need = devices * HEAP_PER_BOARD_BYTES * 1.25;
  if (need <= heapLimitBytes) return null;
  return Math.ceil(need / 2 ** 30) * 1024;
}

/**
 * What to tell the user when `devices` boards will not fit this process's heap limit, or `null` when they will.
 * (`ganglion simulate --in-process` relaunches itself with the heap it needs when the machine has the memory.)
 */
export function heapAdvice(devices: number, heapLimitBytes: number): string | null {
  const mb = heapNeededMb(devices, heapLimitBytes);
  if (mb === null) return null;
  const need = devices * HEAP_PER_BOARD_BYTES;
  return `${devices} boards take ~${(need / 2 ** 30).toFixed(1)} GB of V8 heap and this process may use ${(heapLimitBytes / 2 ** 30).toFixed(1)} GB; run it with NODE_OPTIONS=--max-old-space-size=${mb}`;
}

/** The fleet-file entry of one Firmata load board: an Uno with an LM35 on A0 sampled at `rate`. */
export function loadUnoEntry(id: string, rate: number): DeviceInput {
  const periodMs = Math.max(20, Math.round(1000 / rate));
  return {
    id,
    board: "arduino-uno",
    link: { type: "serial", path: `/dev/ganglion-load/${id}` },
    heartbeatMs: loadHeartbeatMs(periodMs),
    sensors: [
      {
        id: LOAD_SENSOR,
        kind: "thermometer",
        unit: "°C",
        pin: "A0",
        periodMs,
        staleMs: Math.max(3 * periodMs, 10_000),
        range: [-40, 125],
        // So the physical faults show: the model moves every sample (a frozen voltage is a flat line after ten
        // periods, at least 5 s) and by under 3 °C a period (noise jumps by tens).
        flatLineMs: Math.max(10 * periodMs, 5000),
        maxRatePerS: (10 * 1000) / periodMs,
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
  const clock = new BoardClock();
  for (let i = 0; i < options.devices; i++) {
    const board = new FirmataBoard(loadDeviceId(i, options.devices), i, counters, clock);
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
  const active = new Map<FirmataBoard, LoadFaultKind>();
  let stopChaos: (() => void) | null = null;
  const inject = (board: FirmataBoard, kind: LoadFaultKind) => {
    if (active.has(board)) throw new Error(`${board.id} already has a ${active.get(board)} fault`);
    active.set(board, kind);
    if (kind === "unplug") board.unplug();
    else board.setAnalogFault(kind);
    return () => {
      if (active.get(board) !== kind) return;
      active.delete(board);
      if (kind === "unplug") board.plug();
      else board.setAnalogFault(null);
    };
  };
  const chaos = (fraction: number, opts: { everyMs?: number; random?: () => number } = {}) => {
    stopChaos?.();
    const random = opts.random ?? Math.random;
    const count = Math.min(boards.length, Math.round(boards.length * fraction));
    let undos: (() => void)[] = [];
    const round = () => {
      for (const undo of undos) undo();
      undos = [];
      // A partial Fisher-Yates over a copy of the indices: `count` distinct boards.
      const order = Array.from(boards.keys());
      for (let i = 0; i < count; i++) {
        const j = i + Math.floor(random() * (order.length - i));
        const pick = order[j] as number;
        order[j] = order[i] as number;
        undos.push(
          inject(
            boards[pick] as FirmataBoard,
            LOAD_FAULT_KINDS[i % LOAD_FAULT_KINDS.length] as LoadFaultKind,
          ),
        );
      }
    };
    round();
    const timer = setInterval(round, opts.everyMs ?? 30_000);
    const stopIt = () => {
      clearInterval(timer);
      for (const undo of undos) undo();
      undos = [];
      if (stopChaos === stopIt) stopChaos = null;
    };
    stopChaos = stopIt;
    return stopIt;
  };
  const stop = async () => {
    stopChaos?.();
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
    stored: () => hub.context.store.stats.inserted,
    // From the fleet state by id: hub.devices() builds a view of every device, too much once a second at 100k.
    online: () => {
      let n = 0;
      for (const b of boards) if (hub.context.state.status(b.id) === "online") n++;
      return n;
    },
    statuses: () => {
      const n = { online: 0, offline: 0, down: 0 };
      for (const b of boards) {
        const status = hub.context.state.status(b.id);
        if (status !== undefined) n[status]++;
      }
      return n;
    },
    inject,
    chaos,
    activeFaults: () => {
      const n: Record<LoadFaultKind, number> = { unplug: 0, stuck: 0, noise: 0 };
      for (const kind of active.values()) n[kind]++;
      return n;
    },
    stop,
  };
}
