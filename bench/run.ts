/**
 * `npm run bench -- <suite> [--json] [--vs-beam]`: runs a benchmark suite and prints a readable table, or with
 * `--json` one JSON object per line: {"suite","bench","metric","value","unit"}.
 *
 * Suites: runtime (the actor runtime against the Erlang/OTP and nact anchors), boards (the emulated Arduino),
 * fleet (MQTT devices through the hub against bare aedes and mosquitto), memory (a hub's heap and RSS per configured
 * and per connected device, bench/hub-memory.ts).
 * `--vs-beam` also runs ../shared/anchors/erl on this machine (+S 1) in the same run and prints ratios.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Metric } from "./runtime.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const anchorsDir = process.env.GANGLION_ANCHORS ?? join(root, "..", "shared", "anchors");
const args = process.argv.slice(2);
const json = args.includes("--json");
const vsBeam = args.includes("--vs-beam");
const suite = args.find((a) => !a.startsWith("--")) ?? "runtime";
const log = (line: string) => {
  if (!json) console.log(line);
};

/** How a runtime metric compares with an Erlang anchor figure, and the target for it. */
interface Comparison {
  bench: string;
  metric: string;
  erlBench: string;
  erlKey: string;
  better: "lower" | "higher";
  target?: number;
}

const COMPARISONS: Comparison[] = [
  {
    bench: "pingpong",
    metric: "ns_per_round_trip",
    erlBench: "pingpong",
    erlKey: "ns_per_round_trip",
    better: "lower",
    target: 1000,
  },
  {
    bench: "call",
    metric: "calls_per_s_1",
    erlBench: "call",
    erlKey: "clients_1_calls_per_sec",
    better: "higher",
    target: 600_000,
  },
  {
    bench: "call",
    metric: "calls_per_s_100",
    erlBench: "call",
    erlKey: "clients_100_calls_per_sec",
    better: "higher",
  },
  {
    bench: "fanin",
    metric: "msgs_per_s",
    erlBench: "fanin",
    erlKey: "msgs_per_sec",
    better: "higher",
    target: 3_000_000,
  },
  {
    bench: "fanin",
    metric: "msgs_per_s_receive",
    erlBench: "fanin",
    erlKey: "msgs_per_sec",
    better: "higher",
  },
  { bench: "spawn", metric: "ns_per_spawn", erlBench: "spawn", erlKey: "ns_per_spawn", better: "lower" },
  {
    bench: "spawn",
    metric: "ms_until_all_waiting",
    erlBench: "spawn",
    erlKey: "spawn_until_all_waiting_ms",
    better: "lower",
    target: 2000,
  },
  {
    bench: "spawn",
    metric: "bytes_per_process",
    erlBench: "spawn",
    erlKey: "mem_bytes_per_process",
    better: "lower",
    target: 1000,
  },
  {
    bench: "spawn",
    metric: "kill_all_ms",
    erlBench: "spawn",
    erlKey: "kill_until_all_gone_ms",
    better: "lower",
  },
  { bench: "sup_start_10k", metric: "ms", erlBench: "sup", erlKey: "start_sup_10k_ms", better: "lower" },
  {
    bench: "sup_shutdown_10k",
    metric: "ms",
    erlBench: "sup",
    erlKey: "shutdown_sup_10k_ms",
    better: "lower",
  },
  {
    bench: "restart_one_for_one",
    metric: "p50_us",
    erlBench: "sup",
    erlKey: "one_for_one_10k_restart_us_p50",
    better: "lower",
  },
  {
    bench: "restart_one_for_one",
    metric: "p99_us",
    erlBench: "sup",
    erlKey: "one_for_one_10k_restart_us_p99",
    better: "lower",
    target: 350,
  },
  {
    bench: "restart_one_for_all",
    metric: "p50_us",
    erlBench: "sup",
    erlKey: "one_for_all_100_restart_all_us_p50",
    better: "lower",
  },
  {
    bench: "restart_one_for_all",
    metric: "p99_us",
    erlBench: "sup",
    erlKey: "one_for_all_100_restart_all_us_p99",
    better: "lower",
  },
];

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** Medians of the committed anchor results (Erlang +S 1) measured on this machine kind, if present. */
function recordedBeam(): Map<string, number> {
  const out = new Map<string, number>();
  const file = join(anchorsDir, "results", "erl_S1.jsonl");
  if (!existsSync(file)) return out;
  const rows = readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const c of COMPARISONS) {
    const values = rows
      .filter((r) => r.bench === c.erlBench && typeof r[c.erlKey] === "number")
      .map((r) => r[c.erlKey] as number);
    if (values.length > 0) out.set(`${c.bench}/${c.metric}`, median(values));
  }
  return out;
}

