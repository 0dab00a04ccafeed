/**
 * The shipped scenarios, run as CI runs a user's chaos tests: each starts the hub and the demo fleet (emulated Unos
 * running the real firmware, virtual Pis running the real agent) in this process, injects its faults on time and
 * must see every expectation hold. A scenario that expects what does not happen must be reported broken.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { FleetConfigSchema } from "../../hub/config.ts";
import { startHub } from "../../hub/hub.ts";
import { demoFleet, UNO_HEX } from "../../simulator/demo.ts";
import { formatOutcome, parseScenario, shippedScenarios } from "../../simulator/scenarios/index.ts";
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

describe("a broken expectation", () => {
  it("is reported with what was expected, and the run is not ok", { timeout: 60_000 }, async () => {
    const scenario = parseScenario(
      `name: wrong-sensor
duration: 4s
warmup: 10s
timeline:
  - at: 1s
    inject: { kind: throws, device: uno-1, sensor: temp, for: 1s }
  - at: 1s
    expect: { restarted: uno-2/temp, within: 2s }
  - at: 1s
    expect: { restarted: uno-1/temp, within: 2s }
`,
      "wrong-sensor.yaml",
    );
    const outcome = await runScenarioOnDemo(scenario);
    expect(outcome.ok).toBe(false);
    expect(outcome.broken).toEqual(["✗ uno-2/temp restarted: not within 2.00 s"]);
    expect(formatOutcome(outcome)).toMatch(/✓ uno-1\/temp restarted/);
  });
});

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
