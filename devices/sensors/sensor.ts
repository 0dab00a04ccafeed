/**
 * A sensor actor: one GenServer per sensor. It validates each reading (type, range, rate of change, flat line),
 * watches for staleness, keeps the sensor's health, and publishes `state/<sensor>` (retained) on every change.
 * While its device has no link the sensor is `down` (devices/presence.ts), also when its actor (re)starts then;
 * its next accepted reading makes it `ok`.
 *
 * A reading the device could not take at all (a DS18B20's CRC error, reported by the agent as `read-failed`) or
 * one that is not a number (`nan`) is rejected and counted like any other; after
 * {@link READ_FAILURES_BEFORE_RESTART} of them in a row the actor exits with {@link SensorReadFailedError}, so its
 * supervisor restarts it and its driver (DESIGN.md §3, `nan`). The sensor stays `faulty` across that restart until a
 * reading is accepted again.
 * Readings arrive already stored (the broker's persistence hook runs first); rejected ones are counted and logged.
 * Each reading passes through the sensor's hub-side driver (convert.ts); a driver fault (`throws`, `hang`) set in
 * `hub.driverFaults` for this sensor sends it through driver.ts instead, where it crashes or hangs the actor.
 */
import type { Logger } from "pino";
import type { SensorConfig } from "../../hub/config.ts";
import { type HubContext, partName, STATE_QOS } from "../../hub/context.ts";
import { DRIVER_REPAIRED } from "../../hub/faults/contract.ts";
import {
  type ChildSpec,
  getClock,
  isCleanExit,
  type Pid,
  replyWith,
  type Stop,
  startServer,
  stop,
  type TimerHandle,
} from "../../hub/runtime/index.ts";
import type { ReadingValue } from "../../hub/store.ts";
import type { Health } from "../../hub/view.ts";
import { healthAtStart } from "../presence.ts";
import { convertRaw } from "./convert.ts";
import { FaultyDriver } from "./driver.ts";
import { checkReading, type History, remember } from "./validate.ts";

/** A reading the device could not take, routed to the sensor actor (`{"error", "ts"}` on `telemetry/<sensor>`). */
export interface ReadFailed {
  t: "read-failed";
  /** The device's code: `crc`, `power-on`, `io`, `parse` for the Pi agent. */
  error: string;
  ts: number;
  message?: string;
}

/** Failed reads in a row after which the sensor actor exits, so its supervisor restarts it and its driver. */
export const READ_FAILURES_BEFORE_RESTART = 3;

/** Why a sensor actor exited: its readings kept failing (DESIGN.md §3, `nan`). */
export class SensorReadFailedError extends Error {
  override readonly name = "SensorReadFailedError";
  constructor(
    readonly device: string,
    readonly sensor: string,
    readonly failures: number,
    readonly last: string,
  ) {
    super(
      `${device}/${sensor}: ${failures} readings in a row failed (last: ${last}); restarting the sensor's driver`,
    );
  }
}

/** A reading routed to a sensor actor. */
export interface Reading {
  t: "reading";
  value: unknown;
  ts: number;
  seq?: number | null;
}

interface State {
  history: History;
  health: Health;
  rejected: number;
  /** Failed reads (read-failed, nan) since the last reading that was read at all. */
  failedReads: number;
  /** Why the sensor is faulty, for logs and the tree. */
  fault: string | undefined;
  staleTimer: TimerHandle | null;
  /** When the device last said something about this sensor (a reading or a failed read), clock ms. */
  heardAt: number;
  self: Pid;
  /** The driver under an injected fault; null until one is first seen (the healthy path needs none). */
  faulty: FaultyDriver | null;
}

/** Counters a test or the API can ask a sensor for. */
export interface SensorStats {
  health: Health;
  rejected: number;
  /** Failed reads in a row (see {@link READ_FAILURES_BEFORE_RESTART}). */
  failedReads: number;
  fault: string | undefined;
  value: ReadingValue | null;
}

const STALE_CHECK = "stale-check";

/** The child spec of a sensor actor. */
export function sensorChild(hub: HubContext, device: string, config: SensorConfig): ChildSpec {
  return {
    id: config.id,
    // Method syntax, not `start: (ctx) =>`: tsx (esbuild keepNames) gives each named arrow its own name property.
    start(ctx) {
      return startServer(new SensorServer(hub, device, config, ctx.path), undefined, {
        link: ctx.parent,
        label: ctx.path,
        name: { via: hub.names, key: partName(device, config.id) },
      });
    },
  };
}