/** Runs ../shared/anchors/erl now, one fresh `erl +S 1` per bench. */
function liveBeam(): Map<string, number> {
  const out = new Map<string, number>();
  const erlDir = join(anchorsDir, "erl");
  const which = spawnSync("sh", ["-c", "command -v erl && command -v erlc"], { encoding: "utf8" });
  if (which.status !== 0) {
    console.error(
      "bench: --vs-beam needs Erlang (apt-get install erlang-nox); showing the recorded anchor figures instead",
    );
    return out;
  }
  if (!existsSync(join(erlDir, "anchor.erl"))) {
    console.error(`bench: --vs-beam: no anchors at ${erlDir} (set GANGLION_ANCHORS)`);
    return out;
  }
  const work = mkdtempSync(join(tmpdir(), "ganglion-beam-"));
  try {
    for (const f of ["anchor.erl", "anchor_sup.erl"]) copyFileSync(join(erlDir, f), join(work, f));
    execFileSync("erlc", ["anchor.erl", "anchor_sup.erl"], { cwd: work });
    for (const bench of ["pingpong", "call", "fanin", "sup", "spawn"]) {
      log(`  beam: ${bench}…`);
      const flags = bench === "spawn" ? ["+P", "2000000"] : [];
      const line = execFileSync(
        "erl",
        ["+S", "1", ...flags, "-noshell", "-pa", ".", "-run", "anchor", "main", bench, "-s", "init", "stop"],
        {
          cwd: work,
          encoding: "utf8",
          timeout: 180_000,
        },
      );
      const row = JSON.parse(line.trim().split("\n").pop() as string) as Record<string, unknown>;
      for (const c of COMPARISONS) {
        if (c.erlBench === bench && typeof row[c.erlKey] === "number")
          out.set(`${c.bench}/${c.metric}`, row[c.erlKey] as number);
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}

function runRuntimeWorkloads(): Metric[] {
  const metrics: Metric[] = [];
  for (const workload of ["pingpong", "call", "fanin", "spawn", "sup", "isolated"]) {
    log(`  runtime: ${workload}…`);
    const result = spawnSync(
      process.execPath,
      [
        "--expose-gc",
        "--max-old-space-size=4096",
        "--import",
        "tsx",
        join(root, "bench", "runtime.ts"),
        workload,
      ],
      { encoding: "utf8", timeout: 240_000 },
    );
    if (result.status !== 0) {
      console.error(`bench: workload ${workload} failed:\n${result.stderr}`);
      process.exitCode = 1;
      continue;
    }
    for (const line of result.stdout.split("\n"))
      if (line.startsWith("{")) metrics.push(JSON.parse(line) as Metric);
  }
  return metrics;
}

function fmt(value: number | undefined): string {
  if (value === undefined) return "–";
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  return value >= 100 ? value.toFixed(0) : value.toFixed(2);
}

function printRuntimeTable(metrics: Metric[], beam: Map<string, number>, beamLabel: string): void {
  const rows: string[][] = [["bench/metric", "unit", "ganglion", beamLabel, "vs BEAM", "target", "met"]];
  for (const m of metrics) {
    const key = `${m.bench}/${m.metric}`;
    const c = COMPARISONS.find((x) => `${x.bench}/${x.metric}` === key);
    const erl = beam.get(key);
    let ratio = "–";
    if (c !== undefined && erl !== undefined && erl > 0) {
      const r = c.better === "lower" ? erl / m.value : m.value / erl;
      ratio = `${r.toFixed(2)}× ${r >= 1 ? "better" : "worse"}`;
    }
    let met = "";
    if (c?.target !== undefined)
      met = (c.better === "lower" ? m.value <= c.target : m.value >= c.target) ? "yes" : "NO";
    rows.push([
      key,
      m.unit,
      fmt(m.value),
      fmt(erl),
      ratio,
      c?.target === undefined ? "" : fmt(c.target),
      met,
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, j) => cell.padEnd(widths[j] ?? 0)).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

const machine = `${cpus().length}× ${cpus()[0]?.model.trim() ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;

switch (suite) {
  case "runtime": {
    log(`Ganglion runtime benchmark on ${machine}`);
    const metrics = runRuntimeWorkloads();
    const beam = vsBeam ? liveBeam() : new Map<string, number>();
    const recorded = recordedBeam();
    const useLive = beam.size > 0;
    if (json) {
      for (const m of metrics) console.log(JSON.stringify(m));
      for (const [key, value] of useLive ? beam : recorded) {
        const [bench, metric] = key.split("/");
        console.log(
          JSON.stringify({
            suite: "runtime-beam",
            bench,
            metric,
            value,
            unit: metrics.find((m) => `${m.bench}/${m.metric}` === key)?.unit,
          }),
        );
      }
    } else {
      printRuntimeTable(
        metrics,
        useLive ? beam : recorded,
        useLive ? "BEAM +S1 (now)" : "BEAM +S1 (anchors)",
      );
    }
    break;
  }
  case "boards": {
    const boards = join(root, "bench", "boards.ts");
    if (!existsSync(boards)) {
      console.error("bench: the boards suite is not in this checkout yet");
      process.exit(2);
    }
    const mod = (await import(boards)) as { run(options: { json: boolean }): Promise<void> };
    await mod.run({ json });
    break;
  }
  case "fleet": {
    const mod = (await import(join(root, "bench", "fleet.ts"))) as {
      run(options: { json: boolean }): Promise<void>;
    };
    await mod.run({ json });
    break;
  }
  case "dashboard": // 1,000 MQTT devices at 1 Hz with the dashboard open in chromium (bench/dashboard.ts)
    await ((await import(join(root, "bench", "dashboard.ts"))) as typeof import("./dashboard.ts")).run({
      json,
    });
    break;
  case "sim": // the simulator's targets: idle demo CPU, fault recovery, 10k MQTT devices, 10% faulted (bench/sim.ts)
    await ((await import(join(root, "bench", "sim.ts"))) as typeof import("./sim.ts")).run({ json });
    break;
  case "memory": {
    // A hub with 10k configured MQTT devices, then all of them connected: heap and RSS per device after GC
    // (bench/hub-memory.ts; needs --expose-gc, so it runs in its own node).
    const result = spawnSync(
      process.execPath,
      [
        "--expose-gc",
        "--max-old-space-size=4096",
        "--import",
        "tsx",
        join(root, "bench", "hub-memory.ts"),
        "10000",
        "--connect",
        ...(json ? ["--json"] : []),
      ],
      { stdio: "inherit", timeout: 900_000 },
    );
    if (result.status !== 0) process.exitCode = 1;
    break;
  }
  default:
    console.error(
      `bench: unknown or not yet built suite "${suite}" (available: runtime, boards, fleet, dashboard, sim, memory)`,
    );
    process.exit(2);
}
