/**
 * The Events service: turns the runtime's supervision events under `hub/` and the devices' own events into
 * durable history (SQLite), `ganglion/hub/events` on MQTT and `/api/live` updates (events, and the tree nodes they
 * changed, coalesced so a burst of restarts costs one tree snapshot).
 */
import type { HubContext } from "./context.ts";
import {
  type ChildSpec,
  findNode,
  getClock,
  inspectTree,
  onRuntimeEvent,
  type Pid,
  type RuntimeEvent,
  send,
  startServer,
  type TimerHandle,
} from "./runtime/index.ts";
import type { HubEvent } from "./store.ts";

/** Where the Events process finds the root of the tree (set once the hub supervisor runs). */
export interface TreeRoot {
  pid: Pid | null;
}

interface State {
  dirtyPaths: Set<string>;
  flushTimer: TimerHandle | null;
  self: Pid;
}

const FLUSH_NODES = "flush-nodes";
const NODE_COALESCE_MS = 20;

function toHubEvent(e: RuntimeEvent): HubEvent {
  const event: HubEvent = { type: e.type, path: e.path, ts: e.ts };
  if (e.reason !== undefined) event.reason = e.reason;
  if (e.restarts !== undefined) event.restarts = e.restarts;
  if (e.delayMs !== undefined) event.delayMs = e.delayMs;
  if (e.attempt !== undefined) event.attempt = e.attempt;
  return event;
}

/** Records one event everywhere it goes. */
export function recordEvent(hub: HubContext, event: HubEvent): void {
  hub.store.appendEvent(event);
  hub.bus.publish(`${hub.prefix}/hub/events`, JSON.stringify(event));
  if (hub.state.listening) hub.state.announce({ type: "event", event });
}

const DEVICE_PATH = /^hub\/fleet\/([a-z0-9][a-z0-9-]{0,63})$/;

/** A device whose supervisor is backing off is `down` with the reason; once restarted it waits for its link. */
function trackDeviceSupervision(hub: HubContext, e: RuntimeEvent): void {
  const device = DEVICE_PATH.exec(e.path)?.[1];
  if (device === undefined) return;
  if (e.type === "backoff") {
    const reason = `restarting in ${e.delayMs} ms after: ${e.reason ?? "exit"}`;
    if (hub.state.setStatus(device, "down", reason)) {
      hub.store.appendStatus({ device, status: "down", ts: e.ts, reason });
    }
  } else if (e.type === "restarted" && hub.state.status(device) === "down") {
    hub.state.setStatus(device, "offline", "restarted; waiting for the device");
  }
}

/** The child spec of the Events service. */
export function eventsChild(hub: HubContext, root: TreeRoot): ChildSpec {
  return {
    id: "events",
    start: (ctx) =>
      startServer(
        {
          init: (_: undefined, self) => {
            const pid = self.pid;
            const off = onRuntimeEvent((e) => {
              if (e.path === "hub" || e.path.startsWith("hub/")) send(pid, e);
            });
            // Unsubscribe however the process ends, killed included.
            self.onExit(off);
            return { dirtyPaths: new Set<string>(), flushTimer: null, self: pid } as State;
          },
          handleInfo: (msg: unknown, state: State): State => {
            if (msg === FLUSH_NODES) {
              state.flushTimer = null;
              // Nobody listens: no tree to build (at start-up every process's `started` lands here).
              const tree = root.pid === null || !hub.state.listening ? undefined : inspectTree(root.pid);
              if (tree !== undefined) {
                for (const path of state.dirtyPaths) {
                  const node = findNode(tree, path);
                  if (node !== undefined) {
                    const { children: _children, ...rest } = node;
                    hub.state.announce({ type: "node", node: rest });
                  }
                }
              }
              state.dirtyPaths.clear();
              return state;
            }
            const e = msg as RuntimeEvent;
            recordEvent(hub, toHubEvent(e));
            trackDeviceSupervision(hub, e);
            state.dirtyPaths.add(e.path);
            const parent = e.path.slice(0, e.path.lastIndexOf("/"));
            if (parent.length > 0) state.dirtyPaths.add(parent); // its restart budget changed
            if (state.flushTimer === null) {
              const self = state.self;
              state.flushTimer = getClock().setTimeout(() => send(self, FLUSH_NODES), NODE_COALESCE_MS);
            }
            return state;
          },
        },
        undefined,
        { link: ctx.parent, label: ctx.path },
      ),
  };
}
