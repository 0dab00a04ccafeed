/**
 * Physical faults of the demo fleet (simulator/faults.ts) against the real hub: two Unos emulated on avr8js running
 * firmware/arduino's hex over the hub's serial path, and two virtual Pis running the real agent over MQTT. Each
 * fault is injected where it happens on hardware, and each test checks the supervision outcome DESIGN.md §3
 * promises through what the hub shows: device status and reason, sensor health, events, pids, pins.
 *
 * One hub and one fleet serve every test; tests touching the same board run in order and leave it healthy.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BoardStats } from "../../devices/boards/arduino.ts";
import { convert } from "../../devices/boards/firmata-pins.ts";
import type { PiBoardStats } from "../../devices/boards/pi.ts";
import type { SensorStats } from "../../devices/sensors/sensor.ts";
import { FleetConfigSchema, type SensorConfig } from "../../hub/config.ts";
import { boardName, linkName, partName } from "../../hub/context.ts";
import type { FaultKind, FaultUndo, FaultView } from "../../hub/faults/contract.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { call, findNode } from "../../hub/runtime/index.ts";
import type { HubEvent } from "../../hub/store.ts";
import type { PinChange } from "../../simulator/boards/avr-board.ts";
import { type DemoFleet, demoFleet, demoUnoInputs, UNO_HEX } from "../../simulator/demo.ts";
import { lm35Volts } from "../../simulator/models.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until<T>(
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const SEED = 1234;
let work: string;
let hub: RunningHub;
let demo: DemoFleet;
let faultIds = 0;

/** Injects through the simulator's PhysicalFaults, as the hub's fault book does. */
async function inject(kind: FaultKind, device: string, sensor?: string): Promise<FaultUndo> {
  const fault: FaultView = {
    id: `t${++faultIds}`,
    kind,
    device,
    ...(sensor === undefined ? {} : { sensor }),
    startedAt: Date.now(),
  };
  return demo.faults.inject(fault);
}

const events = (device: string, type: string): HubEvent[] =>
  hub.events({ device, type, limit: 10_000 }) as HubEvent[];
const pidOf = (key: string) => hub.context.names.whereis(key)?.toString();
const sensorView = (device: string, sensor: string) =>
  hub.device(device)?.sensors.find((s) => s.id === sensor);
const stats = (device: string, sensor: string) =>
  call<SensorStats>({ via: hub.context.names, key: partName(device, sensor) }, "stats").catch(
    () => undefined,
  );
const pins = (device: string) =>
  (demo.unos.get(device) as NonNullable<ReturnType<typeof demo.unos.get>>).board;
const online = (device: string, ms = 20_000) =>
  until(() => hub.device(device)?.status === "online", ms, `${device} online`);
const healthy = (device: string, sensor: string, ms = 15_000) =>
  until(() => sensorView(device, sensor)?.health === "ok", ms, `${device}/${sensor} ok`);

/** Sets a part's config in place before the hub starts (the fault injector reads the same objects). */
function tune(device: string, sensor: string, patch: Partial<SensorConfig>): void {
  const config = demo.devices.find((d) => d.id === device)?.sensors.find((s) => s.id === sensor);
  if (config === undefined) throw new Error(`no ${device}/${sensor} in the demo`);
  Object.assign(config, patch);
}

const haveHex = existsSync(UNO_HEX);
if (!haveHex)
  console.error(`SKIPPING test/simulator/faults.test.ts: ${UNO_HEX} is missing (make -C firmware/arduino)`);

beforeAll(async () => {
  if (!haveHex) return;
  work = mkdtempSync(join(tmpdir(), "ganglion-faults-"));
  const logger = pino({ level: process.env.GANGLION_TEST_LOG ?? "silent" });
  demo = await demoFleet({ dir: join(work, "sim"), seed: SEED, heartbeatMs: 1000, logger });
  // Short windows, so a flat line shows within seconds rather than the demo's 20 s.
  tune("uno-1", "temp", { flatLineMs: 3000 });
  tune("uno-2", "temp", { flatLineMs: 3000 });
  tune("tank-pi", "water-temp", { flatLineMs: 6000 });
  // A Pi without power is `down` after 4 s away rather than the default minute.
  const tank = demo.devices.find((d) => d.id === "tank-pi");
  if (tank === undefined) throw new Error("no tank-pi in the demo");
  tank.downAfterMs = 4000;
  const config = FleetConfigSchema.parse({ hub: { heartbeatMs: 1000 } });
  config.devices.push(...demo.devices);
  hub = await startHub({
    config,
    dataDir: join(work, "data"),
    httpPort: 0,
    mqttPort: 0,
    logger,
    serialOpener: demo.serialOpener,
    physicalFaults: demo.faults,
  });
  await demo.start(hub.mqttUrl);
  await Promise.all(["uno-1", "uno-2", "greenhouse-pi", "tank-pi"].map((d) => online(d, 30_000)));
}, 60_000);

