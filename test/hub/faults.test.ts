/**
 * The fault book against a real hub (startHub on free ports, real HTTP, real MQTT): `/api/faults` validation,
 * physical faults through an injector standing in for the simulator, hub-side driver faults, `broker-restart`,
 * events, the live snapshot, the token rule, and `ganglion fault` in a child process.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { type RunningApi, startApi } from "../../hub/api.ts";
import { FleetConfigSchema, generateToken, hashToken } from "../../hub/config.ts";
import type { FaultUndo, FaultView, PhysicalFaults } from "../../hub/faults/contract.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import type { HubEvent } from "../../hub/store.ts";

const silent = pino({ level: "silent" });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Maybe<T> = T | undefined | null | false;

async function until<T>(
  check: () => Maybe<T> | Promise<Maybe<T>>,
  what: string,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Stands in for the simulator: records every physical fault and undo; refuses `partition` like a serial board. */
class RecordingInjector implements PhysicalFaults {
  readonly simulated = new Set<string>();
  readonly injected: FaultView[] = [];
  readonly undone: string[] = [];
  /** Ids whose undo fails. */
  readonly failingUndo = new Set<string>();

  constructor(...devices: string[]) {
    for (const d of devices) this.simulated.add(d);
  }

  simulates(device: string): boolean {
    return this.simulated.has(device);
  }

  async inject(fault: FaultView): Promise<FaultUndo> {
    if (fault.kind === "partition")
      throw new Error(`${fault.device} is a serial board: it has no broker to lose`);
    this.injected.push(fault);
    return async () => {
      if (this.failingUndo.has(fault.id)) throw new Error("the virtual board is gone");
      this.undone.push(fault.id);
    };
  }
}

interface Answer {
  status: number;
  body: unknown;
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const error = (a: Answer) => (a.body as { error: { code: string; message: string } }).error;

let hub: RunningHub;
let url: string;
let dataDir: string;
let piToken: string;
let tokenHash: string;
const injector = new RecordingInjector("pi-sim", "pi-tmp");
const clients: MqttClient[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "ganglion-faults-"));
  piToken = generateToken();
  tokenHash = await hashToken(piToken);
  const config = FleetConfigSchema.parse({
    hub: { heartbeatMs: 200 },
    devices: [
      {
        id: "pi-1",
        board: "raspberry-pi",
        silenceMs: 60_000,
        link: { type: "mqtt", tokenHash },
        sensors: [
          { id: "temp", kind: "thermometer", unit: "°C", periodMs: 100, staleMs: 10_000 },
          { id: "door", kind: "button", periodMs: 100, staleMs: 10_000 },
        ],
      },
      {
        id: "pi-sim",
        board: "raspberry-pi",
        silenceMs: 60_000,
        link: { type: "mqtt", tokenHash },
        sensors: [{ id: "temp", kind: "thermometer", periodMs: 100, staleMs: 10_000 }],
      },
    ],
  });
  hub = await startHub({
    config,
    httpHost: "127.0.0.1",
    httpPort: 0,
    mqttHost: "127.0.0.1",
    mqttPort: 0,
    dataDir,
    logger: silent,
    physicalFaults: injector,
  });
  url = hub.httpUrl as string;
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await hub?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const events = async (type: string): Promise<HubEvent[]> =>
  (await call(url, "GET", `/api/events?type=${type}&limit=10000`)).body as HubEvent[];

