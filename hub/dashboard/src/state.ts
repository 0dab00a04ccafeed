/**
 * The page's state, fed by `/api/live`. Each snapshot replaces it (the hub sends one on every connect and whenever
 * this client fell behind); updates between snapshots are applied in order. Messages are batched and applied once
 * per animation frame, so a fleet reporting at 1 Hz per sensor costs one render per frame, not one per reading.
 */
import { fetchEvents, fetchFaults, fetchTelemetry, fetchTree } from "./api.ts";
import type { ConnectionState } from "./live.ts";
import type {
  DeviceView,
  FaultView,
  Health,
  HubEvent,
  LiveMessage,
  ReadingValue,
  StoredReading,
  TreeNode,
} from "./types.ts";

/**
 * A sensor's recent numeric readings for its sparkline (booleans as 0/1), oldest first. Each update is a new Series
 * over the same arrays, appended in place: compare Series, not arrays.
 */
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
  /** The devices' ids, in order: a new array only when a device joins or leaves (not on every reading). */
  deviceIds: string[];
  /** Oldest first, at most {@link MAX_EVENTS}. */
  events: HubEvent[];
  /** Active faults: the snapshot's, kept current from `fault_injected` / `fault_cleared` events. */
  faults: FaultView[];
  /** The last {@link MAX_SCENARIO_EVENTS} `scenario` events (a run's progress lines), oldest first. */
  scenarioEvents: HubEvent[];
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
export const MAX_SCENARIO_EVENTS = 300;
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

/** Device id → position, per `deviceIds` array (which stays the same object while the fleet does). */
const indexes = new WeakMap<string[], Map<string, number>>();
function indexOf(ids: string[]): Map<string, number> {
  let index = indexes.get(ids);
  if (index === undefined) {
    index = new Map(ids.map((id, i) => [id, i]));
    indexes.set(ids, index);
  }
  return index;
}

/** The copy-on-write state of one batch of live messages (see {@link DashboardStore.flush}). */
class Batch {
  readonly s: DashboardState;
  private devicesOwned = false;
  private readonly ownedDevices = new Set<string>();
  private index: Map<string, number> | undefined;
  private seriesOwned = false;
  private eventsOwned = false;
  private flashesOwned = false;

  constructor(state: DashboardState) {
    this.s = { ...state };
  }

  result(): DashboardState {
    return this.s;
  }

  /** A snapshot: everything it carries replaces what the batch had. */
  replace(next: Partial<DashboardState>): void {
    Object.assign(this.s, next);
    this.syncIds();
    this.devicesOwned = this.seriesOwned = this.flashesOwned = false;
    this.ownedDevices.clear();
    this.index = undefined;
  }

  /** Keeps the same `deviceIds` array while the ids are the same. */
  private syncIds(): void {
    const ids = this.s.deviceIds;
    const devices = this.s.devices;
    if (ids.length === devices.length && devices.every((d, i) => d.id === ids[i])) return;
    this.s.deviceIds = devices.map((d) => d.id);
  }

  devicesChanged(): void {
    this.syncIds();
    this.devicesOwned = true;
    this.ownedDevices.clear();
    this.index = undefined;
  }

  private deviceIndex(id: string): number {
    this.index ??= indexOf(this.s.deviceIds);
    return this.index.get(id) ?? -1;
  }

  device(device: DeviceView): void {
    const i = this.deviceIndex(device.id);
    if (!this.devicesOwned) {
      this.s.devices = this.s.devices.slice();
      this.devicesOwned = true;
    }
    if (i < 0) {
      this.s.devices.push(device);
      this.syncIds();
      this.index = undefined;
    } else this.s.devices[i] = device;
    this.ownedDevices.delete(device.id);
  }

  reading(device: string, sensor: string, value: ReadingValue, ts: number, health: Health): void {
    const i = this.deviceIndex(device);
    if (i >= 0) {
      if (!this.devicesOwned) {
        this.s.devices = this.s.devices.slice();
        this.devicesOwned = true;
      }
      let d = this.s.devices[i]!;
      if (!this.ownedDevices.has(device)) {
        d = { ...d, sensors: d.sensors.slice() };
        this.s.devices[i] = d;
        this.ownedDevices.add(device);
      }
      const j = d.sensors.findIndex((p) => p.id === sensor);
      if (j >= 0) d.sensors[j] = { ...d.sensors[j]!, value, ts, health };
    }
    const n = numeric(value);
    if (n === undefined) return;
    const key = seriesKey(device, sensor);
    const old = this.s.series[key];
    if (old !== undefined && old.ts.length > 0 && ts <= old.ts[old.ts.length - 1]!) return;
    // The arrays grow in place (a thousand readings a second would otherwise copy 480 numbers each); the Series
    // object is new, which is what tells a card and its sparkline that it moved.
    let next: Series;
    if (old === undefined) next = { ts: [ts], values: [n] };
    else {
      old.ts.push(ts);
      old.values.push(n);
      if (old.ts.length > SERIES_POINTS) {
        old.ts.shift();
        old.values.shift();
      }
      next = { ts: old.ts, values: old.values };
    }
    if (!this.seriesOwned) {
      this.s.series = { ...this.s.series };
      this.seriesOwned = true;
    }
    this.s.series[key] = next;
  }

