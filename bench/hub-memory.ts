/**
 * Memory of a hub with N configured MQTT devices, none connected (issue 3: 10k connected devices under 500 MB RSS;
 * what the configured fleet costs is the part the hub owns, aedes adds its own per connection).
 *
 *   node --expose-gc --import tsx bench/hub-memory.ts [N=10000] [--snapshot DIR] [--json]
 *
 * Starts a hub in-process (embedded broker on a free port, no API, history in a temporary directory) with N
 * generated Raspberry Pi devices of one sensor each (simulator/load/fleet.ts), lets it settle, forces GC and prints
 * heapUsed / RSS before the hub and with it, and the bytes per configured device. `--snapshot DIR` also writes a
 * heap snapshot there (open it in Chrome DevTools → Memory, or group it by constructor with
 * `bench/heap-summary.ts`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeHeapSnapshot } from "node:v8";
import pino from "pino";
import { FleetConfigSchema, hashToken } from "../hub/config.ts";
import { startHub } from "../hub/hub.ts";
import { LOAD_TOKEN_COST, loadDeviceId, loadPiEntry } from "../simulator/load/fleet.ts";

const args = process.argv.slice(2);
const count = Number(args.find((a) => /^\d+$/.test(a)) ?? 10_000);
const snapshotAt = args.indexOf("--snapshot");
const snapshotDir = snapshotAt >= 0 ? args[snapshotAt + 1] : undefined;
const json = args.includes("--json");

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

const tokenHash = await hashToken("hub-memory-bench-token", LOAD_TOKEN_COST);
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
if (snapshotDir !== undefined) {
  const file = writeHeapSnapshot(join(snapshotDir, `hub-${count}.heapsnapshot`));
  console.log(`  heap snapshot: ${file}`);
}
await hub.stop();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
