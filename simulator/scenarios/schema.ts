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
import { parseDuration as parseFaultDuration } from "../../hub/faults/duration.ts";

/** Parses `500ms`, `1.5s`, `2m`, `1h` (or a number of ms) into milliseconds; undefined if it is not one. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === "number") return Number.isFinite(text) && text >= 0 ? text : undefined;
  try {
    return parseFaultDuration(text);
  } catch {
    return undefined;
  }
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

/** Requires exactly one of `keys` in an object (zod's unions would only say "Invalid input"). */
function exactlyOne(keys: readonly string[], what: string) {
  return (value: Record<string, unknown>, ctx: z.RefinementCtx) => {
    const present = keys.filter((k) => value[k] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message: `expected exactly one of ${keys.join(", ")} in ${what}${present.length > 1 ? ` (found ${present.join(", ")})` : ""}`,
      });
    }
  };
}

const EXPECTATION_KEYS = ["restarted", "healthy", "status", "gave-up", "replayed"] as const;
const expectation = z
  .strictObject({
    restarted: target.optional(),
    healthy: target.optional(),
    status: z.enum(["online", "offline", "down"]).optional(),
    device: target.optional(),
    "gave-up": target.optional(),
    replayed: target.optional(),
    "at-least": z.number().int().positive().optional(),
    within: duration,
  })
  .superRefine(exactlyOne(EXPECTATION_KEYS, "an expectation"))
  .superRefine((e, ctx) => {
    if (e.status !== undefined && e.device === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["device"],
        message: "expected the device whose status is checked",
      });
    if (e.replayed !== undefined && e["at-least"] === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["at-least"],
        message: "expected how many readings (at-least: N)",
      });
  })
  .transform((e): Expectation => {
    const within = e.within;
    if (e.restarted !== undefined) return { type: "restarted", target: e.restarted, within };
    if (e.healthy !== undefined) return { type: "healthy", target: e.healthy, within };
    if (e.status !== undefined) return { type: "status", target: e.device ?? "", status: e.status, within };
    if (e["gave-up"] !== undefined) return { type: "gave-up", target: e["gave-up"], within };
    return { type: "replayed", target: e.replayed ?? "", atLeast: e["at-least"] ?? 1, within };
  });

/** A checked expectation: `target` is `device` or `device/sensor`; times in ms. */
export type Expectation =
  | { type: "restarted" | "healthy" | "gave-up"; target: string; within: number }
  | { type: "status"; target: string; status: "online" | "offline" | "down"; within: number }
  | { type: "replayed"; target: string; atLeast: number; within: number };

const step = z
  .strictObject({
    at: duration,
    inject: inject.optional(),
    clear: z.enum(["all"]).or(target).optional(),
    expect: expectation.optional(),
  })
  .superRefine(exactlyOne(["inject", "clear", "expect"], "a timeline step"));

const invariant = z
  .strictObject({
    "no-gap-longer-than": duration.optional(),
    "readings-lost": z.literal(0).optional(),
    except: z.array(target).default([]),
  })
  .superRefine(exactlyOne(["no-gap-longer-than", "readings-lost"], "a throughout expectation"))
  .transform(
    (v): Invariant =>
      v["no-gap-longer-than"] !== undefined
        ? { type: "no-gap", maxGapMs: v["no-gap-longer-than"], except: v.except }
        : { type: "no-loss", except: v.except },
  );

/** A whole-run expectation: no sensor silent for longer than `maxGapMs`, or no seq number missing. */
export type Invariant =
  | { type: "no-gap"; maxGapMs: number; except: string[] }
  | { type: "no-loss"; except: string[] };

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
    const end = s.at + (s.expect?.within ?? 0);
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
