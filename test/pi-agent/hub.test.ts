/**
 * The pi-agent (as a virtual Pi) against the real hub (issue 4): telemetry reaches the history API, commands go
 * through POST /api/devices/:id/commands, the last will marks the device offline, and a partition leaves no gap in
 * the stored history.
 */
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeviceSchema, FleetConfigSchema, generateToken, hashToken } from "../../hub/config.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { startVirtualPi, type VirtualPi } from "../../simulator/pi/virtual-pi.ts";
import { tempDir, waitFor } from "./helpers.ts";

const DEVICE = "bench-pi";

describe("pi-agent with the real hub", () => {
  let hub: RunningHub;
  let pi: VirtualPi;
  let remove: () => void;

  beforeAll(async () => {
    const t = tempDir();
    remove = t.remove;
    const token = generateToken();
    const config = FleetConfigSchema.parse({});
    config.devices.push(
      DeviceSchema.parse({
        id: DEVICE,
        board: "raspberry-pi",
        link: { type: "mqtt", tokenHash: await hashToken(token) },
        sensors: [{ id: "water-temp", kind: "thermometer", unit: "°C", periodMs: 100, range: [-10, 60] }],
        actuators: [{ id: "status-led", kind: "led" }],
      }),
    );
    const silent = pino({ level: "silent" });
    hub = await startHub({ config, dataDir: join(t.dir, "data"), httpPort: 0, mqttPort: 0, logger: silent });
    pi = await startVirtualPi({
      dir: join(t.dir, "pi"),
      device: DEVICE,
      token,
      broker: hub.mqttUrl,
      heartbeatMs: 500,
      sensors: [{ id: "water-temp", kind: "ds18b20", address: "28-0000075c2f2a", periodMs: 100 }],
      outputs: [{ id: "status-led", kind: "led", gpio: 27 }],
      logger: silent,
    });
  }, 30_000);

  afterAll(async () => {
    await pi?.stop();
    await hub?.stop();
    remove?.();
  });

  const api = async <T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${hub.httpUrl}${path}`, init);
    return { status: res.status, body: (await res.json()) as T };
  };
  const device = async () => (await api<{ status: string }>(`/api/devices/${DEVICE}`)).body;
  const history = async () =>
    (
      await api<{ ts: number; value: number; seq: number }[]>(
        `/api/devices/${DEVICE}/telemetry?sensor=water-temp`,
      )
    ).body;
  const command = (body: unknown) =>
    api<{ id?: string; ok?: boolean; error?: { code: string } }>(`/api/devices/${DEVICE}/commands`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it("stores the agent's readings: value and seq, oldest first", async () => {
    let rows: { value: number; seq: number }[] = [];
    for (let i = 0; i < 150 && rows.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      rows = await history();
    }
    expect(rows[0]).toMatchObject({ value: 20, seq: 1 });
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
    expect((await device()).status).toBe("online");
  }, 20_000);

  it("confirms a command the agent carried out on its GPIO, and refuses a bad op", async () => {
    const ok = await command({ target: "status-led", op: "on" });
    expect(ok.status).toBe(200);
    expect(ok.body.ok).toBe(true);
    expect(pi.sys.readGpio(27)).toBe(1);
    const bad = await command({ target: "status-led", op: "open" });
    expect(bad.status).toBe(400);
  });

  it("goes offline on the last will during a partition, and the history has no gap afterwards", async () => {
    pi.partition(true);
    const poll = async (want: string) => {
      for (let i = 0; i < 100; i++) {
        if ((await device()).status === want) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`device never became ${want}`);
    };
    await poll("offline");
    const buffered = pi.agent?.buffered ?? 0;
    await new Promise((r) => setTimeout(r, 800));
    expect(pi.agent?.buffered ?? 0).toBeGreaterThan(buffered);
    pi.partition(false);
    await poll("online");
    await waitFor(() => pi.agent?.buffered === 0, 10_000, "replay");
    const last = (await history()).at(-1)?.seq ?? 0;
    await new Promise((r) => setTimeout(r, 300));
    const rows = (await history()).filter((r) => r.seq <= last);
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
  }, 30_000);
});
