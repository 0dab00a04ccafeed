/**
 * `ganglion simulate`: virtual boards without hardware.
 *
 *   ganglion simulate --scenario sensor-flapping                 # a chaos test on the demo fleet (exit 1 if broken)
 *   ganglion simulate --config fleet.yaml --tokens tokens.txt    # your fleet's boards against your hub
 *
 * The load mode (simulator/load/) runs N lightweight boards:
 *
 *   ganglion simulate --devices 10000 --rate 0.1 --write-fleet fleet.yaml --tokens tokens.txt   # 1. generate
 *   ganglion start --config fleet.yaml                                                           # 2. the hub
 *   ganglion simulate --tokens tokens.txt --broker mqtt://127.0.0.1:1883 --rate 0.1             # 3. the boards
 *
 *   ganglion simulate --devices 1000 --rate 1 --in-process      # hub + Firmata boards in one process, no sockets
 *   ganglion simulate --devices 1000 --in-process --faulty 10%  # … with 10 % of the boards faulty at any time
 *
 * While it runs it shows connection progress, then a live summary (connected, msgs/s, faults); Ctrl-C stops the
 * boards cleanly (each says offline and disconnects).
 */

import { existsSync, readFileSync } from "node:fs";
import { type Command, InvalidArgumentError } from "commander";
import type { Logger } from "pino";
import { action, CliError } from "./common.ts";
import { relaunchWithHeap, wasRelaunched } from "./relaunch.ts";
import { onStopSignal } from "./stop-signal.ts";

/** Options of `ganglion simulate` (load mode). */
export interface SimulateOptions {
  devices?: number;
  rate: number;
  writeFleet?: string;
  tokens?: string;
  broker?: string;
  inProcess?: boolean;
  duration?: number;
  dataDir?: string;
  scenario?: string;
  config?: string;
  seed?: number;
  httpPort?: number;
  /** Fraction of the load devices kept under a fault (`--faulty 10%`). */
  faulty?: number;
}

/** How often `--faulty` picks a fresh set of faulty devices, and how long an MQTT device's partition lasts. */
const FAULT_ROUND_MS = 30_000;
const PARTITION_MS = 20_000;

/** `10%` or a fraction `0.1` → 0.1. */
function parseFraction(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(value);
  const n = m === null ? Number.NaN : Number(m[1]) / (m[2] === "%" ? 100 : 1);
  if (!(n >= 0 && n <= 1))
    throw new InvalidArgumentError(`"${value}" is not a share of the devices (e.g. 10% or 0.1)`);
  return n;
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 1_000_000)
    throw new InvalidArgumentError(`"${value}" is not a device count (1-1000000)`);
  return n;
}

function parseRate(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 1000)
    throw new InvalidArgumentError(
      `"${value}" is not a rate in readings per second per device (e.g. 1 or 0.1)`,
    );
  return n;
}

/** `30`, `30s`, `2m`, `500ms` → milliseconds. */
function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value);
  if (!m) throw new InvalidArgumentError(`"${value}" is not a duration (e.g. 30s, 5m)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h"];
  return Number(m[1]) * scale;
}

function parseSeed(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`"${value}" is not a seed (a whole number)`);
  return Number(value);
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65_535)
    throw new InvalidArgumentError(`"${value}" is not a port (0-65535)`);
  return n;
}

function parseBroker(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`"${value}" is not a broker URL (expected mqtt://HOST:PORT)`);
  }
  if (url.protocol !== "mqtt:" || !url.port)
    throw new InvalidArgumentError(`"${value}" is not a broker URL (expected mqtt://HOST:PORT)`);
  return value;
}

async function logger(defaultLevel: string): Promise<Logger> {
  if (process.env.GANGLION_LOG_LEVEL === undefined) process.env.GANGLION_LOG_LEVEL = defaultLevel;
  const { terminalLogger } = await import("../run-hub.ts");
  return terminalLogger();
}