describe("POST /api/faults validation", () => {
  it.each([
    [
      { kind: "melt", device: "pi-1" },
      /^unknown fault kind "melt" \(kinds: stuck, noise, .*broker-restart\)$/,
    ],
    [{ device: "pi-1" }, /^"kind" is required \(kinds: stuck/],
    [{ kind: "throws", device: "pi-1" }, /^fault "throws" acts on one sensor; say which with "sensor"$/],
    [{ kind: "stuck", sensor: "temp" }, /^fault "stuck" needs a device and a sensor/],
    [{ kind: "disconnect" }, /^fault "disconnect" needs a device/],
    [{ kind: "disconnect", device: "pi-sim", sensor: "temp" }, /acts on the whole device; leave out sensor/],
    [{ kind: "broker-restart", device: "pi-1" }, /acts on the hub itself; leave out device and sensor/],
    [{ kind: "broker-restart", durationMs: 1000 }, /is instantaneous/],
    [{ kind: "stuck", device: "pi-sim", sensor: "temp", durationMs: 0 }, /durationMs must be positive/],
    [{ kind: "stuck", device: "pi-sim", sensor: "temp", durationMs: 1.5 }, /whole number of milliseconds/],
    [{ kind: "stuck", device: "pi-sim", sensor: "temp", durationMs: "10s" }, /whole number of milliseconds/],
    [
      { kind: "stuck", device: "pi-sim", sensor: "temp", durationMs: 86_400_001 },
      /at most 86400000 \(24 h\)/,
    ],
    [{ kind: "stuck", device: "pi-sim", sensor: "temp", colour: "red" }, /unknown field "colour"/],
    [["stuck"], /expected a JSON object/],
  ])("refuses %j with 400 bad-fault", async (body, message) => {
    const res = await call(url, "POST", "/api/faults", body);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(error(res).code).toBe("bad-fault");
    expect(error(res).message).toMatch(message);
  });

  it("answers 404 naming an unknown device or sensor, and the sensors there are", async () => {
    const device = await call(url, "POST", "/api/faults", { kind: "reboot", device: "ghost" });
    expect(device.status).toBe(404);
    expect(error(device)).toEqual({ code: "unknown_device", message: 'no device "ghost"' });
    const sensor = await call(url, "POST", "/api/faults", { kind: "nan", device: "pi-1", sensor: "wind" });
    expect(sensor.status).toBe(404);
    expect(error(sensor)).toEqual({
      code: "unknown_sensor",
      message: 'pi-1 has no sensor "wind" (sensors: temp, door)',
    });
  });

  it("answers 409 not-simulated for a physical fault on real hardware", async () => {
    const res = await call(url, "POST", "/api/faults", { kind: "disconnect", device: "pi-1" });
    expect(res.status).toBe(409);
    expect(error(res)).toEqual({
      code: "not-simulated",
      message:
        'fault "disconnect" needs a simulated board; "pi-1" is real hardware (run `ganglion start --simulate`)',
    });
    expect(injector.injected.some((f) => f.device === "pi-1")).toBe(false);
  });

  it("turns the simulator's refusal into a 400 with its message, and books nothing", async () => {
    const res = await call(url, "POST", "/api/faults", { kind: "partition", device: "pi-sim" });
    expect(res.status).toBe(400);
    expect(error(res)).toEqual({
      code: "bad-fault",
      message: "pi-sim is a serial board: it has no broker to lose",
    });
    expect((await call(url, "GET", "/api/faults")).body).toEqual([]);
  });

  it("answers 404 for clearing an unknown fault", async () => {
    const res = await call(url, "DELETE", "/api/faults/f999");
    expect(res.status).toBe(404);
    expect(error(res).code).toBe("unknown_fault");
    expect(error(res).message).toMatch(/^no active fault "f999"/);
  });
});

describe("physical faults through the simulator's injector", () => {
  it("injects (202), lists, announces, and undoes on DELETE", async () => {
    const before = Date.now();
    const res = await call(url, "POST", "/api/faults", { kind: "disconnect", device: "pi-sim" });
    expect(res.status).toBe(202);
    const fault = res.body as FaultView;
    expect(fault).toEqual({
      id: expect.stringMatching(/^f\d+$/),
      kind: "disconnect",
      device: "pi-sim",
      startedAt: expect.any(Number),
    });
    expect(fault.startedAt).toBeGreaterThanOrEqual(before);
    expect(injector.injected.at(-1)).toEqual(fault);
    expect((await call(url, "GET", "/api/faults")).body).toEqual([fault]);

    const injected = (await events("fault_injected")).find((e) => (e.fault as FaultView).id === fault.id);
    expect(injected).toMatchObject({ type: "fault_injected", path: "hub/fleet/pi-sim", fault });
    const byDevice = (await call(url, "GET", "/api/events?device=pi-sim&type=fault_injected"))
      .body as HubEvent[];
    expect(byDevice.map((e) => (e.fault as FaultView).id)).toContain(fault.id);

    const cleared = await call(url, "DELETE", `/api/faults/${fault.id}`);
    expect(cleared.status).toBe(204);
    expect(injector.undone).toContain(fault.id);
    expect((await call(url, "GET", "/api/faults")).body).toEqual([]);
    const clearedEvent = (await events("fault_cleared")).find((e) => (e.fault as FaultView).id === fault.id);
    expect(clearedEvent).toMatchObject({ path: "hub/fleet/pi-sim", reason: "cleared", fault });
    expect((await call(url, "DELETE", `/api/faults/${fault.id}`)).status).toBe(404);
  });

  it("clears a fault by itself when its duration ends, running the undo", async () => {
    const res = await call(url, "POST", "/api/faults", {
      kind: "stuck",
      device: "pi-sim",
      sensor: "temp",
      durationMs: 300,
    });
    expect(res.status).toBe(202);
    const fault = res.body as FaultView;
    expect(fault.until).toBe(fault.startedAt + 300);
    expect(injector.undone).not.toContain(fault.id);
    await until(() => injector.undone.includes(fault.id), "the undo at the end of the duration", 3000);
    expect(Date.now()).toBeGreaterThanOrEqual(fault.startedAt + 300);
    expect((await call(url, "GET", "/api/faults")).body).toEqual([]);
    const cleared = (await events("fault_cleared")).find((e) => (e.fault as FaultView).id === fault.id);
    expect(cleared).toMatchObject({ path: "hub/fleet/pi-sim/sensors/temp", reason: "expired" });
  });

  it("lists active faults in the /api/live snapshot", async () => {
    const res = await call(url, "POST", "/api/faults", {
      kind: "slow",
      device: "pi-sim",
      durationMs: 60_000,
    });
    const fault = res.body as FaultView;
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/api/live`);
    try {
      const snapshot = await new Promise<{ type: string; faults: FaultView[] }>((resolve, reject) => {
        ws.once("message", (data) => resolve(JSON.parse(data.toString())));
        ws.once("error", reject);
      });
      expect(snapshot.type).toBe("snapshot");
      expect(snapshot.faults).toEqual([fault]);
    } finally {
      ws.terminate();
      await call(url, "DELETE", `/api/faults/${fault.id}`);
    }
  });

  it("clears a device's faults when the device is removed", async () => {
    const added = await call(url, "POST", "/api/devices", {
      id: "pi-tmp",
      board: "raspberry-pi",
      link: { type: "mqtt", tokenHash },
      sensors: [{ id: "temp", kind: "thermometer" }],
    });
    expect(added.status).toBe(201);
    const fault = (await call(url, "POST", "/api/faults", { kind: "power-loss", device: "pi-tmp" }))
      .body as FaultView;
    expect(fault.kind).toBe("power-loss");
    expect((await call(url, "DELETE", "/api/devices/pi-tmp")).status).toBe(204);
    expect(injector.undone).toContain(fault.id);
    expect((await call(url, "GET", "/api/faults")).body).toEqual([]);
    const cleared = (await events("fault_cleared")).find((e) => (e.fault as FaultView).id === fault.id);
    expect(cleared?.reason).toBe("device removed");
  });
});

describe("hub-side faults", () => {
  it("throws sets the sensor's driver fault; a second driver fault there is 409; DELETE clears it", async () => {
    const res = await call(url, "POST", "/api/faults", { kind: "throws", device: "pi-1", sensor: "door" });
    expect(res.status).toBe(202);
    const fault = res.body as FaultView;
    expect(hub.context.driverFaults.get("pi-1", "door")).toBe("throws");
    expect(hub.context.driverFaults.get("pi-1", "temp")).toBeUndefined();
    const again = await call(url, "POST", "/api/faults", { kind: "hang", device: "pi-1", sensor: "door" });
    expect(again.status).toBe(409);
    expect(error(again)).toEqual({
      code: "fault_active",
      message: `pi-1/door already has fault ${fault.id} (throws); clear it first with \`ganglion fault clear ${fault.id}\``,
    });
    const injected = (await events("fault_injected")).find((e) => (e.fault as FaultView).id === fault.id);
    expect(injected?.path).toBe("hub/fleet/pi-1/sensors/door");
    expect((await call(url, "DELETE", `/api/faults/${fault.id}`)).status).toBe(204);
    expect(hub.context.driverFaults.get("pi-1", "door")).toBeUndefined();
  });

  it("hang clears its driver fault by itself when the duration ends", async () => {
    const res = await call(url, "POST", "/api/faults", {
      kind: "hang",
      device: "pi-1",
      sensor: "door",
      durationMs: 200,
    });
    expect(res.status).toBe(202);
    expect(hub.context.driverFaults.get("pi-1", "door")).toBe("hang");
    await until(() => hub.context.driverFaults.get("pi-1", "door") === undefined, "hang to clear", 3000);
    expect((await call(url, "GET", "/api/faults")).body).toEqual([]);
  });

  it("broker-restart disconnects every device, which reconnects; retained state is back; the fault clears itself", async () => {
    const device = mqtt.connect(hub.mqttUrl, {
      clientId: "pi-1",
      username: "pi-1",
      password: piToken,
      reconnectPeriod: 100,
      connectTimeout: 2000,
    });
    clients.push(device);
    await new Promise((resolve, reject) => {
      device.once("connect", resolve);
      device.once("error", reject);
    });
    await device.publishAsync("ganglion/pi-1/status", "online", { qos: 1, retain: true });
    await device.publishAsync(
      "ganglion/pi-1/telemetry/temp",
      JSON.stringify({ value: 19.5, ts: Date.now(), seq: 1 }),
      {
        qos: 1,
      },
    );
    await until(
      () => hub.device("pi-1")?.sensors.find((s) => s.id === "temp")?.value === 19.5,
      "the reading",
    );
    let closes = 0;
    let reconnects = 0;
    device.on("close", () => closes++);
    device.on("connect", () => reconnects++);

    const res = await call(url, "POST", "/api/faults", { kind: "broker-restart" });
    expect(res.status).toBe(202);
    const fault = res.body as FaultView;
    expect(fault).toEqual({ id: expect.any(String), kind: "broker-restart", startedAt: expect.any(Number) });

    await until(() => closes > 0 && reconnects > 0, "the device to be cut off and reconnect");
    const clearedEvent = await until(
      async () => (await events("fault_cleared")).find((e) => (e.fault as FaultView).id === fault.id),
      "broker-restart to clear itself",
    );
    expect(clearedEvent).toMatchObject({ path: "hub", reason: "broker back" });
    expect((await call(url, "GET", "/api/faults")).body).toEqual([]);
    const injected = (await events("fault_injected")).find((e) => (e.fault as FaultView).id === fault.id);
    expect(injected?.path).toBe("hub");

    // A fresh subscriber on the restarted broker gets the retained state the hub re-published.
    const viewer = mqtt.connect(hub.mqttUrl, { reconnectPeriod: 0, ...hub.hubLogin() });
    clients.push(viewer);
    await new Promise((resolve) => viewer.once("connect", resolve));
    const retained = new Promise<Record<string, unknown>>((resolve) => {
      viewer.on("message", (topic, payload, packet) => {
        if (topic === "ganglion/pi-1/state/temp" && packet.retain) resolve(JSON.parse(payload.toString()));
      });
    });
    await viewer.subscribeAsync("ganglion/pi-1/state/#", { qos: 1 });
    expect(await retained).toMatchObject({ value: 19.5 });

    // The reconnected device's telemetry reaches the hub again.
    await device.publishAsync(
      "ganglion/pi-1/telemetry/temp",
      JSON.stringify({ value: 20.5, ts: Date.now(), seq: 2 }),
      {
        qos: 1,
      },
    );
    await until(
      () => hub.device("pi-1")?.sensors.find((s) => s.id === "temp")?.value === 20.5,
      "a reading after",
    );
    device.end(true);
    viewer.end(true);
  });
});

