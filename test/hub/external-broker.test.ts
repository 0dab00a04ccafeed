/**
 * External-broker mode (`ganglion start --broker mqtt://…`) against Debian's mosquitto: the hub runs without its
 * embedded aedes, as a client of mosquitto, and does everything it does with the embedded broker — presence from
 * status and the last will, telemetry to history and retained state, commands and replies, hub/events. Readings
 * published while the hub is dead (or in flight when it was killed) reach the history through the hub's persistent
 * session; a restarted mosquitto is reconnected to.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { FleetConfigSchema, generateToken, hashToken } from "../../hub/config.ts";
import { startHub as startInProcess } from "../../hub/hub.ts";
import { type HubProcess, killAllHubs, sleep, startHubProcess, until } from "./hub-process.ts";

const MOSQUITTO = "/usr/sbin/mosquitto";
const haveMosquitto = existsSync(MOSQUITTO);
if (!haveMosquitto) {
  console.warn(
    `\n*** test/hub/external-broker.test.ts SKIPPED: ${MOSQUITTO} is missing. Install it with: apt-get install mosquitto ***\n`,
  );
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Debian's mosquitto on 127.0.0.1:port, anonymous, persistent (so a restart keeps the hub's session). */
class Mosquitto {
  private proc: ChildProcess | null = null;
  private log = "";
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    writeFileSync(
      join(dir, "mosquitto.conf"),
      [
        `listener ${port} 127.0.0.1`,
        "allow_anonymous true",
        // Run as root, mosquitto would switch to its own user, which cannot write the test's directory.
        `user ${userInfo().username}`,
        "persistence true",
        `persistence_location ${dir}/`,
        // The hub's queue while it is away: mosquitto's default of 1000 would drop readings of a busy fleet.
        "max_queued_messages 100000",
        "log_dest stderr",
        "",
      ].join("\n"),
    );
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const proc = spawn(MOSQUITTO, ["-c", join(this.dir, "mosquitto.conf")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc = proc;
    this.log = "";
    proc.stderr?.on("data", (c: Buffer) => {
      this.log += c.toString();
    });
    proc.stdout?.on("data", (c: Buffer) => {
      this.log += c.toString();
    });
    await until(
      () => {
        if (proc.exitCode !== null) throw new Error(`mosquitto exited ${proc.exitCode}: ${this.log}`);
        return this.log.includes("running");
      },
      10_000,
      "mosquitto to run",
    );
  }

  /** SIGTERM (mosquitto saves its sessions and retained messages) and wait for the exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill(signal);
    await exited;
  }
}

const DEVICE = "ext-1";
let dir: string;
let fleetFile: string;
let broker: Mosquitto;
let hub: HubProcess | null = null;
let httpUrl = "";
const clients: MqttClient[] = [];

function startHub(): HubProcess {
  return startHubProcess([
    "--config",
    fleetFile,
    "--data-dir",
    join(dir, "data"),
    "--http-port",
    "0",
    "--broker",
    broker.url,
  ]);
}

async function startHubAndWait(): Promise<void> {
  hub = startHub();
  const [, url] = await hub.waitFor(/^ganglion: http listening on (http:\/\/127\.0\.0\.1:\d+)$/m);
  httpUrl = url as string;
  await hub.waitFor(/^ganglion: mqtt broker mqtt:\/\/127\.0\.0\.1:\d+ \(external[^)]*\)$/m);
}

async function connect(options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.url, {
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...options,
  });
  clients.push(client);
  return client;
}

/** The device: logs in as itself with a last will, and answers commands like the Pi agent. */
async function connectDevice(): Promise<MqttClient> {
  const device = await connect({
    clientId: DEVICE,
    will: { topic: `ganglion/${DEVICE}/status`, payload: Buffer.from("offline"), qos: 1, retain: true },
  });
  device.on("message", (topic, payload) => {
    if (!topic.startsWith(`ganglion/${DEVICE}/cmd/`)) return;
    const { id } = JSON.parse(payload.toString()) as { id: string };
    device.publish(`ganglion/${DEVICE}/reply`, JSON.stringify({ id, ok: true }), { qos: 1 });
  });
  await device.subscribeAsync(`ganglion/${DEVICE}/cmd/#`, { qos: 1 });
  await device.publishAsync(`ganglion/${DEVICE}/status`, "online", { qos: 1, retain: true });
  return device;
}

type DeviceView = { status: string; sensors: { id: string; value: unknown; health: string }[] };
async function deviceView(): Promise<DeviceView> {
  return (await (await fetch(`${httpUrl}/api/devices/${DEVICE}`)).json()) as DeviceView;
}
async function history(): Promise<{ ts: number; value: number; seq: number }[]> {
  const res = await fetch(`${httpUrl}/api/devices/${DEVICE}/telemetry?sensor=temp&limit=10000`);
  return (await res.json()) as { ts: number; value: number; seq: number }[];
}
function reading(seq: number): string {
  return JSON.stringify({ value: seq / 10, ts: Date.now(), seq });
}
async function command(op: string): Promise<Response> {
  return fetch(`${httpUrl}/api/devices/${DEVICE}/commands`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ target: "led", op }),
  });
}
/** The retained state/temp a fresh subscriber gets from mosquitto. */
async function retainedState(): Promise<Record<string, unknown>> {
  const viewer = await connect();
  try {
    const got = new Promise<Record<string, unknown>>((resolve) => {
      viewer.on("message", (_t, payload, packet) => {
        if (packet.retain) resolve(JSON.parse(payload.toString()) as Record<string, unknown>);
      });
    });
    await viewer.subscribeAsync(`ganglion/${DEVICE}/state/temp`, { qos: 1 });
    return await Promise.race([
      got,
      sleep(5000).then(() => {
        throw new Error("no retained state/temp on mosquitto");
      }),
    ]);
  } finally {
    viewer.end(true);
  }
}

