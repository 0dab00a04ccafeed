import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { pino } from "pino";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../firmware/pi-agent/src/agent.ts";
import { parseConfig as parseAgentConfig } from "../../firmware/pi-agent/src/config.ts";
import { topicMatches } from "../../hub/broker/retained.ts";
import {
  type BrokerOptions,
  Credentials,
  checkPublish,
  checkSubscribe,
  FrameError,
  FrameGuard,
  filterWithin,
  MqttPortInUseError,
  type RunningBroker,
  startBroker,
  type TelemetryHook,
  type TelemetryMessage,
  telemetrySensorOf,
} from "../../hub/broker.ts";
import { generateToken, hashToken } from "../../hub/config.ts";
import { HistoryStore } from "../../hub/store.ts";
import { createVirtualSysfs } from "../../simulator/pi/virtual-sysfs.ts";

const tokens = new Map<string, string>();
const hashes = new Map<string, string>();
const logLines: Record<string, unknown>[] = [];
const brokers: RunningBroker[] = [];
const clients: MqttClient[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  for (const id of ["pi-1", "pi-2", "pi-3"]) {
    const token = generateToken();
    tokens.set(id, token);
    hashes.set(id, await hashToken(token));
  }
});

afterEach(async () => {
  // Cleanups first (newest first): an agent must stop while its broker is still there.
  for (const fn of cleanups.splice(0).reverse()) await fn();
  for (const c of clients.splice(0)) c.end(true);
  for (const b of brokers.splice(0)) await b.close();
  logLines.length = 0;
});

const logger = pino(
  { level: "debug" },
  {
    write(line: string) {
      logLines.push(JSON.parse(line) as Record<string, unknown>);
    },
  },
);

async function broker(options: BrokerOptions = {}): Promise<RunningBroker> {
  const b = await startBroker({
    port: 0,
    logger,
    devices: ["pi-1", "pi-2"].map((id) => ({ id, tokenHash: hashes.get(id)! })),
    ...options,
  });
  brokers.push(b);
  return b;
}

/** Connects a real mqtt.js client; rejects with the CONNACK error when refused. */
function connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  clients.push(client);
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", reject);
    client.once("close", () => reject(new Error("closed before CONNACK")));
  });
}

function device(b: RunningBroker, id: string, options: IClientOptions = {}): Promise<MqttClient> {
  return connect(b.url, { username: id, password: tokens.get(id)!, clientId: id, ...options });
}

function hub(b: RunningBroker): Promise<MqttClient> {
  return connect(b.url, { ...b.hubCredentials, clientId: "hub-test" });
}

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (client.disconnected) resolve();
    else client.once("close", () => resolve());
  });
}

function nextMessage(client: MqttClient, topic: string, timeoutMs = 8000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message on ${topic}`)), timeoutMs);
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.off("message", onMessage);
      resolve(payload);
    };
    client.on("message", onMessage);
  });
}

/** Subscribes to each filter on its own; returns the granted QoS, 128 for a refusal. */
async function grants(client: MqttClient, filters: string[], qos: 0 | 1 = 0): Promise<number[]> {
  const out: number[] = [];
  for (const filter of filters) {
    try {
      const [granted] = await client.subscribeAsync(filter, { qos });
      out.push(granted?.qos ?? -1);
    } catch (err) {
      const packet = (err as { packet?: { granted?: number[] } }).packet;
      out.push(packet?.granted?.[0] ?? -1);
    }
  }
  return out;
}

/**
 * Collects the topics of every message until one on `last` arrives (inclusive). A broker routes one publisher's
 * messages in order, so anything wrongly routed before `last` is in the list: no sleeping and hoping.
 */
function collectUntil(client: MqttClient, last: string, timeoutMs = 8000): Promise<string[]> {
  const got: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no message on ${last}; got ${got.join(", ")}`)),
      timeoutMs,
    );
    const onMessage = (t: string) => {
      got.push(t);
      if (t !== last) return;
      clearTimeout(timer);
      client.off("message", onMessage);
      resolve(got);
    };
    client.on("message", onMessage);
  });
}

async function roundTrip(b: RunningBroker, id: string): Promise<void> {
  // A device publishes, the hub sees it: proves the broker is alive and serving.
  const h = await hub(b);
  await h.subscribeAsync(`ganglion/${id}/heartbeat`);
  const d = await device(b, id, { clientId: `${id}` });
  const got = nextMessage(h, `ganglion/${id}/heartbeat`);
  await d.publishAsync(`ganglion/${id}/heartbeat`, '{"ts":1,"uptimeS":1}', { qos: 1 });
  expect((await got).toString()).toBe('{"ts":1,"uptimeS":1}');
  d.end(true);
  h.end(true);
}

