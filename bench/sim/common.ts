/**
 * Shared pieces of the `sim` suite (bench/sim.ts): one figure of the table, /proc readings of a child process,
 * percentiles, and child-process handling that always stops what it started.
 */
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** One figure: a `--json` line plus what the table shows. */
export interface Row {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  /** The target as the table shows it (`< 100 %`), when this figure has one. */
  target?: string;
  met?: boolean;
  /** A short note shown after the figure. */
  note?: string;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (CLK_TCK, 100 on Linux). */
const CLK_TCK = 100;

/** CPU seconds (user + system, every thread) a process has used so far. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at state; utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
}

/** CPU seconds per thread id of a process (the main thread's id is the pid). */
export function cpuByThread(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(Number(tid), (Number(rest[11]) + Number(rest[12])) / CLK_TCK);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** Resident set size of a process, bytes. */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The p-th percentile (nearest rank) of values; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
export function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Resolves with the first stdout line of `child` matching `pattern`; rejects if it exits or `timeoutMs` passes. */
export function waitForLine(
  child: ChildProcess,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const done = (err: Error | null, match?: RegExpExecArray) => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve(match as RegExpExecArray);
    };
    const onData = (d: Buffer) => {
      buffered += d.toString();
      for (const line of buffered.split("\n")) {
        const m = pattern.exec(line);
        if (m) return done(null, m);
      }
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(new Error(`the child exited (${signal ?? code}) before printing ${pattern}`));
    const timer = setTimeout(
      () => done(new Error(`no ${pattern} from the child after ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.stdout?.on("data", onData);
    child.once("exit", onExit);
  });
}

/** How the table shows a value of `unit`. */
export function fmt(value: number | undefined, unit: string): string {
  if (value === undefined || !Number.isFinite(value)) return "–";
  if (unit === "bytes")
    return value >= 2 ** 20 ? `${(value / 2 ** 20).toFixed(0)} MB` : `${(value / 1024).toFixed(1)} KB`;
  if (unit === "ms") return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
  if (unit === "per_s") return `${value.toFixed(0)}/s`;
  if (unit === "s") return `${value.toFixed(1)} s`;
  if (unit === "percent") return `${value.toFixed(1)} %`;
  return value.toFixed(0);
}