describe.skipIf(!haveMosquitto)("ganglion start --broker (external mosquitto)", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "ganglion-external-"));
    fleetFile = join(dir, "fleet.yaml");
    writeFileSync(
      fleetFile,
      stringify({
        devices: [
          {
            id: DEVICE,
            board: "raspberry-pi",
            silenceMs: 60_000,
            // mosquitto, not the hub, checks logins here; the fleet file still names the device's token.
            link: { type: "mqtt", tokenHash: await hashToken(generateToken(), { N: 1024 }) },
            sensors: [{ id: "temp", kind: "thermometer", unit: "°C", periodMs: 1000, staleMs: 60_000 }],
            actuators: [{ id: "led", kind: "led" }],
          },
        ],
      }),
    );
    broker = new Mosquitto(dir, await freePort());
    await broker.start();
  });

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await killAllHubs();
    await broker?.stop("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("runs through mosquitto: presence, telemetry to history and retained state, hub/events, a command", async () => {
    await startHubAndWait();
    const watcher = await connect();
    const events: { type: string; path: string }[] = [];
    watcher.on("message", (topic, payload) => {
      if (topic === "ganglion/hub/events") events.push(JSON.parse(payload.toString()));
    });
    await watcher.subscribeAsync("ganglion/hub/events", { qos: 1 });

    const device = await connectDevice();
    await until(async () => (await deviceView()).status === "online", 10_000, "device online");
    await device.publishAsync(`ganglion/${DEVICE}/telemetry/temp`, reading(215), { qos: 1 });
    await until(
      async () => (await deviceView()).sensors.find((s) => s.id === "temp")?.value === 21.5,
      10_000,
      "the reading in the API",
    );
    expect((await history()).map((r) => r.seq)).toEqual([215]);
    expect(await retainedState()).toMatchObject({ value: 21.5, health: "ok", unit: "°C" });
    await until(
      () => events.some((e) => e.type === "online" && e.path === `hub/fleet/${DEVICE}`),
      5000,
      "online on ganglion/hub/events",
    );

    const res = await command("on");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true });

    // The last will, published by mosquitto when the device drops without a DISCONNECT.
    device.stream.destroy();
    await until(async () => (await deviceView()).status === "offline", 10_000, "offline on the last will");
  }, 60_000);

  it("keeps readings in flight when the hub is killed and those published while it is down (persistent session)", async () => {
    const device = await connectDevice();
    await until(async () => (await deviceView()).status === "online", 10_000, "device online");
    // Mosquitto acknowledges these to the device; the hub gets them, and is killed in the middle.
    const sent: number[] = [];
    let seq = 1000;
    const burst = async (n: number) => {
      for (let i = 0; i < n; i++) {
        seq++;
        await device.publishAsync(`ganglion/${DEVICE}/telemetry/temp`, reading(seq), { qos: 1 });
        sent.push(seq);
      }
    };
    const firstBurst = burst(300);
    await until(async () => (await history()).length > 20, 10_000, "the hub storing the burst");
    hub?.child.kill("SIGKILL");
    expect(await hub?.exited).toBe("SIGKILL");
    await firstBurst;
    await burst(200); // while the hub is dead
    await startHubAndWait();
    // The device stayed connected to mosquitto and says nothing new: its retained status tells the new hub.
    await until(
      async () => (await deviceView()).status === "online",
      10_000,
      "online from the retained status",
    );
    await until(
      async () => {
        const stored = new Set((await history()).map((r) => r.seq));
        return sent.every((s) => stored.has(s));
      },
      20_000,
      "every reading mosquitto accepted to be in the history",
    );
    const rows = await history();
    expect(new Set(rows.map((r) => r.seq)).size).toBe(rows.length);
    expect(rows.at(-1)?.seq).toBe(seq);
  }, 90_000);

  it("reconnects to a restarted mosquitto and keeps going", async () => {
    for (const c of clients.splice(0)) c.end(true);
    await broker.stop();
    await sleep(300);
    await broker.start();
    const device = await connectDevice();
    // The hub reconnects with backoff; telemetry published meanwhile waits in its session.
    await device.publishAsync(`ganglion/${DEVICE}/telemetry/temp`, reading(5000), { qos: 1 });
    // Backoff (≤ 10 s) plus one connect timeout (10 s) at worst; what matters is that the hub comes back by itself.
    await until(
      async () => (await history()).some((r) => r.seq === 5000),
      25_000,
      "a reading after the broker restart",
    );
    await until(async () => (await deviceView()).status === "online", 15_000, "device online again");
    const res = await command("off");
    expect(res.status).toBe(200);
    expect(await retainedState()).toMatchObject({ value: 500, unit: "°C" });
  }, 90_000);
});

