/**
 * `ganglion start`: runs the hub. {@link runStart} is the one place that builds it from the options, so the hub
 * core (`startHub`) replaces its body without touching the command's flags.
 */
import type { Command } from "commander";
import { action, CliError, parsePort } from "./common.ts";

/** Options of `ganglion start`. */
export interface StartOptions {
  /** Default: the fleet file's `hub.http.host` (127.0.0.1). */
  httpHost?: string;
  /** Default: GANGLION_HTTP_PORT, else the fleet file's `hub.http.port` (8080). */
  httpPort?: number;
  /** Bearer token for the API's mutating routes; needed (and generated if absent) off loopback. */
  apiToken?: string;
  mqttHost?: string;
  mqttPort?: number;
  /** The fleet file (default ./fleet.yaml when present). */
  config?: string;
  dataDir?: string;
  /** Add the demo fleet of virtual boards. */
  simulate?: boolean;
}

/** Starts the hub (hub/run-hub.ts) and prints its listening lines; a taken port exits 2. */
export async function runStart(opts: StartOptions): Promise<void> {
  // Loaded here, not at the top: other commands should not pay for loading the whole hub.
  const { HubStartError, runHub } = await import("../run-hub.ts");
  try {
    await runHub({
      ...(opts.httpHost === undefined ? {} : { httpHost: opts.httpHost }),
      ...(opts.httpPort === undefined ? {} : { httpPort: opts.httpPort }),
      ...(opts.mqttHost === undefined ? {} : { mqttHost: opts.mqttHost }),
      ...(opts.mqttPort === undefined ? {} : { mqttPort: opts.mqttPort }),
      ...(opts.config === undefined ? {} : { config: opts.config }),
      ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }),
      ...(opts.apiToken === undefined ? {} : { apiToken: opts.apiToken }),
      simulate: opts.simulate === true,
    });
  } catch (err) {
    if (err instanceof HubStartError) throw new CliError(err.message, err.exitCode);
    throw err;
  }
}

/** Registers `start`. */
export function registerStart(program: Command): void {
  program
    .command("start")
    .description("start the hub")
    .option("--http-host <host>", "address the HTTP API binds to (default: fleet file, else 127.0.0.1)")
    .option(
      "--http-port <port>",
      "HTTP port (0 picks a free port; env GANGLION_HTTP_PORT; default: fleet file, else 8080)",
      parsePort,
      process.env.GANGLION_HTTP_PORT === undefined ? undefined : parsePort(process.env.GANGLION_HTTP_PORT),
    )
    .option(
      "--api-token <token>",
      "bearer token for POST/DELETE when bound off loopback (env GANGLION_API_TOKEN; generated and printed once if absent)",
      process.env.GANGLION_API_TOKEN,
    )
    .option("--mqtt-host <host>", "address the embedded MQTT broker binds to (default 127.0.0.1)")
    .option(
      "--mqtt-port <port>",
      "MQTT port (0 picks a free port; env GANGLION_MQTT_PORT; default 1883)",
      parsePort,
      process.env.GANGLION_MQTT_PORT === undefined ? undefined : parsePort(process.env.GANGLION_MQTT_PORT),
    )
    .option("--config <file>", "the fleet file (default ./fleet.yaml when it exists)")
    .option("--data-dir <dir>", "where history is kept (default ./data)")
    .option("--simulate", "add the demo fleet of virtual boards (what npm start runs)")
    .action(action((opts: StartOptions) => runStart(opts)));
}