describe("ACL rules", () => {
  it("contains MQTT filters correctly", () => {
    expect(filterWithin("ganglion/pi-1/state/temp", "ganglion/+/state/#")).toBe(true);
    expect(filterWithin("ganglion/+/state/+", "ganglion/+/state/#")).toBe(true);
    expect(filterWithin("ganglion/#", "ganglion/+/state/#")).toBe(false);
    expect(filterWithin("ganglion/+/+/temp", "ganglion/+/state/#")).toBe(false);
    expect(filterWithin("ganglion/+/status", "ganglion/+/status")).toBe(true);
    expect(filterWithin("ganglion/pi-1/status/x", "ganglion/+/status")).toBe(false);
    expect(filterWithin("#", "ganglion/hub/events")).toBe(false);
  });

  it("keeps devices to their own topics", () => {
    const pi = { kind: "device", id: "pi-1" } as const;
    expect(checkPublish(pi, "ganglion/pi-1/telemetry/temp", "ganglion")).toBeNull();
    expect(checkPublish(pi, "ganglion/pi-1/status", "ganglion")).toBeNull();
    expect(checkPublish(pi, "ganglion/pi-2/telemetry/temp", "ganglion")).toMatch(
      /only under ganglion\/pi-1\//,
    );
    expect(checkPublish(pi, "ganglion/pi-1/cmd/led", "ganglion")).toMatch(/may not publish/);
    expect(checkPublish(pi, "ganglion/pi-1/state/temp", "ganglion")).toMatch(/may not publish/);
    expect(checkPublish(pi, "ganglion/pi-10/status", "ganglion")).not.toBeNull();
    expect(checkSubscribe(pi, "ganglion/pi-1/cmd/#", "ganglion", false)).toBeNull();
    expect(checkSubscribe(pi, "ganglion/pi-1/cmd/led", "ganglion", false)).toBeNull();
    expect(checkSubscribe(pi, "ganglion/+/cmd/#", "ganglion", false)).not.toBeNull();
    expect(checkSubscribe(pi, "ganglion/pi-1/#", "ganglion", false)).not.toBeNull();
    expect(checkSubscribe({ kind: "anonymous" }, "ganglion/hub/events", "ganglion", false)).not.toBeNull();
    expect(checkSubscribe({ kind: "anonymous" }, "ganglion/hub/events", "ganglion", true)).toBeNull();
    expect(checkPublish({ kind: "hub" }, "ganglion/pi-1/cmd/led", "ganglion")).toBeNull();
    expect(checkPublish(pi, "ganglion/pi-1/", "ganglion")).toMatch(/may not publish to ganglion\/pi-1\/$/);
    expect(checkPublish(pi, "ganglionx/pi-1/status", "ganglion")).toMatch(/only under/);
  });

  it("finds the sensor of a device's telemetry topic, and only there", () => {
    expect(telemetrySensorOf("ganglion/pi-1/telemetry/temp", "ganglion", "pi-1")).toBe("temp");
    expect(telemetrySensorOf("ganglion/pi-1/telemetry/", "ganglion", "pi-1")).toBeNull();
    expect(telemetrySensorOf("ganglion/pi-1/telemetry/a/b", "ganglion", "pi-1")).toBeNull();
    expect(telemetrySensorOf("ganglion/pi-1/telemetryx/temp", "ganglion", "pi-1")).toBeNull();
    expect(telemetrySensorOf("ganglion/pi-1/status", "ganglion", "pi-1")).toBeNull();
    expect(telemetrySensorOf("ganglion/pi-10/telemetry/temp", "ganglion", "pi-1")).toBeNull();
    expect(telemetrySensorOf("ganglion/pi-1/telemetry/temp", "ganglion", "pi-10")).toBeNull();
  });
});

/** A promise-returning persistence step as the broker's callback hook: answers when it settles. */
const answering =
  (persist: (m: TelemetryMessage) => Promise<void>): TelemetryHook =>
  (m, done) => {
    persist(m).then(() => done(), done);
  };

/** A socket stand-in: the test pushes what "arrives"; what the guard writes is collected. */
class FakeSocket extends Duplex {
  readonly written: Buffer[] = [];
  /** What each write call to the "kernel" carried: one entry per write or writev. */
  readonly syscalls: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.written.push(chunk);
    this.syscalls.push(chunk);
    cb();
  }
  override _writev(chunks: { chunk: Buffer }[], cb: () => void): void {
    for (const { chunk } of chunks) this.written.push(chunk);
    this.syscalls.push(Buffer.concat(chunks.map((c) => c.chunk)));
    cb();
  }
}

