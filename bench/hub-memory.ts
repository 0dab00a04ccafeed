/**
 * Memory of a hub with N configured MQTT devices, none connected (issue 3: 10k connected devices under 500 MB RSS;
 * what the configured fleet costs is the part the hub owns, aedes adds its own per connection).
 *
 *   node --expose-gc --import tsx bench/hub-memory.ts [N=10000] [--connect] [--snapshot DIR] [--json]
 *
 * Starts a hub in-process (embedded broker on a free port, no API, history in a temporary directory) with N
 * generated Raspberry Pi devices of one sensor each (simulator/load/fleet.ts), lets it settle, forces GC and prints
 * heapUsed / RSS before the hub and with it, and the bytes per configured device. `--snapshot DIR` also writes a
 * heap snapshot there (open it in Chrome DevTools → Memory, or group it by constructor with
 * `bench/heap-summary.ts`). `--connect` then connects every device from a child process (simulator/load/child.ts,
 * one reading per device every 10 s), and measures again once all are connected: the steady state after GC, not
 * the peak the fleet bench reports.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeHeapSnapshot } from "node:v8";
import pino from "pino";
import { FleetConfigSchema, hashToken } from "../hub/config.ts";
import { startHub } from "../hub/hub.ts";
import type { ChildMessage, PhaseSpec } from "../simulator/load/child.ts";
import { LOAD_TOKEN_COST, loadDeviceId, loadPiEntry } from "../simulator/load/fleet.ts";

const args = process.argv.slice(2);
const count = Number(args.find((a) => /^\d+$/.test(a)) ?? 10_000);
const snapshotAt = args.indexOf("--snapshot");
const snapshotDir = snapshotAt >= 0 ? args[snapshotAt + 1] : undefined;
const json = args.includes("--json");
const connect = args.includes("--connect");
const TOKEN = "hub-memory-bench-token";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error("hub-memory: run with node --expose-gc");
  process.exit(2);
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function settle(): Promise<NodeJS.MemoryUsage> {
  // Several rounds: weak callbacks and finalizers free more on the second pass.
  for (let i = 0; i < 3; i++) {
    (gc as () => void)();
    await sleep(200);
  }
  return process.memoryUsage();
}

const tokenHash = await hashToken(TOKEN, LOAD_TOKEN_COST);
const devices = Array.from({ length: count }, (_, i) => loadPiEntry(loadDeviceId(i, count), tokenHash, 0.1));
const config = FleetConfigSchema.parse({ devices });
devices.length = 0;
const dataDir = mkdtempSync(join(tmpdir(), "ganglion-hub-memory-"));
const before = await settle();
const t0 = performance.now();
const hub = await startHub({
  config,
  mqttPort: 0,
  api: false,
  dataDir,
  logger: pino({ level: "error" }, pino.destination(2)),
});
const startMs = performance.now() - t0;
await sleep(2000);
const after = await settle();
const heapPer = (after.heapUsed - before.heapUsed) / count;
const rssPer = (after.rss - before.rss) / count;
const metrics = [
  { metric: "start_ms", value: startMs, unit: "ms" },
  { metric: "heap_used", value: after.heapUsed, unit: "bytes" },
  { metric: "rss", value: after.rss, unit: "bytes" },
  { metric: "heap_bytes_per_device", value: heapPer, unit: "bytes" },
  { metric: "rss_bytes_per_device", value: rssPer, unit: "bytes" },
];
if (json) {
  for (const m of metrics)
    console.log(JSON.stringify({ suite: "hub-memory", bench: `configured_${count}`, ...m }));
} else {
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
  console.log(
    `hub with ${count} configured MQTT devices (none connected), started in ${startMs.toFixed(0)} ms`,
  );
  console.log(`  before hub: heapUsed ${mb(before.heapUsed)}, rss ${mb(before.rss)}`);
  console.log(`  with hub:   heapUsed ${mb(after.heapUsed)}, rss ${mb(after.rss)}`);
  console.log(`  per device: heap ${heapPer.toFixed(0)} B, rss ${rssPer.toFixed(0)} B`);
}
if (connect) {
  // Devices in a child process; the hub's memory is measured while they are connected, before they stop.
  const child = fork(
    join(dirname(fileURLToPath(import.meta.url)), "..", "simulator", "load", "child.ts"),
    [],
    {
      execArgv: ["--max-old-space-size=4096", "--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    },
  );
  const connected = await new Promise<NodeJS.MemoryUsage>((resolve, reject) => {
    child.on("message", (m: ChildMessage) => {
      if (m.t === "window" && m.open) settle().then(resolve, reject);
      else if (m.t === "error") reject(new Error(m.message));
    });
    child.send({
      broker: hub.mqttUrl,
      count,
      token: TOKEN,
      rate: 0.1,
      warmupMs: 12_000,
      measureMs: 5_000,
      connectTimeoutMs: 600_000,
    } satisfies PhaseSpec);
  });
  const perConnection = (connected.heapUsed - after.heapUsed) / count;
  const rssPerConnection = (connected.rss - after.rss) / count;
  if (json) {
    const bench = `connected_${count}`;
    console.log(
      JSON.stringify({ suite: "hub-memory", bench, metric: "rss", value: connected.rss, unit: "bytes" }),
    );
    console.log(
      JSON.stringify({
        suite: "hub-memory",
        bench,
        metric: "heap_bytes_per_connection",
        value: perConnection,
        unit: "bytes",
      }),
    );
  } else {
    const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
    console.log(`  connected:  heapUsed ${mb(connected.heapUsed)}, rss ${mb(connected.rss)}`);
    console.log(`  per connection: heap ${perConnection.toFixed(0)} B, rss ${rssPerConnection.toFixed(0)} B`);
  }
  if (snapshotDir !== undefined) {
    const file = writeHeapSnapshot(join(snapshotDir, `hub-${count}-connected.heapsnapshot`));
    console.log(`  heap snapshot: ${file}`);
  }
  await new Promise<void>((resolve) => child.once("exit", () => resolve()));
} else if (snapshotDir !== undefined) {
  const file = writeHeapSnapshot(join(snapshotDir, `hub-${count}.heapsnapshot`));
  console.log(`  heap snapshot: ${file}`);
}
await hub.stop();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
