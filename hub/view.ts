/**
 * The contract between the hub's core (supervision tree, fleet, history) and its faces (HTTP API, `/api/live`,
 * CLI). The API only ever talks to a {@link HubView}; shapes follow DESIGN.md §2 ("Shapes other programs rely on").
 */
import type { FaultView } from "./faults/contract.ts";
import type { TreeNode } from "./runtime/index.ts";
import type { EventQuery, HubEvent, ReadingValue, StoredReading, TelemetryQuery } from "./store.ts";

/** Health of a sensor or actuator, as published on `state/<sensor>`. */
export type Health = "ok" | "faulty" | "restarting" | "down";

/** One sensor or actuator of a device. */
export interface SensorView {
  id: string;
  kind: string;
  unit?: string;
  health: Health;
  value: ReadingValue | null;
  ts: number | null;
}

/** A device as `GET /api/devices` returns it. */
export interface DeviceView {
  id: string;
  board: string;
  link: "serial" | "mqtt";
  status: "online" | "offline" | "down";
  reason?: string;
  sensors: SensorView[];
}

/** A command for an actuator (`POST /api/devices/:id/commands`). */
export interface CommandRequest {
  target: string;
  op: string;
  args?: Record<string, unknown>;
}

/** An active fault (hub/faults/contract.ts). */
export type { FaultView };

/** What `/api/live` streams after its snapshot. */
export type LiveUpdate =
  | { type: "node"; node: Omit<TreeNode, "children"> }
  | { type: "event"; event: HubEvent }
  | { type: "reading"; device: string; sensor: string; value: ReadingValue; ts: number; health: Health }
  | { type: "device"; device: DeviceView };

/** An error the API turns into `{"error": {"code", "message"}}` with `status`. */
export class HubApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 503 | 504,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "HubApiError";
  }
}

/** A scenario as `GET /api/scenarios` lists it. */
export interface ScenarioListing {
  name: string;
  description: string;
  durationMs: number;
  /** Whether it is running now. */
  running: boolean;
  /** The outcome of its last run on this hub, if any. */
  last?: { ok: boolean; broken: string[]; finishedAt: number };
}

/** Runs scenarios for the API; the simulator provides it (simulator/scenarios/service.ts). */
export interface ScenarioControl {
  list(): ScenarioListing[];
  /** 404 unknown name, 409 a run is going. */
  start(name: string): { name: string; durationMs: number };
}

/** The hub as its faces see it. Methods that can fail for the caller's reasons throw {@link HubApiError}. */
export interface HubView {
  /** Epoch ms when the hub started. */
  readonly startedAt: number;
  /** The root of the live supervision tree (`hub`). */
  tree(): TreeNode;
  devices(): DeviceView[];
  device(id: string): DeviceView | undefined;
  /** Oldest first; `limit` default 1000, max 10000. 404 for an unknown device. */
  telemetry(query: TelemetryQuery): StoredReading[];
  /** Oldest first. */
  events(query: EventQuery): HubEvent[];
  /** Resolves once the board confirmed; 400 bad op/args, 404 unknown device/target, 503 offline, 504 no answer. */
  command(deviceId: string, command: CommandRequest): Promise<{ id: string; ok: true }>;
  /** Adds a device on the running hub (same schema as a fleet file entry); 400 invalid, 409 id taken. */
  addDevice(input: unknown): Promise<DeviceView>;
  /** Removes a device; 404 unknown. */
  removeDevice(id: string): Promise<void>;
  /** Active faults, oldest first (`GET /api/faults`, the `/api/live` snapshot). */
  faults(): FaultView[];
  /**
   * Injects a fault (`POST /api/faults`, body `{"kind", "device"?, "sensor"?, "durationMs"?}`): 400 `bad-fault`,
   * 404 unknown device/sensor, 409 `not-simulated` for a physical fault on a real board or `fault_active`.
   */
  injectFault(request: unknown): Promise<FaultView>;
  /** Clears an active fault, running its undo (`DELETE /api/faults/:id`); 404 unknown id. */
  clearFault(id: string): Promise<void>;
  /** Scenarios this hub can run (`GET /api/scenarios`): the shipped ones in simulator mode, else none. */
  scenarios(): ScenarioListing[];
  /**
   * Starts a scenario and returns at once (`POST /api/scenarios/:name/run`, 202); its progress arrives as
   * `scenario` events. 404 unknown name (or no simulated fleet), 409 one already running.
   */
  runScenario(name: string): { name: string; durationMs: number };
  /** Live updates for `/api/live`; returns the function that unsubscribes. */
  subscribe(listener: (update: LiveUpdate) => void): () => void;
}
