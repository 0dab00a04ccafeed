/** The sensor actor's reading checks (devices/sensors/validate.ts): the rate bound around a glitch. */
import { describe, expect, it } from "vitest";
import { checkReading, type History, remember } from "../../devices/sensors/validate.ts";
import type { SensorConfig } from "../../hub/config.ts";

const lm35 = {
  id: "temp",
  kind: "thermometer",
  periodMs: 500,
  range: [-40, 125],
  maxRatePerS: 20,
} as unknown as SensorConfig;

/** Feeds readings 500 ms apart through check and remember, as the sensor actor does; returns each verdict's flag. */
function feed(values: number[]): (string | undefined)[] {
  let history: History = { lastValue: null, lastTs: null, changedAt: null };
  return values.map((value, i) => {
    const ts = 1_000 + i * 500;
    const verdict = checkReading(lm35, value, ts, history);
    if (!verdict.ok) return verdict.reason;
    history = remember(history, value, ts, verdict.flag);
    return verdict.flag;
  });
}

describe("the rate bound (noise)", () => {
  it("flags a jump, and not the return to where the value was before it (a loose wire reconnected)", () => {
    expect(feed([21, 21.2, 95, 21.3, 21.4])).toEqual([undefined, undefined, "noise", undefined, undefined]);
  });

  it("flags every reading while it jumps about", () => {
    expect(feed([21, 21.1, 90, -30, 80, 21.2])).toEqual([
      undefined,
      undefined,
      "noise",
      "noise",
      "noise",
      undefined,
    ]);
  });

  it("flags a real step once, then follows the new level", () => {
    expect(feed([21, 21, 60, 60.2, 60.4])).toEqual([undefined, undefined, "noise", undefined, undefined]);
  });

  it("rejects what lies outside the range, whatever the rate", () => {
    expect(feed([21, 200, 21.1])).toEqual([undefined, "range", undefined]);
  });
});
