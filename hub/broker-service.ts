/**
 * The Broker service: the hub's MQTT, as a supervised process. Either it owns the embedded aedes broker, or (with
 * `--broker mqtt://…`, DESIGN.md §4) it is a client link to an external broker (hub/broker/external.ts).
 *
 * Either way it persists each telemetry message before acknowledging it — embedded: before the device gets its
 * PUBACK; external: before the hub's own PUBACK to the broker, which keeps the hub's session and redelivers what
 * was not acknowledged — routes what devices publish to their actors by name, and on (re)start re-publishes every
 * sensor's retained `state/` from the history. A dropped link to an external broker ends the process; its
 * supervisor reconnects with backoff.
 */

import { connectExternalBroker, type ExternalBrokerSettings } from "./broker/external.ts";
import {
  type BrokerOptions,
  type DeviceCredential,
  deviceCredentials,
  type RunningBroker,
  startBroker,
  type TelemetryMessage,
} from "./broker.ts";
import type { FleetConfig } from "./config.ts";
import { boardName, type HubContext, linkName, partName, STATE_QOS } from "./context.ts";
import {
  type ChildSpec,
  getClock,
  type Pid,
  type Process,
  startServer,
  stop,
  type TimerHandle,
} from "./runtime/index.ts";
import type { ReadingValue, TelemetryRow } from "./store.ts";
import type { Health } from "./view.ts";

/**
 * The running broker as the hub uses it: the embedded aedes or the link to an external broker. It changes when the
 * Broker service restarts.
 */
export interface HubBroker {
  /** `mqtt://HOST:PORT` devices connect to (an external broker's URL without credentials). */
  readonly url: string;
  /** True for an external broker: device logins and ACLs are its job, not the hub's. */
  readonly external: boolean;
  /** The hub's own MQTT login, for in-process clients; undefined when it connects anonymously (external). */
  readonly hubCredentials: { username: string; password: string } | undefined;
  publish(topic: string, payload: string, options: { qos: 0 | 1; retain: boolean }): void;
  /** Lets a device log in (embedded only; an external broker has its own accounts). */
  addDevice(device: DeviceCredential): void;
  /** Revokes a device's login and closes its session (embedded only). */
  removeDevice(id: string): void;
  close(): Promise<void>;
}

/** Where the running broker is published for the bus and the hub (it changes when the broker restarts). */
export interface BrokerHandle {
  current: HubBroker | null;
  /** The port bound on first start; restarts reuse it so devices find the broker again. */
  port: number;
  /** Publishes dropped because no broker was running. */
  dropped: number;
  /** Telemetry payloads that were not valid readings (counted, logged, acknowledged). */
  badTelemetry: number;
  /** The external broker's URL (without credentials), when the hub uses one; set while the link is down too. */
  externalUrl?: string;
}

/** Options the hub gives the broker service. */
export interface BrokerServiceOptions {
  host: string;
  port: number;
  tls?: BrokerOptions["tls"];
  anonymousRead: boolean;
  maxPacketSize: number;
  devices: () => FleetConfig["devices"];
  /** Use this external broker instead of the embedded aedes. */
  external?: ExternalBrokerSettings;
}

/** Restarts of a lost external link: quick at first (a broker restart), then every 10 s at most. */
export const EXTERNAL_BROKER_BACKOFF = { minMs: 200, maxMs: 10_000, jitter: 0.2, resetAfterMs: 30_000 };

/** How long a device's status waits for its link to start (see `pendingStatus` in {@link brokerChild}). */
const PENDING_STATUS_MS = 30_000;

/** The hub's MQTT bus over whichever broker instance is running. */
export function busOver(handle: BrokerHandle): HubContext["bus"] {
  return {
    publish(topic, payload, options = {}) {
      const broker = handle.current;
      if (broker === null) {
        handle.dropped++;
        return;
      }
      broker.publish(topic, payload, { qos: options.qos ?? 0, retain: options.retain ?? false });
    },
  };
}

/** A publish's completion the hub does not wait for: one shared function, not a closure per publish. */
const ignoreResult = () => undefined;