/** Resolves on Ctrl-C / SIGTERM, or after `ms` when given. */
function untilStopped(ms: number | undefined): Promise<string> {
  return new Promise((resolve) => {
    const done = (why: string) => {
      if (timer) clearTimeout(timer);
      resolve(why);
    };
    onStopSignal((signal) => done(signal === "SIGINT" ? "interrupted" : "terminated"));
    const timer = ms === undefined ? undefined : setTimeout(() => done(`ran for ${ms / 1000} s`), ms);
  });
}

async function writeFleet(opts: SimulateOptions & { writeFleet: string }): Promise<void> {
  if (opts.devices === undefined) throw new CliError("--write-fleet needs --devices N");
  if (opts.tokens === undefined)
    throw new CliError("--write-fleet needs --tokens FILE (where the clear tokens go)");
  for (const path of [opts.writeFleet, opts.tokens]) {
    if (existsSync(path)) throw new CliError(`${path} already exists; remove it or pick another path`);
  }
  const { generateLoadFleet, writeLoadFleet } = await import("../../simulator/load/fleet.ts");
  const { StatusLine } = await import("../../simulator/load/display.ts");
  const line = new StatusLine(process.stderr, 2000);
  const fleet = await generateLoadFleet({
    count: opts.devices,
    rate: opts.rate,
    onProgress: (done) => line.update(`hashing tokens ${done}/${opts.devices}`),
  });
  line.done();
  await writeLoadFleet(fleet, opts.writeFleet, opts.tokens);
  console.log(
    `ganglion: wrote ${opts.devices} devices to ${opts.writeFleet} and their tokens to ${opts.tokens}`,
  );
  console.log(`  next: ganglion start --config ${opts.writeFleet}`);
  console.log(
    `  then: ganglion simulate --tokens ${opts.tokens} --broker mqtt://127.0.0.1:1883 --rate ${opts.rate}`,
  );
}

async function runAgainstBroker(opts: SimulateOptions & { tokens: string; broker: string }): Promise<void> {
  const { parseTokensFile } = await import("../config.ts");
  let text: string;
  try {
    text = readFileSync(opts.tokens, "utf8");
  } catch {
    throw new CliError(
      `cannot read ${opts.tokens} (write one with --write-fleet, or ganglion device add --tokens)`,
    );
  }
  const all = [...parseTokensFile(text, opts.tokens)].map(([id, token]) => ({ id, token }));
  if (all.length === 0) throw new CliError(`${opts.tokens} holds no id=token lines`);
  if (opts.devices !== undefined && opts.devices > all.length) {
    throw new CliError(`--devices ${opts.devices}, but ${opts.tokens} holds only ${all.length} devices`);
  }
  const devices = all.slice(0, opts.devices ?? all.length);
  const log = await logger("warn");
  const { LoadRun } = await import("../../simulator/load/run.ts");
  const { summaryLine } = await import("../../simulator/load/stats.ts");
  const { RateMeter, StatusLine } = await import("../../simulator/load/display.ts");

  let problems = 0;
  const run = new LoadRun({
    broker: opts.broker,
    devices,
    rate: opts.rate,
    onProblem: (device, what) => {
      // 10k devices failing alike would bury the terminal: the first few, then the summary line counts them.
      if (++problems <= 10) log.warn({ device }, `${device}: ${what}`);
      else if (problems === 11) log.warn("more device problems; counted in the summary line");
    },
  });
  const line = new StatusLine(process.stdout);
  console.log(
    `ganglion: ${devices.length} load devices → ${opts.broker}, ${opts.rate} readings/s each (${Math.round(devices.length * opts.rate)}/s in all); Ctrl-C stops`,
  );
  const stopped = untilStopped(opts.duration);
  let connecting = true;
  const started = run.start((s, answered) =>
    line.update(
      `connecting ${answered}/${s.devices} · up ${s.connected} · refused ${s.refused} · failed ${s.failed}`,
    ),
  );
  void started.then(() => {
    connecting = false;
    line.update(`connected ${run.stats.connected}/${devices.length}`, true);
  });
  const meter = new RateMeter();
  const ticker = setInterval(() => {
    const rate = meter.rate(run.stats.acked);
    if (!connecting) line.update(summaryLine(run.stats, rate));
  }, 1000);
  // --faulty: a fresh share of the devices cut off the broker every round (their will fires; they buffer and
  // replay on return).
  const faulty = opts.faulty ?? 0;
  const partitions =
    faulty > 0
      ? setInterval(() => {
          if (!connecting) run.partition(faulty, PARTITION_MS);
        }, FAULT_ROUND_MS)
      : undefined;
  if (faulty > 0) void started.then(() => run.partition(faulty, PARTITION_MS));
  const why = await stopped;
  clearInterval(ticker);
  if (partitions !== undefined) clearInterval(partitions);
  line.done();
  console.log(`ganglion: stopping (${why}); each device says offline and disconnects`);
  await run.stop();
  console.log(`ganglion: stopped · ${summaryLine(run.stats, 0).replace(/ · 0 msgs\/s/, "")}`);
}

