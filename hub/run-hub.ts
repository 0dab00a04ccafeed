/**
 * Runs a hub from command-line options: reads the fleet file, adds the demo fleet with `--simulate`, starts the
 * supervision tree, prints the two start-up lines of DESIGN.md, and stops everything on SIGINT/SIGTERM.
 */

import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pino, { type Logger } from "pino";
import { demoFleet } from "../simulator/demo.ts";
import { shippedScenarios } from "../simulator/scenarios/index.ts";
import { scenarioService } from "../simulator/scenarios/service.ts";
import { isLoopbackHost, PortInUseError } from "./api.ts";
import { ExternalBrokerError, type ExternalBrokerSettings } from "./broker/external.ts";
import { MqttPortInUseError } from "./broker.ts";
import { onStopSignal } from "./cli/stop-signal.ts";
import { type FleetConfig, FleetConfigSchema, loadFleetConfig } from "./config.ts";
import { type RunningHub, startHub } from "./hub.ts";
import { StartError } from "./runtime/index.ts";

/** What `ganglion start` passes. Ports and hosts left out come from the fleet file's `hub:` block. */
export interface RunHubOptions {
  config?: string;
  httpHost?: string;
  httpPort?: number;
  mqttHost?: string;
  mqttPort?: number;
  /** Use an external MQTT broker instead of the embedded one (`--broker`; the URL may come from the fleet file). */
  broker?: Partial<ExternalBrokerSettings>;
  dataDir?: string;
  apiToken?: string;
  simulate?: boolean;
  /** Seed of the demo fleet's models (default: GANGLION_SEED, else 42): the same seed, the same readings. */
  seed?: number;
  /** Directory served at `/` (default: the built dashboard, {@link DASHBOARD_DIR}). */
  staticDir?: string;
}

/** The dashboard's bundle, built by `npm install` (the `prepare` script) or `npm run build:dashboard`. */
export const DASHBOARD_DIR = fileURLToPath(new URL("./dashboard/dist/", import.meta.url));

/** A port clash or another start failure the CLI reports in one line with an exit code. */
export class HubStartError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "HubStartError";
  }
}

/** A logger for the terminal: readable when stderr is a TTY, JSON lines otherwise; always on stderr. */
export function terminalLogger(): Logger {
  const level = process.env.GANGLION_LOG_LEVEL ?? "info";
  if (process.stderr.isTTY) {
    return pino({
      level,
      transport: { target: "pino-pretty", options: { destination: 2, translateTime: "HH:MM:ss" } },
    });
  }
  return pino({ level }, pino.destination(2));
}

async function readConfig(path: string | undefined): Promise<FleetConfig> {
  if (path !== undefined) return loadFleetConfig(path);
  if (existsSync("fleet.yaml")) return loadFleetConfig("fleet.yaml");
  return FleetConfigSchema.parse({});
}

/**
 * The API token to use: the given one, or off loopback a fresh one printed once (`ganglion: api token ...`).
 * On loopback without a token, `undefined` (mutating routes are open to this machine's users).
 */
export function resolveApiToken(host: string, given: string | undefined): string | undefined {
  if (given) return given;
  if (isLoopbackHost(host)) return undefined;
  const token = randomBytes(24).toString("base64url");
  console.log(
    `ganglion: api token (new each start; pass --api-token or GANGLION_API_TOKEN to keep one): ${token}`,
  );
  return token;
}

/**
 * The dashboard's address for the start-up line: `http://HOST:PORT/`, and when the hub requires a token (one was
 * given, or generated because it binds beyond loopback) `http://HOST:PORT/#token=…`. The fragment never leaves the
 * browser (it is not sent to the server); the page keeps the token for its tab and removes it from the address bar.
 */
export function dashboardLink(httpUrl: string, apiToken: string | undefined): string {
  if (apiToken === undefined) return `${httpUrl}/`;
  return `${httpUrl}/#token=${encodeURIComponent(apiToken)}`;
}

/** Finds the cause behind a failed start (the supervisor wraps a child's failure). */
function rootCause(err: unknown): unknown {
  let e = err;
  while (e instanceof StartError && e.reason !== undefined && e.reason !== e) e = e.reason;
  return e;
}

