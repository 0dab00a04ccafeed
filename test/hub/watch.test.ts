/**
 * `ganglion watch` in a pseudo-terminal (util-linux `script`), against a hub with the demo fleet in this process:
 * the screen shows the tree, a killed sensor actor's restart appears on it, and q quits with exit 0 and the
 * terminal restored.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetConfigSchema } from "../../hub/config.ts";
import { partName } from "../../hub/context.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { exit } from "../../hub/runtime/index.ts";
import { type DemoFleet, demoFleet } from "../../simulator/demo.ts";

function hasScript(): boolean {
  try {
    execFileSync("script", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
const scriptAvailable = hasScript();
if (!scriptAvailable) {
  console.warn(
    "SKIPPING test/hub/watch.test.ts: `script` is missing; install it with: apt-get install util-linux",
  );
}

/** The last full frame the watcher drew, without escape sequences, as lines. */
function lastFrame(raw: string): string[] {
  const frames = raw.split("\x1b[H");
  const frame = frames[frames.length - 1] ?? "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are what is stripped
  return frame.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").split(/\r?\n/);
}

async function until(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.skipIf(!scriptAvailable)("ganglion watch in a terminal", () => {
  let work: string;
  let hub: RunningHub;
  let demo: DemoFleet;
  let watcher: ChildProcess | undefined;
  let raw = "";

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "ganglion-watch-"));
    const silent = pino({ level: "silent" });
    // The Pis are enough to watch a restart; the emulated Unos would only add CPU.
    demo = await demoFleet({ dir: join(work, "sim"), logger: silent, unos: false });
    const config = FleetConfigSchema.parse({});
    config.devices.push(...demo.devices);
    hub = await startHub({ config, dataDir: join(work, "data"), httpPort: 0, mqttPort: 0, logger: silent });
    await demo.start(hub.mqttUrl);
  }, 30_000);

  afterAll(async () => {
    if (watcher && watcher.exitCode === null) watcher.kill("SIGKILL");
    await demo?.stop();
    await hub?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("shows the tree, then a killed sensor's restart; q quits with exit 0", async () => {
    const command = `stty cols 160 rows 50; exec node --import tsx hub/cli.ts watch --url ${hub.httpUrl}`;
    watcher = spawn("script", ["-qefc", command, "/dev/null"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: undefined, TERM: "xterm-256color" },
    });
    watcher.stdout?.on("data", (c: Buffer) => {
      raw += c.toString();
    });
    const exited = new Promise<number | null>((r) => watcher!.once("exit", (code) => r(code)));
    const screen = () => lastFrame(raw).join("\n");

    // Each device's supervisor with its strategy and device status, and every part under it.
    await until(
      () => /tank-pi running online rest_for_one ↻0 budget 0\/3 in 5s/.test(screen()),
      20_000,
      () => `the tree with tank-pi online; screen:\n${screen()}`,
    );
    const sensorLines = (name: string) => lastFrame(raw).filter((l) => l.includes(`─ ${name} `));
    expect(sensorLines("water-temp")).toHaveLength(2);
    expect(screen()).toContain("greenhouse-pi running online");
    expect(screen()).toMatch(/^ganglion watch http:\/\/127\.0\.0\.1:\d+ {2}live/m);
    // Colour and text: the status word is there with its colour code in the raw stream.
    expect(raw).toContain("\x1b[32mrunning\x1b[0m");

    exit(hub.context.names.whereis(partName("tank-pi", "water-temp"))!, "kill");
    await until(
      () => sensorLines("water-temp").some((l) => / running ↻1 last exit: killed at \d\d:\d\d:\d\d/.test(l)),
      5000,
      () => `the restart of tank-pi/water-temp; screen:\n${screen()}`,
    );
    // Only the killed one restarted, and the event tail has it.
    expect(sensorLines("water-temp").filter((l) => l.includes("↻0"))).toHaveLength(1);
    await until(
      () => /restarted +hub\/fleet\/tank-pi\/sensors\/water-temp restarts 1/.test(screen()),
      2000,
      () => `the restarted event; screen:\n${screen()}`,
    );
    // The supervisor's budget counts it.
    expect(screen()).toMatch(/sensors running one_for_one ↻0 budget 1\/3 in 5s/);

    watcher.stdin?.write("q");
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r("still running"), 5000))]);
    expect(code).toBe(0);
    // The terminal is handed back: cursor shown, main screen restored.
    expect(raw.endsWith("\x1b[?25h\x1b[?1049l")).toBe(true);
  }, 40_000);
});
