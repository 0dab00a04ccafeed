/**
 * What the hub hands its services and device actors: the history store, the fleet's live state, the process
 * names, the MQTT bus and the logger. Injected, so a test or the simulator can build one around its own parts.
 */
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { SerialLinkConfig } from "./config.ts";
import type { DriverFaults } from "./faults/contract.ts";
import type { FleetState } from "./fleet-state.ts";
import type { Registry } from "./runtime/index.ts";
import type { HistoryStore, HubEvent } from "./store.ts";

/** Publishing on the hub's MQTT broker (whichever instance is running now). */
export interface Bus {
  /** Publishes from the hub; dropped (and counted) while no broker runs — retained state is re-published on start. */
  publish(topic: string, payload: string, options?: { retain?: boolean; qos?: 0 | 1 }): void;
}

/**
 * Opens the byte stream of a serial device's link (`link.type: serial`): the port by `path`, or the one whose USB
 * vendor/product id match. Injected like serialport's bindings: the hub's default uses serialport; the simulator
 * and tests hand in an emulated board's stream. Rejects with a message that says what to do (plug the board in,
 * fix fleet.yaml); a stream that later closes or errors is a lost link.
 */
export type SerialOpener = (link: SerialLinkConfig, device: string) => Promise<Duplex>;

/** Shared services of one hub. */
export interface HubContext {
  /** MQTT topic prefix, e.g. `ganglion`. */
  prefix: string;
  store: HistoryStore;
  state: FleetState;
  /** Names of device processes: `link:<device>`, `board:<device>`, `part:<device>/<part>`. */
  names: Registry<string>;
  bus: Bus;
  log: Logger;
  /** Default device heartbeat period (devices are silent after 3×). */
  heartbeatMs: number;
  /** Opens serial devices' ports (see {@link SerialOpener}). */
  serialOpener: SerialOpener;
  /** Hub-side driver faults (`throws`, `hang`) that sensor actors honour; set by the fault book. */
  driverFaults: DriverFaults;
  /** Records a hub event (status changes, resets, faults): stored, published on `hub/events`, sent live. */
  emit(event: HubEvent): void;
}

/**
 * QoS of the hub's retained `state/` publishes. A state is the latest value, and a subscriber gets it when it
 * subscribes (retained) and on every change while connected; TCP loses nothing on a live connection. At QoS 1 the
 * broker would also queue every superseded state for each offline persistent session (aedes keeps that queue in
 * the hub's memory, without bound) and have each delivery acknowledged (bench fleet: ~8 % of the hub's CPU per
 * reading under a flood).
 */
export const STATE_QOS = 0;

/** The registry key of a device's link process. */
export const linkName = (device: string) => `link:${device}`;
/** The registry key of a device's board process. */
export const boardName = (device: string) => `board:${device}`;
/** The registry key of a sensor or actuator process. */
export const partName = (device: string, part: string) => `part:${device}/${part}`;
