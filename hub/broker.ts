/**
 * The embedded MQTT broker: aedes 1.2 on a TCP (or TLS) port, with Ganglion's security rules.
 *
 * - Authentication: a device logs in with username = its id and password = its token, checked against the
 *   fleet file's scrypt hashes ({@link Credentials}); the hub's own client logs in as `hub` with a random per-run
 *   secret ({@link RunningBroker.hubCredentials}); anonymous clients only when anonymous read is allowed. Anything
 *   else gets CONNACK 5 (not authorized) and a log line naming the device id.
 * - ACL ({@link checkPublish}, {@link checkSubscribe}): a device publishes only under `<prefix>/<id>/` (never to
 *   its `cmd/` or `state/`) and subscribes only to its own `cmd/#`; anonymous clients read `state/#`, `+/status`
 *   and `hub/events`; the hub does anything. A refused publish closes that connection (MQTT 3.1.1 has no negative
 *   PUBACK); a refused subscription gets SUBACK 0x80.
 * - Robustness: each connection passes through a {@link FrameGuard} that drops it when a packet announces more than
 *   `maxPacketSize` bytes or is not MQTT; parser errors on junk bytes close only that connection.
 *
 * PUBACK after persist. aedes handles an incoming PUBLISH as `authorizePublish` → (QoS 1) write PUBACK → route.
 * Its `published` hook and `publish` event run *after* the PUBACK is written, so they cannot make it wait. This
 * module therefore hands a device's `telemetry/<sensor>` publish to `onTelemetry` from inside `authorizePublish`
 * and calls aedes back only when the hook answers: the PUBACK goes out after the reading is committed (see
 * HistoryStore.storeTelemetry's group commit). The hooks of one connection's publishes run at once (so they share
 * a commit), and their answers are kept in a queue per connection, so PUBACKs leave in the order the PUBLISHes
 * came (MQTT-4.6.0-2). If a hook answers with an error, no PUBACK is sent and the connection is closed; the device
 * still holds the reading and resends it when it reconnects.
 */
// First: mqtt-packet (under aedes) must find `debug` already quieted when it loads.
import "./broker/quiet-debug.ts";
import { EventEmitter } from "node:events";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { Aedes, type Client } from "aedes";
import { type Logger, pino } from "pino";
import { checkPublish, checkSubscribe, type Identity, telemetrySensorOf } from "./broker/acl.ts";
import { Credentials, type DeviceCredential, HUB_USERNAME } from "./broker/credentials.ts";
import { AclError, MqttPortInUseError, PersistError } from "./broker/errors.ts";
import { FrameError, FrameGuard } from "./broker/frame-guard.ts";
import { loginCollector } from "./broker/login-gc.ts";
import { indexRetained } from "./broker/retained.ts";
import type { FleetConfig } from "./config.ts";

/**
 * mqtt-packet's number cache off, once for the process. By default its first write fills a table of 65,536 2-byte
 * Buffers (every 16-bit message id and length, ~6.5 MB of heap held for the hub's lifetime) to save an
 * allocation per packet; a hub of 10k devices needs that heap more than the few bytes per packet (issue 3). The
 * switch is module state of mqtt-packet, so it is set on the copy aedes itself writes with (resolved from aedes,
 * not from here: mqtt-packet is aedes's dependency, not ours). It also covers the hub's mqtt.js client, which
 * shares that copy (external broker). Set when this module loads, before any packet is written: turning it off
 * later would stop the cache growing but not free it.
 */
const aedesRequire = createRequire(createRequire(import.meta.url).resolve("aedes"));
const mqttPacket = aedesRequire("mqtt-packet") as { writeToStream: { cacheNumbers: boolean } };
mqttPacket.writeToStream.cacheNumbers = false;

