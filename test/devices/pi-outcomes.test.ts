/**
 * What DESIGN.md §3 promises for a Raspberry Pi (rows `reboot`, `nan`, `disconnect`/`partition`), on a real hub
 * (startHub on free ports) with the real agent as a virtual Pi (simulator/pi/virtual-pi.ts) on a virtual sysfs:
 * a new run of the agent is one `board_reset` with its cause and the relay closed again; the same run coming back
 * from a partition is no reset; CRC errors in a row restart the sensor's actor; a device that is offline has no
 * healthy sensors — nor does a serial device whose port cannot be opened (the same rule for both link kinds).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  isNewRun,
  type PiBoardStats,
  parseAgentHeartbeat,
  RUN_TOLERANCE_MS,
} from "../../devices/boards/pi.ts";
import { DeviceSchema, FleetConfigSchema, generateToken, hashToken } from "../../hub/config.ts";
import { boardName, linkName, partName } from "../../hub/context.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { call, exit, findNode } from "../../hub/runtime/index.ts";
import type { HubEvent } from "../../hub/store.ts";
import { startVirtualPi, type VirtualPi } from "../../simulator/pi/virtual-pi.ts";

const DEVICE = "tank-pi";
const RELAY_GPIO = 22;
const ADDRESS = "28-0000075c2f2a";

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
    await sleep(20);
  }
}

let work: string;
let hub: RunningHub;
let pi: VirtualPi;
/** A second Pi that is `down` after 1.5 s away (its own, so the partitions above stay short of it). */
const AWAY = "well-pi";
let awayPi: VirtualPi;

const events = (type: string): HubEvent[] =>
  hub.events({ device: DEVICE, type, limit: 10_000 }) as HubEvent[];
const sensor = (id: string) => hub.device(DEVICE)?.sensors.find((s) => s.id === id);
const status = () => hub.device(DEVICE)?.status;
const board = () => call<PiBoardStats>({ via: hub.context.names, key: boardName(DEVICE) }, { t: "stats" });
const online = () => until(() => status() === "online", 15_000, `${DEVICE} online`);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "ganglion-pi-outcomes-"));
  const logger = pino({ level: process.env.GANGLION_TEST_LOG ?? "silent" });
  const token = generateToken();
  const config = FleetConfigSchema.parse({ hub: { heartbeatMs: 300 } });
  config.devices.push(
    DeviceSchema.parse({
      id: DEVICE,
      board: "raspberry-pi",
      link: { type: "mqtt", tokenHash: await hashToken(token) },
      sensors: [
        { id: "water-temp", kind: "thermometer", unit: "°C", periodMs: 200, staleMs: 5000, range: [-10, 60] },
      ],
      actuators: [{ id: "pump", kind: "relay" }],
    }),
    DeviceSchema.parse({
      id: AWAY,
      board: "raspberry-pi",
      link: { type: "mqtt", tokenHash: await hashToken(token) },
      downAfterMs: 1500,
      sensors: [{ id: "level", kind: "thermometer", periodMs: 200, staleMs: 5000, range: [-10, 60] }],
    }),
    // An Arduino whose port never opens: its link restarts with backoff, and its parts with it.
    DeviceSchema.parse({
      id: "unplugged-uno",
      board: "uno",
      link: { type: "serial", path: "/dev/ttyACM9" },
      sensors: [{ id: "pot", kind: "analog", pin: "A0", periodMs: 200 }],
      actuators: [{ id: "led", kind: "led", pin: 13 }],
    }),
  );
  hub = await startHub({
    config,
    dataDir: join(work, "data"),
    httpPort: 0,
    mqttPort: 0,
    logger,
    serialOpener: async (link) => {
      throw new Error(`serial port ${link.path} not found: plug unplugged-uno in`);
    },
  });
  pi = await startVirtualPi({
    dir: join(work, "pi"),
    device: DEVICE,
    token,
    broker: hub.mqttUrl,
    heartbeatMs: 300,
    sensors: [{ id: "water-temp", kind: "ds18b20", address: ADDRESS, periodMs: 200 }],
    outputs: [{ id: "pump", kind: "relay", gpio: RELAY_GPIO }],
    logger,
  });
  awayPi = await startVirtualPi({
    dir: join(work, "away-pi"),
    device: AWAY,
    token,
    broker: hub.mqttUrl,
    heartbeatMs: 300,
    sensors: [{ id: "level", kind: "ds18b20", address: ADDRESS, periodMs: 200 }],
    outputs: [],
    logger,
  });
  await online();
  await until(() => sensor("water-temp")?.value === 20, 10_000, "a first reading");
  await until(() => hub.device(AWAY)?.status === "online", 15_000, `${AWAY} online`);
}, 30_000);

