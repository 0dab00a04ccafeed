/**
 * `ganglion start`: runs the hub. {@link runStart} is the one place that builds it from the options, so the hub
 * core (`startHub`) replaces its body without touching the command's flags.
 */
import { randomBytes } from "node:crypto";
import type { Command } from "commander";
import { action, CliError, parsePort } from "./common.ts";

/** Options of `ganglion start`. */
export interface StartOptions {
  httpHost: string;
  httpPort: number;
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

/**
 * The API token to use: the given one, or off loopback a fresh one printed once (`ganglion: api token ...`).
 * On loopback without a token, `undefined` (mutating routes are open to this machine's users).
 */
export async function resolveApiToken(host: string, given: string | undefined): Promise<string | undefined> {
  if (given) return given;
  const { isLoopbackHost } = await import("../api.ts");
  if (isLoopbackHost(host)) return undefined;
  const token = randomBytes(24).toString("base64url");
  console.log(
    `ganglion: api token (shown once; pass --api-token or GANGLION_API_TOKEN to keep one): ${token}`,
  );
  return token;
}

/** Starts the hub (hub/run-hub.ts) and prints its listening lines; a taken port exits 2. */
export async function runStart(opts: StartOptions): Promise<void> {
  // Loaded here, not at the top: other commands should not pay for loading the whole hub.
  const { HubStartError, runHub } = await import("../run-hub.ts");
  const token = await resolveApiToken(opts.httpHost, opts.apiToken);
  try {
    await runHub({
      httpHost: opts.httpHost,
      httpPort: opts.httpPort,
      ...(opts.mqttHost === undefined ? {} : { mqttHost: opts.mqttHost }),
      ...(opts.mqttPort === undefined ? {} : { mqttPort: opts.mqttPort }),
      ...(opts.config === undefined ? {} : { config: opts.config }),
      ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }),
      ...(token === undefined ? {} : { apiToken: token }),
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
    .option("--http-host <host>", "address the HTTP API binds to", "127.0.0.1")
    .option(
      "--http-port <port>",
      "HTTP port (0 picks a free port; env GANGLION_HTTP_PORT)",
      parsePort,
      parsePort(process.env.GANGLION_HTTP_PORT ?? "8080"),
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
