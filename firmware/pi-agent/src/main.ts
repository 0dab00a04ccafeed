/**
 * `ganglion-agent` — the command line of the Raspberry Pi agent.
 *
 *   node ganglion-agent.mjs --config /etc/ganglion/agent.yaml
 *
 * The config path may also come from `GANGLION_AGENT_CONFIG`. Exits 2 with a message naming every bad config key,
 * 0 after a clean stop on SIGTERM/SIGINT (what `systemctl stop` sends).
 */
import { parseArgs } from "node:util";
import pino from "pino";
import { Agent } from "./agent.ts";
import { ConfigError, loadConfig } from "./config.ts";

const USAGE = `usage: ganglion-agent --config FILE [--log-level LEVEL]

Runs the Ganglion Raspberry Pi agent: reads the sensors of FILE (YAML or JSON) through sysfs and speaks the
Ganglion MQTT protocol with the hub's broker.

  -c, --config FILE      agent configuration (default: $GANGLION_AGENT_CONFIG)
      --log-level LEVEL  trace, debug, info (default), warn, error
  -h, --help             show this help
`;

/** Runs the CLI with `argv` (without node and script). Resolves with the agent once it is started. */
export async function main(argv: string[]): Promise<Agent | undefined> {
  let values: { config?: string; "log-level"?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: "string", short: "c" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    process.stderr.write(`ganglion-agent: ${(err as Error).message} (run with --help for usage)\n`);
    process.exitCode = 2;
    return undefined;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  const file = values.config ?? process.env.GANGLION_AGENT_CONFIG;
  if (!file) {
    process.stderr.write("ganglion-agent: no config: pass --config FILE or set GANGLION_AGENT_CONFIG\n");
    process.exitCode = 2;
    return undefined;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`ganglion-agent: ${err.message}\n`);
    process.exitCode = 2;
    return undefined;
  }
  const level = values["log-level"] ?? process.env.LOG_LEVEL ?? "info";
  const logger = pino({ level, base: { pid: process.pid } });
  const agent = new Agent({ config, logger });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "stop failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  try {
    await agent.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, "agent failed to start");
    process.stderr.write(`ganglion-agent: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  return agent;
}
