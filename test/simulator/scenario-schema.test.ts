/** Scenario files: the shipped ones are valid, and a broken file says where and what, like the fleet file. */
import { describe, expect, it } from "vitest";
import { FleetConfigError } from "../../hub/config.ts";
import {
  parseDuration,
  parseScenario,
  resolveScenario,
  shippedScenarios,
} from "../../simulator/scenarios/index.ts";

const valid = `name: t
duration: 10s
timeline:
  - at: 1s
    inject: { kind: throws, device: uno-1, sensor: temp, for: 2s }
  - at: 1s
    expect: { restarted: uno-1/temp, within: 1s }
throughout:
  - no-gap-longer-than: 3s
    except: [uno-1/temp]
`;

function errorOf(text: string): FleetConfigError {
  try {
    parseScenario(text, "s.yaml");
  } catch (err) {
    if (err instanceof FleetConfigError) return err;
    throw err;
  }
  throw new Error("expected a FleetConfigError");
}

describe("scenario files", () => {
  it("parses durations the way users write them", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration("soon")).toBeUndefined();
  });

  it("reads a valid scenario with durations in ms and defaults filled", () => {
    const s = parseScenario(valid, "s.yaml");
    expect(s.duration).toBe(10_000);
    expect(s.warmup).toBe(3000);
    expect(s.timeline[0]).toEqual({
      at: 1000,
      inject: { kind: "throws", device: "uno-1", sensor: "temp", for: 2000 },
    });
    expect(s.throughout[0]).toEqual({ type: "no-gap", maxGapMs: 3000, except: ["uno-1/temp"] });
    expect(s.timeline[1]?.expect).toEqual({ type: "restarted", target: "uno-1/temp", within: 1000 });
  });

  it("names the line and what is expected for a bad duration, an unknown fault kind and a typo'd key", () => {
    expect(errorOf(valid.replace("at: 1s\n    inject", "at: sooner\n    inject")).message).toMatch(
      /s\.yaml:4: timeline\[0\]\.at: expected a duration like 500ms/,
    );
    expect(errorOf(valid.replace("kind: throws", "kind: explodes")).message).toMatch(/s\.yaml:5: .*kind/);
    expect(errorOf(valid.replace("duration: 10s", "duraton: 10s")).message).toMatch(
      /did you mean "duration"/,
    );
  });

  it("refuses a step whose deadline falls after the end of the run", () => {
    expect(errorOf(valid.replace("within: 1s", "within: 20s")).message).toMatch(/after the run's duration/);
  });

  it("ships valid scenarios, found by name, and says which exist for an unknown one", async () => {
    const names = (await shippedScenarios()).map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["pi-partition", "broker-restart"]));
    expect((await resolveScenario("pi-partition")).timeline.length).toBeGreaterThan(0);
    await expect(resolveScenario("nope")).rejects.toThrow(
      /no shipped scenario "nope" \(shipped: .*pi-partition/,
    );
  });
});
