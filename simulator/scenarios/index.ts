/**
 * The scenarios Ganglion ships (`simulator/scenarios/shipped/*.yaml`): chaos tests for the demo fleet that
 * `ganglion simulate --scenario <name|file>` and `POST /api/scenarios/:name/run` run, and CI runs as tests.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadScenario, type Scenario } from "./schema.ts";

export {
  formatLine,
  formatOutcome,
  runScenario,
  type ScenarioHub,
  type ScenarioOutcome,
  type TimelineLine,
} from "./runner.ts";
export { loadScenario, parseDuration, parseScenario, type Scenario } from "./schema.ts";

/** Where the shipped scenario files live. */
export const SHIPPED_DIR = fileURLToPath(new URL("./shipped/", import.meta.url));

/** A shipped scenario, as `GET /api/scenarios` lists it. */
export interface ScenarioSummary {
  name: string;
  description: string;
  durationMs: number;
}

/** Every shipped scenario, by name. */
export async function shippedScenarios(): Promise<Scenario[]> {
  const files = (await readdir(SHIPPED_DIR)).filter((f) => f.endsWith(".yaml")).sort();
  return Promise.all(files.map((f) => loadScenario(join(SHIPPED_DIR, f))));
}

/** A shipped scenario by name, or a scenario file by path (anything with a `/` or ending in `.yaml`/`.yml`). */
export async function resolveScenario(nameOrPath: string): Promise<Scenario> {
  if (nameOrPath.includes("/") || /\.ya?ml$/.test(nameOrPath)) return loadScenario(nameOrPath);
  const all = await shippedScenarios();
  const found = all.find((s) => s.name === nameOrPath);
  if (!found) {
    throw new Error(`no shipped scenario "${nameOrPath}" (shipped: ${all.map((s) => s.name).join(", ")})`);
  }
  return found;
}

/** The summary of a scenario. */
export function summarize(s: Scenario): ScenarioSummary {
  return { name: s.name, description: s.description, durationMs: s.duration };
}
