/**
 * `ganglion start`: runs the hub. {@link runStart} is the one place that builds it from the options, so the hub
 * core (`startHub`) replaces its body without touching the command's flags.
 */
import { type Command, InvalidArgumentError } from "commander";
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
  /** An external MQTT broker to use instead of the embedded one (env GANGLION_BROKER; fleet file `hub.mqtt.broker`). */
  broker?: string;
  brokerUsername?: string;
  brokerPassword?: string;
  /** The hub's client id on the external broker (stable, so the broker keeps its session). */
  brokerClientId?: string;
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
  if (opts.broker !== undefined) {
    try {
      parseBrokerUrl(opts.broker);
    } catch (err) {
      throw new CliError(`GANGLION_BROKER: ${(err as Error).message}`, 1);
    }
  }
  try {
    await runHub({
      ...(opts.httpHost === undefined ? {} : { httpHost: opts.httpHost }),
      ...(opts.httpPort === undefined ? {} : { httpPort: opts.httpPort }),
      ...(opts.mqttHost === undefined ? {} : { mqttHost: opts.mqttHost }),
      ...(opts.mqttPort === undefined ? {} : { mqttPort: opts.mqttPort }),
      ...(opts.broker === undefined &&
      opts.brokerUsername === undefined &&
      opts.brokerPassword === undefined &&
      opts.brokerClientId === undefined
        ? {}
        : {
            broker: {
              ...(opts.broker === undefined ? {} : { url: opts.broker }),
              ...(opts.brokerUsername === undefined ? {} : { username: opts.brokerUsername }),
              ...(opts.brokerPassword === undefined ? {} : { password: opts.brokerPassword }),
              ...(opts.brokerClientId === undefined ? {} : { clientId: opts.brokerClientId }),
            },
          }),
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

/** Parses `--broker`: an `mqtt://`, `mqtts://`, `ws://` or `wss://` URL with a host. */
export function parseBrokerUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`"${value}" is not a broker URL (expected e.g. mqtt://127.0.0.1:1883)`);
  }
  if (!["mqtt:", "mqtts:", "ws:", "wss:"].includes(url.protocol) || url.hostname === "") {
    throw new InvalidArgumentError(
      `"${value}" is not a broker URL (expected mqtt://HOST:PORT, mqtts://, ws:// or wss://)`,
    );
  }
  return value;
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
      "bearer token required on POST/DELETE (env GANGLION_API_TOKEN); off loopback one is generated and printed if absent",
      process.env.GANGLION_API_TOKEN,
    )
    .option("--mqtt-host <host>", "address the embedded MQTT broker binds to (default 127.0.0.1)")
    .option(
      "--mqtt-port <port>",
      "MQTT port (0 picks a free port; env GANGLION_MQTT_PORT; default 1883)",
      parsePort,
      process.env.GANGLION_MQTT_PORT === undefined ? undefined : parsePort(process.env.GANGLION_MQTT_PORT),
    )
    .option(
      "--broker <url>",
      "use this MQTT broker (mqtt://HOST:PORT) instead of the embedded one; it then does device logins and ACLs, " +
        "and --mqtt-host/--mqtt-port and the fleet file's tls do not apply (env GANGLION_BROKER; fleet file hub.mqtt.broker)",
      parseBrokerUrl,
      // Checked in runStart: a bad environment must not break the other commands.
      process.env.GANGLION_BROKER === "" ? undefined : process.env.GANGLION_BROKER,
    )
    .option(
      "--broker-username <name>",
      "the hub's login on the --broker (env GANGLION_BROKER_USERNAME; or in the URL)",
      process.env.GANGLION_BROKER_USERNAME,
    )
    .option(
      "--broker-password <secret>",
      "the hub's password on the --broker (prefer env GANGLION_BROKER_PASSWORD: other users can read a command line)",
      process.env.GANGLION_BROKER_PASSWORD,
    )
    .option(
      "--broker-client-id <id>",
      "the hub's MQTT client id on the --broker; keep it stable so the broker keeps the hub's session " +
        "(default ganglion-hub-<topic prefix>)",
    )
    .option("--config <file>", "the fleet file (default ./fleet.yaml when it exists)")
    .option("--data-dir <dir>", "where history is kept (default ./data)")
    .option("--simulate", "add the demo fleet of virtual boards (what npm start runs)")
    .action(action((opts: StartOptions) => runStart(opts)));
}
