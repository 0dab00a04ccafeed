/**
 * Part 3 of the `sim` suite: one simulator process keeps N (default 10,000) MQTT devices connected, each reporting
 * every 10 s (and heartbeating every 5 s, as the pi-agent does).
 *
 * - The fleet: generated with simulator/load/fleet.ts's entries, one token shared by every device (hashed once at
 *   the load cost, N=1024; the hub still verifies each login), written as a fleet file and an `id=token` file.
 * - The hub: `ganglion start --config <fleet file>` in a child process (history on tmpfs, logs at `warn`), so its
 *   RSS and CPU are its own.
 * - The simulator: one child process running a {@link LoadRun} over those tokens (this file's `load` mode), which
 *   prints its counters every second.
 *
 * Reported: devices connected and how long that took, readings/s the hub acknowledged (a PUBACK comes after the
 * reading is persisted) and readings/s its sensor actors accepted (counted on `/api/live`), RSS of both processes,
 * and the hub's CPU over the window.
 *
 *   node --import tsx bench/sim/mqtt.ts load '{"broker","tokens","rate"}'   → `STATS {json}` lines
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { WebSocket } from "ws";
import { hubNodeFlags } from "../node-flags.ts";
import { cpuSecondsOf, type Row, root, rssOf, sleep, stopChild } from "./common.ts";

interface LoadStatsLine {
  connected: number;
  acked: number;
  readings: number;
  faults: number;
  rss: number;
}

/** Collects a child's stdout; `wait(re)` resolves with the first match in everything it printed so far. */
function stdoutOf(child: ChildProcess) {
  let text = "";
  child.stdout?.on("data", (d: Buffer) => {
    text += d.toString();
    if (text.length > 1_000_000) text = text.slice(-100_000);
  });
  return {
    get text() {
      return text;
    },
    async wait(re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(text);
        if (m) return m;
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`${what} exited (${child.signalCode ?? child.exitCode}) before ${re}`);
        if (Date.now() > deadline) throw new Error(`${what}: no ${re} after ${timeoutMs} ms`);
        await sleep(50);
      }
    },
  };
}