afterAll(async () => {
  await demo?.stop();
  await hub?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!haveHex)("the demo fleet's physical faults, supervised by the hub", () => {
  it("the Unos' readings are the seeded models' values at their moment, read through the emulated ADC", async () => {
    // A fresh model from the same seed replays the sequence the running Uno is driven by, tick by tick.
    const uno = demo.unos.get("uno-1") as NonNullable<ReturnType<typeof demo.unos.get>>;
    const [temp] = demoUnoInputs("uno-1", SEED);
    if (temp?.kind !== "analog") throw new Error("uno-1's first input is its LM35");
    const config = demo.devices.find((d) => d.id === "uno-1")?.sensors[0] as SensorConfig;
    const reading = (celsius: number) => Number(convert(config, Math.floor((lm35Volts(celsius) / 5) * 1024)));
    const readings = await until(
      () => {
        const rows = hub.telemetry({ device: "uno-1", sensor: "temp" });
        return rows.length >= 10 ? rows : undefined;
      },
      10_000,
      "ten uno-1/temp readings",
    );
    const byTick = [reading(temp.model.value)];
    const lastTick = Math.floor(((readings.at(-1)?.ts ?? 0) - uno.startedAt) / uno.tickMs);
    while (byTick.length <= lastTick) byTick.push(reading(temp.model.step()));
    for (const row of readings) {
      // Stored when forwarded: sampled by the ADC up to ~600 ms (the sensor's period and the sampling) earlier.
      const tick = Math.floor((row.ts - uno.startedAt) / uno.tickMs);
      const candidates = byTick.slice(Math.max(0, tick - 4), tick + 1);
      expect(candidates, `reading ${row.value} at tick ${tick}`).toContain(row.value);
    }
    // The model moves: these are not all one value.
    expect(new Set(readings.map((r) => r.value)).size).toBeGreaterThan(1);
    expect(sensorView("uno-1", "temp")).toMatchObject({ health: "ok", unit: "°C" });
  });

  it("stuck on a Uno's LM35: the ADC reads a frozen voltage, the hub flags a flat line, then ok once cleared", async () => {
    await healthy("uno-1", "temp");
    const undo = await inject("stuck", "uno-1", "temp");
    await until(
      async () => (await stats("uno-1", "temp"))?.fault?.includes("stuck"),
      15_000,
      "uno-1/temp stuck",
    );
    expect(sensorView("uno-1", "temp")?.health).toBe("faulty");
    await undo();
    await healthy("uno-1", "temp");
  }, 40_000);

  it("noise on a Uno's LM35: readings beyond the rate bound are flagged while it lasts", async () => {
    const undo = await inject("noise", "uno-1", "temp");
    await until(
      async () => (await stats("uno-1", "temp"))?.fault?.includes("noise"),
      10_000,
      "uno-1/temp noisy",
    );
    await undo();
    await healthy("uno-1", "temp");
  }, 30_000);

  it("reboot of a Uno: board_reset with its cause, the LED's state re-applied, the link untouched", async () => {
    await hub.command("uno-1", { target: "led", op: "on" });
    expect((await pins("uno-1").pinLevels())[13]).toBe("high");
    const link = pidOf(linkName("uno-1"));
    const before = events("uno-1", "board_reset").length;
    const led: PinChange[] = [];
    const onPin = (c: PinChange) => {
      if (c.pin === 13) led.push(c);
    };
    pins("uno-1").on("pin", onPin);
    await inject("reboot", "uno-1");
    const reset = await until(
      () => events("uno-1", "board_reset").slice(before)[0],
      10_000,
      "board_reset after the reboot",
    );
    expect(reset).toMatchObject({ path: "hub/fleet/uno-1", cause: "external" });
    // The reset let go of the pin; the hub drove it high again.
    await until(
      () => led.some((c) => c.level !== "high") && led.at(-1)?.level === "high",
      10_000,
      "LED re-applied",
    );
    pins("uno-1").off("pin", onPin);
    expect(pidOf(linkName("uno-1"))).toBe(link);
    expect(hub.device("uno-1")?.status).toBe("online");
  }, 30_000);

  it("disconnect of a Uno: the link restarts, repeated failures back off to down with the reason, back on clear with the LED on", async () => {
    expect((await pins("uno-1").pinLevels())[13]).toBe("high");
    const link = pidOf(linkName("uno-1"));
    const board = pidOf(boardName("uno-1"));
    const backoffs = events("uno-1", "backoff").length;
    const undo = await inject("disconnect", "uno-1");
    await until(() => hub.device("uno-1")?.status !== "online", 5000, "uno-1 offline");
    // The opener refuses while the cable is out: each retry fails, further apart, and the device is down.
    await until(
      () => events("uno-1", "backoff").length - backoffs >= 2 && hub.device("uno-1")?.status === "down",
      15_000,
      "two backoffs and down",
    );
    expect(hub.device("uno-1")?.reason).toMatch(/serial port emulated:uno-1 not found: plug uno-1 in/);
    expect(events("uno-1", "backoff").at(-1)).toMatchObject({ path: "hub/fleet/uno-1/link" });
    expect(hub.device("uno-2")?.status).toBe("online"); // the rest of the fleet is untouched
    await undo();
    await online("uno-1", 40_000);
    expect(pidOf(linkName("uno-1"))).not.toBe(link);
    expect(pidOf(boardName("uno-1"))).not.toBe(board);
    await until(async () => (await pins("uno-1").pinLevels())[13] === "high", 10_000, "LED on again");
    expect(sensorView("uno-1", "led")?.value).toBe(true);
  }, 70_000);

  it("out-of-range on a Uno's LM35 (wire shorted to 5 V): readings rejected and counted, faulty, then ok", async () => {
    await healthy("uno-2", "temp");
    const rejected = (await stats("uno-2", "temp"))?.rejected ?? 0;
    const undo = await inject("out-of-range", "uno-2", "temp");
    const s = await until(
      async () => {
        const now = await stats("uno-2", "temp");
        return now !== undefined && now.rejected >= rejected + 2 ? now : undefined;
      },
      10_000,
      "rejected readings",
    );
    expect(s.health).toBe("faulty");
    expect(s.fault).toMatch(/outside the valid range \[-10, 60\]/);
    expect(sensorView("uno-2", "temp")?.health).toBe("faulty");
    await undo();
    await healthy("uno-2", "temp");
  }, 30_000);

  it("nan on a Uno's light sensor: a floating pin reads rail-to-rail garbage, which the hub rejects", async () => {
    await healthy("uno-2", "light");
    const rejected = (await stats("uno-2", "light"))?.rejected ?? 0;
    const values: number[] = [];
    const undo = await inject("nan", "uno-2", "light");
    await until(
      async () => {
        const s = await stats("uno-2", "light");
        if (typeof s?.value === "number") values.push(s.value);
        return s !== undefined && s.rejected > rejected && s.health === "faulty";
      },
      20_000,
      "uno-2/light rejected while floating",
    );
    await undo();
    await healthy("uno-2", "light", 20_000);
  }, 45_000);

  it("garbage on a Uno's wire: bad bytes counted, the parser resyncs, readings keep coming", async () => {
    const board = () => call<BoardStats>({ via: hub.context.names, key: boardName("uno-2") }, { t: "stats" });
    const before = await board();
    const link = pidOf(linkName("uno-2"));
    const undo = await inject("garbage", "uno-2");
    await until(async () => (await board()).garbage - before.garbage >= 20, 10_000, "garbage counted");
    const since = Date.now();
    await until(
      () => hub.telemetry({ device: "uno-2", sensor: "temp", since }).length >= 3,
      10_000,
      "readings through the noise",
    );
    await undo();
    expect(hub.device("uno-2")?.status).toBe("online");
    // Noise alone never took the link down here: the same link process.
    expect(pidOf(linkName("uno-2"))).toBe(link);
  }, 30_000);

  it("overlapping faults: each undo removes only its own (line noise stops when the last one clears)", async () => {
    const uno = demo.unos.get("uno-2");
    const cable = () => uno?.cable?.garbageBytes ?? 0;
    const first = await inject("garbage", "uno-2");
    const second = await inject("garbage", "uno-2");
    await first();
    const at = cable();
    await until(() => cable() > at + 10, 5000, "noise still on the line after one undo");
    await second();
    const stopped = cable();
    await sleep(800);
    expect(cable()).toBe(stopped);
  }, 20_000);

  it("slow link to a Uno: readings arrive late and the sensor goes stale, nothing restarts", async () => {
    await healthy("uno-2", "temp");
    const link = pidOf(linkName("uno-2"));
    const board = pidOf(boardName("uno-2"));
    const undo = await inject("slow", "uno-2");
    await until(
      async () => (await stats("uno-2", "temp"))?.fault?.includes("stale"),
      15_000,
      "uno-2/temp stale",
    );
    expect(hub.device("uno-2")?.status).toBe("online");
    await undo();
    await healthy("uno-2", "temp");
    expect(pidOf(linkName("uno-2"))).toBe(link);
    expect(pidOf(boardName("uno-2"))).toBe(board);
  }, 30_000);

  it("power loss of a Uno: offline, then down while dark, back on clear with the heater relay re-applied", async () => {
    await hub.command("uno-2", { target: "heater", op: "close" });
    expect((await pins("uno-2").pinLevels())[8]).toBe("high");
    const undo = await inject("power-loss", "uno-2");
    await until(() => hub.device("uno-2")?.status !== "online", 5000, "uno-2 offline");
    expect(events("uno-2", "offline").at(-1)?.reason).toMatch(/closed/);
    expect((await pins("uno-2").pinLevels())[8]).toBe("low"); // no power, no pin driven
    await until(() => hub.device("uno-2")?.status === "down", 15_000, "uno-2 down while dark");
    expect(hub.device("uno-2")?.reason).toMatch(/not found.*no power/);
    await undo();
    await online("uno-2", 40_000);
    await until(
      async () => (await pins("uno-2").pinLevels())[8] === "high",
      10_000,
      "heater relay closed again",
    );
  }, 70_000);

  it("stuck on a Pi's DS18B20: the sysfs value freezes, the hub flags a flat line, then ok once cleared", async () => {
    await healthy("tank-pi", "water-temp");
    const undo = await inject("stuck", "tank-pi", "water-temp");
    await until(
      async () => (await stats("tank-pi", "water-temp"))?.fault?.includes("stuck"),
      20_000,
      "tank-pi/water-temp stuck",
    );
    await undo();
    await healthy("tank-pi", "water-temp", 20_000);
  }, 45_000);

  it("nan on a Pi's DS18B20 (1-Wire CRC NO): each read fails, the sensor is faulty, three in a row restart its actor; ok once cleared", async () => {
    await healthy("tank-pi", "water-temp", 20_000);
    const path = "hub/fleet/tank-pi/sensors/water-temp";
    const restarts = () => events("tank-pi", "restarted").filter((e) => e.path === path).length;
    const before = restarts();
    const viewer = await mqtt.connectAsync(hub.mqttUrl, { reconnectPeriod: 0, ...hub.hubLogin() });
    try {
      let crcRejected = 0;
      viewer.on("message", (_topic, payload) => {
        const beat = JSON.parse(payload.toString()) as { rejected?: Record<string, number> };
        crcRejected = beat.rejected?.["water-temp"] ?? 0;
      });
      await viewer.subscribeAsync("ganglion/tank-pi/heartbeat");
      const undo = await inject("nan", "tank-pi", "water-temp");
      await until(
        async () => (await stats("tank-pi", "water-temp"))?.fault?.includes("crc"),
        10_000,
        "tank-pi/water-temp faulty: reading failed (crc)",
      );
      // The agent reports each failed read; the third in a row (2 s apart) ends the sensor's actor.
      await until(() => restarts() > before, 20_000, "tank-pi/water-temp restarted");
      expect(findNode(hub.tree(), path)?.lastExit?.reason).toMatch(
        /SensorReadFailedError: tank-pi\/water-temp: 3 readings in a row failed \(last: crc/,
      );
      expect(sensorView("tank-pi", "water-temp")?.health).toBe("faulty");
      expect(crcRejected).toBeGreaterThanOrEqual(2); // what the agent said in its heartbeat
      await undo();
      await healthy("tank-pi", "water-temp", 20_000);
    } finally {
      await viewer.endAsync(true);
    }
  }, 45_000);

  it("out-of-range on a Pi's DS18B20: readings rejected and counted, faulty, then ok", async () => {
    await healthy("greenhouse-pi", "water-temp");
    const rejected = (await stats("greenhouse-pi", "water-temp"))?.rejected ?? 0;
    const undo = await inject("out-of-range", "greenhouse-pi", "water-temp");
    const s = await until(
      async () => {
        const now = await stats("greenhouse-pi", "water-temp");
        return now !== undefined && now.rejected > rejected ? now : undefined;
      },
      15_000,
      "rejected Pi readings",
    );
    expect(s.fault).toMatch(/outside the valid range/);
    expect(sensorView("greenhouse-pi", "water-temp")?.health).toBe("faulty");
    await undo();
    await healthy("greenhouse-pi", "water-temp", 20_000);
  }, 45_000);

  it("partition of a Pi: offline on its last will, it buffers, and on return replays with no gap in history", async () => {
    const seqs = () =>
      hub.telemetry({ device: "greenhouse-pi", sensor: "water-temp" }).map((r) => r.seq as number);
    const first = seqs().at(-1) as number;
    const undo = await inject("partition", "greenhouse-pi");
    await until(() => hub.device("greenhouse-pi")?.status === "offline", 15_000, "greenhouse-pi offline");
    expect(hub.device("greenhouse-pi")?.reason).toMatch(/last will|silent/);
    await sleep(5000); // readings taken while cut off wait in the agent's buffer
    await undo();
    await online("greenhouse-pi", 20_000);
    await until(() => (seqs().at(-1) as number) >= first + 5, 15_000, "replayed and new readings");
    const after = seqs().filter((s) => s >= first);
    const last = after.at(-1) as number;
    // Every seq from before the cut to now is in the history: nothing lost in the partition.
    expect(new Set(after).size).toBe(last - first + 1);
  }, 60_000);

  it("reboot of a Pi: one board_reset with reset cause power-on, the pump relay closed again, online", async () => {
    const pi = demo.pis.get("tank-pi") as NonNullable<ReturnType<typeof demo.pis.get>>;
    const board = () =>
      call<PiBoardStats>({ via: hub.context.names, key: boardName("tank-pi") }, { t: "stats" });
    await online("tank-pi");
    await hub.command("tank-pi", { target: "pump", op: "close" });
    expect(pi.sys.readGpio(22)).toBe(0); // the pump relay is active-low: closed pulls its line low
    const before = events("tank-pi", "board_reset").length;
    const viewer = await mqtt.connectAsync(hub.mqttUrl, { reconnectPeriod: 0, ...hub.hubLogin() });
    try {
      const causes: string[] = [];
      viewer.on("message", (_topic, payload) => {
        causes.push(String((JSON.parse(payload.toString()) as { resetCause?: string }).resetCause));
      });
      await viewer.subscribeAsync("ganglion/tank-pi/heartbeat");
      const bootId = demo.pis.get("tank-pi")?.agent;
      await inject("reboot", "tank-pi");
      expect(demo.pis.get("tank-pi")?.agent).not.toBe(bootId);
      await until(() => causes.includes("power-on"), 10_000, "a heartbeat with resetCause power-on");
      const reset = await until(
        () => events("tank-pi", "board_reset").slice(before)[0],
        10_000,
        "board_reset after the reboot",
      );
      expect(reset).toMatchObject({
        path: "hub/fleet/tank-pi",
        reason: "board reset (cause: power-on)",
        cause: "power-on",
      });
      // The new agent drove its outputs off; the hub closed the relay again.
      await until(() => pi.sys.readGpio(22) === 0, 10_000, "pump relay closed again");
      await online("tank-pi");
      // Later heartbeats of the same run are no further reset.
      const beats = (await board()).heartbeats;
      await until(async () => (await board()).heartbeats >= beats + 2, 10_000, "two more heartbeats");
      expect(events("tank-pi", "board_reset").length).toBe(before + 1);
    } finally {
      await viewer.endAsync(true);
    }
  }, 30_000);

  it("power loss of a Pi: offline, then down with backoff and the reason while dark, online with readings once it is back", async () => {
    await online("tank-pi");
    const backoffs = events("tank-pi", "backoff").length;
    const undo = await inject("power-loss", "tank-pi");
    await until(() => hub.device("tank-pi")?.status === "offline", 15_000, "tank-pi offline");
    expect(demo.pis.get("tank-pi")?.agent).toBeUndefined();
    // Still dark after its 4 s window: its link gives up, the supervisor backs off, the device is down and says why.
    await until(() => hub.device("tank-pi")?.status === "down", 20_000, "tank-pi down while dark");
    expect(hub.device("tank-pi")?.reason).toMatch(/tank-pi has not been heard since .*check its power/);
    const backoff = await until(
      () => events("tank-pi", "backoff").slice(backoffs)[0],
      10_000,
      "a backoff event for tank-pi's link",
    );
    expect(backoff).toMatchObject({ path: "hub/fleet/tank-pi/link" });
    expect(backoff.reason).toMatch(/MqttDeviceDownError: tank-pi has not been heard/);
    expect(hub.device("tank-pi")?.sensors.every((s) => s.health === "down")).toBe(true);
    // Its restarted link keeps listening; the device stays down (not offline) while it is away.
    await until(
      () => events("tank-pi", "backoff").length - backoffs >= 2,
      20_000,
      "a second window ending in another backoff",
    );
    expect(hub.device("tank-pi")?.status).toBe("down");
    const restored = Date.now();
    await undo();
    await online("tank-pi", 20_000);
    await until(
      () => hub.telemetry({ device: "tank-pi", sensor: "water-temp", since: restored }).length >= 2,
      15_000,
      "new water-temp readings after the power came back",
    );
    await healthy("tank-pi", "water-temp");
  }, 90_000);

  it("refuses faults a board cannot have, with a message that says why", async () => {
    await expect(inject("partition", "uno-1")).rejects.toThrow(
      /serial cable: it has no network to partition/,
    );
    await expect(inject("garbage", "tank-pi")).rejects.toThrow(/MQTT over TCP/);
    await expect(inject("nan", "tank-pi", "air-temp")).rejects.toThrow(/1-Wire CRC error.*not on 1-Wire/);
    await expect(inject("stuck", "uno-1", "button")).rejects.toThrow(/digital input/);
    await expect(inject("out-of-range", "uno-1", "pot")).rejects.toThrow(/has no range/);
    await expect(inject("stuck", "uno-1", "nope")).rejects.toThrow(/no sensor "nope"/);
    await expect(inject("throws", "uno-1", "temp")).rejects.toThrow(/injected by the hub/);
    expect(demo.faults.simulates("uno-1")).toBe(true);
    expect(demo.faults.simulates("tank-pi")).toBe(true);
    expect(demo.faults.simulates("real-uno")).toBe(false);
  });

  it("through POST /api/faults: a stuck LM35 is flagged, listed, and cleared by DELETE; a refusal is a 400", async () => {
    const url = hub.httpUrl as string;
    await healthy("uno-2", "temp");
    const post = (body: unknown) =>
      fetch(`${url}/api/faults`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const res = await post({ kind: "stuck", device: "uno-2", sensor: "temp" });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const listed = (await (await fetch(`${url}/api/faults`)).json()) as FaultView[];
    expect(listed).toContainEqual(
      expect.objectContaining({ id, kind: "stuck", device: "uno-2", sensor: "temp" }),
    );
    await until(
      async () => (await stats("uno-2", "temp"))?.fault?.includes("stuck"),
      15_000,
      "uno-2/temp stuck through the API",
    );
    expect((await fetch(`${url}/api/faults/${id}`, { method: "DELETE" })).status).toBe(204);
    await healthy("uno-2", "temp");
    expect(events("uno-2", "fault_injected").at(-1)).toMatchObject({ path: "hub/fleet/uno-2/sensors/temp" });
    expect(events("uno-2", "fault_cleared").length).toBeGreaterThanOrEqual(1);

    const refused = await post({ kind: "partition", device: "uno-1" });
    expect(refused.status).toBe(400);
    const body = (await refused.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/no network to partition/);
  }, 40_000);
});