/**
 * The sensor's GenServer callbacks. A class rather than a spec object of closures: its methods are shared by every
 * sensor (10k sensors would otherwise hold ~10 function objects each, each with a property dictionary under tsx).
 * Its logger is made on first use: most sensors never log.
 */
class SensorServer {
  private readonly staleMs: number;
  private readonly topic: string;
  private logger: Logger | null = null;

  constructor(
    private readonly hub: HubContext,
    private readonly device: string,
    private readonly config: SensorConfig,
    private readonly path: string,
  ) {
    this.staleMs = config.staleMs ?? config.periodMs * 3;
    this.topic = `${hub.prefix}/${device}/state/${config.id}`;
  }

  private get log(): Logger {
    this.logger ??= this.hub.log.child({ device: this.device, sensor: this.config.id });
    return this.logger;
  }

  private publish(state: State): void {
    const { lastValue, lastTs } = state.history;
    const payload: Record<string, unknown> = { value: lastValue, ts: lastTs, health: state.health };
    if (this.config.unit !== undefined) payload.unit = this.config.unit;
    this.hub.bus.publish(this.topic, JSON.stringify(payload), { retain: true, qos: STATE_QOS });
    this.hub.store.saveState(this.device, this.config.id, payload);
  }

  /** Starts the staleness check `afterMs` from now (the sensor was just heard from, or just went stale). */
  private armStale(state: State, afterMs = this.staleMs): void {
    const self = state.self;
    state.staleTimer = getClock().setTimeout(() => self.proc?.deliver(STALE_CHECK), afterMs);
  }

  /**
   * The device said something about this sensor: not stale. The running check is left alone (it re-arms itself
   * for the rest of the window when it finds the sensor heard from): a timer per reading was a Timeout object
   * and a list insert per reading for nothing.
   */
  private heard(state: State): void {
    state.heardAt = getClock().now();
    if (state.staleTimer === null) this.armStale(state);
  }

  private setHealth(state: State, health: Health, fault?: string): void {
    const { device, config } = this;
    if (state.health !== health) {
      if (health === "faulty") this.log.warn({ fault }, `sensor ${device}/${config.id} is faulty: ${fault}`);
      else if (state.health === "faulty") this.log.info(`sensor ${device}/${config.id} is healthy again`);
    }
    state.health = health;
    state.fault = fault;
  }

  /**
   * A reading that could not be taken: rejected and counted; the last of {@link READ_FAILURES_BEFORE_RESTART}
   * in a row ends the actor, and its supervisor restarts it with a fresh driver.
   */
  private readFailed(state: State, what: string): State | Stop<State> {
    const { hub, device, config } = this;
    state.rejected++;
    state.failedReads++;
    this.setHealth(state, "faulty", `reading failed: ${what}`);
    hub.state.setHealth(device, config.id, "faulty");
    if (state.history.lastValue !== null) this.publish(state);
    if (state.failedReads < READ_FAILURES_BEFORE_RESTART) {
      this.log.warn(
        { failedReads: state.failedReads, rejected: state.rejected },
        `reading failed on ${device}/${config.id}: ${what}; check the sensor's wiring`,
      );
      return state;
    }
    const reason = new SensorReadFailedError(device, config.id, state.failedReads, what);
    this.log.error({ failedReads: state.failedReads }, reason.message);
    return stop(reason, state);
  }

  /** Validates a converted reading and, if accepted, makes it the sensor's value. */
  private accept(state: State, reading: Reading, converted: unknown): State | Stop<State> {
    const { hub, device, config } = this;
    const verdict = checkReading(config, converted, reading.ts, state.history);
    if (!verdict.ok && verdict.reason === "nan") return this.readFailed(state, verdict.message);
    state.failedReads = 0; // something was read, even if it is rejected below
    if (!verdict.ok) {
      state.rejected++;
      this.log.warn(
        { reason: verdict.reason, rejected: state.rejected },
        `reading rejected from ${device}/${config.id}: ${verdict.message}; check the sensor's wiring or its range in the fleet file`,
      );
      this.setHealth(state, "faulty", verdict.message);
      hub.state.setHealth(device, config.id, "faulty");
      return state;
    }
    const value = converted as ReadingValue;
    if (verdict.flag === "noise")
      this.setHealth(state, "faulty", "changing faster than its maxRatePerS (noise)");
    else if (verdict.flag === "stuck")
      this.setHealth(state, "faulty", `no change for ${config.flatLineMs} ms (stuck)`);
    else this.setHealth(state, "ok");
    state.history = remember(state.history, value, reading.ts, verdict.ok ? verdict.flag : undefined);
    hub.state.setReading(device, config.id, value, reading.ts, state.health);
    this.publish(state);
    return state;
  }

