/**
 * Part 4 of the `sim` suite: the hub keeps every healthy device's readings flowing while 10% of the fleet is
 * faulted. The in-process load mode (simulator/load/in-process.ts: a hub and N Firmata boards in one process, no
 * sockets) in a child process of its own, history on tmpfs; once every board is online, 10% of them are faulted for
 * the whole window:
 *
 * - half with `throws` on their sensor through the hub's fault book (`injectFault`, no duration): the sensor actor
 *   crashes on every reading, its supervisors give up, the device is restarted with backoff — over and over;
 * - half with their USB cable pulled and left out: the board's port closes and opening it fails (the load boards
 *   have no physical faults behind `/api/faults`, so the bench pulls the cable itself, as `disconnect` does on an
 *   emulated Uno).
 *
 * Over the window it reads, for every healthy board, its stored readings from the hub's history and takes the gaps
 * between consecutive ones (and from the window's start to the first, and from the last to its end); and, from the
 * hub's live updates, the gaps between readings the sensor actors accepted. Target: no gap > 2 periods.
 *
 *   node --import tsx bench/sim/faulted.ts serve '{"devices":1000,"rate":1,"seconds":60,"dataDir":"…"}'
 *   → one `RESULT {json}` line on stdout.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { percentile, type Row, root, rssOf, sleep, stopChild, waitForLine } from "./common.ts";

interface ServeOptions {
  devices: number;
  rate: number;
  seconds: number;
  dataDir: string;
  /** Share of the fleet faulted (default 0.1). */
  faulted?: number;
}

interface FaultedResult {
  startMs: number;
  healthy: number;
  throws: number;
  unplugged: number;
  injectErrors: number;
  windowS: number;
  storedPerS: number;
  worstGapMs: number;
  p99GapMs: number;
  gapsOver2Periods: number;
  devicesWithGapOver2Periods: number;
  worstAcceptedGapMs: number;
  acceptedOver2Periods: number;
  acceptedPerS: number;
  faultedStoredPerS: number;
  cpuPercent: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  rss: number;
}

async function serve(opts: ServeOptions): Promise<FaultedResult> {
  const pino = (await import("pino")).default;
  const { startInProcessLoad } = await import("../../simulator/load/in-process.ts");
  const { LOAD_SENSOR } = await import("../../simulator/load/fleet.ts");
  const periodMs = 1000 / opts.rate;
  const t0 = Date.now();
  const load = await startInProcessLoad({
    devices: opts.devices,
    rate: opts.rate,
    dataDir: opts.dataDir,
    // Fatal only: the unplugged boards log an error on every reopen attempt the hub makes.
    logger: pino({ level: "fatal" }, pino.destination(2)),
  });
  try {
    const deadline = Date.now() + 120_000;
    while (load.online() < opts.devices && Date.now() < deadline) await sleep(200);
    const startMs = Date.now() - t0;
    await sleep(2 * periodMs); // every sensor has reported since it came online

    // Every 10th board faulted; every other one of those by the fault book, the rest unplugged.
    const every = Math.round(1 / (opts.faulted ?? 0.1));
    const faulted = new Set<string>();
    let throws = 0;
    let unplugged = 0;
    let injectErrors = 0;
    const window0 = Date.now();
    for (const [i, board] of load.boards.entries()) {
      if (i % every !== 0) continue;
      faulted.add(board.id);
      if ((i / every) % 2 === 0) {
        try {
          await load.hub.injectFault({ kind: "throws", device: board.id, sensor: LOAD_SENSOR });
          throws++;
        } catch {
          injectErrors++;
        }
      } else {
        // The cable stays out: the hub's reopen attempts fail as they would on a missing /dev/ttyACM*.
        (board as unknown as { open: () => never }).open = () => {
          throw new Error(`${board.id}: no such port (the cable is out)`);
        };
        board.close();
        unplugged++;
      }
    }

    // Readings the sensor actors accepted (live updates), per healthy device.
    const lastAccepted = new Map<string, number>();
    let worstAcceptedGapMs = 0;
    let acceptedOver2Periods = 0;
    let accepted = 0;
    const unsubscribe = load.hub.subscribe((u) => {
      if (u.type !== "reading" || faulted.has(u.device)) return;
      accepted++;
      const now = Date.now();
      const last = lastAccepted.get(u.device) ?? window0;
      const gap = now - last;
      if (gap > worstAcceptedGapMs) worstAcceptedGapMs = gap;
      if (gap > 2 * periodMs) acceptedOver2Periods++;
      lastAccepted.set(u.device, now);
    });
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    await sleep(opts.seconds * 1000);
    const windowS = (performance.now() - w0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    loop.disable();
    unsubscribe();
    const window1 = Date.now();
    await sleep(200); // the last readings' group commit

    const gaps: number[] = [];
    let stored = 0;
    let faultedStored = 0;
    let gapsOver = 0;
    const devicesOver = new Set<string>();
    for (const board of load.boards) {
      const rows = load.hub.telemetry({
        device: board.id,
        sensor: LOAD_SENSOR,
        since: window0,
        limit: 10_000,
      });
      const ts = rows.map((r) => r.ts).filter((t) => t <= window1);
      if (faulted.has(board.id)) {
        faultedStored += ts.length;
        continue;
      }
      stored += ts.length;
      let prev = window0;
      for (const t of [...ts, window1]) {
        const gap = t - prev;
        gaps.push(gap);
        if (gap > 2 * periodMs) {
          gapsOver++;
          devicesOver.add(board.id);
        }
        prev = t;
      }
      // A healthy device whose live readings stopped: the gap up to the window's end counts too.
      const last = lastAccepted.get(board.id) ?? window0;
      if (window1 - last > worstAcceptedGapMs) worstAcceptedGapMs = window1 - last;
      if (window1 - last > 2 * periodMs) acceptedOver2Periods++;
    }
    return {
      startMs,
      healthy: opts.devices - faulted.size,
      throws,
      unplugged,
      injectErrors,
      windowS,
      storedPerS: stored / windowS,
      worstGapMs: Math.max(...gaps),
      p99GapMs: percentile(gaps, 99),
      gapsOver2Periods: gapsOver,
      devicesWithGapOver2Periods: devicesOver.size,
      worstAcceptedGapMs,
      acceptedOver2Periods,
      acceptedPerS: accepted / windowS,
      faultedStoredPerS: faultedStored / windowS,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / (windowS * 1000)) * 100,
      loopDelayP99Ms: loop.percentile(99) / 1e6,
      loopDelayMaxMs: loop.max / 1e6,
      rss: process.memoryUsage().rss,
    };
  } finally {
    await load.stop();
  }
}

