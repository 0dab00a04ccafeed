import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import pino from "pino";
import { afterAll, describe, expect, it, vi } from "vitest";
import { FleetConfigSchema, loadFleetConfig, parseTokensFile, verifyToken } from "../../hub/config.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { BoardClock, PeriodicTask } from "../../simulator/load/board-clock.ts";
import type { FirmataBoard } from "../../simulator/load/firmata-board.ts";
import { generateLoadFleet, LOAD_SENSOR, writeLoadFleet } from "../../simulator/load/fleet.ts";
import { heapAdvice, loadUnoEntry, startInProcessLoad } from "../../simulator/load/in-process.ts";
import { LoadRun } from "../../simulator/load/run.ts";
import { faultCount, summaryLine } from "../../simulator/load/stats.ts";

const root = join(import.meta.dirname, "..", "..");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const silent = pino({ level: "silent" });
const shm = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
const dirs: string[] = [];
const tempDir = (name: string, base = tmpdir()) => {
  const dir = mkdtempSync(join(base, `ganglion-load-${name}-`));
  dirs.push(dir);
  return dir;
};

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
    await sleep(20);
  }
}

/** TCP sockets this process holds (the hub's listening server is a TCPServerWrap, not counted). */
const openSockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;

/** The seqs stored for a device's load sensor, in order. */
function storedSeqs(hub: RunningHub, device: string): number[] {
  return hub
    .telemetry({ device, sensor: LOAD_SENSOR, limit: 10_000 })
    .map((r) => r.seq as number)
    .sort((a, b) => a - b);
}

function cli(
  args: string[],
  timeoutMs = 60_000,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "hub", "cli.ts"), ...args], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`ganglion ${args.join(" ")} did not exit within ${timeoutMs} ms\n${stdout}\n${stderr}`),
      );
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("load mode over MQTT against a real hub", () => {
  it("50 devices at 10 Hz: every reading reaches history and state/ with no gap in seq, across a partition", async () => {
    const sockets = openSockets();
    const fleet = await generateLoadFleet({ count: 50, rate: 10 });
    const config = FleetConfigSchema.parse({ devices: fleet.devices });
    const hub = await startHub({
      config,
      mqttPort: 0,
      mqttHost: "127.0.0.1",
      api: false,
      // tmpfs: the hub commits each state save with its own fsync, and this test is about what arrives, not disks.
      dataDir: tempDir("mqtt", shm),
      logger: silent,
    });
    const states = new Map<string, number>();
    const viewer = mqtt.connect(hub.mqttUrl, { reconnectPeriod: 0, ...hub.hubLogin() });
    await new Promise((r) => viewer.once("connect", r));
    viewer.on("message", (topic, _payload, packet) => {
      if (!packet.retain)
        states.set(topic.split("/")[1] as string, (states.get(topic.split("/")[1] as string) ?? 0) + 1);
    });
    await viewer.subscribeAsync("ganglion/+/state/#", { qos: 1 });

    const problems: string[] = [];
    const run = new LoadRun({
      broker: hub.mqttUrl,
      devices: fleet.credentials,
      rate: 10,
      onProblem: (id, what) => problems.push(`${id}: ${what}`),
    });
    try {
      await run.start();
      await run.waitConnected(50, 20_000);
      expect(run.stats.connected).toBe(50);
      await until(() => hub.devices().every((d) => d.status === "online"), 10_000, "all online");
      await sleep(700);
      // Five devices lose the broker: the will marks them offline, they buffer, come back and replay.
      const cut = run.partition(0.1, 800);
      expect(cut).toBe(5);
      expect(run.stats.faulted).toBe(5);
      await until(() => hub.devices().filter((d) => d.status === "offline").length >= 5, 5000, "wills fired");
      await until(() => run.stats.faulted === 0 && run.stats.connected === 50, 10_000, "partition healed");
      await sleep(500);
      await run.drain(60_000);

      let total = 0;
      for (const device of run.devices) {
        const n = device.nextSeq;
        expect(n).toBeGreaterThan(5);
        // Resent readings (same seq) were dropped as duplicates: exactly 0..n-1, once each.
        expect(storedSeqs(hub, device.id)).toEqual(Array.from({ length: n }, (_, i) => i));
        total += n;
      }
      expect(run.stats.readings).toBe(total);
      expect(run.stats.acked).toBe(total);
      expect(run.stats.dropped).toBe(0);
      expect(run.stats.lost).toBe(0); // a partition is counted as injected, not as a lost session
      expect(faultCount(run.stats)).toBe(0);
      expect(problems).toEqual([]);
      expect(summaryLine(run.stats, 1000)).toMatch(
        new RegExp(`^connected 50/50 · 1000 msgs/s · acked ${total} · backlog 0 · faults 0$`),
      );
      // Every stored reading was published to state/ (the hub may add a few of its own: a health change is news).
      await until(
        () => [...states.values()].reduce((a, b) => a + b, 0) >= total,
        10_000,
        "state messages for every reading",
      );
      for (const device of run.devices)
        expect(states.get(device.id) ?? 0).toBeGreaterThanOrEqual(device.nextSeq);
      const first = run.devices[0]?.id as string;
      expect(hub.device(first)?.sensors[0]).toMatchObject({ id: LOAD_SENSOR, health: "ok" });
    } finally {
      await run.stop();
      viewer.end(true);
    }
    expect(run.stats.connected).toBe(0);
    expect(run.devices.every((d) => !d.hasSocket)).toBe(true);
    // Each device said offline before disconnecting.
    await until(() => hub.devices().every((d) => d.status === "offline"), 5000, "all offline");
    await hub.stop();
    await until(() => openSockets() <= sockets, 5000, "sockets closed");
  }, 90_000);
});

