/**
 * `ganglion simulate --config fleet.yaml --tokens tokens.txt` (simulator/fleet-sim.ts): a user's own fleet file as
 * virtual boards against a real hub in the same test process — an emulated Uno on a pty the hub opens with
 * serialport, and a virtual Pi whose agent logs in to the hub's broker with the token from the tokens file. Physical
 * faults go through the simulation's own /api/faults and show in the hub's view.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convert } from "../../devices/boards/firmata-pins.ts";
import { serialportOpener } from "../../devices/links/serial-link.ts";
import {
  type DeviceConfig,
  type FleetConfig,
  FleetConfigError,
  generateToken,
  hashToken,
  loadFleetConfig,
  parseTokensFile,
  type SensorConfig,
} from "../../hub/config.ts";
import type { SerialOpener } from "../../hub/context.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { demoFaults } from "../../simulator/faults.ts";
import { describeSimulation } from "../../simulator/fleet-sim/cli.ts";
import { startFaultApi } from "../../simulator/fleet-sim/fault-api.ts";
import { partSeed, thermometerModel } from "../../simulator/fleet-sim/models.ts";
import { piAgentParts } from "../../simulator/fleet-sim/pi-config.ts";
import { FIRMWARE_HEX, UNO_TICK_MS, unoInputsFor } from "../../simulator/fleet-sim/uno-board.ts";
import {
  type FleetSimulation,
  MissingTokenError,
  runFleetSimulationCli,
  simulatedLinkPath,
  startFleetSimulation,
} from "../../simulator/fleet-sim.ts";
import { lm35Volts } from "../../simulator/models.ts";
import type { VirtualUno } from "../../simulator/uno/virtual-uno.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until<T>(
  check: () => T | undefined | null | false,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const haveHex = existsSync(FIRMWARE_HEX["arduino-uno"]);
const haveSocat = existsSync("/usr/bin/socat");
if (!haveHex || !haveSocat)
  console.error(
    "SKIPPING the Uno parts of fleet-sim.test.ts: no firmware hex (make -C firmware/arduino) or no socat",
  );

const fleetYaml = (piHash: string, unoPath: string) => `# a user's fleet
hub:
  heartbeatMs: 1000
devices:
  - id: bench-uno
    board: uno
    link: { type: serial, path: ${unoPath} }
    sensors:
      - { id: temp, kind: thermometer, pin: A0, periodMs: 500, range: [-10, 60], maxRatePerS: 5 }
      - { id: button, kind: button, pin: 2, periodMs: 500 }
    actuators:
      - { id: led, kind: led, pin: 13 }
  - id: tank-pi
    board: raspberry-pi
    link: { type: mqtt, tokenHash: "${piHash}" }
    sensors:
      - { id: water, kind: thermometer, address: 28-0000075c2f2a, periodMs: 1000, range: [-10, 60] }
    actuators:
      - { id: pump, kind: relay, pin: 22 }
`;

const logger = pino({ level: process.env.GANGLION_TEST_LOG ?? "silent" });
let work: string;
let fleetFile: string;
let tokensFile: string;
let fleet: FleetConfig;
let hub: RunningHub | undefined;
let sim: FleetSimulation | undefined;

const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${sim?.apiUrl}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
};
const status = (device: string) => hub?.device(device)?.status;
const readings = (device: string, sensor: string) => hub?.telemetry({ device, sensor }) ?? [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "ganglion-fleet-sim-"));
  const token = generateToken();
  fleetFile = join(work, "fleet.yaml");
  tokensFile = join(work, "tokens.txt");
  // The user names the simulation's stable pty link in the fleet file, and the hub opens it like /dev/ttyACM0.
  writeFileSync(
    fleetFile,
    fleetYaml(await hashToken(token), simulatedLinkPath(join(work, "sim"), "bench-uno")),
  );
  writeFileSync(tokensFile, `# clear tokens\ntank-pi=${token}\n`);
  const config = await loadFleetConfig(fleetFile);
  fleet = config;
  if (!haveHex || !haveSocat) config.devices = config.devices.filter((d) => d.link.type === "mqtt");
  // serialport on the link path, as for a real board. Until the simulation runs the port is absent, and the hub
  // retries as it would for an unplugged board.
  const serialOpener: SerialOpener = serialportOpener();
  hub = await startHub({
    config,
    dataDir: join(work, "data"),
    httpPort: 0,
    mqttPort: 0,
    logger,
    serialOpener,
  });
  sim = await startFleetSimulation({
    config,
    tokens: parseTokensFile(readFileSync(tokensFile, "utf8"), tokensFile),
    broker: hub.mqttUrl,
    dir: join(work, "sim"),
    seed: 7,
    logger,
  });
}, 60_000);

afterAll(async () => {
  await sim?.stop();
  await hub?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 30_000);

describe("a user's fleet as virtual boards against a real hub", () => {
  it("maps a Pi's parts to the agent's hardware and skips what it cannot read", () => {
    const parts = piAgentParts({
      id: "p",
      board: "raspberry-pi",
      link: { type: "mqtt", tokenHash: "x" },
      sensors: [
        { id: "t", kind: "thermometer", periodMs: 1000 },
        { id: "h", kind: "humidity", address: "iio:bme280", periodMs: 1000 },
        { id: "l", kind: "light", periodMs: 1000 },
        { id: "b", kind: "button", pin: 17, periodMs: 1000 },
      ],
      actuators: [
        { id: "r", kind: "relay", pin: 22 },
        { id: "s", kind: "servo", pin: 18 },
      ],
    });
    expect(parts.sensors.map((s) => s.kind)).toEqual(["ds18b20", "iio", "gpio-input"]);
    expect(parts.sensors[0]).toMatchObject({ address: expect.stringMatching(/^28-[0-9a-f]{12}$/) });
    expect(parts.sensors[1]).toMatchObject({ device: "bme280", channel: "humidityrelative" });
    expect(parts.sensors[2]).toMatchObject({ gpio: 17, activeLow: true });
    expect(parts.outputs).toEqual([{ id: "r", kind: "relay", gpio: 22 }]);
    expect(parts.skipped.map((s) => s.part)).toEqual(["l", "s"]);
  });

  it("wires an Arduino's sensors to the emulated board's pins by board kind, and skips what is not on a pin", () => {
    const device = (
      board: "arduino-uno" | "arduino-mega",
      sensors: DeviceConfig["sensors"],
    ): DeviceConfig => ({
      id: "a",
      board,
      link: { type: "serial", path: "/dev/x", baudRate: 57600 },
      sensors,
      actuators: [],
    });
    const s = (id: string, kind: SensorConfig["kind"], where: Partial<SensorConfig>): SensorConfig => ({
      id,
      kind,
      periodMs: 1000,
      ...where,
    });
    const mega = unoInputsFor(
      device("arduino-mega", [
        s("t", "thermometer", { pin: "A10" }),
        s("l", "light", { pin: 64 }),
        s("b", "button", { pin: 40 }),
        s("i2c", "humidity", { address: "0x40" }),
      ]),
      1,
    );
    expect(
      mega.inputs.map((i) => (i.kind === "analog" ? `${i.sensor}:A${i.channel}` : `${i.sensor}:${i.pin}`)),
    ).toEqual(["t:A10", "l:A10", "b:40"]);
    expect(mega.skipped.map((x) => x.sensor)).toEqual(["i2c"]);
    // A Uno has A0..A5 only.
    const uno = unoInputsFor(device("arduino-uno", [s("t", "thermometer", { pin: "A7" })]), 1);
    expect(uno.inputs).toEqual([]);
    expect(uno.skipped[0]?.reason).toMatch(/not an analog input of an arduino-uno/);
  });

  it("the Pi logs in with its token and its DS18B20's readings reach the hub", async () => {
    await until(() => status("tank-pi") === "online", 20_000, "tank-pi online");
    const rows = await until(
      () => {
        const r = readings("tank-pi", "water");
        return r.length >= 2 ? r : undefined;
      },
      15_000,
      "tank-pi/water readings",
    );
    for (const row of rows) {
      expect(typeof row.value).toBe("number");
      expect(row.value as number).toBeGreaterThan(-10);
      expect(row.value as number).toBeLessThan(60);
    }
    // The default model stays inside the range and moves slower than the hub's noise bound.
    await until(
      () => hub?.device("tank-pi")?.sensors.find((s) => s.id === "water")?.health === "ok",
      10_000,
      "tank-pi/water ok",
    );
  }, 40_000);

  it.skipIf(!haveHex || !haveSocat)(
    "the Uno is on a pty the hub opens with serialport, and its thermometer reads the model",
    async () => {
      const lines = describeSimulation(sim as FleetSimulation);
      expect(lines.find((l) => l.includes("bench-uno"))).toMatch(
        /^ganglion: bench-uno on \/dev\/pts\/\d+ .*set link\.path/,
      );
      await until(() => status("bench-uno") === "online", 30_000, "bench-uno online");
      const rows = await until(
        () => {
          const r = readings("bench-uno", "temp");
          return r.length >= 3 ? r : undefined;
        },
        15_000,
        "bench-uno/temp readings",
      );
      // The seeded model's room temperature, read through the emulated LM35 and ADC: a fresh model from the same
      // seed replays it, tick by tick.
      const uno = sim?.unos.get("bench-uno") as VirtualUno;
      const sensor = fleet.devices.find((d) => d.id === "bench-uno")?.sensors[0] as SensorConfig;
      const model = thermometerModel(sensor, partSeed(7, "bench-uno", "temp"), UNO_TICK_MS);
      const reading = (celsius: number) =>
        Number(convert(sensor, Math.floor((lm35Volts(celsius) / 5) * 1024)));
      const byTick = [reading(model.value)];
      const lastTick = Math.floor(((rows.at(-1)?.ts ?? 0) - uno.startedAt) / uno.tickMs);
      while (byTick.length <= lastTick) byTick.push(reading(model.step()));
      for (const row of rows) {
        // Stored when forwarded: sampled by the ADC up to ~1 s (the sensor's period and the sampling) earlier.
        const tick = Math.floor((row.ts - uno.startedAt) / uno.tickMs);
        expect(
          byTick.slice(Math.max(0, tick - 5), tick + 1),
          `reading ${row.value} at tick ${tick}`,
        ).toContain(row.value);
      }
      // Inside the range and slower than maxRatePerS: a healthy sensor.
      await until(
        () => hub?.device("bench-uno")?.sensors.find((s) => s.id === "temp")?.health === "ok",
        10_000,
        "bench-uno/temp ok",
      );
    },
    50_000,
  );

  it.skipIf(!haveHex || !haveSocat)(
    "disconnect on the Uno through the simulation's /api/faults: the hub loses the port, and gets it back on DELETE",
    async () => {
      await until(() => status("bench-uno") === "online", 30_000, "bench-uno online");
      const posted = await api("POST", "/api/faults", { kind: "disconnect", device: "bench-uno" });
      expect(posted.status).toBe(202);
      expect(posted.body).toMatchObject({ kind: "disconnect", device: "bench-uno", id: expect.any(String) });
      expect((await api("GET", "/api/faults")).body).toEqual([posted.body]);
      const board = sim?.boards.find((b) => b.device === "bench-uno");
      await until(() => board?.kind === "serial" && board.ptyPath === undefined, 5000, "the pty gone");
      await until(() => status("bench-uno") !== "online", 15_000, "bench-uno offline");
      expect(hub?.device("bench-uno")?.reason ?? "").not.toBe("");
      const cleared = await api("DELETE", `/api/faults/${posted.body.id}`);
      expect(cleared.status).toBe(204);
      expect((await api("GET", "/api/faults")).body).toEqual([]);
      await until(() => status("bench-uno") === "online", 40_000, "bench-uno back online");
    },
    90_000,
  );

  it("partition on the Pi: offline (its last will), then online again once cleared", async () => {
    await until(() => status("tank-pi") === "online", 20_000, "tank-pi online");
    const posted = await api("POST", "/api/faults", { kind: "partition", device: "tank-pi" });
    expect(posted.status).toBe(202);
    await until(() => status("tank-pi") === "offline", 15_000, "tank-pi offline");
    expect((await api("DELETE", `/api/faults/${posted.body.id}`)).status).toBe(204);
    await until(() => status("tank-pi") === "online", 20_000, "tank-pi online again");
  }, 60_000);

  it("answers bad fault requests as the hub does", async () => {
    const unknownKind = await api("POST", "/api/faults", { kind: "melt", device: "tank-pi" });
    expect(unknownKind.status).toBe(400);
    expect(unknownKind.body.error.code).toBe("bad-fault");
    const unknownDevice = await api("POST", "/api/faults", { kind: "disconnect", device: "nope" });
    expect(unknownDevice.status).toBe(404);
    const serialPartition =
      haveHex && haveSocat
        ? await api("POST", "/api/faults", { kind: "garbage", device: "tank-pi" })
        : undefined;
    if (serialPartition) expect(serialPartition.status).toBe(400);
    const hubSide = await api("POST", "/api/faults", { kind: "throws", device: "tank-pi", sensor: "water" });
    expect(hubSide.status).toBe(400);
    expect(hubSide.body.error.message).toMatch(/hub's \/api\/faults/);
    expect((await api("DELETE", "/api/faults/f999")).status).toBe(404);
    const notJson = await fetch(`${sim?.apiUrl}/api/faults`, { method: "POST", body: "x" });
    expect(notJson.status).toBe(415);
  });

  it("its API takes a bearer token for changes, refuses to listen beyond loopback without one, and names a taken port", async () => {
    const physical = demoFaults({ devices: () => [], pis: new Map(), unos: new Map(), seed: 1 });
    await expect(startFaultApi({ host: "0.0.0.0", port: 0, devices: [], physical, logger })).rejects.toThrow(
      /needs an API token/,
    );
    const guarded = await startFaultApi({
      host: "127.0.0.1",
      port: 0,
      devices: [],
      physical,
      token: "s3cret",
      logger,
    });
    try {
      const post = (auth?: string) =>
        fetch(`${guarded.url}/api/faults`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(auth ? { authorization: auth } : {}) },
          body: JSON.stringify({ kind: "disconnect", device: "x" }),
        });
      expect((await post()).status).toBe(401);
      expect((await post("Bearer wrong")).status).toBe(401);
      // Authorised, the request reaches the book: no such device.
      expect((await post("Bearer s3cret")).status).toBe(404);
      expect(await (await fetch(`${guarded.url}/api/faults`)).json()).toEqual([]);
      const taken = Number(new URL(guarded.url).port);
      await expect(
        startFaultApi({ host: "127.0.0.1", port: taken, devices: [], physical, logger }),
      ).rejects.toThrow(`port 127.0.0.1:${taken} is already in use; pick another with --http-port`);
    } finally {
      await guarded.close();
    }
  });

  it("a device missing from the tokens file is an error naming it and how to get a token", async () => {
    const config = await loadFleetConfig(fleetFile);
    const failed = startFleetSimulation({
      config,
      tokens: new Map(),
      tokensFile: "tokens.txt",
      dir: join(work, "sim-missing"),
      logger,
    });
    await expect(failed).rejects.toBeInstanceOf(MissingTokenError);
    await expect(failed).rejects.toThrow(/tokens\.txt has no token for tank-pi.*ganglion device add tank-pi/);
  });

  it("the CLI refuses a bad fleet file with its line-numbered error", async () => {
    const bad = join(work, "bad.yaml");
    writeFileSync(bad, "devices:\n  - id: x\n    board: toaster\n    link: { type: serial, path: /dev/x }\n");
    const run = runFleetSimulationCli({ config: bad, tokens: tokensFile, logger, print: () => undefined });
    await expect(run).rejects.toBeInstanceOf(FleetConfigError);
    await expect(run).rejects.toThrow(/bad\.yaml:3: devices\[0\]\.board: expected a board kind/);
  });

  it("the CLI prints each board and the fault API, runs until told to stop, and stops every board", async () => {
    const lines: string[] = [];
    let stop: (why: string) => void = () => undefined;
    const stopped = new Promise<string>((resolve) => {
      stop = resolve;
    });
    // A Pi of its own (the hub does not know it, so its logins are refused): the running tank-pi is left alone. Its
    // light sensor has no agent driver: one warning names it.
    const token = generateToken();
    const file = join(work, "cli-fleet.yaml");
    writeFileSync(
      file,
      `devices:\n  - id: cli-pi\n    board: pi\n    link: { type: mqtt, tokenHash: "${await hashToken(token)}" }\n` +
        "    sensors:\n      - { id: lux, kind: light }\n      - { id: air, kind: thermometer }\n",
    );
    const tokens = join(work, "cli-tokens.txt");
    writeFileSync(tokens, `cli-pi=${token}\n`);
    const logged: { level: number; msg: string; device?: string; sensor?: string }[] = [];
    const capture = pino({ level: "warn" }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const run = runFleetSimulationCli({
      config: file,
      tokens,
      broker: hub?.mqttUrl as string,
      dir: join(work, "sim-cli"),
      logger: capture,
      print: (l) => lines.push(l),
      until: stopped,
    });
    await until(() => lines.some((l) => l.includes("/api/faults")), 20_000, "the CLI's lines");
    expect(lines[0]).toMatch(/^ganglion: cli-pi \(Raspberry Pi\) → mqtt:\/\/127\.0\.0\.1:\d+$/);
    expect(lines[1]).toMatch(/^ganglion: physical faults at http:\/\/127\.0\.0\.1:\d+\/api\/faults/);
    const warnings = logged.filter((l) => l.level === 40 && l.sensor !== undefined);
    expect(warnings).toEqual([
      expect.objectContaining({
        device: "cli-pi",
        sensor: "lux",
        msg: expect.stringMatching(
          /^cli-pi\/lux \(light\) is not simulated: the agent has no light-sensor driver/,
        ),
      }),
    ]);
    stop("test done");
    await run;
    expect(lines.at(-1)).toBe("ganglion: stopped");
  }, 40_000);
});