describe("the token rule", () => {
  let api: RunningApi | undefined;
  afterAll(async () => {
    await api?.close();
  });

  it("in token mode, POST and DELETE /api/faults need the bearer token; GET stays open", async () => {
    const token = generateToken();
    api = await startApi({
      host: "127.0.0.1",
      port: 0,
      view: hub,
      logger: silent,
      requireToken: true,
      token,
    });
    const body = { kind: "reboot", device: "pi-sim" };
    const refused = await call(api.url, "POST", "/api/faults", body);
    expect(refused.status).toBe(401);
    expect(await call(api.url, "POST", "/api/faults", body, "wrong-token")).toMatchObject({ status: 401 });
    expect(injector.injected.filter((f) => f.kind === "reboot")).toEqual([]);
    const ok = await call(api.url, "POST", "/api/faults", body, token);
    expect(ok.status).toBe(202);
    const id = (ok.body as FaultView).id;
    expect((await call(api.url, "GET", "/api/faults")).body).toEqual([ok.body]);
    expect((await call(api.url, "DELETE", `/api/faults/${id}`)).status).toBe(401);
    expect((await call(api.url, "DELETE", `/api/faults/${id}`, undefined, token)).status).toBe(204);
    expect(injector.undone).toContain(id);
  });
});

describe("hub.stop()", () => {
  it("clears every fault, running each undo; a failing undo is logged, not thrown", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ganglion-faults-stop-"));
    const sim = new RecordingInjector("pi-sim");
    const config = FleetConfigSchema.parse({
      devices: [
        {
          id: "pi-sim",
          board: "raspberry-pi",
          link: { type: "mqtt", tokenHash },
          sensors: [{ id: "temp", kind: "thermometer" }],
        },
      ],
    });
    const other = await startHub({
      config,
      httpPort: 0,
      mqttPort: 0,
      dataDir: dir,
      logger: silent,
      physicalFaults: sim,
    });
    try {
      const a = await other.injectFault({ kind: "disconnect", device: "pi-sim" });
      const b = await other.injectFault({
        kind: "noise",
        device: "pi-sim",
        sensor: "temp",
        durationMs: 60_000,
      });
      await other.injectFault({ kind: "throws", device: "pi-sim", sensor: "temp" });
      sim.failingUndo.add(a.id);
      expect(other.faults()).toHaveLength(3);
      await expect(other.stop()).resolves.toBeUndefined();
      expect(sim.undone).toEqual([b.id]);
      expect(other.context.driverFaults.get("pi-sim", "temp")).toBeUndefined();
      expect(other.faults()).toEqual([]);
    } finally {
      await other.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- ganglion fault -----------------------------------------------------------------------------------------

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("GANGLION_")));
  const child = spawn(process.execPath, ["--import", "tsx", "hub/cli.ts", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`ganglion ${args.join(" ")} did not exit: ${stdout}${stderr}`));
    }, 60_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function expectOneLineFailure(run: Run, pattern: RegExp): void {
  expect(run.code, run.stderr).not.toBe(0);
  const lines = run.stderr.trimEnd().split("\n");
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^ganglion: /);
  expect(lines[0]).toMatch(pattern);
}