/** Runs part 4 in a child process and turns its result into rows. */
export async function runFaulted(opts: {
  devices: number;
  rate: number;
  seconds: number;
  progress: (line: string) => void;
}): Promise<Row[]> {
  const shm = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
  const dataDir = mkdtempSync(join(shm, "ganglion-sim-faulted-"));
  let child: ChildProcess | undefined;
  try {
    opts.progress(
      `faulted: ${opts.devices} in-process boards at ${opts.rate} Hz, 10% faulted for ${opts.seconds} s…`,
    );
    child = spawn(
      process.execPath,
      [
        "--max-old-space-size=4096",
        "--import",
        "tsx",
        join(root, "bench", "sim", "faulted.ts"),
        "serve",
        JSON.stringify({ devices: opts.devices, rate: opts.rate, seconds: opts.seconds, dataDir }),
      ],
      { cwd: root, stdio: ["ignore", "pipe", "inherit"] },
    );
    const pid = child.pid as number;
    let rssPeak = 0;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssOf(pid) || 0);
    }, 500);
    let line: RegExpExecArray;
    try {
      line = await waitForLine(child, /^RESULT (.*)$/, 120_000 + opts.seconds * 1000 + 60_000);
    } finally {
      clearInterval(sampler);
    }
    const r = JSON.parse(line[1] as string) as FaultedResult;
    const periodMs = 1000 / opts.rate;
    const b = "faulted";
    const who = `${r.healthy} healthy of ${opts.devices}; ${r.throws} with throws, ${r.unplugged} unplugged`;
    return [
      { bench: b, metric: "start_all_online", value: r.startMs, unit: "ms" },
      {
        bench: b,
        metric: "worst_gap_stored",
        value: r.worstGapMs,
        unit: "ms",
        target: `≤ ${2 * periodMs} ms`,
        met: r.worstGapMs <= 2 * periodMs,
        note: `${who}; history, ${r.windowS.toFixed(0)} s`,
      },
      { bench: b, metric: "p99_gap_stored", value: r.p99GapMs, unit: "ms" },
      {
        bench: b,
        metric: "gaps_over_2_periods",
        value: r.gapsOver2Periods,
        unit: "count",
        note: `on ${r.devicesWithGapOver2Periods} healthy devices`,
      },
      {
        bench: b,
        metric: "worst_gap_accepted",
        value: r.worstAcceptedGapMs,
        unit: "ms",
        target: `≤ ${2 * periodMs} ms`,
        met: r.worstAcceptedGapMs <= 2 * periodMs,
        note: `readings the sensor actors accepted (live updates); ${r.acceptedOver2Periods} gaps > 2 periods`,
      },
      {
        bench: b,
        metric: "healthy_stored_per_s",
        value: r.storedPerS,
        unit: "per_s",
        note: `expected ${(r.healthy * opts.rate).toFixed(0)}/s; faulted boards' readings stored: ${r.faultedStoredPerS.toFixed(0)}/s`,
      },
      { bench: b, metric: "healthy_accepted_per_s", value: r.acceptedPerS, unit: "per_s" },
      {
        bench: b,
        metric: "cpu_percent",
        value: r.cpuPercent,
        unit: "percent",
        note: `hub + boards, one process; event-loop delay p99 ${r.loopDelayP99Ms.toFixed(0)} ms, max ${r.loopDelayMaxMs.toFixed(0)} ms`,
      },
      { bench: b, metric: "rss", value: Math.max(r.rss, rssPeak), unit: "bytes" },
    ];
  } finally {
    if (child !== undefined) await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (
  process.argv[1] &&
  import.meta.url === pathToFileURL(process.argv[1]).href &&
  process.argv[2] === "serve"
) {
  const opts = JSON.parse(process.argv[3] ?? "{}") as ServeOptions;
  const result = await serve(opts);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
}
