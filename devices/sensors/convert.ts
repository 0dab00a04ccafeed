/**
 * The hub-side sensor driver's conversion: turns a raw reading off the wire into the sensor's value. Pure and
 * free of runtime imports, so the same code runs on the main thread (the healthy path) and inside an isolated
 * driver's worker thread (while a `hang` fault is set; see isolated-driver.ts).
 */
import type { SensorKind } from "../../hub/config.ts";

/** Kinds whose boards report levels as 0/1; the hub reports them as booleans. */
const LEVEL_KINDS: ReadonlySet<SensorKind> = new Set<SensorKind>(["button", "digital-in"]);

/**
 * The value a raw reading stands for: a level sensor's 0/1 becomes false/true; anything else is passed on as it
 * came, for validation to accept or reject.
 */
export function convertRaw(kind: SensorKind, raw: unknown): unknown {
  return (raw === 0 || raw === 1) && LEVEL_KINDS.has(kind) ? raw === 1 : raw;
}
