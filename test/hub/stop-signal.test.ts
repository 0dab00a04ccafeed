/**
 * hub/cli/stop-signal.ts: one Ctrl-C delivered twice (the terminal's process group, then a relaying parent) still
 * stops cleanly; Ctrl-C pressed again later gives up waiting.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
// A command whose clean stop takes `stopMs`, as `ganglion start` stopping its boards and history does.
const script = (stopMs: number) => `
const { onStopSignal } = await import("./hub/cli/stop-signal.ts");
onStopSignal((signal) => {
  console.log("stopping " + signal);
  setTimeout(() => { console.log("stopped"); process.exit(0); }, ${stopMs});
});
console.log("ready");
setInterval(() => {}, 1000);
`;

function run(stopMs: number): {
  child: ChildProcess;
  out: () => string;
  ready: Promise<void>;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script(stopMs)], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const ready = new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes("ready")) resolve();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
  });
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, out: () => out, ready, exit };
}

describe("stop signals", () => {
  it("takes one Ctrl-C delivered twice as one, and finishes the clean stop", async () => {
    const p = run(400);
    await p.ready;
    p.child.kill("SIGINT");
    // The relayed copy comes a moment later, once the relaying parent's own handler has run.
    await new Promise((r) => setTimeout(r, 50));
    p.child.kill("SIGINT");
    expect(await p.exit).toBe(0);
    expect(p.out()).toContain("stopping SIGINT\n");
    expect(p.out()).toContain("stopped\n");
  }, 20_000);

  it("exits at once on a second Ctrl-C a while later", async () => {
    const p = run(30_000);
    await p.ready;
    p.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 1300));
    p.child.kill("SIGINT");
    expect(await p.exit).toBe(130);
    expect(p.out()).toContain("SIGINT again: exiting without waiting for the stop to finish");
    expect(p.out()).not.toContain("stopped\n");
  }, 20_000);
});
