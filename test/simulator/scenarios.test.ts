/**
 * The shipped scenarios, run as CI runs a user's chaos tests: each starts the hub and the demo fleet (emulated Unos
 * running the real firmware, virtual Pis running the real agent) in this process, injects its faults on time and
 * must see every expectation hold. A scenario that expects what does not happen must be reported broken.
 */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { UNO_HEX } from "../../simulator/demo.ts";
import { formatOutcome, parseScenario, shippedScenarios } from "../../simulator/scenarios/index.ts";
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
