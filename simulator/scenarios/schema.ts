/**
 * A scenario file: a chaos test for a fleet, as YAML. A timeline of faults and of expectations with a deadline,
 * plus expectations that must hold for the whole run:
 *
 * ```yaml
 * name: sensor-throws
 * description: uno-1's thermometer driver raises; it is restarted alone and nobody else notices.
 * duration: 12s
 * timeline:
 *   - at: 3s
 *     inject: { kind: throws, device: uno-1, sensor: temp, for: 2s }
 *   - at: 3s
 *     expect: { restarted: uno-1/temp, within: 1s }
 *   - at: 5s
 *     expect: { healthy: uno-1/temp, within: 3s }
 * throughout:
 *   - no-gap-longer-than: 6s
 *     except: [uno-1/temp]
 *   - readings-lost: 0
 * ```
 *
 * Errors name the file, the line and what was expected, like the fleet file's.
 */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { z } from "zod";
import { FleetConfigError, formatIssue, issuesFromZod } from "../../hub/config/errors.ts";
import { parseFleetDocument } from "../../hub/config/parse.ts";
import { FAULT_KINDS, type FaultKind } from "../../hub/faults/contract.ts";

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `500ms`, `1.5s`, `2m`, `1h` (or a number of ms) into milliseconds; undefined if it is not one. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === "number") return Number.isFinite(text) && text >= 0 ? text : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(text);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (UNITS[m[2] as string] as number));
}

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({
      code: "custom",
      message: `expected a duration like 500ms, 5s or 2m, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return ms;
});

/** `device` or `device/sensor`. */
const target = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]*(\/[a-z0-9][a-z0-9_-]*)?$/, "expected `device` or `device/sensor`");

const faultKind = z.enum(Object.keys(FAULT_KINDS) as [FaultKind, ...FaultKind[]]);

const inject = z.strictObject({
  kind: faultKind,
  device: z.string().optional(),
  sensor: z.string().optional(),
  /** Cleared by itself after this long; otherwise at the end of the run. */
  for: duration.optional(),
});

const within = duration;
const expectation = z.union([
  z.strictObject({ restarted: target, within }),
  z.strictObject({ healthy: target, within }),
  z.strictObject({ status: z.enum(["online", "offline", "down"]), device: target, within }),
  z.strictObject({ "gave-up": target, within }),
  z.strictObject({ replayed: target, "at-least": z.number().int().positive(), within }),
]);

const step = z.union([
  z.strictObject({ at: duration, inject }),
  z.strictObject({ at: duration, clear: z.enum(["all"]).or(target) }),
  z.strictObject({ at: duration, expect: expectation }),
]);

const invariant = z.union([
  z.strictObject({ "no-gap-longer-than": duration, except: z.array(target).default([]) }),
  z.strictObject({ "readings-lost": z.literal(0), except: z.array(target).default([]) }),
]);

/** The schema of a scenario file. */
export const ScenarioSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "expected a name of lowercase letters, digits and dashes"),
  description: z.string().default(""),
  /** How long the run lasts; the timeline's faults are cleared at the end. */
  duration,
  /** Time given to the fleet to settle (every device online) before the timeline's 0. */
  warmup: duration.default(3000),
  timeline: z.array(step).min(1),
  throughout: z.array(invariant).default([]),
});

/** A validated scenario (durations in ms). */
export type Scenario = z.infer<typeof ScenarioSchema>;
/** One timeline step. */
export type ScenarioStep = Scenario["timeline"][number];
/** One expectation of the timeline. */
export type Expectation = z.infer<typeof expectation>;
/** One whole-run expectation. */
export type Invariant = Scenario["throughout"][number];

/**
 * Parses scenario YAML. Throws {@link FleetConfigError} with `file:line: path: expected …` lines (and a check that
 * every step's deadline falls inside the run).
 */
export function parseScenario(text: string, fileName: string): Scenario {
  const { doc, counter } = parseFleetDocument(text, fileName);
  const result = ScenarioSchema.safeParse(doc.toJS() ?? {}, { reportInput: true });
  if (!result.success)
    throw new FleetConfigError(issuesFromZod(result.error, fileName, doc, counter, ScenarioSchema));
  const scenario = result.data;
  for (const [i, s] of scenario.timeline.entries()) {
    const end = s.at + ("expect" in s ? s.expect.within : 0);
    if (end > scenario.duration) {
      throw new FleetConfigError([
        {
          file: fileName,
          line: 1,
          path: `timeline[${i}]`,
          message: `ends at ${end} ms, after the run's duration (${scenario.duration} ms)`,
        },
      ]);
    }
  }
  return scenario;
}

/** Reads and parses a scenario file. */
export async function loadScenario(path: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new FleetConfigError([
      { file: basename(path), line: 0, path: "", message: `cannot read ${path}: ${code}` },
    ]);
  }
  return parseScenario(text, basename(path));
}

export { formatIssue };
