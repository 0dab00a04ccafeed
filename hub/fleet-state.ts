/**
 * The fleet's live view model: each device's status and each part's latest value and health, kept by the device
 * actors and read by the API. Every change is also announced to subscribers (`/api/live`). It is the hub's
 * in-memory table; the actors own the truth and write here, nothing else does.
 */
import type { DeviceConfig } from "./config.ts";
import type { ReadingValue } from "./store.ts";
import type { DeviceView, Health, LiveUpdate, SensorView } from "./view.ts";

interface PartState extends SensorView {
  actuator: boolean;
}

interface DeviceState {
  config: DeviceConfig;
  status: DeviceView["status"];
  reason: string | undefined;
  /** In config order; an array, not a Map: a device has a few parts, and 10k devices would hold 10k Maps. */
  parts: PartState[];
}

/** Live device and part state, with change notifications. */
export class FleetState {
  private readonly devices = new Map<string, DeviceState>();
  private readonly listeners = new Set<(update: LiveUpdate) => void>();

  /** Subscribes to changes; returns the unsubscribe function. */
  subscribe(listener: (update: LiveUpdate) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * True while someone listens (`/api/live`). Without listeners updates are not built at all: a device view per
   * status change is garbage 10k devices connecting at once would otherwise make.
   */
  get listening(): boolean {
    return this.listeners.size > 0;
  }

  /** Announces an update to every subscriber (a throwing subscriber is skipped). */
  announce(update: LiveUpdate): void {
    for (const listener of this.listeners) {
      try {
        listener(update);
      } catch {
        // one broken subscriber must not stop the others
      }
    }
  }

  /** Adds a device, offline, with its parts in health `restarting` until their actors start. */
  addDevice(config: DeviceConfig): void {
    // map + concat size the array exactly (pushing onto `[]` reserves 17 slots).
    const parts = config.sensors
      .map((s) => part(s.id, s.kind, s.unit, false))
      .concat(config.actuators.map((a) => part(a.id, a.kind, a.unit, true)));
    this.devices.set(config.id, { config, status: "offline", reason: undefined, parts });
    this.announceDevice(config.id);
  }

  removeDevice(id: string): void {
    this.devices.delete(id);
  }

  has(id: string): boolean {
    return this.devices.has(id);
  }

  config(id: string): DeviceConfig | undefined {
    return this.devices.get(id)?.config;
  }

  /** Sets a device's status (and why); announces only real changes. Returns true if it changed. */
  setStatus(id: string, status: DeviceView["status"], reason?: string): boolean {
    const d = this.devices.get(id);
    if (d === undefined || (d.status === status && d.reason === reason)) return false;
    d.status = status;
    d.reason = reason;
    this.announceDevice(id);
    return true;
  }

  status(id: string): DeviceView["status"] | undefined {
    return this.devices.get(id)?.status;
  }

  /** Records a part's reading and health and announces it. */
  setReading(device: string, partId: string, value: ReadingValue, ts: number, health: Health): void {
    const p = partOf(this.devices.get(device), partId);
    if (p === undefined) return;
    p.value = value;
    p.ts = ts;
    p.health = health;
    if (this.listening) this.announce({ type: "reading", device, sensor: partId, value, ts, health });
  }

  /** Sets a part's health without a new reading (stale, restarting, down). */
  setHealth(device: string, partId: string, health: Health): void {
    const p = partOf(this.devices.get(device), partId);
    if (p === undefined || p.health === health) return;
    p.health = health;
    if (!this.listening) return;
    if (p.value !== null && p.ts !== null) {
      this.announce({ type: "reading", device, sensor: partId, value: p.value, ts: p.ts, health });
    } else this.announceDevice(device);
  }

  health(device: string, partId: string): Health | undefined {
    return partOf(this.devices.get(device), partId)?.health;
  }

  view(id: string): DeviceView | undefined {
    const d = this.devices.get(id);
    if (d === undefined) return undefined;
    const view: DeviceView = {
      id,
      board: d.config.board,
      link: d.config.link.type,
      status: d.status,
      sensors: d.parts.map(({ actuator: _a, ...s }) => ({ ...s })),
    };
    if (d.reason !== undefined) view.reason = d.reason;
    return view;
  }

  views(): DeviceView[] {
    return [...this.devices.keys()].map((id) => this.view(id) as DeviceView);
  }

  private announceDevice(id: string): void {
    if (!this.listening) return;
    const device = this.view(id);
    if (device !== undefined) this.announce({ type: "device", device });
  }
}

function partOf(device: DeviceState | undefined, id: string): PartState | undefined {
  if (device === undefined) return undefined;
  for (const p of device.parts) if (p.id === id) return p;
  return undefined;
}

function part(id: string, kind: string, unit: string | undefined, actuator: boolean): PartState {
  const p: PartState = { id, kind, health: "restarting", value: null, ts: null, actuator };
  if (unit !== undefined) p.unit = unit;
  return p;
}
