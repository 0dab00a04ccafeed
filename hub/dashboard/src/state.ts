/**
 * The page's state, fed by `/api/live`. Each snapshot replaces it (the hub sends one on every connect and whenever
 * this client fell behind); updates between snapshots are applied in order. Messages are batched and applied once
 * per animation frame, so a fleet reporting at 1 Hz per sensor costs one render per frame, not one per reading.
 */
import { fetchEvents, fetchTelemetry, fetchTree } from "./api.ts";
import type { ConnectionState } from "./live.ts";
import type { DeviceView, HubEvent, LiveMessage, ReadingValue, TreeNode } from "./types.ts";

/** A sensor's recent numeric readings for its sparkline (booleans as 0/1), oldest first. */
export interface Series {
  ts: number[];
  values: number[];
}

export interface Flash {
  count: number;
  /** Date.now() of the last one. */
  at: number;
}

/** How long a restart flashes its row (the CSS animation's length). */
export const FLASH_MS = 1600;

export interface DashboardState {
  connection: ConnectionState;
  tree: TreeNode | null;
  devices: DeviceView[];
  /** Oldest first, at most {@link MAX_EVENTS}. */
  events: HubEvent[];
  faults: unknown[];
  /** Per node path, the restarts this page saw happen and when the last one arrived (drives the flash). */
  flashes: Record<string, Flash>;
  /** Per `device/sensor`. */
  series: Record<string, Series>;
  /** Counts snapshots: a new one means history must be read again. */
  epoch: number;
  /** When the last message arrived (performance.now()), for latency measurements. */
  lastMessageAt: number;
}

export const MAX_EVENTS = 1000;
export const EVENTS_ON_LOAD = 200;
export const SERIES_POINTS = 240;
export const HISTORY_POINTS = 120;

export const seriesKey = (device: string, sensor: string) => `${device}/${sensor}`;

function numeric(value: ReadingValue | null): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "boolean") return value ? 1 : 0;
  return undefined;
}

const eventKey = (e: HubEvent) => `${e.ts}|${e.type}|${e.path}|${e.reason ?? ""}`;

/** The path of a node's parent, or "" for the root. */
export const parentPath = (path: string) => path.slice(0, Math.max(0, path.lastIndexOf("/")));

/** Finds a node by its path (`hub/fleet/tank-pi/sensors/water-temp`). */
export function findNode(root: TreeNode | null, path: string): TreeNode | undefined {
  if (root === null) return undefined;
  const segments = path.split("/");
  if (segments[0] !== root.id) return undefined;
  let node: TreeNode | undefined = root;
  for (const id of segments.slice(1)) {
    node = node?.children?.find((c) => c.id === id);
    if (node === undefined) return undefined;
  }
  return node;
}

/** Replaces the fields of the node at `path` (children kept), copying only the nodes on the way. */
function mergeNode(
  root: TreeNode,
  segments: string[],
  update: Omit<TreeNode, "children">,
): TreeNode | undefined {
  if (segments.length === 1) return { ...update, ...(root.children ? { children: root.children } : {}) };
  const [, next, ...rest] = segments;
  const children = root.children ?? [];
  const index = children.findIndex((c) => c.id === next);
  if (index < 0) return undefined;
  const merged = mergeNode(children[index]!, [next!, ...rest], update);
  if (merged === undefined) return undefined;
  const copy = children.slice();
  copy[index] = merged;
  return { ...root, children: copy };
}

type Listener = () => void;

export class DashboardStore {
  private state: DashboardState = {
    connection: { state: "connecting", attempt: 0 },
    tree: null,
    devices: [],
    events: [],
    faults: [],
    flashes: {},
    series: {},
    epoch: 0,
    lastMessageAt: 0,
  };
  private readonly listeners = new Set<Listener>();
  private queue: LiveMessage[] = [];
  private frame: number | undefined;
  private treeRefetch: ReturnType<typeof setTimeout> | undefined;
  /** Events received live while the history for the last snapshot is being read (merged into it, then dropped). */
  private liveEvents: HubEvent[] | undefined;