/** Part 3. */
export async function runMqtt(opts: {
  devices: number;
  rate: number;
  connectTimeoutMs: number;
  warmupMs: number;
  measureMs: number;
  progress: (line: string) => void;
}): Promise<Row[]> {
  const { LOAD_TOKEN_COST, loadDeviceId, loadPiEntry, writeLoadFleet } = await import(
    "../../simulator/load/fleet.ts"
  );
  const shm = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
  const work = mkdtempSync(join(tmpdir(), "ganglion-sim-mqtt-"));
  const dataDir = mkdtempSync(join(shm, "ganglion-sim-mqtt-"));
  const n = opts.devices;
  const rows: Row[] = [];
  const b = `mqtt_${n >= 1000 ? `${n / 1000}k` : n}`;
  let hub: ChildProcess | undefined;
  let sim: ChildProcess | undefined;
  let ws: WebSocket | undefined;
  const logFd = openSync(join(work, "hub.log"), "w");
  try {
    // One token for every device, hashed once at the load cost (N=1024): 10k hashes take ~30 s on this loaded
    // machine and measure nothing about the simulator; the hub still verifies every device's login with scrypt.
    opts.progress(`mqtt: generating ${n} devices…`);
    let t = Date.now();
    const { generateToken, hashToken } = await import("../../hub/config.ts");
    const token = generateToken();
    const tokenHash = await hashToken(token, LOAD_TOKEN_COST);
    const credentials = Array.from({ length: n }, (_, i) => ({ id: loadDeviceId(i, n), token }));
    const fleet = { devices: credentials.map((c) => loadPiEntry(c.id, tokenHash, opts.rate)), credentials };
    const fleetPath = join(work, "fleet.yaml");
    const tokensPath = join(work, "tokens.txt");
    await writeLoadFleet(fleet, fleetPath, tokensPath);
    rows.push({ bench: b, metric: "generate_fleet", value: Date.now() - t, unit: "ms" });

    opts.progress(`mqtt: starting a hub with ${n} devices (ganglion start --config)…`);
    t = Date.now();
    hub = spawn(
      process.execPath,
      [
        "--max-old-space-size=4096",
        ...hubNodeFlags(),
        "--import",
        "tsx",
        join(root, "hub", "cli.ts"),
        "start",
        "--config",
        fleetPath,
        "--http-port",
        "0",
        "--mqtt-port",
        "0",
        "--data-dir",
        dataDir,
      ],
      { cwd: root, stdio: ["ignore", "pipe", logFd], env: { ...process.env, GANGLION_LOG_LEVEL: "warn" } },
    );
    const hubPid = hub.pid as number;
    const hubOut = stdoutOf(hub);
    const mqttUrl = (await hubOut.wait(/ganglion: mqtt listening on (\S+)/, 180_000, "the hub"))[1] as string;
    const httpUrl = (await hubOut.wait(/ganglion: http listening on (\S+)/, 5000, "the hub"))[1] as string;
    rows.push({ bench: b, metric: "hub_start", value: Date.now() - t, unit: "ms" });
    const hubRssIdle = rssOf(hubPid);

    opts.progress(`mqtt: ${n} load devices in one process, connecting…`);
    t = Date.now();
    sim = spawn(
      process.execPath,
      [
        "--max-old-space-size=4096",
        "--import",
        "tsx",
        join(root, "bench", "sim", "mqtt.ts"),
        "load",
        JSON.stringify({ broker: mqttUrl, tokens: tokensPath, rate: opts.rate }),
      ],
      { cwd: root, stdio: ["ignore", "pipe", "inherit"] },
    );
    const simPid = sim.pid as number;
    let stats: LoadStatsLine = { connected: 0, acked: 0, readings: 0, faults: 0, rss: 0 };
    let buffered = "";
    sim.stdout?.on("data", (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines)
        if (line.startsWith("STATS ")) stats = JSON.parse(line.slice(6)) as LoadStatsLine;
    });
    let hubRssPeak = hubRssIdle;
    let simRssPeak = 0;
    const sampler = setInterval(() => {
      hubRssPeak = Math.max(hubRssPeak, rssOf(hubPid) || 0);
      simRssPeak = Math.max(simRssPeak, rssOf(simPid) || 0);
    }, 500);
    try {
      const deadline = Date.now() + opts.connectTimeoutMs;
      while (stats.connected < n && Date.now() < deadline) {
        if (sim.exitCode !== null || hub.exitCode !== null)
          throw new Error("a child exited while connecting");
        await sleep(200);
      }
      const connectMs = Date.now() - t;
      rows.push({
        bench: b,
        metric: "connected",
        value: stats.connected,
        unit: "count",
        target: `${n} of ${n}`,
        met: stats.connected === n,
        note: `in ${(connectMs / 1000).toFixed(1)} s`,
      });
      rows.push({ bench: b, metric: "connect", value: connectMs, unit: "ms" });

      // Readings the hub's sensor actors accept, counted on /api/live.
      let liveReadings = 0;
      let counting = false;
      ws = new WebSocket(`${httpUrl.replace(/^http/, "ws")}/api/live`);
      ws.on("message", (data: Buffer) => {
        if (counting && data.subarray(0, 18).toString() === '{"type":"reading",') liveReadings++;
      });
      ws.on("error", () => undefined);
      await sleep(opts.warmupMs);
      const acked0 = stats.acked;
      const faults0 = stats.faults;
      const cpu0 = cpuSecondsOf(hubPid);
      const simCpu0 = cpuSecondsOf(simPid);
      counting = true;
      const w0 = performance.now();
      await sleep(opts.measureMs);
      counting = false;
      const seconds = (performance.now() - w0) / 1000;
      const hubCpu = ((cpuSecondsOf(hubPid) - cpu0) / seconds) * 100;
      const simCpu = ((cpuSecondsOf(simPid) - simCpu0) / seconds) * 100;
      const expected = n * opts.rate;
      const ackedPerS = (stats.acked - acked0) / seconds;
      rows.push({
        bench: b,
        metric: "readings_acked_per_s",
        value: ackedPerS,
        unit: "per_s",
        target: `≈ ${expected.toFixed(0)}/s`,
        met: ackedPerS >= 0.95 * expected && stats.connected === n,
        note: `PUBACKed by the hub after persisting, over ${seconds.toFixed(0)} s; still connected ${stats.connected}`,
      });
      rows.push({
        bench: b,
        metric: "readings_accepted_per_s",
        value: liveReadings / seconds,
        unit: "per_s",
        note: "as /api/live delivered them (a lower bound: a client that falls behind has updates dropped)",
      });
      rows.push({
        bench: b,
        metric: "load_faults",
        value: stats.faults - faults0,
        unit: "count",
        note: "refused logins, lost sessions… in the window",
      });
      rows.push({
        bench: b,
        metric: "simulator_rss",
        value: simRssPeak,
        unit: "bytes",
        note: `${(simRssPeak / n / 1024).toFixed(1)} KB per device; CPU ${simCpu.toFixed(0)} % of a core`,
      });
      rows.push({
        bench: b,
        metric: "hub_rss",
        value: hubRssPeak,
        unit: "bytes",
        note: `${(hubRssIdle / 2 ** 20).toFixed(0)} MB before any connected; CPU ${hubCpu.toFixed(0)} % of a core`,
      });
      rows.push({ bench: b, metric: "hub_cpu_percent", value: hubCpu, unit: "percent" });
      rows.push({ bench: b, metric: "simulator_cpu_percent", value: simCpu, unit: "percent" });
    } finally {
      clearInterval(sampler);
    }
    return rows;
  } finally {
    ws?.close();
    if (sim !== undefined) await stopChild(sim, 30_000);
    if (hub !== undefined) await stopChild(hub, 30_000);
    closeSync(logFd);
    rmSync(dataDir, { recursive: true, force: true });
    if (process.env.SIM_BENCH_KEEP === undefined) rmSync(work, { recursive: true, force: true });
    else opts.progress(`mqtt: kept ${work}`);
  }
}