export {
  anonymousReadPatterns,
  checkPublish,
  checkSubscribe,
  type DeviceTopic,
  filterWithin,
  type Identity,
  parseDeviceTopic,
  telemetrySensorOf,
} from "./broker/acl.ts";
export { type AuthResult, Credentials, type DeviceCredential, HUB_USERNAME } from "./broker/credentials.ts";
export { AclError, MqttPortInUseError, PersistError } from "./broker/errors.ts";
export { FrameError, FrameGuard } from "./broker/frame-guard.ts";

/** A device's telemetry publish, handed to {@link BrokerOptions.onTelemetry} before it is acknowledged. */
export interface TelemetryMessage {
  device: string;
  sensor: string;
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  clientId: string;
}

/**
 * Persists a reading, then calls `done()` once it is durable; the device gets its PUBACK only then. Call
 * `done(err)` only when it could not be stored (the connection is closed and the device resends); a payload you
 * cannot use should be counted and answered with `done()`, or the device would resend it forever. A hook that
 * throws answers with that error. A callback rather than a promise: it runs once per reading, and promises were a
 * measurable share of the garbage per reading.
 */
export type TelemetryHook = (message: TelemetryMessage, done: (err?: unknown) => void) => void;

/** A telemetry publish waiting in its connection's queue until it can be acknowledged in order. */
class Unanswered {
  answered = false;
  err: unknown = null;
  constructor(
    readonly done: (err?: Error | null) => void,
    readonly device: string,
    readonly sensor: string,
  ) {}
}

/** Options for {@link startBroker}. */
export interface BrokerOptions {
  /** Address to bind; default `127.0.0.1`. */
  host?: string;
  /** Port; default 1883 (8883 with TLS); 0 picks a free one. */
  port?: number;
  /** Serve mqtts: PEM certificate and key, as file paths or contents. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Topic prefix of the MQTT contract; default `ganglion`. */
  topicPrefix?: string;
  /** Devices that may log in (see {@link deviceCredentials}); replace later with {@link RunningBroker.setDevices}. */
  devices?: Iterable<DeviceCredential>;
  /** Let anonymous clients read `state/#`, `+/status` and `hub/events`. Default false. */
  anonymousRead?: boolean;
  /** Largest packet accepted, in bytes (fixed header included); default 64 KiB. */
  maxPacketSize?: number;
  /** Called for each device telemetry publish before aedes acknowledges it. */
  onTelemetry?: TelemetryHook;
  /** Structured logger; default pino at info level on stderr. */
  logger?: Logger;
  /** The hub client's password; default 32 random bytes, new each run. Ignored when `credentials` is given. */
  hubSecret?: string;
  /**
   * A credentials table to reuse, e.g. the previous broker's after a restart: its remembered verifications let
   * every device log in again without an scrypt each (a reconnect storm of 1,000 devices would otherwise cost
   * ~1,000 × 30-50 ms of scrypt, two at a time). `devices`, when also given, replaces its device list.
   */
  credentials?: Credentials;
  /** Milliseconds a connection may take to send CONNECT; default 10 000. */
  connectTimeoutMs?: number;
  /**
   * Connections accepted at once; more are closed on arrival (and counted). Default 16 000: a process here may
   * hold ~20 000 file descriptors, and the hub needs some for its database, HTTP clients and serial ports.
   */
  maxConnections?: number;
}

/** Who is on a connection. */
export interface ClientInfo {
  clientId: string;
  identity: Identity;
  remoteAddress?: string | undefined;
}

/** A message the broker routed (the hub's view of all traffic; `$SYS` excluded). */
export interface PublishInfo {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** `null` for messages the broker itself published (wills, `aedes.publish`). */
  clientId: string | null;
  identity: Identity | null;
}

/** Events of a {@link RunningBroker}. */
export interface BrokerEventMap {
  /** A client finished connecting. */
  connect: [ClientInfo];
  /** A client went away (cleanly or not). */
  disconnect: [ClientInfo];
  /** A message was routed. */
  publish: [PublishInfo];
  /** A login was refused. */
  authFailed: [
    { username: string | undefined; clientId: string; remoteAddress?: string | undefined; reason: string },
  ];
  /** The ACL refused a publish or subscription. */
  refused: [
    { clientId: string; identity: Identity; action: "publish" | "subscribe"; topic: string; reason: string },
  ];
}

