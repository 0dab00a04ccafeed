import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetConfigSchema, generateToken, hashToken } from "../../hub/config.ts";
import { partName } from "../../hub/context.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { exit, findNode } from "../../hub/runtime/index.ts";
import { HubApiError, type LiveUpdate } from "../../hub/view.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until<T>(
  check: () => T | undefined | null | false,
  timeoutMs = 5000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

let hub: RunningHub;
let dataDir: string;
let token: string;
const updates: LiveUpdate[] = [];
const clients: MqttClient[] = [];

function connectDevice(id: string, password: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(hub.mqttUrl, {
      clientId: id,
      username: id,
      password,
      reconnectPeriod: 0,
      will: { topic: `ganglion/${id}/status`, payload: Buffer.from("offline"), qos: 1, retain: true },
      ...options,
    });
    clients.push(client);
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

function reading(value: unknown, seq: number, ts = Date.now()): string {
  return JSON.stringify({ value, ts, seq });
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "ganglion-fleet-"));
  token = generateToken();
  const config = FleetConfigSchema.parse({
    hub: { heartbeatMs: 200 },
    devices: [
      {
        id: "pi-1",
        board: "raspberry-pi",
        // Presence comes from status and the last will here; silence detection is not what these tests time.
        silenceMs: 60_000,
        link: { type: "mqtt", tokenHash: await hashToken(token) },
        sensors: [
          { id: "temp", kind: "thermometer", unit: "°C", periodMs: 100, staleMs: 10_000, range: [-40, 125] },
          { id: "door", kind: "button", periodMs: 100, staleMs: 10_000 },
        ],
        actuators: [{ id: "led", kind: "led" }],
      },
    ],
  });
  hub = await startHub({ config, httpPort: 0, mqttPort: 0, dataDir, logger: pino({ level: "silent" }) });
  hub.subscribe((u) => updates.push(u));
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await hub?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("the fleet over MQTT (a Raspberry Pi device)", () => {
  it("builds the supervision tree of DESIGN.md", () => {
    const tree = hub.tree();
    expect(tree.children?.map((c) => c.id)).toEqual(["events", "broker", "registry", "fleet", "api"]);
    const device = findNode(tree, "hub/fleet/pi-1");
    expect(device).toMatchObject({ kind: "supervisor", strategy: "rest_for_one" });
    expect(device?.children?.map((c) => c.id)).toEqual(["link", "board", "sensors"]);
    expect(findNode(tree, "hub/fleet/pi-1/sensors")?.children?.map((c) => c.path)).toEqual([
      "hub/fleet/pi-1/sensors/temp",
      "hub/fleet/pi-1/sensors/door",
      "hub/fleet/pi-1/sensors/led",
    ]);
  });

  it("marks the device online from its status and turns telemetry into retained state with health", async () => {
    const device = await connectDevice("pi-1", token);
    device.publish("ganglion/pi-1/status", "online", { qos: 1, retain: true });
    await until(() => hub.device("pi-1")?.status === "online", 5000, "online");
    await device.publishAsync("ganglion/pi-1/telemetry/temp", reading(21.5, 1), { qos: 1 });
    const temp = await until(() =>
      hub.device("pi-1")?.sensors.find((s) => s.id === "temp" && s.value === 21.5),
    );
    expect(temp).toMatchObject({ health: "ok", unit: "°C" });
    expect(updates.some((u) => u.type === "reading" && u.sensor === "temp" && u.value === 21.5)).toBe(true);
    expect(hub.telemetry({ device: "pi-1", sensor: "temp" }).map((r) => r.value)).toEqual([21.5]);
    // A client allowed to read state/ gets it retained, with its health.
    const viewer = mqtt.connect(hub.mqttUrl, { reconnectPeriod: 0, ...hub.hubLogin() });
    clients.push(viewer);
    await new Promise((r) => viewer.once("connect", r));
    const retained = new Promise<Record<string, unknown>>((resolve) => {
      viewer.on("message", (topic, payload, packet) => {
        if (topic === "ganglion/pi-1/state/temp" && packet.retain) resolve(JSON.parse(payload.toString()));
      });
    });
    await viewer.subscribeAsync("ganglion/+/state/#", { qos: 1 });
    expect(await retained).toMatchObject({ value: 21.5, health: "ok", unit: "°C" });
  });

  it("rejects out-of-range and malformed readings without crashing anything", async () => {
    const device = await connectDevice("pi-1", token, { clientId: "pi-1" });
    const sensorPid = hub.context.names.whereis(partName("pi-1", "temp"));
    await device.publishAsync("ganglion/pi-1/telemetry/temp", reading(500, 2), { qos: 1 });
    await until(
      () => hub.device("pi-1")?.sensors.find((s) => s.id === "temp")?.health === "faulty",
      3000,
      "faulty",
    );
    await device.publishAsync("ganglion/pi-1/telemetry/temp", "{not json", { qos: 1 });
    await device.publishAsync("ganglion/pi-1/telemetry/nope", reading(1, 1), { qos: 1 });
    await device.publishAsync("ganglion/pi-1/telemetry/temp", reading(22, 3), { qos: 1 });
    await until(
      () => hub.device("pi-1")?.sensors.find((s) => s.id === "temp")?.value === 22,
      3000,
      "recovered",
    );
    expect(hub.device("pi-1")?.sensors.find((s) => s.id === "temp")?.health).toBe("ok");
    expect(hub.context.names.whereis(partName("pi-1", "temp"))).toBe(sensorPid);
    expect(hub.telemetry({ device: "pi-1", sensor: "temp" }).map((r) => r.value)).toEqual([21.5, 500, 22]);
  });

  it("a killed sensor actor is restarted alone; its siblings keep their pids", async () => {
    const temp = hub.context.names.whereis(partName("pi-1", "temp"));
    const door = hub.context.names.whereis(partName("pi-1", "door"));
    expect(temp).toBeDefined();
    exit(temp!, "kill");
    const fresh = await until(() => {
      const p = hub.context.names.whereis(partName("pi-1", "temp"));
      return p !== temp ? p : undefined;
    });
    expect(fresh).toBeDefined();
    expect(hub.context.names.whereis(partName("pi-1", "door"))).toBe(door);
    const node = findNode(hub.tree(), "hub/fleet/pi-1/sensors/temp");
    expect(node).toMatchObject({ restarts: 1, status: "running", lastExit: { reason: "killed" } });
    await until(() =>
      hub.events({ type: "restarted" }).some((e) => e.path === "hub/fleet/pi-1/sensors/temp"),
    );
    expect(updates.some((u) => u.type === "node" && u.node.path === "hub/fleet/pi-1/sensors/temp")).toBe(
      true,
    );
  });

  it("carries a command to the device and back; refuses bad ops, unknown targets and offline devices", async () => {
    const device = await connectDevice("pi-1", token, { clientId: "pi-1" });
    device.publish("ganglion/pi-1/status", "online", { qos: 1, retain: true });
    await until(() => hub.device("pi-1")?.status === "online");
    await device.subscribeAsync("ganglion/pi-1/cmd/#", { qos: 1 });
    device.on("message", (topic, payload) => {
      if (!topic.endsWith("/cmd/led")) return;
      const cmd = JSON.parse(payload.toString()) as { id: string; op: string };
      device.publish("ganglion/pi-1/reply", JSON.stringify({ id: cmd.id, ok: true }), { qos: 1 });
    });
    await expect(hub.command("pi-1", { target: "led", op: "on" })).resolves.toMatchObject({ ok: true });
    expect(hub.device("pi-1")?.sensors.find((s) => s.id === "led")?.value).toBe(true);
    await expect(hub.command("pi-1", { target: "led", op: "explode" })).rejects.toMatchObject({
      status: 400,
    });
    await expect(
      hub.command("pi-1", { target: "led", op: "blink", args: { periodMs: 1 } }),
    ).rejects.toMatchObject({ status: 400 });
    await expect(hub.command("pi-1", { target: "fan", op: "on" })).rejects.toMatchObject({ status: 404 });
    await expect(hub.command("nobody", { target: "led", op: "on" })).rejects.toBeInstanceOf(HubApiError);
    device.publish("ganglion/pi-1/status", "offline", { qos: 1, retain: true });
    await until(() => hub.device("pi-1")?.status === "offline");
    await expect(hub.command("pi-1", { target: "led", op: "off" })).rejects.toMatchObject({ status: 503 });
  });

  it("marks a device offline when its last will fires", async () => {
    const device = await connectDevice("pi-1", token, { clientId: "pi-1" });
    device.publish("ganglion/pi-1/heartbeat", JSON.stringify({ ts: Date.now(), uptimeS: 1 }), { qos: 0 });
    await until(() => hub.device("pi-1")?.status === "online");
    (device as unknown as { stream: { destroy(): void } }).stream.destroy();
    await until(() => hub.device("pi-1")?.status === "offline", 5000, "offline by will");
    const offline = await until(() =>
      hub.events({ type: "offline" }).find((e) => e.path === "hub/fleet/pi-1"),
    );
    expect(offline.reason).toContain("offline");
  });

  it("adds and removes devices at run time without disturbing the others", async () => {
    const piToken = generateToken();
    const before = hub.context.names.whereis(partName("pi-1", "door"));
    const view = await hub.addDevice({
      id: "pi-2",
      board: "pi",
      link: { type: "mqtt", tokenHash: await hashToken(piToken) },
      sensors: [{ id: "hum", kind: "humidity" }],
    });
    expect(view).toMatchObject({ id: "pi-2", board: "raspberry-pi", link: "mqtt", status: "offline" });
    await expect(
      hub.addDevice({ id: "pi-2", board: "pi", link: { type: "mqtt", tokenHash: view.id } }),
    ).rejects.toMatchObject({
      status: 400,
    });
    const dev = await connectDevice("pi-2", piToken);
    await dev.publishAsync("ganglion/pi-2/telemetry/hum", reading(40, 1), { qos: 1 });
    await until(() => hub.device("pi-2")?.sensors[0]?.value === 40);
    await hub.removeDevice("pi-2");
    expect(hub.device("pi-2")).toBeUndefined();
    expect(findNode(hub.tree(), "hub/fleet/pi-2")).toBeUndefined();
    await expect(hub.removeDevice("pi-2")).rejects.toMatchObject({ status: 404 });
    expect(hub.context.names.whereis(partName("pi-1", "door"))).toBe(before);
  });

  it("refuses a device with a wrong token", async () => {
    await expect(connectDevice("pi-1", generateToken(), { clientId: "pi-1-bad" })).rejects.toThrow();
  });
});

