/**
 * Parts 1 and 2 of the `sim` suite, on what users run: `ganglion start --simulate` as a child process (the hub,
 * two emulated Unos in worker threads, two virtual Pis running the real pi-agent, all in that one process).
 *
 * 1. Idle CPU: once every device is online and every sensor has reported, the process's CPU (all threads, from
 *    /proc/<pid>/stat) over `idleSeconds`, as % of one core, and per thread name (main thread vs the Unos' workers).
 * 2. Sensor fault back to healthy: `throws` (a hub-side driver fault: the sensor actor crashes on its next reading
 *    and is restarted) for one reading period, through `POST /api/faults` with `durationMs`, N times on the Unos'
 *    LM35s (500 ms period) and on the Pis' door switches (1 s period), the two devices of each kind taking turns so
 *    no sensor supervisor reaches its restart intensity (3 in 5 s). Watched on `/api/live`: recovered is the first
 *    `reading` update of that sensor with health `ok` and a reading taken after the injection. The target is
 *    read from the fault's end (`fault_cleared` → that update); injection → `ok` is shown too, and includes the
 *    fault's own duration. A cleared `throws` re-reads the reading it crashed on (no wait for the next one); a
 *    physical fault waits for the sensor's next reading (→ the reading's `ts`), then the hub's part (→ the update
 *    on the socket). Then `nan` (the Unos' sensor wire comes loose, a physical fault) the same way.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "ws";
import { hubNodeFlags } from "../node-flags.ts";
import {
  cpuByThread,
  cpuSecondsOf,
  percentile,
  type Row,
  root,
  rssOf,
  sleep,
  stopChild,
  waitForLine,
} from "./common.ts";

interface LiveReading {
  type: "reading";
  device: string;
  sensor: string;
  ts: number;
  health: string;
}
interface LiveEvent {
  type: "event";
  event: { type: string; ts: number; fault?: { id: string } };
}
interface LiveDevice {
  type: "device";
  device: {
    id: string;
    status: string;
    sensors: { id: string; kind: string; health: string; ts: number | null }[];
  };
}
type Live = LiveReading | LiveEvent | LiveDevice | { type: string };

/** One injection's timeline, epoch ms (the hub and this process share the machine's clock). */
interface Recovery {
  target: string;
  injectedAt: number;
  clearedAt: number;
  readingTs: number;
  okAt: number;
  /** The sensor was seen not `ok` in between (the fault took effect). */
  tookEffect: boolean;
}

export interface DemoOptions {
  idleSeconds: number;
  throwsPerKind: number;
  nan: boolean;
  progress: (line: string) => void;
}

class LiveWatch {
  private readonly ws: WebSocket;
  private readonly listeners = new Set<(m: Live, at: number) => void>();
  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on("message", (data) => {
      const at = Date.now();
      const m = JSON.parse(data.toString()) as Live;
      for (const l of this.listeners) l(m, at);
    });
  }
  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
    });
  }
  on(listener: (m: Live, at: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  close(): void {
    this.ws.close();
  }
}

async function api(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text === "" ? undefined : JSON.parse(text);
}

/** Injects `kind` on device/sensor for `durationMs` and resolves with its recovery timeline. */
async function injectOnce(
  base: string,
  live: LiveWatch,
  kind: string,
  device: string,
  sensor: string,
  durationMs: number,
  timeoutMs: number,
): Promise<Recovery> {
  let faultId: string | undefined;
  let clearedAt = Number.NaN;
  let tookEffect = false;
  let injectedAt = Number.NaN;
  let seen: { readingTs: number; okAt: number } | undefined;
  let resolveOk: (r: { readingTs: number; okAt: number }) => void = () => undefined;
  const ok = new Promise<{ readingTs: number; okAt: number }>((r) => {
    resolveOk = r;
  });
  // Recovered: the first ok reading taken after the injection, once the fault has cleared or was seen to bite
  // (the fault_cleared event can trail the first good reading by a few microtasks).
  const settle = () => {
    if (seen !== undefined && !Number.isNaN(clearedAt)) resolveOk(seen);
  };
  const off = live.on((m, at) => {
    if (m.type === "event") {
      const e = (m as LiveEvent).event;
      if (e.type === "fault_cleared" && e.fault?.id === faultId) {
        clearedAt = e.ts;
        settle();
      }
    } else if (m.type === "reading") {
      const r = m as LiveReading;
      if (r.device !== device || r.sensor !== sensor || !(injectedAt > 0)) return;
      if (r.health !== "ok") tookEffect = true;
      else if (seen === undefined && r.ts > injectedAt && (tookEffect || !Number.isNaN(clearedAt))) {
        seen = { readingTs: r.ts, okAt: at };
        settle();
      }
    } else if (m.type === "device") {
      const d = (m as LiveDevice).device;
      if (d.id !== device || !(injectedAt > 0)) return;
      if (d.sensors.find((s) => s.id === sensor)?.health !== "ok") tookEffect = true;
    }
  });
  try {
    injectedAt = Date.now();
    const view = (await api(base, "POST", "/api/faults", { kind, device, sensor, durationMs })) as {
      id: string;
      startedAt: number;
    };
    faultId = view.id;
    injectedAt = view.startedAt;
    const timeout = sleep(timeoutMs).then(() => undefined);
    const got = await Promise.race([ok, timeout]);
    if (got === undefined) throw new Error(`${device}/${sensor} not ok ${timeoutMs} ms after ${kind}`);
    return { target: `${device}/${sensor}`, injectedAt, clearedAt, ...got, tookEffect };
  } finally {
    off();
  }
}

/** Runs `count` injections, taking turns over `targets`, each after the previous recovered plus a random pause. */
async function injections(
  base: string,
  live: LiveWatch,
  kind: string,
  targets: readonly [string, string][],
  durationMs: number,
  count: number,
  spacingMs: number,
  progress: (line: string) => void,
): Promise<{ recoveries: Recovery[]; failures: string[] }> {
  const recoveries: Recovery[] = [];
  const failures: string[] = [];
  const lastOn = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const [device, sensor] = targets[i % targets.length] as [string, string];
    // A random phase against the sensor's period, and at least `spacingMs` since this device's last fault.
    const since = Date.now() - (lastOn.get(device) ?? 0);
    await sleep(Math.max(0, spacingMs - since) + Math.random() * durationMs);
    lastOn.set(device, Date.now());
    try {
      recoveries.push(await injectOnce(base, live, kind, device, sensor, durationMs, 15_000));
    } catch (err) {
      failures.push((err as Error).message);
      progress(`    ${kind} ${device}/${sensor}: ${(err as Error).message}`);
    }
  }
  return { recoveries, failures };
}