/** Counters for introspection and tests. */
export interface BrokerCounters {
  /** Logins refused (wrong or missing credentials, stolen client id). */
  rejectedConnections: number;
  /** Publishes and subscriptions the ACL refused. */
  aclRefusals: number;
  /** Connections dropped for bytes that are not MQTT. */
  malformedPackets: number;
  /** Connections dropped for a packet above `maxPacketSize`. */
  oversizedPackets: number;
  /** Telemetry the persistence hook failed to store (not acknowledged). */
  persistFailures: number;
  /** Connections closed on arrival because `maxConnections` were open. */
  droppedConnections: number;
}

/** Device credentials from a fleet config: every device with an MQTT link. */
export function deviceCredentials(config: Pick<FleetConfig, "devices">): DeviceCredential[] {
  const out: DeviceCredential[] = [];
  for (const d of config.devices) {
    if (d.link.type === "mqtt") out.push({ id: d.id, tokenHash: d.link.tokenHash });
  }
  return out;
}

async function pem(value: string | Buffer): Promise<Buffer> {
  return typeof value === "string" ? readFile(value) : value;
}

function hasCode(err: unknown): boolean {
  return typeof err === "object" && err !== null && ("code" in err || "errorCode" in err);
}

/** A listening broker. Listen with `on("connect" | "disconnect" | "publish" | ...)`. */
export class RunningBroker extends EventEmitter<BrokerEventMap> {
  /** `mqtt://HOST:PORT` (or `mqtts://`), with the port actually bound. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly aedes: Aedes;
  /** What the hub's internal client logs in with (the password is new each run). */
  readonly hubCredentials: { username: string; password: string };
  readonly counters: BrokerCounters;
  /** The credentials table; pass it to the next {@link startBroker} after a restart (see `BrokerOptions.credentials`). */
  readonly credentials: Credentials;
  private readonly identities: WeakMap<Client, Identity>;
  private readonly server: Server;
  private readonly sockets: Set<Socket>;
  private readonly log: Logger;
  private devices = new Map<string, DeviceCredential>();
  private closing: Promise<void> | undefined;

  /** @internal Use {@link startBroker}. */
  constructor(parts: {
    url: string;
    host: string;
    port: number;
    aedes: Aedes;
    credentials: Credentials;
    identities: WeakMap<Client, Identity>;
    server: Server;
    sockets: Set<Socket>;
    counters: BrokerCounters;
    log: Logger;
    devices: Iterable<DeviceCredential>;
  }) {
    super();
    this.url = parts.url;
    this.host = parts.host;
    this.port = parts.port;
    this.aedes = parts.aedes;
    this.credentials = parts.credentials;
    this.identities = parts.identities;
    this.server = parts.server;
    this.sockets = parts.sockets;
    this.counters = parts.counters;
    this.log = parts.log;
    this.hubCredentials = { username: HUB_USERNAME, password: parts.credentials.hubSecret };
    for (const d of parts.devices) this.devices.set(d.id, d);
  }

  /**
   * Replaces the devices that may log in (after `POST/DELETE /api/devices`). Sessions of devices that were removed
   * or whose token changed are closed; everyone else stays connected.
   */
  setDevices(devices: Iterable<DeviceCredential>): void {
    this.devices = new Map([...devices].map((d) => [d.id, d]));
    const revoked = new Set(this.credentials.set(this.devices.values()));
    if (revoked.size === 0) return;
    const clients = (this.aedes as unknown as { clients: Record<string, Client> }).clients;
    for (const client of Object.values(clients)) {
      const who = this.identities.get(client);
      if (who?.kind === "device" && revoked.has(who.id)) {
        this.log.info({ device: who.id, clientId: client.id }, "mqtt session closed: credentials revoked");
        client.close();
      }
    }
  }

