/**
 * The wire shapes the page reads (DESIGN.md §2, "Shapes other programs rely on"), taken from the hub's own modules
 * so there is one source of truth:
 * - hub/faults/contract.ts has no imports and no Node code, so its values (FAULT_KINDS) are bundled as they are;
 * - everything else is `import type` from hub/view.ts, hub/store.ts and hub/runtime: erased by esbuild, so the bundle
 *   never pulls in a Node module (the build would fail on one: esbuild targets the browser).
 * Only what is the page's own (the event types its filter offers, the actuator ops its cards show) is declared here.
 */
import { FAULT_KINDS, type FaultKind } from "../../faults/contract.ts";
import type { TreeNode } from "../../runtime/index.ts";
import type { HubEvent, ReadingValue, StoredReading } from "../../store.ts";
import type { DeviceView, FaultView, LiveUpdate } from "../../view.ts";

export type { FaultRequest, FaultView } from "../../faults/contract.ts";
export type { ChildStatus as NodeStatus } from "../../runtime/index.ts";
export type { DeviceView, Health, ScenarioListing, SensorView } from "../../view.ts";
export type { FaultKind, HubEvent, ReadingValue, StoredReading, TreeNode };
export { FAULT_KINDS };

/** Every message `/api/live` sends: the snapshot (hub/live.ts), then the hub's {@link LiveUpdate}s. */
export type LiveMessage =
  | { type: "snapshot"; tree: TreeNode; devices: DeviceView[]; faults: FaultView[] }
  | LiveUpdate;

/** The layer a fault kind is injected at: `sensor`, `device` or `hub`. */
export type FaultLayer = (typeof FAULT_KINDS)[FaultKind];

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
