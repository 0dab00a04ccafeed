/**
 * `ganglion simulate --scenario`: a scenario needs the hub and the simulated fleet it names, so this starts both in
 * one process (the demo fleet, on free ports, with its history in a scratch directory), runs the scenario, and
 * stops everything, whatever happened. The outcome says whether every expectation held.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { FleetConfigSchema } from "../../hub/config.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { demoFleet } from "../demo.ts";
import { runScenario, type ScenarioOutcome, type TimelineLine } from "./runner.ts";
import type { Scenario } from "./schema.ts";

/** Options of {@link runScenarioOnDemo}. */
export interface StandaloneOptions {
  /** The demo fleet's seed (default 42): the same seed, the same readings. */
  seed?: number;
  /** Called with each timeline line as it happens. */
  onLine?: (line: TimelineLine) => void;
  /** Hub and simulator logs (default: silent, the timeline is the output). */
  logger?: Logger;
  /** Where the history goes (default: a scratch directory removed afterwards). */
  dataDir?: string;
}

/** Starts the hub with the demo fleet, runs `scenario` against it, stops both. */
export async function runScenarioOnDemo(
  scenario: Scenario,
  options: StandaloneOptions = {},
): Promise<ScenarioOutcome> {
  const logger = options.logger ?? pino({ level: "silent" });
  const scratch = mkdtempSync(join(tmpdir(), "ganglion-scenario-"));
  const dataDir = options.dataDir ?? join(scratch, "data");
  const demo = await demoFleet({
    dir: join(scratch, "sim"),
    logger,
    ...(options.seed === undefined ? {} : { seed: options.seed }),
  });
  let hub: RunningHub | undefined;
  try {
    const config = FleetConfigSchema.parse({});
    config.devices.push(...demo.devices);
    hub = await startHub({
      config,
      dataDir,
      httpPort: 0,
      mqttPort: 0,
      logger,
      serialOpener: demo.serialOpener,
      physicalFaults: demo.faults,
    });
    await demo.start(hub.mqttUrl);
    return await runScenario(hub, scenario, options.onLine ? { onLine: options.onLine } : {});
  } finally {
    // Boards first, as a user would unplug them before stopping the hub.
    await demo.stop();
    await hub?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
