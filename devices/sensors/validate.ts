/**
 * Checks a sensor applies to each reading (pure functions; the sensor actor keeps the state between readings).
 * A reading is rejected (not stored as the sensor's value) when its type is wrong or it lies outside the valid
 * range; it is accepted but flagged when it moves faster than the rate bound (noise) or has not moved for the
 * flat-line window (stuck).
 */
import type { SensorConfig } from "../../hub/config.ts";
import type { ReadingValue } from "../../hub/store.ts";

/** Why a reading was rejected or flagged. */
export type Verdict =
  | { ok: true; flag?: "noise" | "stuck" }
  | { ok: false; reason: "type" | "range" | "nan"; message: string };

/** What the checks remember from earlier readings. */
export interface History {
  lastValue: ReadingValue | null;
  lastTs: number | null;
  /** When the value last changed. */
  changedAt: number | null;
  /**
   * The last accepted reading that was not flagged as noise. The rate bound is checked against it as well as
   * against the previous reading: a value back to where it was before a glitch (a loose wire reconnected) is not
   * noise, even though it jumps from the glitch.
   */
  steadyValue?: number | null;
  steadyTs?: number | null;
}

const NUMERIC = new Set(["thermometer", "analog", "humidity", "light"]);
const BOOLEAN = new Set(["button", "digital-in"]);

/** Whether going from `from` (at `fromTs`) to `value` (at `ts`) is faster than `maxPerS`. */
function tooFast(value: number, ts: number, from: number, fromTs: number, maxPerS: number): boolean {
  return Math.abs(value - from) / (Math.max(1, ts - fromTs) / 1000) > maxPerS;
}

/** Validates one reading against the sensor's configuration and its history. */
export function checkReading(config: SensorConfig, value: unknown, ts: number, history: History): Verdict {
  if (NUMERIC.has(config.kind)) {
    if (typeof value !== "number") {
      return {
        ok: false,
        reason: "type",
        message: `expected a number from ${config.kind}, got ${typeof value}`,
      };
    }
    if (!Number.isFinite(value)) return { ok: false, reason: "nan", message: `${config.kind} read ${value}` };
    if (config.range !== undefined && (value < config.range[0] || value > config.range[1])) {
      return {
        ok: false,
        reason: "range",
        message: `${value} is outside the valid range [${config.range[0]}, ${config.range[1]}]`,
      };
    }
    if (
      config.maxRatePerS !== undefined &&
      typeof history.lastValue === "number" &&
      history.lastTs !== null
    ) {
      const max = config.maxRatePerS;
      const { steadyValue, steadyTs } = history;
      if (
        tooFast(value, ts, history.lastValue, history.lastTs, max) &&
        (typeof steadyValue !== "number" ||
          typeof steadyTs !== "number" ||
          tooFast(value, ts, steadyValue, steadyTs, max))
      )
        return { ok: true, flag: "noise" };
    }
  } else if (BOOLEAN.has(config.kind)) {
    if (typeof value !== "boolean" && value !== 0 && value !== 1) {
      return {
        ok: false,
        reason: "type",
        message: `expected true/false from ${config.kind}, got ${String(value)}`,
      };
    }
  }
  if (
    config.flatLineMs !== undefined &&
    history.changedAt !== null &&
    value === history.lastValue &&
    ts - history.changedAt >= config.flatLineMs
  ) {
    return { ok: true, flag: "stuck" };
  }
  return { ok: true };
}

/** The history after an accepted reading (`flag`: what {@link checkReading} flagged it as, if anything). */
export function remember(
  history: History,
  value: ReadingValue,
  ts: number,
  flag?: "noise" | "stuck",
): History {
  const changed = history.lastValue === null || value !== history.lastValue;
  const steady = flag !== "noise" && typeof value === "number";
  return {
    lastValue: value,
    lastTs: ts,
    changedAt: changed ? ts : history.changedAt,
    steadyValue: steady ? value : (history.steadyValue ?? null),
    steadyTs: steady ? ts : (history.steadyTs ?? null),
  };
}