/** An MQTT 3.1.1 PUBLISH (QoS 0) with its remaining length encoded as a varint. */
function publishPacket(topic: string, payload: Buffer): Buffer {
  const body = Buffer.concat([
    Buffer.from([topic.length >> 8, topic.length & 0xff]),
    Buffer.from(topic),
    payload,
  ]);
  const len: number[] = [];
  let x = body.length;
  do {
    let byte = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) byte |= 0x80;
    len.push(byte);
  } while (x > 0);
  return Buffer.concat([Buffer.from([0x30, ...len]), body]);
}

function guarded(max: number): {
  socket: FakeSocket;
  guard: FrameGuard;
  out: Buffer[];
  error: Promise<Error | undefined>;
} {
  const socket = new FakeSocket();
  const guard = new FrameGuard(socket, max);
  const out: Buffer[] = [];
  guard.on("data", (chunk: Buffer) => out.push(chunk));
  const error = new Promise<Error | undefined>((resolve) => {
    guard.once("error", resolve);
    guard.once("close", () => resolve(undefined));
  });
  return { socket, guard, out, error };
}

describe("frame guard", () => {
  it("passes MQTT through unchanged however the bytes are split, up to exactly the size limit", async () => {
    const packets = Buffer.concat([
      Buffer.from([0xc0, 0x00]), // PINGREQ
      publishPacket("ganglion/pi-1/telemetry/t", Buffer.alloc(300, 1)), // 2-byte remaining length
      publishPacket("a", Buffer.alloc(1000 - 1 - 2 - 3, 2)), // exactly 1000 bytes in all
    ]);
    expect(publishPacket("a", Buffer.alloc(1000 - 1 - 2 - 3, 2)).length).toBe(1000);
    const { socket, guard, out } = guarded(1000);
    for (const byte of packets) socket.push(Buffer.from([byte]));
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(out).equals(packets)).toBe(true);
    expect(guard.destroyed).toBe(false);
    guard.write(Buffer.from([0xd0, 0x00])); // PINGRESP goes out to the socket untouched
    expect(Buffer.concat(socket.written)).toEqual(Buffer.from([0xd0, 0x00]));
    guard.destroy();
    expect(socket.destroyed).toBe(true);
  });

  it("sends a client's first packet in a loop turn at once, and the rest of that turn's in one write", async () => {
    const { socket, guard } = guarded(1000);
    const puback = (id: number) => Buffer.from([0x40, 0x02, 0x00, id]);
    guard.write(puback(1));
    expect(socket.syscalls).toEqual([puback(1)]); // a device's PUBACK is not held back
    guard.write(puback(2));
    guard.write(puback(3));
    guard.write(puback(4));
    expect(socket.syscalls).toHaveLength(1);
    await new Promise((r) => setImmediate(r));
    expect(socket.syscalls).toEqual([puback(1), Buffer.concat([puback(2), puback(3), puback(4)])]);
    // A refusing CONNACK written just before the connection is closed still goes out.
    guard.write(puback(5));
    guard.write(Buffer.from([0x20, 0x02, 0x00, 0x05]));
    guard.destroy();
    expect(Buffer.concat(socket.written.slice(-2))).toEqual(
      Buffer.concat([puback(5), Buffer.from([0x20, 0x02, 0x00, 0x05])]),
    );
    expect(socket.destroyed).toBe(true);
  });

  it("drops the connection as soon as a header announces a packet over the limit, before its body", async () => {
    const { socket, error } = guarded(1000);
    const big = publishPacket("a", Buffer.alloc(1000 - 1 - 2 - 3 + 1, 2));
    socket.push(big.subarray(0, 3)); // fixed header only
    const err = await error;
    expect(err).toBeInstanceOf(FrameError);
    expect(err).toMatchObject({
      kind: "oversized",
      message: "packet of 1001 bytes exceeds the 1000-byte limit",
    });
    expect(socket.destroyed).toBe(true);
  });

  it("drops bytes that are not MQTT: reserved packet type 0, or a remaining length over 4 bytes", async () => {
    const a = guarded(1 << 28);
    a.socket.push(Buffer.from("\0\0\0"));
    expect(await a.error).toMatchObject({ kind: "malformed" });
    const b = guarded(1 << 28);
    b.socket.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    expect(await b.error).toMatchObject({
      kind: "malformed",
      message: "remaining length longer than 4 bytes",
    });
  });
});

