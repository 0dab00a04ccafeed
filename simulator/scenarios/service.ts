/**
 * Shipped scenarios on request, for `GET /api/scenarios` and `POST /api/scenarios/:name/run`: one run at a time
 * (two runs' faults would spoil each other's expectations), each line of its timeline recorded as a hub event of
 * type `scenario` (history, `hub/events` on MQTT, `/api/live`), so the dashboard and `ganglion watch` follow it.
 */
import type { Logger } from "pino";
import type { HubEvent } from "../../hub/store.ts";
import { HubApiError, type ScenarioControl, type ScenarioListing } from "../../hub/view.ts";
import { runScenario, type ScenarioHub, type ScenarioOutcome } from "./runner.ts";
import type { Scenario } from "./schema.ts";

/** The scenario service the API calls (through the hub's {@link ScenarioControl}). */
export interface ScenarioService extends ScenarioControl {
  /** Resolves when the current run (if any) ends. */
  idle(): Promise<void>;
}

/** Builds the service over `hub` for `scenarios`; `emit` records hub events. */
export function scenarioService(options: {
  hub: ScenarioHub;
  scenarios: readonly Scenario[];
  emit: (event: HubEvent) => void;
  log: Logger;
}): ScenarioService {
  const byName = new Map(options.scenarios.map((s) => [s.name, s]));
  const last = new Map<string, ScenarioListing["last"]>();
  let current: { name: string; done: Promise<void> } | null = null;

  const finish = (name: string, outcome: ScenarioOutcome) => {
    last.set(name, { ok: outcome.ok, broken: outcome.broken, finishedAt: Date.now() });
    options.log.info({ scenario: name, ok: outcome.ok, broken: outcome.broken }, "scenario finished");
  };

  return {
    list: () =>
      [...byName.values()].map((s) => {
        const l = last.get(s.name);
        return {
          name: s.name,
          description: s.description,
          durationMs: s.duration,
          running: current?.name === s.name,
          ...(l ? { last: l } : {}),
        };
      }),
    start(name) {
      const scenario = byName.get(name);
      if (!scenario) {
        const known = [...byName.keys()].join(", ") || "none";
        throw new HubApiError(404, "unknown-scenario", `no scenario "${name}" (shipped: ${known})`);
      }
      if (current) {
        throw new HubApiError(
          409,
          "scenario-running",
          `scenario "${current.name}" is running; wait for it to end`,
        );
      }
      const path = `hub/scenarios/${name}`;
      const done = runScenario(options.hub, scenario, {
        onLine: (line) =>
          options.emit({
            type: "scenario",
            path,
            ts: Date.now(),
            reason: line.text,
            line: line.kind,
            atMs: line.atMs,
          }),
      })
        .then((outcome) => finish(name, outcome))
        .catch((err: Error) => {
          // A fault the hub refused (e.g. the scenario names a device this fleet does not have).
          options.emit({
            type: "scenario",
            path,
            ts: Date.now(),
            reason: `✗ could not run: ${err.message}`,
            line: "fail",
          });
          finish(name, { name, ok: false, lines: [], broken: [err.message] });
        })
        .finally(() => {
          current = null;
        });
      current = { name, done };
      options.log.info({ scenario: name }, "scenario started");
      return { name, durationMs: scenario.duration };
    },
    idle: () => current?.done ?? Promise.resolve(),
  };
}
