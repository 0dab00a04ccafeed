/**
 * A client link to an external MQTT broker (`ganglion start --broker mqtt://HOST:PORT`, DESIGN.md §4): the hub logs
 * in as one MQTT client, subscribes to the device topics of the MQTT contract and publishes what it would have
 * published on the embedded broker. Device authentication and ACLs are then the external broker's job.
 *
 * Durability. The hub cannot hold the external broker's PUBACK to a device; what it controls is its own PUBACK to
 * the broker. It subscribes with QoS 1, in a persistent session (`clean: false`, a stable client id), and
 * acknowledges a `telemetry/<sensor>` message only after `onTelemetry` answered (the reading is committed). A
 * message the hub did not persist — the hub was killed, the link dropped, the write failed — stays unacknowledged
 * in the broker's session and is redelivered when the hub reconnects; messages published while the hub is away
 * are queued there too. So a reading the broker accepted is lost only if the broker loses it (it is not persistent,
 * its queue for the hub overflowed, or the session expired).
 *
 * Group commit. mqtt.js hands incoming messages over one at a time and would send each PUBACK once the previous
 * message is handled, so one reading at a time would be committed (one fsync each: ~100 readings/s here). Instead
 * each message is handed on at once and its PUBACK is sent by this module when its reading is committed, in the
 * order the messages came (MQTT-4.6.0-2); readings arriving together share a commit. How many are outstanding at
 * once is the broker's inflight window for the hub (mosquitto: `max_inflight_messages`, default 20).
 *
 * The link lives as long as one connection: when it drops, `onClose` is called and the owner (the Broker service)
 * exits, so its supervisor reconnects with backoff.
 */
// First: mqtt-packet (under mqtt.js) must find `debug` already quieted when it loads.
import "./quiet-debug.ts";
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { Logger } from "pino";
import type { TelemetryHook, TelemetryMessage } from "../broker.ts";

/** Where and how to reach an external broker. */
export interface ExternalBrokerSettings {
  /** `mqtt://HOST:PORT` (also `mqtts://`, `ws://`, `wss://`); credentials in the URL are used and never printed. */
  url: string;
  username?: string;
  password?: string;
  /**
   * The hub's MQTT client id: stable, so the broker keeps the hub's session (and the messages it has not
   * acknowledged) across reconnects and hub restarts. Default `ganglion-hub-<topic prefix>`.
   */
  clientId?: string;
}

/** Options for {@link connectExternalBroker}. */
export interface ExternalBrokerOptions extends ExternalBrokerSettings {
  topicPrefix: string;
  /** Persists a device's telemetry; the hub acknowledges the message to the broker only once it resolves. */
  onTelemetry: TelemetryHook;
  /** A device's status, heartbeat or reply (and the hub's own echoes of them). Called from the first message on. */
  onMessage: (message: ExternalPublish) => void;
  /** The connection is gone after it was made (with why); the link is finished, make a new one. */
  onClose: (err: Error) => void;
  logger: Logger;
  /** Milliseconds to wait for CONNACK; default 10 000. */
  connectTimeoutMs?: number;
}

/** A message on a device topic other than telemetry (status, heartbeat, reply). */
export interface ExternalPublish {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

/** The external broker could not be reached or refused the hub; the message names it and what to do. */
export class ExternalBrokerError extends Error {
  readonly exitCode = 2;
  constructor(
    readonly url: string,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = "ExternalBrokerError";
  }
}

/** The part of mqtt.js's client this module uses beyond its public API: sending a PUBACK itself. */
interface MqttClientInternals {
  _sendPacket(packet: { cmd: "puback"; messageId: number }): void;
}

/** Returned to mqtt.js from `handleMessage` so it does not send the PUBACK itself (see the module comment). */
const ACK_DEFERRED = new Error("PUBACK deferred until the message is handled");

/** The URL without credentials, for logs and start-up lines. */
export function redactBrokerUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url;
  }
}

/** The hub's default client id for a topic prefix (MQTT client ids: keep to letters, digits, `-`). */
export function defaultHubClientId(prefix: string): string {
  return `ganglion-hub-${prefix.replace(/[^A-Za-z0-9-]/g, "-")}`;
}

/** The topic filters the hub subscribes to (MQTT contract, DESIGN.md §2). */
export function hubSubscriptions(prefix: string): string[] {
  return [`${prefix}/+/status`, `${prefix}/+/heartbeat`, `${prefix}/+/telemetry/+`, `${prefix}/+/reply`];
}