/** The simulator process: a LoadRun over the tokens file, counters on stdout every second, stops on SIGTERM. */
async function load(spec: { broker: string; tokens: string; rate: number }): Promise<void> {
  const { LoadRun } = await import("../../simulator/load/run.ts");
  const { faultCount } = await import("../../simulator/load/stats.ts");
  const devices = readFileSync(spec.tokens, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const i = line.indexOf("=");
      return { id: line.slice(0, i), token: line.slice(i + 1) };
    });
  // Readings start once every device's first login is answered (a steady state to measure, no replayed backlog).
  const run = new LoadRun({ broker: spec.broker, devices, rate: spec.rate, holdUntilConnected: true });
  const report = () => {
    const s = run.stats;
    const line: LoadStatsLine = {
      connected: s.connected,
      acked: s.acked,
      readings: s.readings,
      faults: faultCount(s),
      rss: process.memoryUsage().rss,
    };
    process.stdout.write(`STATS ${JSON.stringify(line)}\n`);
  };
  const timer = setInterval(report, 1000);
  let stopping = false;
  process.once("SIGTERM", () => {
    stopping = true;
    clearInterval(timer);
    const hard = setTimeout(() => process.exit(0), 20_000);
    hard.unref();
    void run.stop().finally(() => process.exit(0));
  });
  await run.start();
  if (!stopping) report();
}

if (
  process.argv[1] &&
  import.meta.url === pathToFileURL(process.argv[1]).href &&
  process.argv[2] === "load"
) {
  await load(JSON.parse(process.argv[3] ?? "{}"));
}
