/**
 * The wire shapes the page reads, as DESIGN.md §2 fixes them ("Shapes other programs rely on"). Declared here
 * rather than imported from the hub so the page's build never pulls in Node code; the e2e test keeps them honest.
 */

export type NodeStatus = "running" | "restarting" | "down";

export interface TreeNode {
  id: string;
  path: string;
  kind: "supervisor" | "worker";
  strategy?: string;
  pid: string | null;
  status: NodeStatus;
  restarts: number;
  lastExit?: { reason: string; ts: number };
  intensity?: { max: number; periodMs: number; recent: number };
  children?: TreeNode[];
}

export type Health = "ok" | "faulty" | "restarting" | "down";
export type ReadingValue = number | boolean | string;

export interface SensorView {
  id: string;
  kind: string;
  unit?: string;
  health: Health;
  value: ReadingValue | null;
  ts: number | null;
}

export interface DeviceView {
  id: string;
  board: string;
  link: "serial" | "mqtt";
  status: "online" | "offline" | "down";
  reason?: string;
  sensors: SensorView[];
}

export interface HubEvent {
  type: string;
  path: string;
  ts: number;
  reason?: string;
  restarts?: number;
  fault?: unknown;
  [extra: string]: unknown;
}

export interface StoredReading {
  ts: number;
  value: ReadingValue;
  seq: number | null;
}

/** Fault kinds and the layer each is injected at (hub/faults/contract.ts, DESIGN.md §3). */
export const FAULT_KINDS = {
  stuck: "sensor",
  noise: "sensor",
  "out-of-range": "sensor",
  nan: "sensor",
  throws: "sensor",
  hang: "sensor",
  disconnect: "device",
  garbage: "device",
  slow: "device",
  reboot: "device",
  "power-loss": "device",
  partition: "device",
  "broker-restart": "hub",
} as const;

export type FaultKind = keyof typeof FAULT_KINDS;

/** An active fault, as `GET /api/faults` and the `/api/live` snapshot list it (`POST /api/faults` answers one). */
export interface FaultView {
  /** `f1`, `f2`, …: unique for the hub's lifetime; `DELETE /api/faults/:id` clears it. */
  id: string;
  kind: FaultKind;
  /** Absent for faults of the hub itself (`broker-restart`). */
  device?: string;
  /** Present for sensor kinds. */
  sensor?: string;
  durationMs?: number;
  /** Epoch ms. */
  startedAt: number;
  /** Epoch ms when it clears by itself, if it has a duration. */
  until?: number;
}

/** Every message `/api/live` sends. */
export type LiveMessage =
  | { type: "snapshot"; tree: TreeNode; devices: DeviceView[]; faults: FaultView[] }
  | { type: "node"; node: Omit<TreeNode, "children"> }
  | { type: "event"; event: HubEvent }
  | { type: "reading"; device: string; sensor: string; value: ReadingValue; ts: number; health: Health }
  | { type: "device"; device: DeviceView };

/** Event types of DESIGN.md §2, for the timeline's filter (others that arrive are added as seen). */
export const EVENT_TYPES = [
  "started",
  "exited",
  "restarted",
  "gave_up",
  "backoff",
  "online",
  "offline",
  "board_reset",
  "fault_injected",
  "fault_cleared",
] as const;

/** Actuator kinds the cards offer controls for, with their two ops (DESIGN.md §2: ops by actuator kind). */
export const ACTUATOR_OPS: Record<string, { on: string; off: string; onLabel: string; offLabel: string }> = {
  led: { on: "on", off: "off", onLabel: "On", offLabel: "Off" },
  relay: { on: "close", off: "open", onLabel: "Close", offLabel: "Open" },
};

export type FaultLayer = (typeof FAULT_KINDS)[FaultKind];

/** The body of `POST /api/faults`. */
export type FaultRequestBody = Pick<FaultView, "kind" | "device" | "sensor" | "durationMs">;

/** A shipped scenario, as `GET /api/scenarios` lists it. */
export interface ScenarioSummary {
  name: string;
  description: string;
  durationMs: number;
  /** Whether it is running now. */
  running?: boolean;
  /** The outcome of its last run on this hub. */
  last?: { ok: boolean; broken: string[]; finishedAt: number };
}