function recoveryRows(
  bench: string,
  label: string,
  r: Recovery[],
  failures: number,
  periodMs: number,
): Row[] {
  const fromInject = r.map((x) => x.okAt - x.injectedAt);
  const fromClear = r.map((x) => x.okAt - x.clearedAt);
  // A hub-side driver fault's clear re-reads the newest stored reading, taken during the fault: no wait for the
  // next one. Physical faults (and driver faults with no fresh reading) wait for the sensor's next reading.
  const waited = r.filter((x) => x.readingTs >= x.clearedAt);
  const wait = waited.map((x) => x.readingTs - x.clearedAt);
  const hubPart = r.map((x) => x.okAt - Math.max(x.readingTs, x.clearedAt));
  const effect = r.filter((x) => x.tookEffect).length;
  const note = `${label}; ${r.length} injections (${effect} seen to take effect, ${failures} not recovered in 15 s)`;
  const p99Clear = percentile(fromClear, 99);
  return [
    { bench, metric: "injected_to_ok_p50", value: percentile(fromInject, 50), unit: "ms", note },
    {
      bench,
      metric: "injected_to_ok_p99",
      value: percentile(fromInject, 99),
      unit: "ms",
      note: `includes the fault's own ${periodMs} ms`,
    },
    { bench, metric: "cleared_to_ok_p50", value: percentile(fromClear, 50), unit: "ms" },
    {
      bench,
      metric: "cleared_to_ok_p99",
      value: p99Clear,
      unit: "ms",
      target: "< 1000 ms",
      met: p99Clear < 1000 && failures === 0,
      note: "the recovery: fault ends → health ok on /api/live",
    },
    {
      bench,
      metric: "waited_for_next_reading",
      value: waited.length,
      unit: "count",
      note: `of ${r.length}; the others re-read the reading taken during the fault`,
    },
    {
      bench,
      metric: "wait_next_reading_p99",
      value: wait.length > 0 ? percentile(wait, 99) : 0,
      unit: "ms",
      note: `fault cleared → next reading taken (≤ 1 period, ${periodMs} ms), when waited`,
    },
    {
      bench,
      metric: "hub_part_p50",
      value: percentile(hubPart, 50),
      unit: "ms",
      note: "clear or reading, whichever is later → ok on /api/live",
    },
    { bench, metric: "hub_part_p99", value: percentile(hubPart, 99), unit: "ms" },
  ];
}

const NO_READINGS = new Set(["button", "led", "relay", "servo", "digital-out", "pwm"]);

/** Waits until every device is online and every sensor has a reading and is ok (or `timeoutMs`). */
async function waitHealthy(base: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let why = "";
  while (Date.now() < deadline) {
    const devices = (await api(base, "GET", "/api/devices")) as LiveDevice["device"][];
    const bad = devices.flatMap((d) =>
      d.status !== "online"
        ? [`${d.id} ${d.status}`]
        : // Buttons report changes only (nobody may have pressed one yet), and actuators have no readings.
          d.sensors
            .filter((s) => s.health !== "ok" || (s.ts === null && !NO_READINGS.has(s.kind)))
            .map((s) => `${d.id}/${s.id} ${s.health}`),
    );
    if (bad.length === 0) return "";
    why = bad.join(", ");
    await sleep(250);
  }
  return why;
}