  get(): DashboardState {
    return this.state;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(next: Partial<DashboardState>): void {
    this.state = { ...this.state, ...next };
    for (const l of this.listeners) l();
  }

  setConnection(connection: ConnectionState): void {
    this.set({ connection });
  }

  /** Queues a live message; the queue is applied on the next animation frame. */
  receive(msg: LiveMessage): void {
    this.queue.push(msg);
    this.frame ??= requestAnimationFrame(() => this.flush());
  }

  private flush(): void {
    this.frame = undefined;
    const batch = this.queue;
    this.queue = [];
    let s = this.state;
    for (const msg of batch) s = this.apply(s, msg);
    this.state = { ...s, lastMessageAt: performance.now() };
    for (const l of this.listeners) l();
  }

  private apply(s: DashboardState, msg: LiveMessage): DashboardState {
    switch (msg.type) {
      case "snapshot":
        this.liveEvents = [];
        void this.loadEvents(s.epoch + 1);
        return {
          ...s,
          tree: msg.tree,
          devices: msg.devices,
          faults: msg.faults,
          flashes: {},
          series: {},
          epoch: s.epoch + 1,
        };
      case "node": {
        const old = findNode(s.tree, msg.node.path);
        const merged = s.tree === null ? undefined : mergeNode(s.tree, msg.node.path.split("/"), msg.node);
        if (merged === undefined) {
          this.refetchTree();
          return s;
        }
        const flashes =
          old !== undefined && msg.node.restarts > old.restarts
            ? {
                ...s.flashes,
                [msg.node.path]: { count: (s.flashes[msg.node.path]?.count ?? 0) + 1, at: Date.now() },
              }
            : s.flashes;
        return { ...s, tree: merged, flashes };
      }
      case "event": {
        this.liveEvents?.push(msg.event);
        const events = s.events.length >= MAX_EVENTS ? s.events.slice(1 - MAX_EVENTS) : s.events.slice();
        events.push(msg.event);
        let { devices } = s;
        if (msg.event.type === "offline" && msg.event.reason === "removed") {
          const id = msg.event.path.split("/")[2];
          devices = devices.filter((d) => d.id !== id);
          this.refetchTree();
        } else if (msg.event.type === "started" && findNode(s.tree, msg.event.path) === undefined) {
          this.refetchTree();
        }
        return { ...s, events, devices };
      }
      case "reading": {
        const devices = s.devices.map((d) =>
          d.id !== msg.device
            ? d
            : {
                ...d,
                sensors: d.sensors.map((p) =>
                  p.id === msg.sensor ? { ...p, value: msg.value, ts: msg.ts, health: msg.health } : p,
                ),
              },
        );
        const n = numeric(msg.value);
        const key = seriesKey(msg.device, msg.sensor);
        const old = s.series[key];
        if (
          n === undefined ||
          (old !== undefined && old.ts.length > 0 && msg.ts <= old.ts[old.ts.length - 1]!)
        ) {
          return { ...s, devices };
        }
        const ts = old === undefined ? [] : old.ts.slice(-(SERIES_POINTS - 1));
        const values = old === undefined ? [] : old.values.slice(-(SERIES_POINTS - 1));
        ts.push(msg.ts);
        values.push(n);
        return { ...s, devices, series: { ...s.series, [key]: { ts, values } } };
      }
      case "device": {
        const index = s.devices.findIndex((d) => d.id === msg.device.id);
        const devices = s.devices.slice();
        if (index < 0) devices.push(msg.device);
        else devices[index] = msg.device;
        return { ...s, devices };
      }
      default:
        return s;
    }
  }

  /** The tree changed shape (a device added or removed): read it whole again, at most every 300 ms. */
  private refetchTree(): void {
    if (this.treeRefetch !== undefined) return;
    this.treeRefetch = setTimeout(() => {
      this.treeRefetch = undefined;
      fetchTree()
        .then((tree) => this.set({ tree }))
        .catch(() => undefined);
    }, 300);
  }

  /** Reads the recent events for a snapshot and merges the live ones that came meanwhile. */
  private async loadEvents(epoch: number): Promise<void> {
    let history: HubEvent[];
    try {
      history = await fetchEvents(EVENTS_ON_LOAD);
    } catch {
      if (this.state.epoch === epoch) this.liveEvents = undefined;
      return;
    }
    if (this.state.epoch !== epoch) return;
    const seen = new Set(history.map(eventKey));
    const live = this.liveEvents ?? [];
    this.liveEvents = undefined;
    const events = history.concat(live.filter((e) => !seen.has(eventKey(e))));
    events.sort((a, b) => a.ts - b.ts);
    this.set({ events: events.slice(-MAX_EVENTS) });
  }

  /** Reads a sensor's history for its sparkline, keeping live readings newer than it. */
  async loadHistory(device: string, sensor: string): Promise<void> {
    const epoch = this.state.epoch;
    const rows = await fetchTelemetry(device, sensor, HISTORY_POINTS);
    if (this.state.epoch !== epoch) return;
    const key = seriesKey(device, sensor);
    const ts: number[] = [];
    const values: number[] = [];
    for (const row of rows) {
      const n = numeric(row.value);
      if (n === undefined) continue;
      ts.push(row.ts);
      values.push(n);
    }
    const live = this.state.series[key];
    const last = ts.length > 0 ? ts[ts.length - 1]! : Number.NEGATIVE_INFINITY;
    if (live !== undefined) {
      for (let i = 0; i < live.ts.length; i++) {
        if (live.ts[i]! > last) {
          ts.push(live.ts[i]!);
          values.push(live.values[i]!);
        }
      }
    }
    this.set({
      series: {
        ...this.state.series,
        [key]: { ts: ts.slice(-SERIES_POINTS), values: values.slice(-SERIES_POINTS) },
      },
    });
  }
}