describe("credentials", () => {
  it("verifies tokens with scrypt at most two at a time, and remembers a success", async () => {
    const creds = new Credentials([...hashes].map(([id, tokenHash]) => ({ id, tokenHash })));
    const attempts = await Promise.all([
      ...Array.from({ length: 5 }, () => creds.authenticate("pi-1", Buffer.from(generateToken()), false)),
      creds.authenticate("pi-2", Buffer.from(tokens.get("pi-2")!), false),
    ]);
    expect(attempts.map((a) => a.ok)).toEqual([false, false, false, false, false, true]);
    expect(creds.stats).toEqual({ scrypt: 6, cacheHits: 0, peakConcurrent: 2 });
    expect(await creds.authenticate("pi-2", Buffer.from(tokens.get("pi-2")!), false)).toEqual({
      ok: true,
      identity: { kind: "device", id: "pi-2" },
    });
    expect(creds.stats.cacheHits).toBe(1);
    // A changed token hash forgets the cached success.
    expect(creds.set([{ id: "pi-2", tokenHash: hashes.get("pi-3")! }])).toEqual(["pi-1", "pi-2", "pi-3"]);
    expect((await creds.authenticate("pi-2", Buffer.from(tokens.get("pi-2")!), false)).ok).toBe(false);
    expect((await creds.authenticate("hub", Buffer.from(creds.hubSecret), false)).ok).toBe(true);
    expect((await creds.authenticate("hub", Buffer.from("guess"), false)).ok).toBe(false);
  });
});