/** The embedded broker behind the {@link HubBroker} face. */
function embedded(broker: RunningBroker): HubBroker {
  return {
    url: broker.url,
    external: false,
    hubCredentials: broker.hubCredentials,
    publish(topic, payload, options) {
      broker.aedes.publish(
        {
          cmd: "publish",
          topic,
          payload: Buffer.from(payload),
          qos: options.qos,
          retain: options.retain,
          dup: false,
        },
        ignoreResult,
      );
    },
    addDevice: (device) => broker.addDevice(device),
    removeDevice: (id) => broker.removeDevice(id),
    close: () => broker.close(),
  };
}

/**
 * A reading the device could not take (firmware/pi-agent/README.md: `{"error": code, "ts", "message"?}` on
 * `telemetry/<sensor>`, no value and no seq): not stored, handed to the sensor actor, which counts it.
 */
interface ReadFailure {
  error: string;
  ts: number;
  message?: string;
}

function parseReading(
  payload: Buffer,
): { value: ReadingValue; ts: number; seq: number | null } | ReadFailure | string {
  let body: unknown;
  try {
    body = JSON.parse(payload.toString("utf8"));
  } catch {
    return "payload is not JSON";
  }
  if (typeof body !== "object" || body === null) return "payload is not a JSON object";
  const { value, ts, seq, error, message } = body as Record<string, unknown>;
  if (value === undefined && typeof error === "string" && typeof ts === "number" && Number.isFinite(ts)) {
    return { error, ts, ...(typeof message === "string" ? { message } : {}) };
  }
  if (typeof value !== "number" && typeof value !== "boolean" && typeof value !== "string") {
    return "value must be a number, boolean or string";
  }
  if (typeof ts !== "number" || !Number.isFinite(ts)) return "ts must be epoch milliseconds";
  if (seq !== undefined && (typeof seq !== "number" || !Number.isInteger(seq)))
    return "seq must be an integer";
  return { value: value as ReadingValue, ts, seq: (seq as number | undefined) ?? null };
}

/** The sensor actor's message for a stored reading (devices/sensors/sensor.ts `Reading`). */
const readingMessage = (row: TelemetryRow) => ({
  t: "reading",
  value: row.value,
  ts: row.ts,
  seq: row.seq ?? null,
});

const HEALTHS: ReadonlySet<string> = new Set(["ok", "faulty", "restarting", "down"]);

/** A republished state to mark stale if its sensor has said nothing newer by then. */
interface StaleCheck {
  t: "stale-check";
  device: string;
  sensor: string;
  topic: string;
  payload: Record<string, unknown>;
}

interface ServiceState {
  broker: HubBroker;
  timers: TimerHandle[];
}

/**
 * Re-publishes each configured sensor's retained `state/` with the newest value the hub knows: the sensor actor's
 * live one when the hub is running (a broker restart), else the newest reading in the history — not the last
 * saved state payload, which is written after the reading and can lag it by a kill -9. Health is honest: a
 * reading older than the sensor's staleness window is `faulty`; a fresh one keeps the health it was published
 * with, and is re-published `faulty` when the window runs out with nothing newer from the sensor (its actor
 * starts with no value, so it would never say so itself).
 */
function republishStates(hub: HubContext, devices: FleetConfig["devices"], self: Pid): TimerHandle[] {
  const clock = getClock();
  const now = clock.now();
  const stored = new Map(hub.store.latest().map((l) => [`${l.device}\0${l.sensor}`, l]));
  const timers: TimerHandle[] = [];
  for (const device of devices) {
    if (!hub.state.has(device.id)) continue;
    const live = hub.state.view(device.id)?.sensors;
    for (const sensor of device.sensors) {
      const topic = `${hub.prefix}/${device.id}/state/${sensor.id}`;
      const last = stored.get(`${device.id}\0${sensor.id}`);
      const current = live?.find((s) => s.id === sensor.id);
      // Stored rows are raw readings; the sensor actor publishes a button's 0/1 as a boolean.
      const digital = sensor.kind === "button" || sensor.kind === "digital-in";
      const value =
        last === undefined || !digital || typeof last.value !== "number" ? last?.value : last.value === 1;
      let payload: Record<string, unknown>;
      if (
        current?.ts != null &&
        current.value !== null &&
        (last === undefined || current.ts > last.ts || (current.ts === last.ts && current.value === value))
      ) {
        payload = { value: current.value, ts: current.ts, health: current.health };
      } else if (last !== undefined) {
        const staleMs = sensor.staleMs ?? sensor.periodMs * 3;
        const age = now - last.ts;
        // The saved payload is written after its reading (and several readings can share a ts): trust its
        // health only when it is about this very reading.
        const saved = last.state?.ts === last.ts && last.state.value === value ? last.state : undefined;
        const savedHealth =
          typeof saved?.health === "string" && HEALTHS.has(saved.health) ? saved.health : "ok";
        const health: Health = age >= staleMs ? "faulty" : (savedHealth as Health);
        payload = { value, ts: last.ts, health };
        if (health !== "faulty") {
          const check: StaleCheck = {
            t: "stale-check",
            device: device.id,
            sensor: sensor.id,
            topic,
            payload,
          };
          timers.push(clock.setTimeout(() => self.proc?.deliver(check), Math.max(0, staleMs - age)));
        }
      } else continue;
      if (sensor.unit !== undefined) payload.unit = sensor.unit;
      hub.bus.publish(topic, JSON.stringify(payload), { retain: true, qos: STATE_QOS });
    }
  }
  return timers;
}

