/**
 * A load phase in its own process, so the broker's process is measured alone (bench/fleet.ts forks it):
 *
 *   fork("simulator/load/child.ts", { execArgv: ["--import", "tsx"] }) ← {spec}
 *   → {t: "connected"} once every device is up, {t: "window", open: true|false} around the measuring window,
 *     then {t: "result"}.
 *
 * The parent samples the broker and runs the latency probe (a subscriber in a process of its own, so a busy load
 * generator does not delay what it measures); the child stops its devices and exits after the result.
 */
import { type LoadCredential, LoadRun } from "./run.ts";
import { faultCount } from "./stats.ts";

/** What to run. */
export interface PhaseSpec {
  broker: string;
  /** Devices `<idPrefix>-00001`… all logging in with `token` (a bench fleet shares one token; see bench/fleet.ts). */
  count: number;
  token?: string;
  idPrefix?: string;
  rate: number | "max";
  window?: number;
  heartbeatMs?: number;
  warmupMs: number;
  measureMs: number;
  connectTimeoutMs?: number;
}

/** What a phase measured. */
export interface PhaseResult {
  connected: number;
  connectMs: number;
  /** Readings acknowledged by the broker per second, in the window. */
  ackedPerS: number;
  faults: number;
  /** Readings taken but not acknowledged when the window closed. */
  backlog: number;
  /** RSS of this (client) process, for the record. */
  clientRss: number;
}

/** Messages from the child. */
export type ChildMessage =
  | { t: "connected"; connected: number; connectMs: number }
  | { t: "window"; open: boolean }
  | { t: "result"; result: PhaseResult }
  | { t: "error"; message: string };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs one phase; `notify` hears when every device is up and when the measuring window opens and closes. */
export async function runPhase(spec: PhaseSpec, notify?: (m: ChildMessage) => void): Promise<PhaseResult> {
  const devices: LoadCredential[] = [];
  const width = Math.max(5, String(spec.count).length);
  for (let i = 0; i < spec.count; i++) {
    const id = `${spec.idPrefix ?? "load"}-${String(i + 1).padStart(width, "0")}`;
    devices.push(spec.token === undefined ? { id } : { id, token: spec.token });
  }
  const run = new LoadRun({
    broker: spec.broker,
    devices,
    rate: spec.rate,
    preciseTs: true,
    holdUntilConnected: true,
    ...(spec.window === undefined ? {} : { window: spec.window }),
    ...(spec.heartbeatMs === undefined ? {} : { heartbeatMs: spec.heartbeatMs }),
  });
  const t0 = Date.now();
  try {
    await run.start();
    await run.waitConnected(spec.count, spec.connectTimeoutMs ?? 120_000);
    const connectMs = Date.now() - t0;
    notify?.({ t: "connected", connected: run.stats.connected, connectMs });
    await sleep(spec.warmupMs);
    const acked0 = run.stats.acked;
    const w0 = performance.now();
    notify?.({ t: "window", open: true });
    await sleep(spec.measureMs);
    notify?.({ t: "window", open: false });
    const seconds = (performance.now() - w0) / 1000;
    const s = run.stats;
    return {
      connected: s.connected,
      connectMs,
      ackedPerS: (s.acked - acked0) / seconds,
      faults: faultCount(s),
      backlog: s.readings - s.acked - s.dropped,
      clientRss: process.memoryUsage().rss,
    };
  } finally {
    await run.stop();
  }
}

if (process.send !== undefined && process.argv[1]?.endsWith("child.ts")) {
  // A broker that dies under load resets every socket at once: report it to the parent as this phase's failure.
  process.on("uncaughtException", (err) => {
    process.send?.({ t: "error", message: `load client: ${err.message}` } satisfies ChildMessage, () =>
      process.exit(1),
    );
  });
  process.once("message", (spec: PhaseSpec) => {
    runPhase(spec, (m) => process.send?.(m)).then(
      (result) => process.send?.({ t: "result", result } satisfies ChildMessage, () => process.exit(0)),
      (err: Error) =>
        process.send?.({ t: "error", message: err.message } satisfies ChildMessage, () => process.exit(1)),
    );
  });
}