describe("embedded broker", () => {
  it("accepts a device with its token and refuses a wrong one with not-authorized, logging the device id", async () => {
    const b = await broker();
    expect(b.url).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    const ok = await device(b, "pi-1");
    expect(ok.connected).toBe(true);
    expect(b.identityOf("pi-1")).toEqual({ kind: "device", id: "pi-1" });

    await expect(connect(b.url, { username: "pi-2", password: tokens.get("pi-1")! })).rejects.toMatchObject({
      code: 5,
    });
    await expect(connect(b.url, { username: "ghost", password: generateToken() })).rejects.toMatchObject({
      code: 5,
    });
    await expect(connect(b.url)).rejects.toMatchObject({ code: 5 }); // anonymous, not allowed here
    expect(b.counters.rejectedConnections).toBe(3);
    const refused = logLines.filter((l) => l.msg === "mqtt login refused");
    expect(refused.map((l) => [l.device, l.reason])).toEqual([
      ["pi-2", "wrong token"],
      ["ghost", "unknown device"],
      [undefined, "anonymous login is not allowed by the fleet config"],
    ]);
  });

  it("refuses a client id that would take over another device's session", async () => {
    const b = await broker();
    const pi1 = await device(b, "pi-1");
    await expect(device(b, "pi-2", { clientId: "pi-1" })).rejects.toMatchObject({ code: 2 });
    expect(pi1.connected).toBe(true);
    // A device may use any client id that is not someone else's.
    const other = await device(b, "pi-2", { clientId: "pi-2-spare" });
    expect(other.connected).toBe(true);
  });

  it("lets a device publish only under its own prefix: another device's topics close the connection", async () => {
    const b = await broker();
    const h = await hub(b);
    await h.subscribeAsync("ganglion/#");
    const seen = collectUntil(h, "ganglion/pi-1/status");
    const pi1 = await device(b, "pi-1");
    await pi1.publishAsync("ganglion/pi-1/telemetry/temp", '{"value":1,"ts":1,"seq":0}', { qos: 1 });
    pi1.publish("ganglion/pi-2/telemetry/temp", '{"value":666,"ts":1,"seq":0}', { qos: 1 });
    await closed(pi1);
    const pi1b = await device(b, "pi-1");
    pi1b.publish("ganglion/pi-1/cmd/led", "{}", { qos: 0 });
    await closed(pi1b);
    // The refused publishes died with their connections; a last allowed one marks the end of the traffic.
    const pi1c = await device(b, "pi-1");
    await pi1c.publishAsync("ganglion/pi-1/status", "online", { qos: 1 });
    expect(await seen).toEqual(["ganglion/pi-1/telemetry/temp", "ganglion/pi-1/status"]);
    expect(b.counters.aclRefusals).toBe(2);
    expect(logLines.filter((l) => l.msg === "mqtt publish refused").map((l) => l.device)).toEqual([
      "pi-1",
      "pi-1",
    ]);
  });

  it("lets a device subscribe only to its own cmd/#", async () => {
    const b = await broker();
    const pi1 = await device(b, "pi-1");
    const granted = await grants(
      pi1,
      ["ganglion/pi-1/cmd/#", "ganglion/pi-2/cmd/#", "ganglion/+/state/#"],
      1,
    );
    expect(granted).toEqual([1, 128, 128]);
    const got = collectUntil(pi1, "ganglion/pi-1/cmd/led");
    const h = await hub(b);
    await h.publishAsync("ganglion/pi-2/cmd/led", '{"id":"a","op":"on"}', { qos: 1 });
    await h.publishAsync("ganglion/pi-1/cmd/led", '{"id":"b","op":"on"}', { qos: 1 });
    expect(await got).toEqual(["ganglion/pi-1/cmd/led"]);
    expect(b.counters.aclRefusals).toBe(2);
  });

  it("lets anonymous clients read state, status and hub events when the config allows it", async () => {
    const b = await broker({ anonymousRead: true });
    const anon = await connect(b.url);
    const granted = await grants(anon, [
      "ganglion/+/state/#",
      "ganglion/+/status",
      "ganglion/hub/events",
      "ganglion/+/telemetry/#",
      "ganglion/#",
    ]);
    expect(granted).toEqual([0, 0, 0, 128, 128]);
    const got = nextMessage(anon, "ganglion/pi-1/state/temp");
    const h = await hub(b);
    await h.publishAsync("ganglion/pi-1/state/temp", '{"value":21,"ts":1,"health":"ok"}', {
      qos: 1,
      retain: true,
    });
    expect(JSON.parse((await got).toString())).toMatchObject({ value: 21 });
    anon.publish("ganglion/pi-1/state/temp", "forged");
    await closed(anon);
    expect(b.counters.aclRefusals).toBe(3);
  });

  it("hands a subscriber the retained messages its filters match, and not cleared ones", async () => {
    const b = await broker({ anonymousRead: true });
    const h = await hub(b);
    const retain = { qos: 1 as const, retain: true };
    await h.publishAsync("ganglion/pi-1/state/temp", "t1", retain);
    await h.publishAsync("ganglion/pi-1/state/hum", "h1", retain);
    await h.publishAsync("ganglion/pi-2/state/temp", "t2", retain);
    await h.publishAsync("ganglion/pi-2/status", "online", retain);
    await h.publishAsync("ganglion/pi-3/state/temp", "t3", retain);
    await h.publishAsync("ganglion/pi-3/state/temp", "", retain); // cleared
    const seen = (client: MqttClient, n: number) =>
      new Promise<string[]>((resolve) => {
        const got: string[] = [];
        client.on("message", (topic, payload) => {
          got.push(`${topic}=${payload.toString()}`);
          if (got.length === n) resolve(got);
        });
      });
    const anon = await connect(b.url);
    const all = seen(anon, 4);
    await anon.subscribeAsync(["ganglion/+/state/#", "ganglion/+/status"], { qos: 0 });
    expect((await all).sort()).toEqual([
      "ganglion/pi-1/state/hum=h1",
      "ganglion/pi-1/state/temp=t1",
      "ganglion/pi-2/state/temp=t2",
      "ganglion/pi-2/status=online",
    ]);
    const one = await connect(b.url);
    const exact = seen(one, 1);
    await one.subscribeAsync("ganglion/pi-1/state/temp", { qos: 0 });
    expect(await exact).toEqual(["ganglion/pi-1/state/temp=t1"]);
  });

  it("matches topics as aedes's qlobber does (the retained index)", () => {
    const cases: [string, string, boolean][] = [
      ["#", "a/b", true],
      ["a/#", "a", true],
      ["a/#", "a/b/c", true],
      ["a/+", "a/b", true],
      ["a/+", "a/", false],
      ["a/+", "a/b/c", false],
      ["+/+", "/a", false],
      ["a/+/c", "a/b/c", true],
      ["a/b", "a/bc", false],
      ["a/b", "a/b", true],
      ["ganglion/pi-1/cmd/#", "ganglion/pi-10/cmd/x", false],
    ];
    for (const [filter, topic, want] of cases)
      expect([filter, topic, topicMatches(filter, topic)]).toEqual([filter, topic, want]);
  });

  it("drops only the client that sends an oversized packet", async () => {
    const b = await broker({ maxPacketSize: 1024 });
    const h = await hub(b);
    await h.subscribeAsync("ganglion/+/telemetry/#", { qos: 1 });
    const big = await device(b, "pi-1");
    const small = await device(b, "pi-2");
    big.publish("ganglion/pi-1/telemetry/temp", Buffer.alloc(2000, 65), { qos: 0 });
    await closed(big);
    expect(b.counters.oversizedPackets).toBe(1);
    const got = nextMessage(h, "ganglion/pi-2/telemetry/temp");
    await small.publishAsync("ganglion/pi-2/telemetry/temp", Buffer.alloc(900, 66), { qos: 1 });
    expect((await got).length).toBe(900);
    expect(small.connected).toBe(true);
  });

  it("drops a connection that sends junk bytes while another client keeps working", async () => {
    const b = await broker();
    const pi2 = await device(b, "pi-2");
    for (const junk of [
      Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 1]),
    ]) {
      const raw = new Socket();
      cleanups.push(() => void raw.destroy());
      await new Promise<void>((resolve) => raw.connect(b.port, "127.0.0.1", resolve));
      const gone = new Promise<void>((resolve) => raw.once("close", () => resolve()));
      raw.write(junk);
      await gone;
    }
    // A CONNECT with a broken protocol name reaches aedes's parser and is refused there.
    const raw = new Socket();
    cleanups.push(() => void raw.destroy());
    await new Promise<void>((resolve) => raw.connect(b.port, "127.0.0.1", resolve));
    const gone = new Promise<void>((resolve) => raw.once("close", () => resolve()));
    raw.write(
      Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x58, 0x58, 0x58, 0x58, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]),
    );
    await gone;
    expect(b.counters.malformedPackets).toBe(3);
    expect(pi2.connected).toBe(true);
    await roundTrip(b, "pi-1");
  });

  it("closes connections beyond maxConnections on arrival, keeping the ones it has", async () => {
    const b = await broker({ maxConnections: 1 });
    const pi1 = await device(b, "pi-1");
    await expect(device(b, "pi-2")).rejects.toThrow();
    expect(b.counters.droppedConnections).toBe(1);
    expect(pi1.connected).toBe(true);
  });

  it("reports a taken port with a typed error naming the port and the fixes", async () => {
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
    const port = (squatter.address() as { port: number }).port;
    const err = await startBroker({ port, logger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MqttPortInUseError);
    expect((err as MqttPortInUseError).exitCode).toBe(2);
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect((err as Error).message).toContain("--mqtt-port");
    expect((err as Error).message).toContain(`--broker mqtt://127.0.0.1:${port}`);
  });

  it("sends a QoS 1 PUBACK only after the persistence callback resolves, in order", async () => {
    const order: string[] = [];
    const b = await broker({
      onTelemetry: answering(async (m: TelemetryMessage) => {
        order.push(`persist ${m.sensor} start`);
        await new Promise((r) => setTimeout(r, m.sensor === "slow" ? 400 : 50));
        order.push(`persist ${m.sensor} done`);
      }),
    });
    const pi1 = await device(b, "pi-1");
    const started = Date.now();
    const acks = [
      pi1.publishAsync("ganglion/pi-1/telemetry/slow", '{"value":1,"ts":1,"seq":1}', { qos: 1 }).then(() => {
        order.push("puback slow");
      }),
      pi1.publishAsync("ganglion/pi-1/telemetry/fast", '{"value":2,"ts":2,"seq":1}', { qos: 1 }).then(() => {
        order.push("puback fast");
      }),
    ];
    await Promise.all(acks);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    const at = (step: string) => order.indexOf(step);
    expect(order).toHaveLength(6);
    // Each PUBACK after its own reading is persisted, and PUBACKs leave in publish order: when both publishes
    // arrive together their persists run at once and the fast one finishes first, yet its PUBACK waits.
    expect(at("puback slow")).toBeGreaterThan(at("persist slow done"));
    expect(at("puback fast")).toBeGreaterThan(at("persist fast done"));
    expect(at("puback fast")).toBeGreaterThan(at("puback slow"));
    // Heartbeats and status are not telemetry: not handed to the hook.
    await pi1.publishAsync("ganglion/pi-1/heartbeat", "{}", { qos: 1 });
    expect(order).toHaveLength(6);
  });

  it("has a QoS 1 reading committed to the history before the device sees its PUBACK", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ganglion-broker-store-"));
    const store = HistoryStore.open({ dataDir: dir });
    cleanups.push(async () => {
      store.close();
      await rm(dir, { recursive: true, force: true });
    });
    const b = await broker({
      onTelemetry: answering(async (m) => {
        const r = JSON.parse(m.payload.toString()) as { value: number; ts: number; seq: number };
        await store.persistTelemetry({ device: m.device, sensor: m.sensor, ...r });
      }),
    });
    const pi1 = await device(b, "pi-1");
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        pi1.publishAsync("ganglion/pi-1/telemetry/temp", JSON.stringify({ value: i, ts: 1000 + i, seq: i }), {
          qos: 1,
        }),
      ),
    );
    // Read through a second connection to the file: only committed rows are visible there.
    const reader = HistoryStore.open({ dataDir: dir });
    try {
      expect(reader.telemetry({ device: "pi-1", sensor: "temp" }).map((r) => r.seq)).toEqual(
        Array.from({ length: 20 }, (_, i) => i),
      );
    } finally {
      reader.close();
    }
  });

  it("withholds the PUBACK and closes the connection when persisting fails", async () => {
    const b = await broker({
      onTelemetry() {
        throw new Error("disk full");
      },
    });
    const pi1 = await device(b, "pi-1");
    let acked = false;
    pi1.publish("ganglion/pi-1/telemetry/temp", '{"value":1,"ts":1,"seq":1}', { qos: 1 }, () => {
      acked = true;
    });
    await closed(pi1);
    expect(acked).toBe(false);
    expect(b.counters.persistFailures).toBe(1);
  });

  it("adds and removes devices at run time without a restart", async () => {
    const b = await broker();
    await expect(device(b, "pi-3")).rejects.toMatchObject({ code: 5 });
    const pi1 = await device(b, "pi-1");
    b.addDevice({ id: "pi-3", tokenHash: hashes.get("pi-3")! });
    const pi3 = await device(b, "pi-3");
    expect(pi3.connected).toBe(true);
    b.removeDevice("pi-3");
    await closed(pi3);
    await expect(device(b, "pi-3")).rejects.toMatchObject({ code: 5 });
    expect(pi1.connected).toBe(true);
  });

  it("lets a restarted broker reuse the credentials table, so devices log in again without scrypt", async () => {
    const first = await broker();
    await (await device(first, "pi-1")).endAsync();
    expect(first.credentials.stats.scrypt).toBe(1);
    const port = first.port;
    await first.close();
    const second = await broker({ port, credentials: first.credentials, devices: undefined });
    expect(second.hubCredentials.password).toBe(first.hubCredentials.password);
    const again = await device(second, "pi-1");
    expect(again.connected).toBe(true);
    expect(second.credentials.stats).toMatchObject({ scrypt: 1, cacheHits: 1 });
    expect(second.credentials.list().map((d) => d.id)).toEqual(["pi-1", "pi-2"]);
  });

  it("emits connect, publish and disconnect events with the device's identity", async () => {
    const b = await broker();
    const events: string[] = [];
    b.on("connect", (c) =>
      events.push(`connect ${c.identity.kind === "device" ? c.identity.id : c.identity.kind}`),
    );
    b.on("disconnect", (c) => events.push(`disconnect ${c.clientId}`));
    b.on("publish", (p) => events.push(`publish ${p.topic} ${p.identity?.kind ?? "broker"}`));
    const pi1 = await device(b, "pi-1", {
      will: { topic: "ganglion/pi-1/status", payload: Buffer.from("offline"), qos: 1, retain: true },
    });
    await pi1.publishAsync("ganglion/pi-1/status", "online", { qos: 1, retain: true });
    pi1.stream.destroy(); // not a clean disconnect: the will fires
    const deadline = Date.now() + 8000;
    while (events.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(events).toEqual([
      "connect pi-1",
      "publish ganglion/pi-1/status device",
      "disconnect pi-1",
      "publish ganglion/pi-1/status device",
    ]);
  });
});

