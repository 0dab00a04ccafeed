/**
 * The Broker service: owns the embedded aedes broker as a supervised process. It persists each telemetry publish
 * before the device gets its PUBACK, routes what devices publish to their actors by name, and on (re)start
 * re-publishes every sensor's retained `state/` from the history so subscribers see the last known state.
 */
import {
  type BrokerOptions,
  deviceCredentials,
  type RunningBroker,
  startBroker,
  type TelemetryMessage,
} from "./broker.ts";
import type { FleetConfig } from "./config.ts";
import { boardName, type HubContext, linkName, partName } from "./context.ts";
import { type ChildSpec, startServer } from "./runtime/index.ts";
import type { ReadingValue } from "./store.ts";

/** Where the running broker is published for the bus and the hub (it changes when the broker restarts). */
export interface BrokerHandle {
  current: RunningBroker | null;
  /** The port bound on first start; restarts reuse it so devices find the broker again. */
  port: number;
  /** Publishes dropped because no broker was running. */
  dropped: number;
  /** Telemetry payloads that were not valid readings (counted, logged, acknowledged). */
  badTelemetry: number;
}

/** Options the hub gives the broker service. */
export interface BrokerServiceOptions {
  host: string;
  port: number;
  tls?: BrokerOptions["tls"];
  anonymousRead: boolean;
  maxPacketSize: number;
  devices: () => FleetConfig["devices"];
}

/** The hub's MQTT bus over whichever broker instance is running. */
export function busOver(handle: BrokerHandle): HubContext["bus"] {
  return {
    publish(topic, payload, options = {}) {
      const broker = handle.current;
      if (broker === null) {
        handle.dropped++;
        return;
      }
      broker.aedes.publish(
        {
          cmd: "publish",
          topic,
          payload: Buffer.from(payload),
          qos: options.qos ?? 0,
          retain: options.retain ?? false,
          dup: false,
        },
        () => undefined,
      );
    },
  };
}

function parseReading(payload: Buffer): { value: ReadingValue; ts: number; seq: number | null } | string {
  let body: unknown;
  try {
    body = JSON.parse(payload.toString("utf8"));
  } catch {
    return "payload is not JSON";
  }
  if (typeof body !== "object" || body === null) return "payload is not a JSON object";
  const { value, ts, seq } = body as Record<string, unknown>;
  if (typeof value !== "number" && typeof value !== "boolean" && typeof value !== "string") {
    return "value must be a number, boolean or string";
  }
  if (typeof ts !== "number" || !Number.isFinite(ts)) return "ts must be epoch milliseconds";
  if (seq !== undefined && (typeof seq !== "number" || !Number.isInteger(seq)))
    return "seq must be an integer";
  return { value: value as ReadingValue, ts, seq: (seq as number | undefined) ?? null };
}

/** The child spec of the Broker service. */
export function brokerChild(hub: HubContext, handle: BrokerHandle, options: BrokerServiceOptions): ChildSpec {
  const log = hub.log.child({ service: "broker" });

  const onTelemetry = async (m: TelemetryMessage) => {
    const reading = parseReading(m.payload);
    if (typeof reading === "string") {
      handle.badTelemetry++;
      log.warn(
        { device: m.device, sensor: m.sensor, bad: handle.badTelemetry },
        `bad telemetry from ${m.device}/${m.sensor}: ${reading}; expected {"value","ts","seq"} (dropped, acknowledged)`,
      );
      return;
    }
    if (!hub.state.has(m.device) || hub.state.health(m.device, m.sensor) === undefined) {
      handle.badTelemetry++;
      log.warn(
        { device: m.device, sensor: m.sensor },
        `telemetry for unknown sensor ${m.device}/${m.sensor}; add it to the fleet file`,
      );
      return;
    }
    const stored = await hub.store.persistTelemetry({ device: m.device, sensor: m.sensor, ...reading });
    if (!stored) return; // a replayed duplicate: already stored and already seen
    hub.names.whereis(partName(m.device, m.sensor))?.proc?.deliver({ t: "reading", ...reading });
  };

  return {
    id: "broker",
    start: (ctx) =>
      startServer(
        {
          init: async (): Promise<RunningBroker> => {
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
              if (p.identity?.kind !== "device" && p.clientId !== null) return;
              const levels = p.topic.split("/");
              if (levels[0] !== hub.prefix || levels.length < 3) return;
              const device = levels[1] as string;
              const kind = levels[2];
              const payload = p.payload.toString("utf8");
              if (kind === "status" || kind === "heartbeat") {
                hub.names.whereis(linkName(device))?.proc?.deliver({ t: kind, payload });
              } else if (kind === "reply") {
                hub.names.whereis(boardName(device))?.proc?.deliver({ t: "reply", payload });
              }
            });
            handle.current = broker;
            for (const latest of hub.store.latest()) {
              if (latest.state === undefined || !hub.state.has(latest.device)) continue;
              hub.bus.publish(
                `${hub.prefix}/${latest.device}/state/${latest.sensor}`,
                JSON.stringify(latest.state),
                {
                  retain: true,
                  qos: 1,
                },
              );
            }
            return broker;
          },
          terminate: async (_reason: unknown, broker: RunningBroker) => {
            if (handle.current === broker) handle.current = null;
            await broker.close();
          },
        },
        undefined,
        { link: ctx.parent, label: ctx.path },
      ).then((pid) => {
        // A killed broker process runs no terminate: close the server it owned all the same.
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