describe("ganglion start with a broker that is not there", () => {
  it("exits 2 with one line naming the broker and what to check (hub.mqtt.broker in the fleet file)", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "ganglion-nobroker-"));
    try {
      const port = await freePort(); // closed again: nothing listens there
      const file = join(tmp, "fleet.yaml");
      writeFileSync(file, stringify({ hub: { mqtt: { broker: `mqtt://127.0.0.1:${port}` } } }));
      const child = startHubProcess(["--config", file, "--data-dir", join(tmp, "data"), "--http-port", "0"]);
      expect(await child.exited).toBe(2);
      const plain = child
        .stderr()
        .trim()
        .split("\n")
        .filter((l) => !l.startsWith("{"));
      expect(plain).toHaveLength(1);
      expect(plain[0]).toContain(`cannot connect to the mqtt broker mqtt://127.0.0.1:${port}`);
      expect(plain[0]).toContain("--broker");
      expect(child.stdout()).not.toContain("listening");
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 30_000);
});

/**
 * A bare aedes playing the external broker (configured by `setUp` before it listens) and an in-process hub that is
 * its client `hub-under-test`, with one Pi `device` of one thermometer. `close()` stops them all.
 */
async function hubOnAedes(device: string, setUp: (aedes: Aedes) => void = () => undefined) {
  const aedes = await Aedes.createBroker();
  setUp(aedes);
  const server = createServer(aedes.handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
  const tmp = mkdtempSync(join(tmpdir(), `ganglion-${device}-`));
  const config = FleetConfigSchema.parse({
    devices: [
      {
        id: device,
        board: "raspberry-pi",
        link: { type: "mqtt", tokenHash: await hashToken(generateToken(), { N: 1024 }) },
        sensors: [{ id: "temp", kind: "thermometer", staleMs: 60_000 }],
        actuators: [{ id: "led", kind: "led" }],
      },
    ],
  });
  const hub = await startInProcess({
    config,
    httpPort: 0,
    dataDir: tmp,
    logger: pino({ level: "silent" }),
    broker: { url, clientId: "hub-under-test" },
  });
  const close = async () => {
    await hub.stop();
    await new Promise<void>((r) => aedes.close(() => r()));
    server.close();
    rmSync(tmp, { recursive: true, force: true });
  };
  return { aedes, url, hub, close };
}

describe("external mode: the hub's PUBACK to the broker", () => {
  it("goes out only once the reading is in the history, for every reading of a burst", async () => {
    // The 'ack' event of aedes shows the moment the hub acknowledges.
    const { aedes, url, hub, close } = await hubOnAedes("ack-1");
    // The external broker's accounts are its own: the hub has no login there to hand out.
    expect(() => hub.hubLogin()).toThrow(/external broker mqtt:\/\/127\.0\.0\.1:\d+: log in there/);
    const device = await mqtt.connectAsync(url, { clientId: "ack-1", reconnectPeriod: 0 });
    try {
      const early: number[] = [];
      const acked: number[] = [];
      aedes.on("ack", (packet, client) => {
        if (client.id !== "hub-under-test" || !("topic" in packet) || !packet.topic.includes("/telemetry/"))
          return;
        const { seq } = JSON.parse(packet.payload.toString()) as { seq: number };
        const stored = hub.telemetry({ device: "ack-1", sensor: "temp", limit: 10_000 });
        if (!stored.some((r) => r.seq === seq)) early.push(seq);
        acked.push(seq);
      });
      const N = 200;
      await Promise.all(
        Array.from({ length: N }, (_, i) =>
          device.publishAsync(
            "ganglion/ack-1/telemetry/temp",
            JSON.stringify({ value: i, ts: Date.now(), seq: i }),
            {
              qos: 1,
            },
          ),
        ),
      );
      await until(() => acked.length === N, 10_000, "the hub to acknowledge every reading");
      expect(early).toEqual([]);
      // Acknowledged in the order they were delivered (MQTT-4.6.0-2): the device's publish order here.
      expect(acked).toEqual(Array.from({ length: N }, (_, i) => i));
      // Readings arriving together share a commit instead of one fsync each.
      expect(hub.context.store.stats.commits).toBeLessThan(N);
    } finally {
      device.end(true);
      await close();
    }
  }, 30_000);
});

describe("external mode: a dropped connection with the hub's own publishes unacknowledged", () => {
  it("still reconnects (closing the dead link does not wait for acks that cannot come)", async () => {
    // The broker takes the hub's QoS 1 publishes and never acknowledges them, until the hub has reconnected.
    let holdHubPublishes = true;
    const held: string[] = [];
    let hubConnects = 0;
    const { aedes, url, hub, close } = await hubOnAedes("drop-1", (aedes) => {
      aedes.authorizePublish = (client, packet, callback) => {
        if (client?.id === "hub-under-test" && holdHubPublishes && packet.qos === 1) {
          held.push(packet.topic);
          return; // never calls back: no PUBACK (and aedes reads nothing more from the hub)
        }
        callback(null);
      };
      aedes.on("client", (client) => {
        if (client.id === "hub-under-test") hubConnects++;
      });
    });
    const device = await mqtt.connectAsync(url, { clientId: "drop-1", reconnectPeriod: 0 });
    try {
      await device.publishAsync("ganglion/drop-1/status", "online", { qos: 1, retain: true });
      await until(() => hub.device("drop-1")?.status === "online", 10_000, "drop-1 online");
      // A command (QoS 1 cmd/led) is now in flight from the hub, never acknowledged; the device is not listening.
      const command = hub.command("drop-1", { target: "led", op: "on" }).catch((err: unknown) => err);
      await until(() => held.some((t) => t.endsWith("/cmd/led")), 10_000, "the hub publishing cmd/led");
      expect(hubConnects).toBe(1);
      holdHubPublishes = false;
      // The broker drops the hub's connection.
      (aedes as unknown as { clients: Record<string, { close(): void }> }).clients["hub-under-test"]?.close();
      await until(() => hubConnects >= 2, 10_000, "the hub to reconnect");
      // And it works again: a reading after the drop reaches the history.
      await device.publishAsync(
        "ganglion/drop-1/telemetry/temp",
        JSON.stringify({ value: 22, ts: Date.now(), seq: 2 }),
        { qos: 1 },
      );
      await until(
        () => hub.telemetry({ device: "drop-1", sensor: "temp", limit: 10 }).some((r) => r.seq === 2),
        10_000,
        "the reading after the drop in the history",
      );
      await command; // it ends unanswered (timeout or offline); the test only needed it in flight
    } finally {
      device.end(true);
      await close();
    }
  }, 30_000);
});