  /** Adds or replaces one device's credentials. */
  addDevice(device: DeviceCredential): void {
    this.setDevices([...[...this.devices.values()].filter((d) => d.id !== device.id), device]);
  }

  /** Removes a device's credentials and closes its session. */
  removeDevice(id: string): void {
    this.setDevices([...this.devices.values()].filter((d) => d.id !== id));
  }

  /** The identity of a connected client, by client id. */
  identityOf(clientId: string): Identity | undefined {
    const clients = (this.aedes as unknown as { clients: Record<string, Client> }).clients;
    const client = clients[clientId];
    return client ? this.identities.get(client) : undefined;
  }

  /** Disconnects every client and stops listening. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
      for (const socket of this.sockets) socket.destroy();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.log.info({ url: this.url }, "mqtt broker closed");
    })();
    return this.closing;
  }
}

/**
 * Starts the embedded broker; resolves once it listens.
 * @throws {MqttPortInUseError} when the port is taken (the CLI prints its message and exits 2).
 */
export async function startBroker(options: BrokerOptions = {}): Promise<RunningBroker> {
  const host = options.host ?? "127.0.0.1";
  const requestedPort = options.port ?? (options.tls ? 8883 : 1883);
  const prefix = options.topicPrefix ?? "ganglion";
  const anonymousRead = options.anonymousRead ?? false;
  const maxPacketSize = options.maxPacketSize ?? 64 * 1024;
  const log = (options.logger ?? pino({ level: "info" }, pino.destination(2))).child({ service: "broker" });
  const credentials = options.credentials ?? new Credentials([], options.hubSecret);
  if (options.devices !== undefined) credentials.set(options.devices);
  const devices = credentials.list();
  const identities = new WeakMap<Client, Identity>();
  const counters: BrokerCounters = {
    rejectedConnections: 0,
    aclRefusals: 0,
    malformedPackets: 0,
    oversizedPackets: 0,
    persistFailures: 0,
    droppedConnections: 0,
  };
  /** Per connection, its telemetry publishes not yet acknowledged, oldest first (the array lives as long as it). */
  const unanswered = new WeakMap<Client, Unanswered[]>();
  /** Acknowledges, oldest first, the publishes of a connection whose hooks have answered. */
  const acknowledgeInOrder = (queue: Unanswered[]) => {
    while (queue.length > 0 && (queue[0] as Unanswered).answered) {
      const entry = queue.shift() as Unanswered;
      if (entry.err === null) {
        entry.done(null);
        continue;
      }
      counters.persistFailures++;
      log.error(
        { err: entry.err, device: entry.device, sensor: entry.sensor },
        "telemetry not persisted; not acknowledged",
      );
      entry.done(new PersistError(`telemetry from ${entry.device}/${entry.sensor} not persisted`, entry.err));
    }
  };
  const remoteOf = (client: Client): string | undefined => (client.conn as Partial<FrameGuard>).remoteAddress;
  // `broker` is assigned before any client can connect; the handlers below only run after listen().
  let broker: RunningBroker | undefined;

  const aedes = await Aedes.createBroker({
    // No cap on deliveries in flight: past aedes's default of 100, mqemitter queues messages in an array drained
    // with shift() and by recursion — 24 % of the hub's CPU under a 1k-device flood, and a stack overflow at 4k
    // readings/s (bench fleet). Each device is already held back by its PUBACK, sent once the reading is stored.
    concurrency: 0,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    maxClientsIdLength: 128,
    drainTimeout: 30_000,

    authenticate(client, username, password, done) {
      credentials.authenticate(username, password, anonymousRead).then(
        (result) => {
          let reason = result.ok ? undefined : result.reason;
          let returnCode = 5;
          if (result.ok) {
            // A client id names a session; refuse one that would take over someone else's.
            const clients = (aedes as unknown as { clients: Record<string, Client> }).clients;
            const holder = clients[client.id];
            const holderIdentity = holder ? identities.get(holder) : undefined;
            const sameOwner = (a: Identity | undefined, b: Identity) =>
              a?.kind === b.kind && (a.kind !== "device" || (b.kind === "device" && a.id === b.id));
            const me = result.identity;
            if (holder && holder !== client && !sameOwner(holderIdentity, me)) {
              reason = `client id "${client.id}" is in use by another login`;
              returnCode = 2;
            } else if (credentials.has(client.id) && !(me.kind === "device" && me.id === client.id)) {
              reason = `client id "${client.id}" is reserved for that device`;
              returnCode = 2;
            } else {
              identities.set(client, me);
              done(null, true);
              return;
            }
          }
          counters.rejectedConnections++;
          const remoteAddress = remoteOf(client);
          log.warn({ device: username, clientId: client.id, remoteAddress, reason }, "mqtt login refused");
          broker?.emit("authFailed", { username, clientId: client.id, remoteAddress, reason: reason ?? "" });
          done(Object.assign(new Error(reason), { returnCode }), false);
        },
        (err: unknown) => {
          log.error({ err, device: username }, "mqtt login check failed");
          done(Object.assign(new Error("authentication error"), { returnCode: 3 }), false);
        },
      );
    },

    authorizePublish(client, packet, done) {
      if (!client) {
        done(null); // a will the broker publishes for a session that is gone
        return;
      }
      const who = identities.get(client);
      const refusal = who ? checkPublish(who, packet.topic, prefix) : "not logged in";
      if (refusal || !who) {
        counters.aclRefusals++;
        const device = who?.kind === "device" ? who.id : undefined;
        log.warn(
          { device, clientId: client.id, topic: packet.topic, reason: refusal },
          "mqtt publish refused",
        );
        if (who) {
          broker?.emit("refused", {
            clientId: client.id,
            identity: who,
            action: "publish",
            topic: packet.topic,
            reason: refusal ?? "",
          });
        }
        done(new AclError(refusal ?? "not logged in"));
        return;
      }
      const hook = options.onTelemetry;
      if (!hook || who.kind !== "device") {
        done(null);
        return;
      }
      const sensor = telemetrySensorOf(packet.topic, prefix, who.id);
      if (sensor === null) {
        done(null);
        return;
      }
      const message: TelemetryMessage = {
        device: who.id,
        sensor,
        topic: packet.topic,
        payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
        qos: packet.qos,
        clientId: client.id,
      };
      // Answered in any order (a hook may answer at once, another after a commit), acknowledged in arrival order.
      const entry = new Unanswered(done, who.id, sensor);
      let queue = unanswered.get(client);
      if (queue === undefined) {
        queue = [];
        unanswered.set(client, queue);
      }
      queue.push(entry);
      const answer = (err?: unknown) => {
        if (entry.answered) return;
        entry.answered = true;
        entry.err = err ?? null;
        acknowledgeInOrder(queue);
      };
      try {
        hook(message, answer);
      } catch (err) {
        answer(err);
      }
    },

    authorizeSubscribe(client, sub, done) {
      const who = identities.get(client);
      const refusal = who ? checkSubscribe(who, sub.topic, prefix, anonymousRead) : "not logged in";
      if (refusal || !who) {
        counters.aclRefusals++;
        const device = who?.kind === "device" ? who.id : undefined;
        log.warn(
          { device, clientId: client.id, topic: sub.topic, reason: refusal },
          "mqtt subscribe refused",
        );
        if (who) {
          broker?.emit("refused", {
            clientId: client.id,
            identity: who,
            action: "subscribe",
            topic: sub.topic,
            reason: refusal ?? "",
          });
        }
        done(null, null);
        return;
      }
      done(null, sub);
    },
  });

  indexRetained(aedes);

  const infoOf = (client: Client): ClientInfo | undefined => {
    const identity = identities.get(client);
    return identity ? { clientId: client.id, identity, remoteAddress: remoteOf(client) } : undefined;
  };
  const deviceField = (identity: Identity | undefined) =>
    identity?.kind === "device" ? identity.id : undefined;

  const noteLogin = loginCollector();
  aedes.on("clientReady", (client) => {
    noteLogin();
    const info = infoOf(client);
    if (!info) return;
    log.info(
      { device: deviceField(info.identity), clientId: client.id, kind: info.identity.kind },
      "mqtt client connected",
    );
    broker?.emit("connect", info);
  });
  aedes.on("clientDisconnect", (client) => {
    const info = infoOf(client);
    if (!info) return;
    log.info({ device: deviceField(info.identity), clientId: client.id }, "mqtt client disconnected");
    broker?.emit("disconnect", info);
  });
  aedes.on("publish", (packet, client) => {
    if (packet.topic.startsWith("$SYS/")) return;
    broker?.emit("publish", {
      topic: packet.topic,
      payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
      qos: packet.qos,
      retain: packet.retain,
      clientId: client?.id ?? null,
      identity: client ? (identities.get(client) ?? null) : null,
    });
  });
  const onError = (client: Client, err: Error) => {
    const device = deviceField(identities.get(client));
    const fields = {
      device,
      clientId: client.id ?? undefined,
      remoteAddress: remoteOf(client),
      err: err.message,
    };
    if (err instanceof FrameError) {
      if (err.kind === "oversized") counters.oversizedPackets++;
      else counters.malformedPackets++;
      log.warn(fields, "mqtt connection dropped: bad frame");
    } else if (err instanceof AclError || err instanceof PersistError || hasCode(err)) {
      // Counted where they happen (ACL, persistence), or a socket/CONNACK error: nothing more to count.
      log.debug(fields, "mqtt connection closed");
    } else {
      counters.malformedPackets++;
      log.warn(fields, "mqtt connection dropped: malformed packet");
    }
  };
  aedes.on("clientError", onError);
  aedes.on("connectionError", onError);

  const sockets = new Set<Socket>();
  const onSocket = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.setNoDelay(true);
    aedes.handle(new FrameGuard(socket, maxPacketSize));
  };
  let server: Server;
  if (options.tls) {
    const [cert, key] = await Promise.all([pem(options.tls.cert), pem(options.tls.key)]);
    server = createTlsServer({ cert, key }, onSocket);
    server.on("tlsClientError", (err: Error, socket: Socket) => {
      counters.malformedPackets++;
      log.warn({ remoteAddress: socket.remoteAddress, err: err.message }, "mqtts handshake failed");
    });
    // A TLS server only reports sockets after the handshake; track raw ones too so close() can end them.
    server.on("connection", (socket: Socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
  } else {
    server = createNetServer(onSocket);
  }

  server.maxConnections = options.maxConnections ?? 16_000;
  server.on("drop", (data) => {
    counters.droppedConnections++;
    log.warn(
      { remoteAddress: data?.remoteAddress, max: server.maxConnections },
      "mqtt connection dropped: too many",
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(requestedPort, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    if ((err as NodeJS.ErrnoException).code === "EADDRINUSE")
      throw new MqttPortInUseError(host, requestedPort);
    throw err;
  }
  server.on("error", (err) => log.error({ err }, "mqtt server error"));

  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  const url = `${options.tls ? "mqtts" : "mqtt"}://${urlHost}:${port}`;
  broker = new RunningBroker({
    url,
    host,
    port,
    aedes,
    credentials,
    identities,
    server,
    sockets,
    counters,
    log,
    devices,
  });
  log.info({ url, devices: credentials.size, anonymousRead, maxPacketSize }, "mqtt broker listening");
  return broker;
}
