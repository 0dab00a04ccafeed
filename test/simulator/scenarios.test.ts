/**
 * The shipped scenarios, run as CI runs a user's chaos tests: each starts the hub and the demo fleet (emulated Unos
 * running the real firmware, virtual Pis running the real agent) in this process, injects its faults on time and
 * must see every expectation hold. A scenario that expects what does not happen must be reported broken.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { FleetConfigSchema } from "../../hub/config.ts";
import { startHub } from "../../hub/hub.ts";
import { demoFleet, UNO_HEX } from "../../simulator/demo.ts";
import { formatOutcome, shippedScenarios } from "../../simulator/scenarios/index.ts";
import { scenarioService } from "../../simulator/scenarios/service.ts";
import { runScenarioOnDemo } from "../../simulator/scenarios/standalone.ts";

const scenarios = await shippedScenarios();
if (!existsSync(UNO_HEX)) {
  throw new Error(
    `${UNO_HEX} is missing: the demo's Unos run it (it is committed; run make -C firmware/arduino)`,
  );
}

describe("shipped scenarios", () => {
  for (const scenario of scenarios) {
    it(`${scenario.name}: every expectation holds`, {
      timeout: scenario.duration + scenario.warmup + 60_000,
    }, async () => {
      const outcome = await runScenarioOnDemo(scenario);
      expect(outcome.ok, formatOutcome(outcome)).toBe(true);
      expect(outcome.lines.some((l) => l.kind === "fault")).toBe(true);
    });
  }
});

describe("ganglion simulate --scenario", () => {
  it("prints the timeline and exits 1 on a broken expectation; an unknown name is one line", {
    timeout: 90_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "ganglion-scn-cli-"));
    const file = join(dir, "wrong-board.yaml");
    writeFileSync(
      file,
      `name: wrong-board
duration: 3s
timeline:
  - at: 1s
    inject: { kind: reboot, device: uno-1 }
  - at: 1s
    expect: { restarted: greenhouse-pi, within: 1s }
`,
    );
    try {
      const broken = await cli(["simulate", "--scenario", file]);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toMatch(/⚡ inject reboot on uno-1/);
      expect(broken.stdout).toMatch(/✗ greenhouse-pi restarted: not within 1.00 s/);
      expect(broken.stderr.trim()).toBe("ganglion: scenario wrong-board: 1 expectation(s) broken");
      const unknown = await cli(["simulate", "--scenario", "nope"]);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr.trim()).toMatch(
        /^ganglion: no shipped scenario "nope" \(shipped: .*sensor-throws/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Runs the CLI in its own process. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "hub/cli.ts", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("scenarios over the API", () => {
  it("lists the shipped ones, runs one (202) with its timeline as scenario events, 409 while running, 404 unknown", {
    timeout: 90_000,
  }, async () => {
    const scratch = mkdtempSync(join(tmpdir(), "ganglion-scn-api-"));
    const logger = pino({ level: "silent" });
    const demo = await demoFleet({ dir: join(scratch, "sim"), logger });
    const config = FleetConfigSchema.parse({});
    config.devices.push(...demo.devices);
    const hub = await startHub({
      config,
      dataDir: join(scratch, "data"),
      httpPort: 0,
      mqttPort: 0,
      logger,
      serialOpener: demo.serialOpener,
      physicalFaults: demo.faults,
      scenarios: (running) =>
        scenarioService({ hub: running, scenarios, emit: running.context.emit, log: logger }),
    });
    try {
      await demo.start(hub.mqttUrl);
      const api = (path: string, method = "GET") => fetch(`${hub.httpUrl}${path}`, { method });
      const listed = (await (await api("/api/scenarios")).json()) as { name: string; running: boolean }[];
      expect(listed.map((s) => s.name).sort()).toEqual(scenarios.map((s) => s.name).sort());

      const run = await api("/api/scenarios/sensor-throws/run", "POST");
      expect(run.status).toBe(202);
      expect(await run.json()).toEqual({ name: "sensor-throws", durationMs: 14_000 });
      const again = await api("/api/scenarios/broker-restart/run", "POST");
      expect(again.status).toBe(409);
      expect(((await again.json()) as { error: { message: string } }).error.message).toMatch(/sensor-throws/);
      const unknown = await api("/api/scenarios/nope/run", "POST");
      expect(unknown.status).toBe(404);

      await expect
        .poll(
          async () =>
            ((await (await api("/api/scenarios")).json()) as { name: string; last?: { ok: boolean } }[]).find(
              (s) => s.name === "sensor-throws",
            )?.last,
          { timeout: 60_000, interval: 500 },
        )
        .toEqual(expect.objectContaining({ ok: true }));
      const events = (await (await api("/api/events?type=scenario&limit=1000")).json()) as {
        reason: string;
      }[];
      expect(events.map((e) => e.reason)).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/✓ uno-1\/temp restarted/),
          "scenario sensor-throws: passed",
        ]),
      );
    } finally {
      await demo.stop();
      await hub.stop();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