describe("in-process load mode", () => {
  it("1,000 Firmata boards behind one hub: all online, readings in history with no gap, a clean stop", async () => {
    const timers = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const load = await startInProcessLoad({
      devices: 1000,
      rate: 5,
      // tmpfs: each hub event is an fsync'd commit, and 1,000 boards starting make ~5,000 of them.
      dataDir: tempDir("inproc", shm),
      logger: silent,
    });
    try {
      expect(load.boards).toHaveLength(1000);
      await until(() => load.counters.configured === 1000, 30_000, "every board configured by the hub");
      await until(() => load.online() === 1000, 30_000, "every device online");
      await sleep(1500);
      for (const board of [load.boards[0], load.boards[499], load.boards[999]]) {
        const id = board?.id as string;
        const seqs = storedSeqs(load.hub, id);
        expect(seqs.length).toBeGreaterThan(2);
        // The hub numbers a serial board's readings itself, from 1.
        expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
        const values = load.hub.telemetry({ device: id, sensor: LOAD_SENSOR }).map((r) => r.value as number);
        for (const v of values) expect(v).toBeGreaterThan(10);
      }
      expect(load.counters.heartbeats).toBeGreaterThanOrEqual(1000);
      expect(load.counters.open).toBe(1000);
    } finally {
      await load.stop();
    }
    expect(load.counters.open).toBe(0);
    expect(load.counters.configured).toBe(0);
    await until(
      () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length <= timers + 5,
      5000,
      "timers cleared",
    );
  }, 120_000);
});