/** Starts the hub (and the demo fleet); resolves once both listening lines are printed. */
export async function runHub(options: RunHubOptions): Promise<{ hub: RunningHub; stop(): Promise<void> }> {
  const log = terminalLogger();
  const config = await readConfig(options.config);
  const dataDir = options.dataDir ?? config.hub.dataDir;
  const demo = options.simulate
    ? await demoFleet({
        dir: join(resolve(dataDir), "simulator"),
        logger: log,
        seed: options.seed ?? (Number(process.env.GANGLION_SEED) || 42),
      })
    : undefined;
  // The shipped scenarios name the demo's boards, so the API offers them in simulator mode only.
  const shipped = demo === undefined ? [] : await shippedScenarios();
  if (demo !== undefined) {
    const taken = new Set(config.devices.map((d) => d.id));
    for (const device of demo.devices) if (!taken.has(device.id)) config.devices.push(device);
  }
  const staticDir = options.staticDir ?? DASHBOARD_DIR;
  const dashboardBuilt = existsSync(join(staticDir, "index.html"));
  // The token depends on where HTTP really binds: the flag, else the fleet file.
  const httpHost = options.httpHost ?? config.hub.http.host;
  const apiToken = resolveApiToken(httpHost, options.apiToken);
  let hub: RunningHub;
  try {
    hub = await startHub({
      config,
      dataDir,
      logger: log,
      ...(options.httpHost === undefined ? {} : { httpHost: options.httpHost }),
      ...(options.httpPort === undefined ? {} : { httpPort: options.httpPort }),
      ...(options.mqttHost === undefined ? {} : { mqttHost: options.mqttHost }),
      ...(options.mqttPort === undefined ? {} : { mqttPort: options.mqttPort }),
      ...(options.broker === undefined ? {} : { broker: options.broker }),
      ...(apiToken === undefined ? {} : { apiToken }),
      ...(dashboardBuilt ? { staticDir } : {}),
      // The demo's emulated Unos are opened like real ports; any other serial board in fleet.yaml with serialport.
      ...(demo === undefined
        ? {}
        : {
            serialOpener: demo.serialOpener,
            physicalFaults: demo.faults,
            scenarios: (running) =>
              scenarioService({ hub: running, scenarios: shipped, emit: running.context.emit, log }),
          }),
    });
  } catch (err) {
    await demo?.stop();
    const cause = rootCause(err);
    if (
      cause instanceof MqttPortInUseError ||
      cause instanceof PortInUseError ||
      cause instanceof ExternalBrokerError
    ) {
      throw new HubStartError((cause as Error).message, 2);
    }
    throw err;
  }
  console.log(`ganglion: http listening on ${hub.httpUrl}`);
  if (hub.externalBroker) {
    console.log(
      `ganglion: mqtt broker ${hub.mqttUrl} (external; device logins and ACLs are that broker's job)`,
    );
  } else console.log(`ganglion: mqtt listening on ${hub.mqttUrl}`);
  if (dashboardBuilt) console.log(`ganglion: dashboard at ${dashboardLink(hub.httpUrl!, apiToken)}`);
  else log.warn({ staticDir }, "the dashboard is not built; run npm run build:dashboard to serve it at /");
  if (demo !== undefined) {
    await demo.start(hub.mqttUrl);
    console.log(`ganglion: simulating ${demo.devices.map((d) => d.id).join(", ")} (seed ${demo.seed})`);
    const uno = demo.unos.keys().next().value;
    // With a token in force the hints carry it the way users pass it (env var), never the token itself.
    const needsToken = apiToken !== undefined;
    const envHint = needsToken ? "GANGLION_API_TOKEN=<api token> " : "";
    const auth = needsToken ? `-H "Authorization: Bearer $GANGLION_API_TOKEN" ` : "";
    if (uno !== undefined) {
      console.log(
        `ganglion: inject a fault:  ${envHint}ganglion fault ${uno} throws --sensor temp --for 10s  or  ` +
          `curl -X POST ${auth}-H 'content-type: application/json' ` +
          `-d '{"kind":"disconnect","device":"${uno}","durationMs":20000}' ${hub.httpUrl}/api/faults`,
      );
    }
    const pi = demo.devices.find((d) => d.link.type === "mqtt")?.id ?? "greenhouse-pi";
    console.log(
      `ganglion: try  curl ${hub.httpUrl}/api/devices  or  curl -X POST ${auth}-H 'content-type: application/json' ` +
        `-d '{"target":"pump","op":"close"}' ${hub.httpUrl}/api/devices/${pi}/commands`,
    );
  }
  let stopping: Promise<void> | undefined;
  const stop = () => {
    // The hub first: its links close the boards' ports themselves. Boards vanishing under a running hub is what
    // a pulled cable looks like, and it logged "check the USB cable" on every Ctrl-C.
    stopping ??= (async () => {
      await hub.stop();
      await demo?.stop();
    })();
    return stopping;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    // Said on the terminal: stopping the boards and closing the history can take a second or two.
    console.log(`ganglion: stopping (${signal})…`);
    void stop().then(() => {
      console.log("ganglion: stopped");
      process.exit(0);
    });
  };
  onStopSignal(onSignal);
  return { hub, stop };
}