  /**
   * Its driver fault was cleared: the newest stored reading goes through the repaired driver now, if it is newer
   * than the last accepted one and not stale. A `throws` fault crashed the actor on a good reading, and the
   * restarted actor would otherwise stay without a value until the next one, up to a whole period later.
   */
  private rereadLatest(state: State): State | Stop<State> | Promise<State | Stop<State>> {
    const { hub, device, config } = this;
    const latest = hub.store.latestOf(device, config.id);
    if (latest === undefined) return state;
    const { lastTs } = state.history;
    if ((lastTs !== null && latest.ts <= lastTs) || getClock().now() - latest.ts >= this.staleMs)
      return state;
    return this.handleInfo({ t: "reading", value: latest.value, ts: latest.ts, seq: latest.seq }, state);
  }

  init(_: undefined, self: { pid: Pid }): State {
    const { hub, device, config } = this;
    // A sensor of a device without a link starts `down` and is `ok` with its first accepted reading; one that
    // was faulty (its predecessor's reads kept failing) stays faulty until then.
    const atStart = healthAtStart(hub, device);
    const health = atStart === "ok" && hub.state.health(device, config.id) === "faulty" ? "faulty" : atStart;
    const state: State = {
      history: { lastValue: null, lastTs: null, changedAt: null },
      health,
      rejected: 0,
      failedReads: 0,
      fault: health === "faulty" ? "faulty before its restart; no reading accepted since" : undefined,
      staleTimer: null,
      heardAt: getClock().now(),
      self: self.pid,
      faulty: null,
    };
    hub.state.setHealth(device, config.id, health);
    this.armStale(state);
    return state;
  }

  handleInfo(msg: unknown, state: State): State | Stop<State> | Promise<State | Stop<State>> {
    const { hub, device, config } = this;
    if (msg === STALE_CHECK) {
      state.staleTimer = null;
      const quietFor = getClock().now() - state.heardAt;
      if (quietFor < this.staleMs) {
        this.armStale(state, this.staleMs - quietFor);
        return state;
      }
      // Silent because its device has no link: `down` (devices/presence.ts); silent on a live device: stale.
      if (hub.state.status(device) === "online")
        this.setHealth(state, "faulty", `no reading for ${this.staleMs} ms (stale)`);
      else
        this.setHealth(
          state,
          "down",
          `no reading for ${this.staleMs} ms: ${device} is ${hub.state.status(device)}`,
        );
      hub.state.setHealth(device, config.id, state.health);
      if (state.history.lastValue !== null) this.publish(state);
      this.armStale(state);
      return state;
    }
    if (msg === DRIVER_REPAIRED) return this.rereadLatest(state);
    const reading = msg as Reading | ReadFailed;
    if (reading?.t === "read-failed") {
      this.heard(state); // the device is talking: not stale, failing
      return this.readFailed(state, `${reading.error}${reading.message ? ` (${reading.message})` : ""}`);
    }
    if (reading?.t !== "reading") return state;
    this.heard(state);
    // Driver faults cost the healthy path this one Map lookup.
    const fault = hub.driverFaults.get(device, config.id);
    if (fault === undefined) {
      if (state.faulty !== null) {
        state.faulty.retire();
        state.faulty = null;
      }
      return this.accept(state, reading, convertRaw(config.kind, reading.value));
    }
    state.faulty ??= new FaultyDriver({
      device,
      config,
      path: this.path,
      owner: state.self,
      faults: hub.driverFaults,
      log: this.log,
    });
    // Throws at once (`throws`), or waits for the isolated driver (`hang`): either way a crash restarts us.
    return state.faulty.convert(fault, reading.value).then((value) => this.accept(state, reading, value));
  }

  handleCall(_req: "stats", _from: unknown, state: State) {
    return replyWith<State, SensorStats>(
      {
        health: state.health,
        rejected: state.rejected,
        failedReads: state.failedReads,
        fault: state.fault,
        value: state.history.lastValue,
      },
      state,
    );
  }

  terminate(reason: unknown, state: State): void {
    const { hub, device, config } = this;
    if (state.staleTimer !== null) getClock().clearTimeout(state.staleTimer);
    // A crash (a driver fault among them): the sensor shows `restarting` until its next actor starts. Not when
    // an exit signal ended us mid-`hang` and this runs late: our name is gone, and a successor may own the health.
    // Reads that kept failing: `faulty` until a reading is accepted, across the restart.
    if (!isCleanExit(reason) && hub.names.whereis(partName(device, config.id)) === state.self)
      hub.state.setHealth(
        device,
        config.id,
        reason instanceof SensorReadFailedError ? "faulty" : "restarting",
      );
  }
}