describe("embedded broker with the real pi-agent", () => {
  it("logs the agent in with its token, persists its telemetry and routes its commands", {
    timeout: 40_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "ganglion-agent-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const sys = await createVirtualSysfs(join(dir, "root"));
    cleanups.push(() => sys.close());
    sys.addDs18b20("28-0000075c2f2a", 21.5);
    const store = HistoryStore.open({ dataDir: join(dir, "data") });
    cleanups.push(() => store.close());
    const b = await broker({
      onTelemetry: answering(async (m) => {
        const r = JSON.parse(m.payload.toString()) as { value: number; ts: number; seq: number };
        await store.persistTelemetry({
          device: m.device,
          sensor: m.sensor,
          ts: r.ts,
          value: r.value,
          seq: r.seq,
        });
      }),
    });
    const h = await hub(b);
    await h.subscribeAsync(["ganglion/pi-1/status", "ganglion/pi-1/reply"], { qos: 1 });
    const online = nextMessage(h, "ganglion/pi-1/status", 8000);
    const config = parseAgentConfig(
      {
        device: "pi-1",
        token: tokens.get("pi-1"),
        broker: b.url,
        heartbeatMs: 200,
        ioRoot: sys.root,
        stateDir: join(dir, "state"),
        reconnect: { minMs: 50, maxMs: 400 },
        sensors: [{ id: "water", kind: "ds18b20", address: "28-0000075c2f2a", periodMs: 50 }],
        outputs: [{ id: "led", kind: "led", gpio: 27 }],
      },
      dir,
      "test",
    );
    const agent = new Agent({ config });
    cleanups.push(() => agent.stop());
    await agent.start();
    expect((await online).toString()).toBe("online");
    const deadline = Date.now() + 8000;
    while (store.rowCount("pi-1", "water") < 5 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const rows = store.telemetry({ device: "pi-1", sensor: "water" });
    expect(rows.length).toBeGreaterThanOrEqual(5);
    expect(rows[0]).toMatchObject({ value: 21.5 });
    const reply = nextMessage(h, "ganglion/pi-1/reply", 8000);
    await h.publishAsync("ganglion/pi-1/cmd/led", JSON.stringify({ id: "c1", op: "on" }), { qos: 1 });
    expect(JSON.parse((await reply).toString())).toEqual({ id: "c1", ok: true });
    expect(sys.readGpio(27)).toBe(1);
    expect(b.counters).toMatchObject({ rejectedConnections: 0, aclRefusals: 0, persistFailures: 0 });
  });
});

describe("durability", () => {
  it("has every reading a device saw acknowledged in the database after kill -9 of the broker process", {
    timeout: 60_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "ganglion-kill9-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ids = ["pi-1", "pi-2"];
    const creds = ids.map((id) => ({ id, tokenHash: hashes.get(id)! }));
    const fixture = new URL("./fixtures/broker-with-store.ts", import.meta.url).pathname;
    const child = spawn(process.execPath, ["--import", "tsx", fixture, dir, "full", JSON.stringify(creds)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    cleanups.push(async () => {
      child.kill("SIGKILL");
      await exited;
    });
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const m = /^ready (\S+)$/m.exec(out);
        if (m?.[1]) resolve(m[1]);
      });
      child.once("exit", (code) => reject(new Error(`broker process exited ${code}: ${out}`)));
    });

    const acked = new Map(ids.map((id) => [id, new Set<number>()]));
    let stopped = false;
    for (const id of ids) {
      const client = await connect(url, { username: id, password: tokens.get(id)!, clientId: id });
      let seq = 0;
      const send = () => {
        if (stopped) return;
        const n = seq++;
        const body = JSON.stringify({ value: n, ts: 1_000_000 + n, seq: n });
        client.publish(`ganglion/${id}/telemetry/temp`, body, { qos: 1 }, (err) => {
          if (err) return;
          acked.get(id)?.add(n);
          send();
        });
      };
      for (let i = 0; i < 20; i++) send(); // 20 in flight per device
    }
    const total = () => [...acked.values()].reduce((sum, set) => sum + set.size, 0);
    const deadline = Date.now() + 10_000;
    while (total() < 400 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    child.kill("SIGKILL");
    await exited;
    stopped = true;
    expect(total()).toBeGreaterThan(0);

    const store = HistoryStore.open({ dataDir: dir });
    cleanups.push(() => store.close());
    for (const id of ids) {
      const stored = new Set(
        store.telemetry({ device: id, sensor: "temp", since: 0, limit: 10_000 }).map((r) => r.seq),
      );
      const missing = [...(acked.get(id) ?? [])].filter((n) => !stored.has(n));
      expect(missing, `${id}: acknowledged but not stored`).toEqual([]);
    }
  });
});

describe("embedded broker over TLS", () => {
  let openssl = true;
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
  } catch {
    openssl = false;
    console.warn("SKIPPED: TLS broker test needs openssl (Debian package: openssl)");
  }

  it.skipIf(!openssl)("serves mqtts with a certificate and still checks credentials", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ganglion-tls-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"].concat([
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ]),
      { stdio: "ignore" },
    );
    const b = await broker({ tls: { cert, key } });
    expect(b.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(cert);
    const pi1 = await device(b, "pi-1", { ca, rejectUnauthorized: true });
    expect(pi1.connected).toBe(true);
    await expect(connect(b.url, { ca, username: "pi-2", password: "nope" })).rejects.toMatchObject({
      code: 5,
    });
    // Plain MQTT on the TLS port is junk to it: refused, counted, and the TLS client is untouched.
    await expect(
      connect(b.url.replace("mqtts:", "mqtt:"), { username: "pi-2", password: tokens.get("pi-2")! }),
    ).rejects.toThrow();
    expect(pi1.connected).toBe(true);
  });
});
