/**
 * The kill -9 durability check (issue 3, "Durable history, nothing lost"): devices publish QoS 1 telemetry under
 * load and remember every reading the hub acknowledged; the hub process is SIGKILLed mid-stream and started again
 * on the same data directory; every acknowledged reading must be in its history, and the retained `state/` is
 * re-published from the database with the last stored value.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { FleetConfigSchema, generateToken, hashToken } from "../../hub/config.ts";
import { startHub as startInProcess } from "../../hub/hub.ts";
import { killAllHubs, startHubProcess, until } from "./hub-process.ts";

const DEVICES = ["dur-1", "dur-2", "dur-3", "dur-4"];
/** Unacknowledged publishes each device keeps in flight: enough that the hub is mid-batch when it dies. */
const IN_FLIGHT = 16;
/** Acknowledged readings (all devices) to collect before the kill. */
const ACKED_BEFORE_KILL = 2000;
const STALE_MS = 500;

let dir: string;
let fleetFile: string;
const tokens = new Map<string, string>();
const clients: MqttClient[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ganglion-durability-"));
  fleetFile = join(dir, "fleet.yaml");
  const devices = [];
  for (const id of DEVICES) {
    const token = generateToken();
    tokens.set(id, token);
    devices.push({
      id,
      board: "raspberry-pi",
      silenceMs: 60_000,
      // A cheap scrypt: the test is about the history, not the login cost.
      link: { type: "mqtt", tokenHash: await hashToken(token, { N: 1024 }) },
      sensors: [{ id: "temp", kind: "thermometer", unit: "°C", periodMs: 100, staleMs: STALE_MS }],
    });
  }
  writeFileSync(fleetFile, stringify({ hub: { mqtt: { anonymousRead: true } }, devices }));
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await killAllHubs();
  rmSync(dir, { recursive: true, force: true });
});

function startHub() {
  const hub = startHubProcess([
    "--config",
    fleetFile,
    "--data-dir",
    join(dir, "data"),
    "--http-port",
    "0",
    "--mqtt-port",
    "0",
  ]);
  return hub;
}

async function urls(hub: ReturnType<typeof startHub>): Promise<{ http: string; mqtt: string }> {
  const [, http] = await hub.waitFor(/^ganglion: http listening on (http:\/\/127\.0\.0\.1:\d+)$/m);
  const [, mqttUrl] = await hub.waitFor(/^ganglion: mqtt listening on (mqtt:\/\/127\.0\.0\.1:\d+)$/m);
  return { http: http as string, mqtt: mqttUrl as string };
}