/** The hub's connection to an external broker; {@link connectExternalBroker} makes one. */
export class ExternalBroker {
  /** The broker's URL without credentials. */
  readonly url: string;
  readonly clientId: string;
  /** Whether the broker still had the hub's session (and so its queued messages) when the hub connected. */
  readonly sessionPresent: boolean;
  /** What the hub logged in with (for in-process clients such as tests); undefined when anonymous. */
  readonly hubCredentials: { username: string; password: string } | undefined;
  private readonly client: MqttClient;
  private readonly log: Logger;
  private closing: Promise<void> | undefined;

  /** @internal Use {@link connectExternalBroker}. */
  constructor(parts: {
    url: string;
    clientId: string;
    sessionPresent: boolean;
    client: MqttClient;
    log: Logger;
    credentials: { username: string; password: string } | undefined;
  }) {
    this.url = parts.url;
    this.clientId = parts.clientId;
    this.sessionPresent = parts.sessionPresent;
    this.client = parts.client;
    this.log = parts.log;
    this.hubCredentials = parts.credentials;
  }

  /** True once {@link close} was called: a close the hub asked for is not reported to `onClose`. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Whether the connection is up. */
  get connected(): boolean {
    return this.client.connected;
  }

  /** Publishes from the hub. QoS 1 publishes are kept by mqtt.js until acknowledged on this connection. */
  publish(topic: string, payload: Buffer | string, options: { qos: 0 | 1; retain: boolean }): void {
    this.client.publish(topic, payload, options, (err) => {
      if (err && !this.closing)
        this.log.warn({ topic, err: err.message }, "publish to the external broker failed");
    });
  }

