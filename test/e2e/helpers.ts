/**
 * What the end-to-end tests share: Debian's chromium driven by playwright-core (never a downloaded browser) with a
 * fresh profile, and the hub with the demo fleet as `ganglion start --simulate` runs it, in this process.
 */
import { existsSync } from "node:fs";
import pino from "pino";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { FleetConfigSchema } from "../../hub/config.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import type { DemoFleet } from "../../simulator/demo.ts";
import { demoFleet } from "../../simulator/demo.ts";
import { shippedScenarios } from "../../simulator/scenarios/index.ts";
import { scenarioService } from "../../simulator/scenarios/service.ts";

export const CHROMIUM = "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM);

/** Logs `SKIPPING <file>` with how to get chromium, when it is missing. */
export function warnIfNoChromium(file: string): void {
  if (!hasChromium) {
    console.warn(`SKIPPING ${file}: ${CHROMIUM} is missing; install it with: apt-get install chromium`);
  }
}

/** Headless chromium with its own profile in `profileDir` (a fresh directory: no state from earlier runs). */
export function launchChromium(profileDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

export const silent = pino({ level: "silent" });

export interface DemoHub {
  hub: RunningHub;
  demo: DemoFleet;
  stop(): Promise<void>;
}

export interface DemoHubOptions {
  dataDir: string;
  simDir: string;
  httpPort: number;
  /** Served at `/`. */
  staticDir: string;
  /** Default 127.0.0.1 (tests bind nothing else). */
  httpHost?: string;
  /** Required on POST/DELETE when given. */
  apiToken?: string;
}

/** The hub with the demo fleet, as `ganglion start --simulate` runs it, serving `staticDir` at `/`. */
export async function startDemoHub(options: DemoHubOptions): Promise<DemoHub> {
  const demo = await demoFleet({ dir: options.simDir, logger: silent });
  const shipped = await shippedScenarios();
  const config = FleetConfigSchema.parse({});
  config.devices.push(...demo.devices);
  const hub = await startHub({
    config,
    dataDir: options.dataDir,
    httpPort: options.httpPort,
    ...(options.httpHost === undefined ? {} : { httpHost: options.httpHost }),
    ...(options.apiToken === undefined ? {} : { apiToken: options.apiToken }),
    mqttPort: 0,
    staticDir: options.staticDir,
    logger: silent,
    serialOpener: demo.serialOpener,
    physicalFaults: demo.faults,
    scenarios: (running) =>
      scenarioService({ hub: running, scenarios: shipped, emit: running.context.emit, log: silent }),
  });
  await demo.start(hub.mqttUrl);
  let stopped = false;
  return {
    hub,
    demo,
    async stop() {
      if (stopped) return;
      stopped = true;
      await demo.stop();
      await hub.stop();
    },
  };
}

/** Fills the page's fault form and presses Inject (as a user would, through labelled controls); returns Date.now(). */
export async function injectFromPage(
  page: Page,
  f: { device: string; sensor?: string; kind: string; seconds?: string },
): Promise<number> {
  const form = page.getByRole("form", { name: "Inject a fault" });
  await form.getByLabel("Device", { exact: true }).selectOption(f.device);
  await form.getByLabel("Sensor", { exact: true }).selectOption(f.sensor ?? "");
  await form.getByLabel("Fault", { exact: true }).selectOption(f.kind);
  await form.getByLabel("For (s)", { exact: true }).fill(f.seconds ?? "");
  const clickedAt = Date.now();
  await form.getByRole("button", { name: "Inject" }).click();
  return clickedAt;
}