describe("ganglion fault", { timeout: 240_000 }, () => {
  it("injects, lists and clears against a running hub", async () => {
    const injected = await cli(["fault", "pi-1", "throws", "--sensor", "temp", "--for", "2m", "--url", url]);
    expect(injected.code, injected.stderr).toBe(0);
    const id = /^injected (f\d+): throws on pi-1\/temp for 2m$/m.exec(injected.stdout)?.[1];
    expect(id, injected.stdout).toBeDefined();
    expect(hub.context.driverFaults.get("pi-1", "temp")).toBe("throws");
    expect(hub.faults()).toMatchObject([
      { id, kind: "throws", device: "pi-1", sensor: "temp", durationMs: 120_000 },
    ]);

    const listed = await cli(["fault", "list", "--url", url]);
    expect(listed.code, listed.stderr).toBe(0);
    const [header, row, ...rest] = listed.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^ID\s+KIND\s+TARGET\s+AGE\s+CLEARS$/);
    expect(row).toMatch(new RegExp(`^${id}\\s+throws\\s+pi-1/temp\\s+\\S+\\s+in \\d+(s|m)$`));
    expect(rest).toEqual([]);

    const cleared = await cli(["fault", "clear", id as string, "--url", url]);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toBe(`cleared ${id}\n`);
    expect(hub.context.driverFaults.get("pi-1", "temp")).toBeUndefined();

    const empty = await cli(["fault", "list", "--url", url]);
    expect(empty.stdout).toBe("no active faults\n");
  });

  it("prints the hub's refusal as one line and exits non-zero", async () => {
    expectOneLineFailure(
      await cli(["fault", "pi-1", "melt", "--url", url]),
      /^ganglion: unknown fault kind "melt" \(kinds: /,
    );
    expectOneLineFailure(
      await cli(["fault", "pi-1", "disconnect", "--url", url]),
      /"pi-1" is real hardware \(run `ganglion start --simulate`\)$/,
    );
    expectOneLineFailure(await cli(["fault", "clear", "f999", "--url", url]), /no active fault "f999"/);
    expectOneLineFailure(
      await cli(["fault", "pi-1", "stuck", "--sensor", "temp", "--for", "10"]),
      /"10" is not a duration/,
    );
    expect(hub.faults()).toEqual([]);
  });

  it("has --help for each form", async () => {
    for (const args of [["fault"], ["fault", "list"], ["fault", "clear"]]) {
      const run = await cli([...args, "--help"]);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^Usage: ganglion ${args.join(" ")} `));
    }
  });
});