  pushEvent(e: HubEvent): void {
    if (!this.eventsOwned) {
      this.s.events = this.s.events.slice(-(MAX_EVENTS - 1));
      this.eventsOwned = true;
    } else if (this.s.events.length >= MAX_EVENTS) this.s.events.shift();
    this.s.events.push(e);
  }

  flash(path: string): void {
    if (!this.flashesOwned) {
      this.s.flashes = { ...this.s.flashes };
      this.flashesOwned = true;
    }
    this.s.flashes[path] = { count: (this.s.flashes[path]?.count ?? 0) + 1, at: Date.now() };
  }
}

type Listener = () => void;

export class DashboardStore {
  private state: DashboardState = {
    connection: { state: "connecting", attempt: 0 },
    tree: null,
    devices: [],
    deviceIds: [],
    events: [],
    faults: [],
    scenarioEvents: [],
    flashes: {},
    series: {},
    epoch: 0,
    lastMessageAt: 0,
  };
  private readonly listeners = new Set<Listener>();
  private queue: LiveMessage[] = [];
  private frame: number | undefined;
  private treeRefetch: ReturnType<typeof setTimeout> | undefined;
  private faultRefetch: ReturnType<typeof setTimeout> | undefined;
  /** Sensors whose history was read since the last snapshot (a card scrolled back into view does not read it again). */
  private readonly historyLoaded = new Set<string>();
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

  /**
   * Applies the queued messages. A batch copies each thing it changes once (the device list, a device, the series
   * table, the event list), not once per message: at 1,000 readings a second a frame holds ~20 of them, and a copy
   * of a 1,000-device list per reading is what would make the page stutter.
   */
  private flush(): void {
    this.frame = undefined;
    const batch = this.queue;
    this.queue = [];
    const b = new Batch(this.state);
    for (const msg of batch) this.apply(b, msg);
    this.state = { ...b.result(), lastMessageAt: performance.now() };
    this.stats.batches++;
    this.stats.messages += batch.length;
    for (const l of this.listeners) l();
  }

  /** Counters for the benchmark: frames that applied messages, and how many messages they held. */
  readonly stats = { batches: 0, messages: 0 };

  private apply(b: Batch, msg: LiveMessage): void {
    switch (msg.type) {
      case "snapshot":
        this.liveEvents = [];
        this.historyLoaded.clear();
        void this.loadEvents(b.s.epoch + 1);
        b.replace({
          tree: msg.tree,
          devices: msg.devices,
          faults: Array.isArray(msg.faults) ? msg.faults : [],
          flashes: {},
          series: {},
          epoch: b.s.epoch + 1,
        });
        return;
      case "node": {
        const s = b.s;
        const old = findNode(s.tree, msg.node.path);
        const merged = s.tree === null ? undefined : mergeNode(s.tree, msg.node.path.split("/"), msg.node);
        if (merged === undefined) {
          this.refetchTree();
          return;
        }
        b.s.tree = merged;
        if (old !== undefined && msg.node.restarts > old.restarts) {
          b.flash(msg.node.path);
        }
        return;
      }
      case "event": {
        const e = msg.event;
        this.liveEvents?.push(e);
        b.pushEvent(e);
        if (e.type === "offline" && e.reason === "removed") {
          const id = e.path.split("/")[2];
          b.s.devices = b.s.devices.filter((d) => d.id !== id);
          b.devicesChanged();
          this.refetchTree();
        } else if (e.type === "started" && findNode(b.s.tree, e.path) === undefined) {
          this.refetchTree();
        } else if (e.type === "fault_injected" || e.type === "fault_cleared") {
          const fault = e.fault as FaultView | undefined;
          if (typeof fault?.id !== "string") this.refetchFaults();
          else if (e.type === "fault_cleared") b.s.faults = b.s.faults.filter((f) => f.id !== fault.id);
          else if (!b.s.faults.some((f) => f.id === fault.id)) b.s.faults = [...b.s.faults, fault];
        } else if (e.type === "scenario") {
          b.s.scenarioEvents = [...b.s.scenarioEvents.slice(1 - MAX_SCENARIO_EVENTS), e];
        }
        return;
      }
      case "reading": {
        b.reading(msg.device, msg.sensor, msg.value, msg.ts, msg.health);
        return;
      }
      case "device": {
        b.device(msg.device);
        return;
      }
      default:
        return;
    }
  }

  /** Reads the active faults again (an event about a fault without the fault in it). */
  private refetchFaults(): void {
    if (this.faultRefetch !== undefined) return;
    this.faultRefetch = setTimeout(() => {
      this.faultRefetch = undefined;
      fetchFaults()
        .then((faults) => this.set({ faults }))
        .catch(() => undefined);
    }, 100);
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
    const key = seriesKey(device, sensor);
    if (this.historyLoaded.has(key)) return;
    this.historyLoaded.add(key);
    let rows: StoredReading[];
    try {
      rows = await fetchTelemetry(device, sensor, HISTORY_POINTS);
    } catch (err) {
      if (this.state.epoch === epoch) this.historyLoaded.delete(key);
      throw err;
    }
    if (this.state.epoch !== epoch) return;
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