async function runInProcess(opts: SimulateOptions & { devices: number }): Promise<void> {
  // Per-device info and warnings (port open, Firmata ready, power-on reset) would be N lines each.
  const log = await logger("error");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { startInProcessLoad, heapAdvice, heapNeededMb } = await import("../../simulator/load/in-process.ts");
  const { RateMeter, StatusLine } = await import("../../simulator/load/display.ts");
  const { getHeapStatistics } = await import("node:v8");
  const { totalmem } = await import("node:os");
  // Boards that will not fit Node's default heap (~4 GB: 100k boards need ~5 GB): run again with the heap they
  // need, when the machine has it (at most 3/4 of its memory), rather than leave the user to find the flag.
  const heapLimit = getHeapStatistics().heap_size_limit;
  const heapMb = heapNeededMb(opts.devices, heapLimit);
  if (heapMb !== null && !wasRelaunched() && heapMb * 2 ** 20 <= totalmem() * 0.75) {
    console.log(
      `ganglion: ${opts.devices} boards need a ${heapMb / 1024} GB V8 heap (this process may use ${Math.round(heapLimit / 2 ** 20)} MB); running again with --max-old-space-size=${heapMb}`,
    );
    process.exitCode = await relaunchWithHeap(heapMb);
    return;
  }
  const { monitorEventLoopDelay } = await import("node:perf_hooks");
  // History on tmpfs unless told otherwise: every hub event and state save is its own fsync'd commit (~3 ms on
  // this kind of disk), which would make starting 10k boards take minutes and measure the disk, not the actors.
  const shm = existsSync("/dev/shm") ? "/dev/shm" : undefined;
  const ownDir = opts.dataDir === undefined ? mkdtempSync(join(shm ?? "/tmp", "ganglion-load-")) : undefined;
  const dataDir = opts.dataDir ?? (ownDir as string);
  if (opts.faulty !== undefined && opts.faulty > 0) {
    console.log(
      `ganglion: --faulty: ${Math.round(opts.devices * opts.faulty)} boards at a time with a pulled cable, a stuck or a noisy LM35; a fresh set every ${FAULT_ROUND_MS / 1000} s`,
    );
  }
  console.log(
    `ganglion: in-process hub with ${opts.devices} Firmata boards, ${opts.rate} readings/s each; history in ${dataDir}${ownDir && shm ? " (tmpfs; --data-dir to use a disk)" : ""}; Ctrl-C stops`,
  );
  const advice = heapAdvice(opts.devices, heapLimit);
  if (advice !== null) console.log(`ganglion: ${advice}`);
  const line = new StatusLine(process.stdout);
  const stopped = untilStopped(opts.duration);
  let interrupted = false;
  void stopped.then(() => {
    interrupted = true;
  });
  const startedAt = Date.now();
  try {
    const load = await startInProcessLoad({
      devices: opts.devices,
      rate: opts.rate,
      dataDir,
      logger: log,
      onProgress: (n) => line.update(`starting boards ${n}/${opts.devices}`),
    });
    line.done();
    const startS = (Date.now() - startedAt) / 1000;
    console.log(`ganglion: ${opts.devices} boards added in ${startS.toFixed(1)} s`);
    const frames = new RateMeter();
    const stored = new RateMeter();
    const lag = monitorEventLoopDelay({ resolution: 20 });
    lag.enable();
    const since = { at: Date.now(), stored: load.stored() };
    let maxLagMs = 0;
    let peakRss = 0;
    const faulty = opts.faulty ?? 0;
    const stopChaos = faulty > 0 ? load.chaos(faulty, { everyMs: FAULT_ROUND_MS }) : undefined;
    const expected = Math.round(opts.devices * opts.rate);
    const ticker = setInterval(() => {
      const c = load.counters;
      const s = load.statuses();
      const f = load.activeFaults();
      const rss = process.memoryUsage.rss();
      peakRss = Math.max(peakRss, rss);
      const p99 = lag.percentile(99) / 1e6;
      maxLagMs = Math.max(maxLagMs, lag.max / 1e6);
      lag.reset();
      line.update(
        `connected ${c.configured}/${opts.devices} · online ${s.online} offline ${s.offline} down ${s.down} · stored ${Math.round(stored.rate(load.stored()))}/s of ${expected} · ${Math.round(frames.rate(c.analogReports + c.heartbeats))} frames/s · lag p99 ${Math.round(p99)} ms · RSS ${Math.round(rss / 1e6)} MB${faulty > 0 ? ` · faults: unplugged ${f.unplug}, stuck ${f.stuck}, noise ${f.noise}` : ""}`,
      );
    }, 1000);
    if (!interrupted) await stopped;
    clearInterval(ticker);
    lag.disable();
    stopChaos?.();
    line.done();
    const ranS = (Date.now() - since.at) / 1000;
    const online = load.online();
    console.log(
      `ganglion: stopping; ${online}/${opts.devices} devices online in the hub; ${Math.round((load.stored() - since.stored) / Math.max(ranS, 1e-3))} readings/s stored of ${expected} expected over ${Math.round(ranS)} s after the start; peak RSS ${Math.round(peakRss / 1e6)} MB (${(peakRss / opts.devices / 1024).toFixed(1)} KB a board); event loop lag up to ${Math.round(maxLagMs)} ms`,
    );
    await load.stop();
    console.log("ganglion: stopped");
  } finally {
    if (ownDir !== undefined) rmSync(ownDir, { recursive: true, force: true });
  }
}