/** The child spec of the Broker service (embedded aedes, or a client of `options.external`). */
export function brokerChild(hub: HubContext, handle: BrokerHandle, options: BrokerServiceOptions): ChildSpec {
  const log = hub.log.child({ service: "broker" });
  const external = options.external;

  const onTelemetry = (m: TelemetryMessage, done: (err?: unknown) => void) => {
    const reading = parseReading(m.payload);
    if (typeof reading === "string") {
      handle.badTelemetry++;
      log.warn(
        { device: m.device, sensor: m.sensor, bad: handle.badTelemetry },
        `bad telemetry from ${m.device}/${m.sensor}: ${reading}; expected {"value","ts","seq"} (dropped, acknowledged)`,
      );
      done();
      return;
    }
    if (!hub.state.has(m.device) || hub.state.health(m.device, m.sensor) === undefined) {
      handle.badTelemetry++;
      log.warn(
        { device: m.device, sensor: m.sensor },
        `telemetry for unknown sensor ${m.device}/${m.sensor}; add it to the fleet file`,
      );
      done();
      return;
    }
    if ("error" in reading) {
      hub.names.whereis(partName(m.device, m.sensor))?.proc?.deliver({ t: "read-failed", ...reading });
      done();
      return;
    }
    const row: TelemetryRow = {
      device: m.device,
      sensor: m.sensor,
      ts: reading.ts,
      value: reading.value,
      seq: reading.seq,
    };
    hub.store.storeTelemetry(row, (err, inserted) => {
      // A replayed duplicate was already stored and already seen: only the PUBACK is owed.
      if (err === null && inserted)
        hub.names.whereis(partName(m.device, m.sensor))?.proc?.deliver(readingMessage(row));
      done(err);
    });
  };

  /**
   * A status whose device link was not running yet, kept until it is (or for {@link PENDING_STATUS_MS}): the
   * broker starts before the fleet, and an external broker hands over devices' retained `status` as soon as the
   * hub subscribes — without this, a device that stays connected across a hub restart would look offline until
   * its next heartbeat.
   */
  const pendingStatus = new Map<string, { payload: string; since: number }>();
  let flushScheduled = false;
  const scheduleFlush = () => {
    if (flushScheduled) return;
    flushScheduled = true;
    getClock().setTimeout(flushPending, 100);
  };
  const flushPending = () => {
    flushScheduled = false;
    const now = getClock().now();
    for (const [device, pending] of pendingStatus) {
      const link = hub.names.whereis(linkName(device));
      if (link !== undefined) link.proc?.deliver({ t: "status", payload: pending.payload });
      if (link !== undefined || now - pending.since > PENDING_STATUS_MS || !hub.state.has(device))
        pendingStatus.delete(device);
    }
    if (pendingStatus.size > 0) scheduleFlush();
  };

  /** Hands a device's status, heartbeat or reply to its link or board actor. */
  const prefixLength = hub.prefix.length + 1;
  const route = (topic: string, payload: Buffer) => {
    // Every publish passes here (each reading, each state/ the hub sends): find the kind without allocating.
    if (topic.charCodeAt(hub.prefix.length) !== 47 || !topic.startsWith(hub.prefix)) return;
    const slash = topic.indexOf("/", prefixLength);
    if (slash <= prefixLength) return;
    const end = topic.indexOf("/", slash + 1);
    const kind = topic.slice(slash + 1, end === -1 ? undefined : end);
    if (kind !== "status" && kind !== "heartbeat" && kind !== "reply") return;
    const device = topic.slice(prefixLength, slash);
    if (kind === "status" || kind === "heartbeat") {
      const link = hub.names.whereis(linkName(device));
      if (kind === "status") {
        pendingStatus.delete(device);
        if (link === undefined && hub.state.has(device)) {
          pendingStatus.set(device, { payload: payload.toString("utf8"), since: getClock().now() });
          scheduleFlush();
        }
      }
      link?.proc?.deliver({ t: kind, payload: payload.toString("utf8") });
    } else if (kind === "reply") {
      hub.names.whereis(boardName(device))?.proc?.deliver({ t: "reply", payload: payload.toString("utf8") });
    }
  };

  const startEmbedded = async (): Promise<HubBroker> => {
    const broker = await startBroker({
      host: options.host,
      port: handle.port,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      topicPrefix: hub.prefix,
      anonymousRead: options.anonymousRead,
      maxPacketSize: options.maxPacketSize,
      devices: deviceCredentials({ devices: options.devices() }),
      onTelemetry,
      logger: hub.log,
    });
    handle.port = broker.port;
    broker.on("publish", (p) => {
      // Devices' messages and the broker's own (wills, the hub's publishes); not other logins'.
      if (p.identity?.kind !== "device" && p.clientId !== null) return;
      route(p.topic, p.payload);
    });
    return embedded(broker);
  };

  const startExternal = async (settings: ExternalBrokerSettings, self: Process): Promise<HubBroker> => {
    const link = await connectExternalBroker({
      ...settings,
      topicPrefix: hub.prefix,
      onTelemetry,
      onMessage: (p) => route(p.topic, p.payload),
      onClose: (err) => self.deliver({ t: "link-closed", err }),
      logger: hub.log,
    });
    handle.externalUrl = link.url;
    return {
      url: link.url,
      external: true,
      hubCredentials: link.hubCredentials,
      publish: (topic, payload, o) => link.publish(topic, payload, o),
      addDevice: () => undefined,
      removeDevice: () => undefined,
      close: () => link.close(),
    };
  };

  return {
    id: "broker",
    ...(external === undefined ? {} : { backoff: EXTERNAL_BROKER_BACKOFF }),
    start: (ctx) =>
      startServer(
        {
          init: async (_: undefined, self: Process): Promise<ServiceState> => {
            const broker =
              external === undefined ? await startEmbedded() : await startExternal(external, self);
            handle.current = broker;
            return { broker, timers: republishStates(hub, options.devices(), self.pid) };
          },
          handleInfo: (msg: unknown, state: ServiceState) => {
            const m = msg as StaleCheck | { t: "link-closed"; err: Error };
            if (m.t === "link-closed") {
              log.warn({ broker: state.broker.url, err: m.err.message }, `${m.err.message}; reconnecting`);
              return stop(m.err, state);
            }
            if (m.t === "stale-check") {
              const now = hub.state.view(m.device)?.sensors.find((s) => s.id === m.sensor);
              // The sensor has published something newer itself.
              if (now?.ts != null && now.ts > (m.payload.ts as number)) return state;
              hub.bus.publish(m.topic, JSON.stringify({ ...m.payload, health: "faulty" }), {
                retain: true,
                qos: STATE_QOS,
              });
            }
            return state;
          },
          terminate: async (_reason: unknown, state: ServiceState) => {
            for (const t of state.timers) getClock().clearTimeout(t);
            if (handle.current === state.broker) handle.current = null;
            await state.broker.close();
          },
        },
        undefined,
        { link: ctx.parent, label: ctx.path },
      ).then((pid) => {
        // A killed broker process runs no terminate: close what it owned all the same.
        const broker = handle.current;
        pid.proc?.onExit(() => {
          if (broker !== null && handle.current === broker) {
            handle.current = null;
            void broker.close();
          }
        });
        return pid;
      }),
  };
}