  /** Disconnects (the broker keeps the hub's session). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // A clean DISCONNECT after the hub's own in-flight publishes, unless the broker does not answer. A connection
      // that is already gone has nothing to flush: mqtt.js would wait for acks that never come (and a second end()
      // while it waits is a no-op), which once left the Broker service hanging in terminate, never reconnecting.
      if (this.client.connected) {
        let timer: NodeJS.Timeout | undefined;
        const ended = this.client.endAsync(false).catch(() => undefined);
        const gaveUp = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 2000);
        });
        await Promise.race([ended, gaveUp]);
        clearTimeout(timer);
      }
      // Whatever happened above, the socket is closed when this resolves.
      this.client.stream?.destroy();
      this.log.info({ url: this.url }, "disconnected from the external mqtt broker");
    })();
    return this.closing;
  }
}

/**
 * Connects to the external broker and subscribes to the device topics; resolves once subscribed.
 * @throws {ExternalBrokerError} when the broker cannot be reached, refuses the login or the subscriptions.
 */
export async function connectExternalBroker(options: ExternalBrokerOptions): Promise<ExternalBroker> {
  const url = redactBrokerUrl(options.url);
  const clientId = options.clientId ?? defaultHubClientId(options.topicPrefix);
  const log = options.logger.child({ service: "broker", broker: url });
  const prefix = options.topicPrefix;
  const fromUrl = (() => {
    try {
      const u = new URL(options.url);
      return {
        username: u.username === "" ? undefined : decodeURIComponent(u.username),
        password: u.password === "" ? undefined : decodeURIComponent(u.password),
      };
    } catch {
      return { username: undefined, password: undefined };
    }
  })();
  const username = options.username ?? fromUrl.username;
  const password = options.password ?? fromUrl.password;
  const clientOptions: IClientOptions = {
    clientId,
    clean: false,
    protocolVersion: 4,
    // The supervisor reconnects (with backoff): one link is one connection.
    reconnectPeriod: 0,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    keepalive: 30,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
  };
  const client = mqtt.connect(options.url, clientOptions);
  const internals = client as unknown as MqttClientInternals;
  let link: ExternalBroker | undefined;
  let failed: Error | undefined;
  let connected = false;

  const fail = (err: Error) => {
    if (failed !== undefined) return;
    failed = err;
    client.end(true);
    if (connected && link?.closed !== true) options.onClose(err);
  };

  // PUBACKs in the order the messages came: each waits for its own reading and for the PUBACKs before it.
  let acks: Promise<void> = Promise.resolve();
  const ackWhen = (messageId: number | undefined, handled: Promise<unknown>, what: string) => {
    acks = acks
      .then(() => handled)
      .then(
        () => {
          if (failed === undefined && client.connected && messageId !== undefined)
            internals._sendPacket({ cmd: "puback", messageId });
        },
        (err: unknown) => {
          log.error(
            { err, what },
            "telemetry not persisted; not acknowledged to the broker, which redelivers it on reconnect",
          );
          // No PUBACK for it, nor for anything after it: reconnecting makes the broker resend them all.
          fail(new ExternalBrokerError(options.url, `${what} not persisted: ${(err as Error).message}`, err));
        },
      );
  };

  // Set before CONNACK: a resumed session starts delivering its queued messages right away.
  client.handleMessage = (packet: IPublishPacket, callback: (err?: Error) => void) => {
    const topic = packet.topic;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const levels = topic.split("/");
    const prefixLevels = prefix.split("/").length;
    const device = levels[prefixLevels];
    const kind = levels[prefixLevels + 1];
    const rest = levels.slice(prefixLevels + 2);
    let handled: Promise<unknown> = Promise.resolve();
    let what = topic;
    if (kind === "telemetry" && device !== undefined && rest.length === 1 && rest[0] !== "") {
      const message: TelemetryMessage = {
        device,
        sensor: rest[0] as string,
        topic,
        payload,
        qos: packet.qos,
        clientId,
      };
      what = `telemetry from ${device}/${message.sensor}`;
      handled = new Promise<void>((resolve, reject) => {
        options.onTelemetry(message, (err) => (err === undefined || err === null ? resolve() : reject(err)));
      });
    } else if (device !== undefined && (kind === "status" || kind === "heartbeat" || kind === "reply")) {
      options.onMessage({ topic, payload, retain: packet.retain });
    }
    if (packet.qos === 0) {
      handled.catch((err: unknown) => log.error({ err, what }, "QoS 0 telemetry not persisted"));
      callback();
      return;
    }
    ackWhen(packet.messageId, handled, what);
    // mqtt.js sends no PUBACK for a message whose handler failed, and goes on with the next one: ours comes later.
    callback(ACK_DEFERRED);
  };

  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    const onError = (err: Error) => {
      cleanup();
      client.end(true);
      const code = (err as { code?: number | string }).code;
      const why =
        code === 4 || code === 5
          ? "it refused the hub's login; pass --broker-username/--broker-password (or GANGLION_BROKER_USERNAME/PASSWORD)"
          : `${err.message}; check that it runs and that --broker (or hub.mqtt.broker) is right`;
      reject(new ExternalBrokerError(options.url, `cannot connect to the mqtt broker ${url}: ${why}`, err));
    };
    const onClose = () => onError(new Error("connection closed before CONNACK"));
    const onConnect = (packet: { sessionPresent: boolean }) => {
      cleanup();
      resolve({ sessionPresent: packet.sessionPresent });
    };
    const cleanup = () => {
      client.off("error", onError);
      client.off("close", onClose);
      client.off("connect", onConnect);
    };
    client.once("error", onError);
    client.once("close", onClose);
    client.once("connect", onConnect);
  });

  link = new ExternalBroker({
    url,
    clientId,
    sessionPresent: connack.sessionPresent,
    client,
    log,
    credentials:
      username === undefined ? undefined : { username, password: password === undefined ? "" : password },
  });
  client.on("error", (err) => log.warn({ err: err.message }, "external mqtt broker error"));
  client.on("close", () =>
    fail(new ExternalBrokerError(options.url, `lost the connection to the mqtt broker ${url}`)),
  );

  const filters = hubSubscriptions(prefix);
  try {
    if (failed !== undefined || !client.connected) throw failed ?? new Error("the connection dropped");
    const granted = await client.subscribeAsync(
      Object.fromEntries(filters.map((topic) => [topic, { qos: 1 as const }])),
    );
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    if (refused.length > 0) {
      throw new Error(
        `it refused the subscriptions ${refused.join(", ")}; allow the hub's login to read them`,
      );
    }
    if (failed !== undefined) throw failed;
  } catch (err) {
    await link.close();
    throw new ExternalBrokerError(
      options.url,
      `cannot subscribe on the mqtt broker ${url}: ${(err as Error).message}`,
      err,
    );
  }
  // From here on a dropped connection is reported to onClose.
  connected = true;
  log.info(
    { clientId, sessionPresent: connack.sessionPresent, subscriptions: filters },
    "connected to the external mqtt broker",
  );
  return link;
}