/**
 * `--scenario NAME|FILE`: the hub and the demo fleet in this process, the scenario's timeline printed as it happens;
 * exit code 1 when an expectation broke, so a fleet's fault tolerance can run in CI.
 */
async function runScenarioCommand(nameOrFile: string, seed: number | undefined): Promise<void> {
  const { resolveScenario, formatLine } = await import("../../simulator/scenarios/index.ts");
  const { runScenarioOnDemo } = await import("../../simulator/scenarios/standalone.ts");
  let scenario: Awaited<ReturnType<typeof resolveScenario>>;
  try {
    scenario = await resolveScenario(nameOrFile);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  console.log(
    `ganglion: scenario ${scenario.name} (${scenario.duration / 1000} s after a warm-up of up to ${scenario.warmup / 1000} s) on the demo fleet`,
  );
  const outcome = await runScenarioOnDemo(scenario, {
    onLine: (line) => console.log(formatLine(line)),
    ...(seed === undefined ? {} : { seed }),
  });
  if (!outcome.ok) {
    throw new CliError(`scenario ${scenario.name}: ${outcome.broken.length} expectation(s) broken`);
  }
}

/** Runs `ganglion simulate`: a scenario, a user's fleet as virtual boards, or the load mode. */
export async function runSimulate(opts: SimulateOptions): Promise<void> {
  if (
    opts.faulty !== undefined &&
    (opts.scenario !== undefined || opts.config !== undefined || opts.writeFleet !== undefined)
  )
    throw new CliError(
      "--faulty is for the load mode (--in-process, or --tokens with --broker); scenarios and --config inject their own faults",
    );
  if (opts.scenario !== undefined) return runScenarioCommand(opts.scenario, opts.seed);
  if (opts.config !== undefined) {
    if (opts.tokens === undefined)
      throw new CliError("--config needs --tokens FILE (id=token lines; ganglion device add --tokens FILE)");
    const { runFleetSimulationCli } = await import("../../simulator/fleet-sim.ts");
    return runFleetSimulationCli({
      config: opts.config,
      tokens: opts.tokens,
      ...(opts.broker === undefined ? {} : { broker: opts.broker }),
      ...(opts.httpPort === undefined ? {} : { httpPort: opts.httpPort }),
      ...(opts.seed === undefined ? {} : { seed: opts.seed }),
    });
  }
  if (opts.writeFleet !== undefined) return writeFleet({ ...opts, writeFleet: opts.writeFleet });
  if (opts.inProcess) {
    if (opts.devices === undefined) throw new CliError("--in-process needs --devices N");
    if (opts.broker !== undefined) throw new CliError("--in-process runs its own hub; drop --broker");
    return runInProcess({ ...opts, devices: opts.devices });
  }
  if (opts.broker !== undefined) {
    if (opts.tokens === undefined)
      throw new CliError("--broker needs --tokens FILE (id=token lines; --write-fleet makes one)");
    return runAgainstBroker({ ...opts, tokens: opts.tokens, broker: opts.broker });
  }
  throw new CliError(
    "say what to simulate: --devices N --write-fleet FILE --tokens FILE, then --tokens FILE --broker mqtt://HOST:PORT; or --devices N --in-process",
  );
}

/** Registers `simulate`. */
export function registerSimulate(program: Command): void {
  program
    .command("simulate")
    .description(
      "run virtual boards: a chaos scenario on the demo fleet, your fleet file's boards, or N lightweight load devices",
    )
    .option(
      "--scenario <name|file>",
      "run a scenario (shipped name or YAML file) on the demo fleet; exit 1 if broken",
    )
    .option("--config <file>", "your fleet file: simulate its boards against its hub (needs --tokens)")
    .option("--seed <n>", "same seed, same readings (default 42)", parseSeed)
    .option(
      "--http-port <port>",
      "with --config: port of the simulation's own /api/faults (default: a free one)",
      parsePort,
    )
    .option("--devices <n>", "how many load devices", parseCount)
    .option("--rate <hz>", "readings per second per device (0.1 = every 10 s)", parseRate, 1)
    .option(
      "--write-fleet <file>",
      "write a fleet file with N generated MQTT devices (needs --tokens) and exit",
    )
    .option("--tokens <file>", "id=token lines: written by --write-fleet, read when running against --broker")
    .option("--broker <url>", "the hub's MQTT broker, mqtt://HOST:PORT", parseBroker)
    .option("--in-process", "start a hub here with N generated Firmata boards (no sockets)")
    .option("--duration <time>", "stop after this long (e.g. 30s, 5m); default: until Ctrl-C", parseDuration)
    .option("--data-dir <dir>", "history directory for --in-process (default: a temporary one on tmpfs)")
    .option(
      "--faulty <share>",
      `keep this share of the load devices faulty (e.g. 10%), a fresh set every ${FAULT_ROUND_MS / 1000} s: --in-process pulls cables and makes LM35s stuck or noisy; against --broker, devices are partitioned for ${PARTITION_MS / 1000} s`,
      parseFraction,
    )
    .action(action((opts: SimulateOptions) => runSimulate(opts)));
}