describe("the hub's HTTP API over the real core", () => {
  it("answers health, tree, devices, telemetry and events; commands to an offline device are 503", async () => {
    const base = hub.httpUrl as string;
    const health = (await (await fetch(`${base}/api/health`)).json()) as { status: string };
    expect(health.status).toBe("ok");
    const tree = (await (await fetch(`${base}/api/tree`)).json()) as {
      path: string;
      children: { id: string }[];
    };
    expect(tree.path).toBe("hub");
    const devices = (await (await fetch(`${base}/api/devices`)).json()) as { id: string }[];
    expect(devices.map((d) => d.id)).toContain("pi-1");
    const telemetry = (await (await fetch(`${base}/api/devices/pi-1/telemetry?sensor=temp`)).json()) as {
      value: number;
    }[];
    expect(telemetry.length).toBeGreaterThan(0);
    const missing = await fetch(`${base}/api/devices/nope/telemetry`);
    expect(missing.status).toBe(404);
    const events = (await (await fetch(`${base}/api/events?type=restarted`)).json()) as { path: string }[];
    expect(events.some((e) => e.path === "hub/fleet/pi-1/sensors/temp")).toBe(true);
    const res = await fetch(`${base}/api/devices/pi-1/commands`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ target: "led", op: "on" }),
    });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("device_offline");
  });
});

describe("stopping a hub", () => {
  it("closes its HTTP API and broker (nothing keeps answering after stop)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ganglion-stop-"));
    const other = await startHub({
      config: FleetConfigSchema.parse({}),
      httpPort: 0,
      mqttPort: 0,
      dataDir: dir,
      logger: pino({ level: "silent" }),
    });
    const url = other.httpUrl as string;
    expect((await fetch(`${url}/api/health`)).status).toBe(200);
    const mqttUrl = other.mqttUrl;
    await other.stop();
    await expect(fetch(`${url}/api/health`)).rejects.toThrow();
    const client = mqtt.connect(mqttUrl, { reconnectPeriod: 0, connectTimeout: 2000 });
    await expect(
      new Promise((resolve, reject) => {
        client.once("connect", resolve);
        client.once("error", reject);
        client.once("close", () => reject(new Error("closed")));
      }),
    ).rejects.toThrow();
    client.end(true);
    rmSync(dir, { recursive: true, force: true });
  });
});
