/**
 * The fault-injection contract of DESIGN.md §3, shared by the hub (which keeps the book of active faults and serves
 * `/api/faults`), the device actors (which honour hub-side driver faults) and the simulator (which injects physical
 * faults into virtual boards). Types only: each side imports what it implements.
 */

/** Every fault kind, and the layer it is injected at. */
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

/** A fault kind (`stuck`, `throws`, `disconnect`, `broker-restart`, …). */
export type FaultKind = keyof typeof FAULT_KINDS;

/** Faults the hub injects itself, in its own sensor drivers (the rest need a simulated board). */
export const HUB_SIDE_KINDS: ReadonlySet<FaultKind> = new Set<FaultKind>([
  "throws",
  "hang",
  "broker-restart",
]);

/** The body of `POST /api/faults`. `sensor` is required for sensor kinds, `device` for sensor and device kinds. */
export interface FaultRequest {
  kind: FaultKind;
  device?: string;
  sensor?: string;
  /** Cleared by itself after this long; without it the fault stays until cleared. */
  durationMs?: number;
}

/** An active fault, as `GET /api/faults` and the `/api/live` snapshot list it. */
export interface FaultView extends FaultRequest {
  /** `f1`, `f2`, …: unique for the hub's lifetime. */
  id: string;
  /** Epoch ms. */
  startedAt: number;
  /** Epoch ms when it clears by itself, if it has a duration. */
  until?: number;
}

/** Undoes one injected fault (restores the value, reconnects the cable, powers the board back on). */
export type FaultUndo = () => Promise<void>;

/**
 * Physical faults on simulated boards (everything but {@link HUB_SIDE_KINDS}): given to the hub by the simulator
 * (`startHub({ physicalFaults })`). The hub validates the request, keeps the book, emits `fault_injected` /
 * `fault_cleared` and calls the undo on clear or when the duration ends.
 */
export interface PhysicalFaults {
  /** Whether `device` is a simulated board this injector drives (a real board cannot have physical faults). */
  simulates(device: string): boolean;
  /**
   * Applies `fault` to the virtual board and resolves with its undo. Rejects with a message fit for the API's 400
   * when the board cannot have it (e.g. `partition` on a serial Arduino).
   */
  inject(fault: FaultView): Promise<FaultUndo>;
}

/** A hub-side driver fault, honoured by the sensor actor of `device`/`sensor` while it is set. */
export type DriverFault = "throws" | "hang";

/**
 * The switchboard of hub-side driver faults, in the HubContext: the fault book sets and clears entries; a sensor
 * actor looks up its own on every reading (a Map lookup, so the healthy path costs nothing measurable).
 */
export interface DriverFaults {
  get(device: string, sensor: string): DriverFault | undefined;
  set(device: string, sensor: string, fault: DriverFault): void;
  clear(device: string, sensor: string): void;
}

/**
 * The message a sensor actor gets when its driver fault is cleared: it re-reads its newest stored reading at once
 * rather than wait up to a period for the next one (the reading the faulty driver crashed on was good data).
 */
export const DRIVER_REPAIRED = "driver-repaired";

/**
 * A plain {@link DriverFaults}. `onCleared` runs after a fault is removed (the hub tells the sensor actor
 * {@link DRIVER_REPAIRED}).
 */
export function driverFaultTable(onCleared?: (device: string, sensor: string) => void): DriverFaults {
  const active = new Map<string, DriverFault>();
  const key = (device: string, sensor: string) => `${device}/${sensor}`;
  return {
    get: (device, sensor) => active.get(key(device, sensor)),
    set: (device, sensor, fault) => void active.set(key(device, sensor), fault),
    clear: (device, sensor) => {
      if (active.delete(key(device, sensor))) onCleared?.(device, sensor);
    },
  };
}