describe("BoardClock (the load boards' shared timer)", () => {
  it("runs each task at its period, never a stopped one, and after a stall once, then on its cadence", () => {
    vi.useFakeTimers();
    try {
      let now = 0;
      const clock = new BoardClock(10, () => now);
      const fired: string[] = [];
      const owner = (name: string) => ({ tick: () => fired.push(`${name}@${now}`) });
      const a = new PeriodicTask(owner("a"));
      const b = new PeriodicTask(owner("b"));
      clock.every(a, 100);
      clock.every(b, 250);
      const advance = (ms: number) => {
        for (let i = 0; i < ms / 10; i++) {
          now += 10;
          vi.advanceTimersByTime(10);
        }
      };
      advance(500);
      expect(fired).toEqual(["a@100", "a@200", "b@250", "a@300", "a@400", "b@500", "a@500"]);
      fired.length = 0;
      clock.stop(b);
      clock.every(a, 200); // re-timed: the old schedule is dropped
      advance(400);
      expect(fired).toEqual(["a@700", "a@900"]);
      fired.length = 0;
      now += 1000; // the event loop stalls for a second: a fires once, then every 200 ms from there
      advance(400);
      expect(fired).toEqual(["a@1910", "a@2110"]);
      clock.stop(a);
      expect(clock.size).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("in-process load mode at scale", () => {
  it("says how to raise V8's heap when the boards will not fit, and nothing when they will", () => {
    const gb = 2 ** 30;
    expect(heapAdvice(10_000, 4 * gb)).toBeNull();
    expect(heapAdvice(100_000, 4 * gb)).toBe(
      "100000 boards take ~3.8 GB of V8 heap and this process may use 4.0 GB; run it with NODE_OPTIONS=--max-old-space-size=5120",
    );
    expect(heapAdvice(200_000, 4 * gb)).toMatch(/--max-old-space-size=10240$/);
  });

  it("slow boards beat once per reading (up to the firmware's 16383 ms), never below the default 1 s", () => {
    expect(loadUnoEntry("b", 5).heartbeatMs).toBe(1000);
    expect(loadUnoEntry("b", 0.1).heartbeatMs).toBe(10_000);
    expect(loadUnoEntry("b", 0.01).heartbeatMs).toBe(16_383);
  });
});

describe("in-process load mode with physical faults", () => {
  it("a pulled cable backs the link off to down and the board returns when plugged; a stuck or noisy LM35 is faulty, then ok", async () => {
    const load = await startInProcessLoad({
      devices: 6,
      rate: 5,
      dataDir: tempDir("inproc-faults", shm),
      logger: silent,
    });
    const device = (i: number) => load.hub.device(load.boards[i]?.id as string);
    const health = (i: number) => device(i)?.sensors.find((s) => s.id === LOAD_SENSOR)?.health;
    try {
      await until(() => load.online() === 6, 30_000, "every device online");
      await until(() => [0, 1, 2].every((i) => health(i) === "ok"), 15_000, "sensors ok");
      const [unplugged, stuck, noisy] = load.boards as [FirmataBoard, FirmataBoard, FirmataBoard];
      const replug = load.inject(unplugged, "unplug");
      const unstick = load.inject(stuck, "stuck");
      const quiet = load.inject(noisy, "noise");
      expect(load.activeFaults()).toEqual({ unplug: 1, stuck: 1, noise: 1 });
      expect(() => load.inject(stuck, "noise")).toThrow(/already has a stuck fault/);

      // The port closed, and reopening it fails: the link backs off and the device is down with the reason.
      await until(() => device(0)?.status === "down", 15_000, `${unplugged.id} down`);
      expect(device(0)?.reason).toMatch(/USB cable is pulled/);
      const backoffs = load.hub.events({ device: unplugged.id, type: "backoff", limit: 100 });
      expect(backoffs.at(-1)).toMatchObject({ path: `hub/fleet/${unplugged.id}/link` });
      // A frozen voltage is a flat line; noise breaks the rate bound.
      await until(() => health(1) === "faulty", 20_000, `${stuck.id} stuck → faulty`);
      await until(() => health(2) === "faulty", 15_000, `${noisy.id} noise → faulty`);
      // The other boards carry on.
      expect([3, 4, 5].map((i) => device(i)?.status)).toEqual(["online", "online", "online"]);

      const since = Date.now();
      replug();
      unstick();
      quiet();
      expect(load.activeFaults()).toEqual({ unplug: 0, stuck: 0, noise: 0 });
      await until(() => device(0)?.status === "online", 45_000, `${unplugged.id} online after the plug`);
      await until(
        () => load.hub.telemetry({ device: unplugged.id, sensor: LOAD_SENSOR, since }).length >= 2,
        15_000,
        `${unplugged.id}'s readings again`,
      );
      await until(() => health(1) === "ok" && health(2) === "ok", 15_000, "stuck and noisy sensors ok again");
    } finally {
      await load.stop();
    }
  }, 120_000);

  it("chaos keeps the asked share of boards faulty, a fresh set each round, and clears them all when stopped", async () => {
    const load = await startInProcessLoad({
      devices: 20,
      rate: 2,
      dataDir: tempDir("inproc-chaos", shm),
      logger: silent,
    });
    try {
      await until(() => load.online() === 20, 30_000, "every device online");
      let seed = 7;
      const random = () => {
        seed = (seed * 16807) % 2147483647;
        return seed / 2147483647;
      };
      const stop = load.chaos(0.3, { everyMs: 1500, random });
      const faulty = () =>
        new Set(load.boards.filter((b) => b.isUnplugged || b.currentAnalogFault !== null).map((b) => b.id));
      const first = faulty();
      expect(first.size).toBe(6);
      expect(load.activeFaults()).toEqual({ unplug: 2, stuck: 2, noise: 2 });
      await until(() => [...faulty()].some((id) => !first.has(id)), 10_000, "a fresh set of faulty boards");
      expect(faulty().size).toBe(6);
      await until(() => load.statuses().online < 20, 15_000, "an unplugged board offline in the hub");
      stop();
      expect(faulty().size).toBe(0);
      expect(load.activeFaults()).toEqual({ unplug: 0, stuck: 0, noise: 0 });
      await until(() => load.online() === 20, 60_000, "every device online again");
    } finally {
      await load.stop();
    }
  }, 120_000);
});

describe("ganglion simulate (CLI)", () => {
  it("--write-fleet writes a fleet file the hub loads and the tokens that log in; the boards then run against it", async () => {
    const dir = tempDir("cli");
    const fleetPath = join(dir, "fleet.yaml");
    const tokensPath = join(dir, "tokens.txt");
    const written = await cli([
      "simulate",
      "--devices",
      "3",
      "--rate",
      "5",
      "--write-fleet",
      fleetPath,
      "--tokens",
      tokensPath,
    ]);
    expect(written.code).toBe(0);
    expect(written.stdout).toContain(`wrote 3 devices to ${fleetPath}`);
    const config = await loadFleetConfig(fleetPath);
    expect(config.devices.map((d) => d.id)).toEqual(["load-00001", "load-00002", "load-00003"]);
    expect(config.devices[0]?.sensors[0]).toMatchObject({ id: LOAD_SENSOR, periodMs: 200 });
    const tokens = parseTokensFile(readFileSync(tokensPath, "utf8"));
    expect([...tokens.keys()]).toEqual(["load-00001", "load-00002", "load-00003"]);
    for (const d of config.devices) {
      if (d.link.type !== "mqtt") throw new Error("expected an MQTT link");
      expect(d.link.tokenHash).toMatch(/^scrypt\$1024\$/);
      expect(await verifyToken(tokens.get(d.id) as string, d.link.tokenHash)).toBe(true);
    }
    // Refuses to overwrite.
    const again = await cli([
      "simulate",
      "--devices",
      "3",
      "--write-fleet",
      fleetPath,
      "--tokens",
      tokensPath,
    ]);
    expect(again.code).not.toBe(0);
    expect(again.stderr.trim().split("\n")).toEqual([
      `ganglion: ${fleetPath} already exists; remove it or pick another path`,
    ]);

    const hub = await startHub({
      config,
      mqttPort: 0,
      api: false,
      dataDir: tempDir("cli-hub"),
      logger: silent,
    });
    try {
      const ran = await cli([
        "simulate",
        "--tokens",
        tokensPath,
        "--broker",
        hub.mqttUrl,
        "--rate",
        "5",
        "--duration",
        "2s",
      ]);
      expect(ran.code).toBe(0);
      expect(ran.stdout).toContain("3 load devices");
      expect(ran.stdout).toMatch(/connected 3\/3/);
      expect(ran.stdout).toMatch(/ganglion: stopped · connected 0\/3 · acked \d+/);
      for (const id of tokens.keys()) expect(storedSeqs(hub, id).length).toBeGreaterThan(2);
      await until(() => hub.devices().every((d) => d.status === "offline"), 5000, "devices said offline");
    } finally {
      await hub.stop();
    }
  }, 120_000);

  it("--in-process with more boards than the heap holds: runs again with the heap they need", async () => {
    // A 128 MB heap stands in for Node's ~4 GB default against 100k boards: 4,000 boards need ~200 MB.
    const ran = await cli(
      [
        "simulate",
        "--devices",
        "4000",
        "--rate",
        "0.1",
        "--in-process",
        "--duration",
        "3s",
        "--data-dir",
        tempDir("cli-heap", shm),
      ],
      120_000,
      { ...process.env, NODE_OPTIONS: "--max-old-space-size=128" },
    );
    expect(ran.code).toBe(0);
    expect(ran.stdout).toMatch(
      /ganglion: 4000 boards need a 1 GB V8 heap \(this process may use \d+ MB\); running again with --max-old-space-size=1024/,
    );
    expect(ran.stdout).not.toContain("run it with NODE_OPTIONS");
    expect(ran.stdout).toMatch(/ganglion: 4000 boards added in \d+\.\d s/);
    expect(ran.stdout).toContain("ganglion: stopped");
  }, 150_000);

  it("--in-process --faulty 20%: runs with faulty boards, shows them, and stops cleanly", async () => {
    const ran = await cli([
      "simulate",
      "--devices",
      "10",
      "--rate",
      "2",
      "--in-process",
      "--faulty",
      "20%",
      "--duration",
      "12s",
      "--data-dir",
      tempDir("cli-faulty", shm),
    ]);
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain("--faulty: 2 boards at a time with a pulled cable, a stuck or a noisy LM35");
    expect(ran.stdout).toMatch(/faults: unplugged 1, stuck 1, noise 0/);
    expect(ran.stdout).toMatch(/ganglion: 10 boards added in \d+\.\d s/);
    // The summary: what the hub stored against what the boards were asked for, and what it cost.
    expect(ran.stdout).toMatch(
      /ganglion: stopping; \d+\/10 devices online in the hub; \d+ readings\/s stored of 20 expected over \d+ s after the start; peak RSS \d+ MB/,
    );
    expect(ran.stdout).toContain("ganglion: stopped");
    const bad = await cli(["simulate", "--devices", "3", "--in-process", "--faulty", "150%"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toMatch(/^ganglion: .*"150%" is not a share of the devices \(e\.g\. 10% or 0\.1\)/);
  }, 90_000);

  it("--broker --faulty 50%: half the devices are cut off (their will fires, the hub shows them offline), then a clean stop", async () => {
    const dir = tempDir("cli-faulty-mqtt");
    const fleet = await generateLoadFleet({ count: 4, rate: 5 });
    await writeLoadFleet(fleet, join(dir, "fleet.yaml"), join(dir, "tokens.txt"));
    const config = await loadFleetConfig(join(dir, "fleet.yaml"));
    const hub = await startHub({
      config,
      mqttPort: 0,
      api: false,
      dataDir: tempDir("cli-faulty-hub"),
      logger: silent,
    });
    try {
      const running = cli([
        "simulate",
        "--tokens",
        join(dir, "tokens.txt"),
        "--broker",
        hub.mqttUrl,
        "--rate",
        "5",
        "--faulty",
        "50%",
        "--duration",
        "10s",
      ]);
      const count = (status: string) => hub.devices().filter((d) => d.status === status).length;
      // Partitions last 20 s, longer than the run: two devices cut off, two online, until the run stops.
      await until(() => count("online") === 2 && count("offline") === 2, 30_000, "two online, two cut off");
      const ran = await running;
      expect(ran.code).toBe(0);
      expect(ran.stdout).toContain("ganglion: stopped");
    } finally {
      await hub.stop();
    }
  }, 90_000);

  it("a bad flag is one line on stderr and a non-zero exit", async () => {
    const bad = await cli(["simulate", "--devices", "3", "--rate", "fast", "--in-process"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toMatch(/^ganglion: .*"fast" is not a rate/);
    const missing = await cli(["simulate", "--broker", "mqtt://127.0.0.1:1"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim()).toBe(
      "ganglion: --broker needs --tokens FILE (id=token lines; --write-fleet makes one)",
    );
  }, 60_000);
});