/** A device that keeps IN_FLIGHT QoS 1 readings outstanding and records the seq of each one acknowledged. */
function loadDevice(url: string, id: string) {
  const acked: { seq: number; value: number }[] = [];
  let stopped = false;
  let seq = 0;
  let inFlight = 0;
  const client = mqtt.connect(url, {
    clientId: id,
    username: id,
    password: tokens.get(id) as string,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  clients.push(client);
  client.on("error", () => undefined); // the hub dies under it: expected
  const pump = () => {
    while (!stopped && client.connected && inFlight < IN_FLIGHT) {
      const s = ++seq;
      const value = s / 10;
      inFlight++;
      client.publish(
        `ganglion/${id}/telemetry/temp`,
        JSON.stringify({ value, ts: Date.now(), seq: s }),
        { qos: 1 },
        (err) => {
          inFlight--;
          if (!err) acked.push({ seq: s, value });
          if (!stopped) setImmediate(pump);
        },
      );
    }
  };
  const ready = new Promise<void>((resolve, reject) => {
    client.once("connect", () => {
      client.publish(`ganglion/${id}/status`, "online", { qos: 1, retain: true });
      pump();
      resolve();
    });
    client.once("error", reject);
  });
  return {
    ready,
    acked,
    stop() {
      stopped = true;
    },
  };
}

type Reading = { ts: number; value: number; seq: number | null };
type State = { value: number; ts: number; health: string; unit?: string };

describe("kill -9 durability", () => {
  it("keeps every reading a device saw acknowledged, and re-publishes the last one as retained state", async () => {
    const first = startHub();
    const firstUrls = await urls(first);
    const devices = DEVICES.map((id) => loadDevice(firstUrls.mqtt, id));
    await Promise.all(devices.map((d) => d.ready));
    const total = () => devices.reduce((n, d) => n + d.acked.length, 0);
    await until(
      () => total() >= ACKED_BEFORE_KILL && devices.every((d) => d.acked.length > 0),
      30_000,
      `${ACKED_BEFORE_KILL} acknowledged readings`,
    );

    // Mid-stream: every device has IN_FLIGHT publishes outstanding right now.
    first.child.kill("SIGKILL");
    expect(await first.exited).toBe("SIGKILL");
    for (const d of devices) d.stop();
    for (const c of clients.splice(0)) c.end(true);
    const acked = new Map(DEVICES.map((id, i) => [id, [...(devices[i]?.acked ?? [])]]));
    expect([...acked.values()].reduce((n, a) => n + a.length, 0)).toBeGreaterThanOrEqual(ACKED_BEFORE_KILL);

    const second = startHub();
    const secondUrls = await urls(second);
    const stored = new Map<string, Reading[]>();
    for (const id of DEVICES) {
      const res = await fetch(`${secondUrls.http}/api/devices/${id}/telemetry?sensor=temp&limit=10000`);
      expect(res.status).toBe(200);
      const rows = (await res.json()) as Reading[];
      stored.set(id, rows);
      const seqs = new Set(rows.map((r) => r.seq));
      const lost = (acked.get(id) ?? []).filter((a) => !seqs.has(a.seq)).map((a) => a.seq);
      expect(lost, `${id}: acknowledged readings missing after kill -9`).toEqual([]);
      // Nothing was stored twice and nothing was invented.
      expect(seqs.size).toBe(rows.length);
      for (const r of rows) expect(r.value).toBe((r.seq as number) / 10);
    }

    // Retained state/ comes back from the database: the newest stored reading of each sensor.
    const viewer = await mqtt.connectAsync(secondUrls.mqtt, { reconnectPeriod: 0 });
    clients.push(viewer);
    const states = new Map<string, State>();
    const seen: string[] = [];
    viewer.on("message", (topic, payload, packet) => {
      const device = topic.split("/")[1] as string;
      seen.push(`${packet.retain ? "retained " : ""}${topic} ${payload.toString()}`);
      states.set(device, JSON.parse(payload.toString()) as State);
    });
    await viewer.subscribeAsync("ganglion/+/state/temp", { qos: 1 });
    await until(() => states.size === DEVICES.length, 5000, "retained state of every device");
    for (const id of DEVICES) {
      const rows = stored.get(id) as Reading[];
      const newest = rows[rows.length - 1] as Reading;
      const lastAcked = (acked.get(id) ?? []).at(-1)?.seq ?? 0;
      expect(newest.seq).toBeGreaterThanOrEqual(lastAcked);
      expect(
        states.get(id),
        `${id}: newest stored ${JSON.stringify(rows.slice(-3))}; state messages: ${seen.join("; ")}`,
      ).toMatchObject({ value: newest.value, ts: newest.ts, unit: "°C" });
    }
    // No device has said anything since the restart: the republished state must not look healthy for longer
    // than the sensor's staleness window.
    await until(
      () => DEVICES.every((id) => states.get(id)?.health === "faulty"),
      STALE_MS + 5000,
      "republished state to turn faulty (stale)",
    );
    for (const id of DEVICES) {
      const rows = stored.get(id) as Reading[];
      expect(states.get(id)?.value).toBe(rows[rows.length - 1]?.value);
    }
  }, 90_000);
});

describe("retained state re-published on start", () => {
  it("is as healthy as its sensor was while fresh, then turns faulty when the sensor stays silent", async () => {
    const dataDir = join(dir, "fresh");
    const token = generateToken();
    const config = FleetConfigSchema.parse({
      hub: { mqtt: { anonymousRead: true } },
      devices: [
        {
          id: "fresh-1",
          board: "raspberry-pi",
          silenceMs: 60_000,
          link: { type: "mqtt", tokenHash: await hashToken(token, { N: 1024 }) },
          sensors: [{ id: "temp", kind: "thermometer", periodMs: 1000, staleMs: 2500 }],
        },
      ],
    });
    const options = { config, httpPort: 0, mqttPort: 0, dataDir, logger: pino({ level: "silent" }) };
    const first = await startInProcess(options);
    try {
      const device = await mqtt.connectAsync(first.mqttUrl, {
        clientId: "fresh-1",
        username: "fresh-1",
        password: token,
        reconnectPeriod: 0,
      });
      clients.push(device);
      await device.publishAsync(
        "ganglion/fresh-1/telemetry/temp",
        JSON.stringify({ value: 7, ts: Date.now(), seq: 1 }),
        {
          qos: 1,
        },
      );
      await until(() => first.device("fresh-1")?.sensors[0]?.value === 7, 5000, "the reading");
      device.end(true);
    } finally {
      await first.stop();
    }
    const second = await startInProcess(options);
    try {
      const viewer = await mqtt.connectAsync(second.mqttUrl, { reconnectPeriod: 0 });
      clients.push(viewer);
      const states: State[] = [];
      viewer.on("message", (_topic, payload) => states.push(JSON.parse(payload.toString()) as State));
      await viewer.subscribeAsync("ganglion/fresh-1/state/temp", { qos: 1 });
      await until(() => states.length > 0, 5000, "the retained state");
      // Fresh: the sensor was fine a moment ago.
      expect(states[0]).toMatchObject({ value: 7, health: "ok" });
      // Nothing from the sensor within its staleness window: the retained state says so.
      const faulty = await until(() => states.find((s) => s.health === "faulty"), 6000, "faulty state");
      expect(faulty).toMatchObject({ value: 7 });
      expect(faulty.ts).toBe(states[0]?.ts);
    } finally {
      await second.stop();
    }
  }, 30_000);
});