/** Parts 1 and 2. */
export async function runDemo(opts: DemoOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const work = mkdtempSync(join(tmpdir(), "ganglion-sim-bench-"));
  const fleet = join(work, "fleet.yaml");
  writeFileSync(fleet, "devices: []\n");
  const logFd = openSync(join(work, "hub.log"), "w");
  let child: ChildProcess | undefined;
  let live: LiveWatch | undefined;
  try {
    opts.progress("demo: starting `ganglion start --simulate`…");
    const t0 = Date.now();
    child = spawn(
      process.execPath,
      [
        ...hubNodeFlags(),
        "--import",
        "tsx",
        join(root, "hub", "cli.ts"),
        "start",
        "--simulate",
        "--config",
        fleet,
        "--http-port",
        "0",
        "--mqtt-port",
        "0",
        "--data-dir",
        join(work, "data"),
      ],
      { cwd: root, stdio: ["ignore", "pipe", logFd] },
    );
    const pid = child.pid as number;
    const http = await waitForLine(child, /ganglion: http listening on (\S+)/, 120_000);
    const base = http[1] as string;
    await waitForLine(child, /ganglion: simulating/, 120_000);
    child.stdout?.resume();
    const notHealthy = await waitHealthy(base, 60_000);
    rows.push({ bench: "demo", metric: "start_to_healthy", value: Date.now() - t0, unit: "ms" });
    if (notHealthy !== "") opts.progress(`demo: not all healthy after 60 s: ${notHealthy}`);

    // 1. Idle CPU, after a settling pause.
    await sleep(3000);
    opts.progress(`demo: idle CPU over ${opts.idleSeconds} s…`);
    const cpu0 = cpuSecondsOf(pid);
    const threads0 = cpuByThread(pid);
    const w0 = performance.now();
    const perSecond: number[] = [];
    let last = cpu0;
    let rssPeak = rssOf(pid);
    for (let s = 0; s < opts.idleSeconds; s++) {
      await sleep(1000);
      const now = cpuSecondsOf(pid);
      perSecond.push((now - last) * 100);
      last = now;
      rssPeak = Math.max(rssPeak, rssOf(pid));
    }
    const seconds = (performance.now() - w0) / 1000;
    const cpu = ((cpuSecondsOf(pid) - cpu0) / seconds) * 100;
    const threads1 = cpuByThread(pid);
    const mainThread = (((threads1.get(pid) ?? 0) - (threads0.get(pid) ?? 0)) / seconds) * 100;
    rows.push({
      bench: "demo_idle",
      metric: "cpu_percent_of_one_core",
      value: cpu,
      unit: "percent",
      target: "< 100 %",
      met: cpu < 100,
      note: `over ${opts.idleSeconds} s, every thread; main thread ${mainThread.toFixed(1)} %, the rest (the Unos' workers, libuv, GC) ${(cpu - mainThread).toFixed(1)} %`,
    });
    rows.push({
      bench: "demo_idle",
      metric: "cpu_percent_max_1s",
      value: Math.max(...perSecond),
      unit: "percent",
    });
    rows.push({ bench: "demo_idle", metric: "rss", value: rssPeak, unit: "bytes" });

    // 2. Faults back to healthy.
    const wsUrl = `${base.replace(/^http/, "ws")}/api/live`;
    live = new LiveWatch(wsUrl);
    await live.opened();
    opts.progress(`demo: throws × ${opts.throwsPerKind} on the Unos' temp and the Pis' door, in parallel…`);
    const [uno, pi] = await Promise.all([
      injections(
        base,
        live,
        "throws",
        [
          ["uno-1", "temp"],
          ["uno-2", "temp"],
        ],
        500,
        opts.throwsPerKind,
        2000,
        opts.progress,
      ),
      injections(
        base,
        live,
        "throws",
        [
          ["greenhouse-pi", "door"],
          ["tank-pi", "door"],
        ],
        1000,
        Math.ceil(opts.throwsPerKind / 2),
        2000,
        opts.progress,
      ),
    ]);
    rows.push(
      ...recoveryRows(
        "fault_throws_uno",
        "throws 500 ms on uno-1/temp, uno-2/temp",
        uno.recoveries,
        uno.failures.length,
        500,
      ),
    );
    rows.push(
      ...recoveryRows(
        "fault_throws_pi",
        "throws 1 s on greenhouse-pi/door, tank-pi/door",
        pi.recoveries,
        pi.failures.length,
        1000,
      ),
    );
    if (opts.nan) {
      opts.progress("demo: nan × 10 on the Unos' temp (the LM35's wire comes loose)…");
      const nan = await injections(
        base,
        live,
        "nan",
        [
          ["uno-1", "temp"],
          ["uno-2", "temp"],
        ],
        500,
        10,
        2000,
        opts.progress,
      );
      rows.push(
        ...recoveryRows(
          "fault_nan_uno",
          "nan 500 ms on uno-1/temp, uno-2/temp",
          nan.recoveries,
          nan.failures.length,
          500,
        ),
      );
    }
    return rows;
  } finally {
    live?.close();
    if (child !== undefined) await stopChild(child);
    closeSync(logFd);
    if (process.env.SIM_BENCH_KEEP === undefined) rmSync(work, { recursive: true, force: true });
    else opts.progress(`demo: kept ${work}`);
  }
}