afterAll(async () => {
  await awayPi?.stop();
  await pi?.stop();
  await hub?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("a Raspberry Pi's reboot, partition and offline outcomes", () => {
  it("reboot: one board_reset with the agent's reset cause, and the relay closed again", async () => {
    await hub.command(DEVICE, { target: "pump", op: "close" });
    expect(pi.sys.readGpio(RELAY_GPIO)).toBe(1);
    const link = hub.context.names.whereis(linkName(DEVICE));
    const before = events("board_reset").length;
    await pi.reboot();
    // The new agent starts with its outputs off; the hub closes the relay again.
    expect(pi.sys.readGpio(RELAY_GPIO)).not.toBe(1);
    const reset = await until(() => events("board_reset")[before], 10_000, "board_reset");
    expect(reset).toMatchObject({
      type: "board_reset",
      path: `hub/fleet/${DEVICE}`,
      reason: "board reset (cause: power-on)",
    });
    await until(() => pi.sys.readGpio(RELAY_GPIO) === 1, 10_000, "relay closed again");
    expect(sensor("pump")?.value).toBe(true);
    // Later heartbeats of the new run are no new reset; the link carried on (an MQTT link does not restart).
    const beats = (await board()).heartbeats;
    await until(async () => (await board()).heartbeats >= beats + 3, 5000, "three more heartbeats");
    expect(events("board_reset").length).toBe(before + 1);
    expect(hub.context.names.whereis(linkName(DEVICE))).toBe(link);
  }, 30_000);

  it("an agent crash is a reset too, with cause agent-crash", async () => {
    const before = events("board_reset").length;
    await pi.crash();
    const reset = await until(() => events("board_reset")[before], 10_000, "board_reset after a crash");
    expect(reset.reason).toBe("board reset (cause: agent-crash)");
    await until(() => pi.sys.readGpio(RELAY_GPIO) === 1, 10_000, "relay closed again");
  }, 20_000);

  it("partition: the same run reconnecting is no reset, and the relay is left alone", async () => {
    const before = events("board_reset").length;
    const { resets } = await board();
    pi.partition(true);
    await until(() => status() === "offline", 10_000, `${DEVICE} offline`);
    await sleep(1500);
    pi.partition(false);
    await online();
    const beats = (await board()).heartbeats;
    await until(
      async () => (await board()).heartbeats >= beats + 3,
      10_000,
      "heartbeats after the partition",
    );
    expect(events("board_reset").length).toBe(before);
    expect((await board()).resets).toBe(resets);
    expect(pi.sys.readGpio(RELAY_GPIO)).toBe(1);
  }, 30_000);
});

describe("a Raspberry Pi's DS18B20 failing its CRC (nan)", () => {
  it("each failed read reaches the hub; three in a row restart the sensor's actor, faulty meanwhile, ok once cleared", async () => {
    await until(() => sensor("water-temp")?.health === "ok", 10_000, "water-temp ok");
    const path = `hub/fleet/${DEVICE}/sensors/water-temp`;
    const restarts = () => events("restarted").filter((e) => e.path === path).length;
    const before = restarts();
    const actor = hub.context.names.whereis(partName(DEVICE, "water-temp"));
    const seqs = () => hub.telemetry({ device: DEVICE, sensor: "water-temp" }).map((r) => r.seq as number);
    const lastSeq = seqs().at(-1) as number;
    pi.sys.setCrcError(ADDRESS, true);
    await until(() => sensor("water-temp")?.health === "faulty", 5000, "water-temp faulty");
    await until(() => restarts() > before, 10_000, "a restarted event for water-temp");
    pi.sys.setCrcError(ADDRESS, false);
    expect(findNode(hub.tree(), path)?.lastExit?.reason).toMatch(
      /SensorReadFailedError: tank-pi\/water-temp: 3 readings in a row failed \(last: crc/,
    );
    expect(hub.context.names.whereis(partName(DEVICE, "water-temp"))).not.toBe(actor);
    // The fresh actor has read nothing yet: still faulty, not ok.
    expect(sensor("water-temp")?.health).toBe("faulty");
    await until(() => sensor("water-temp")?.health === "ok", 10_000, "water-temp ok after clear");
    // The failed reads took no seq: the history has no gap across the fault.
    const after = seqs().filter((s) => s >= lastSeq);
    expect(after.length).toBeGreaterThan(1);
    expect(after).toEqual(after.map((_, i) => lastSeq + i));
    expect(events("gave_up")).toEqual([]);
  }, 30_000);
});

describe("telling a new run of the agent from the same run (devices/boards/pi.ts)", () => {
  const beat = (uptimeS: number, resetCause?: string, run?: string) =>
    parseAgentHeartbeat(JSON.stringify({ ts: 1, uptimeS, resetCause, run })) as NonNullable<
      ReturnType<typeof parseAgentHeartbeat>
    >;
  const seen = (b: ReturnType<typeof beat>, seenAt: number) => ({ ...b, seenAt });

  it("trusts the run id when both heartbeats carry one", () => {
    expect(isNewRun(seen(beat(0, "power-on", "a"), 0), beat(0, "power-on", "b"), 500)).toBe(true);
    // Same id: a long partition with a hub stall in the middle is still the same run.
    expect(isNewRun(seen(beat(3, "power-on", "a"), 0), beat(3, "power-on", "a"), 60_000)).toBe(false);
  });

  it("from agents without a run id: uptime backwards, another cause, or too little uptime for the time gone", () => {
    const last = seen(beat(100, "power-on"), 0);
    expect(isNewRun(last, beat(99, "power-on"), 1000)).toBe(true);
    expect(isNewRun(last, beat(130, "agent-crash"), 30_000)).toBe(true);
    // Away 60 s, back with 40 s of uptime: it restarted while away.
    expect(isNewRun(last, beat(140, "power-on"), 100_000)).toBe(true);
    // Away 60 s, back with 60 s more uptime (floored, read late): the same run after a partition.
    expect(isNewRun(last, beat(159, "power-on"), 60_000 + RUN_TOLERANCE_MS - 1500)).toBe(false);
  });

  it("ignores heartbeats without a usable uptime", () => {
    expect(parseAgentHeartbeat("{oops")).toBeNull();
    expect(parseAgentHeartbeat(JSON.stringify({ ts: 1 }))).toBeNull();
    expect(parseAgentHeartbeat(JSON.stringify({ ts: 1, uptimeS: -1 }))).toBeNull();
  });
});

describe("parts of a device without a link are not healthy", () => {
  it("a Pi that goes offline: its sensor and relay are down, a sensor actor restarted meanwhile too, ok again once readings flow", async () => {
    await until(() => sensor("water-temp")?.health === "ok", 10_000, "water-temp ok");
    pi.partition(true);
    await until(() => status() === "offline", 10_000, `${DEVICE} offline`);
    expect(sensor("water-temp")?.health).toBe("down");
    expect(sensor("pump")?.health).toBe("down");
    // A sensor actor restarted while the device is away starts down, not ok.
    const old = hub.context.names.whereis(partName(DEVICE, "water-temp"));
    exit(old as NonNullable<typeof old>, "kill");
    await until(
      () => {
        const p = hub.context.names.whereis(partName(DEVICE, "water-temp"));
        return p !== undefined && p !== old;
      },
      5000,
      "water-temp restarted",
    );
    expect(sensor("water-temp")?.health).toBe("down");
    pi.partition(false);
    await online();
    await until(() => sensor("water-temp")?.health === "ok", 10_000, "water-temp ok after the partition");
    expect(sensor("pump")?.health).toBe("ok");
  }, 40_000);

  it("a Pi away beyond downAfterMs is down with backoff and the reason; it is online again as soon as it reports, even mid-backoff", async () => {
    const away = () => hub.device(AWAY);
    const backoffs = () => hub.events({ device: AWAY, type: "backoff", limit: 1000 }) as HubEvent[];
    await until(() => away()?.sensors[0]?.health === "ok", 10_000, `${AWAY}/level ok`);
    awayPi.partition(true);
    await until(() => away()?.status === "offline", 10_000, `${AWAY} offline`);
    await until(() => away()?.status === "down", 10_000, `${AWAY} down`);
    expect(away()?.reason).toMatch(
      /well-pi has not been heard since .* \(over 1.5 s\): check its power, network/,
    );
    expect(away()?.sensors[0]?.health).toBe("down");
    const first = await until(() => backoffs()[0], 10_000, "a backoff event");
    expect(first).toMatchObject({ path: `hub/fleet/${AWAY}/link` });
    expect(first.reason).toMatch(/MqttDeviceDownError: well-pi has not been heard/);
    // The restarted link listens for another window and gives up again; the device stays down meanwhile.
    await until(() => backoffs().length >= 2, 15_000, "a second backoff");
    expect(away()?.status).toBe("down");
    // Back while its link is between two windows (not running): the Broker service keeps its status for the
    // restarted link, so it does not wait for another window.
    await until(() => hub.context.names.whereis(linkName(AWAY)) === undefined, 15_000, "the link in backoff");
    awayPi.partition(false);
    await until(() => away()?.status === "online", 10_000, `${AWAY} online again`);
    expect(away()?.reason).toBeUndefined();
    await until(() => away()?.sensors[0]?.health === "ok", 10_000, `${AWAY}/level ok again`);
    // Online for good: no further window ends in a backoff.
    const settled = backoffs().length;
    await sleep(2500);
    expect(backoffs().length).toBe(settled);
    expect(away()?.status).toBe("online");
  }, 60_000);

  it("downAfterMs belongs to MQTT devices: the fleet file refuses it on a serial board", () => {
    const parsed = DeviceSchema.safeParse({
      id: "uno-9",
      board: "uno",
      link: { type: "serial", path: "/dev/ttyACM0" },
      downAfterMs: 1000,
    });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({ path: ["downAfterMs"] });
    expect(parsed.error?.issues[0]?.message).toMatch(/only on an mqtt device/);
  });

  it("a serial device whose port cannot be opened: its restarted parts are down, not ok", async () => {
    const uno = () => hub.device("unplugged-uno");
    await until(() => uno()?.status === "down", 10_000, "unplugged-uno down");
    // The link has failed and restarted, and its parts with it (rest_for_one).
    await until(
      () => hub.events({ device: "unplugged-uno", type: "backoff", limit: 100 }).length >= 2,
      10_000,
      "two link restarts",
    );
    expect(uno()?.reason).toMatch(/not found/);
    expect(uno()?.sensors.map((s) => [s.id, s.health])).toEqual([
      ["pot", "down"],
      ["led", "down"],
    ]);
  }, 20_000);
});
