/**
 * `ganglion simulate --config FILE --tokens FILE [--broker URL] [--http-port N] [--seed N]`: the user's fleet as
 * virtual boards, until Ctrl-C. hub/cli/simulate.ts maps its flags onto {@link FleetSimulationCliOptions}.
 */
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { onStopSignal } from "../../hub/cli/stop-signal.ts";
import { loadFleetConfig, parseTokensFile } from "../../hub/config.ts";
import type { FleetSimulation } from "../fleet-sim.ts";

/** Options of {@link runFleetSimulationCli}, one per flag. */
export interface FleetSimulationCliOptions {
  /** `--config FILE`: the fleet file (the hub's own). */
  config: string;
  /** `--tokens FILE`: `id=token` lines (`ganglion device add --tokens FILE` appends to it). */
  tokens: string;
  /** `--broker URL`: the hub's broker, `mqtt://HOST:PORT` (default: the fleet file's hub.mqtt). */
  broker?: string;
  /** `--http-host HOST`: where the simulation's `/api/faults` listens (default 127.0.0.1). */
  httpHost?: string;
  /** `--http-port N`: its port (default 0: a free one, printed). */
  httpPort?: number;
  /** `--api-token TOKEN` (or env GANGLION_API_TOKEN): needed for POST/DELETE when `httpHost` is not loopback. */
  apiToken?: string;
  /** `--seed N`: same seed, same readings (default 42). */
  seed?: number;
  /**
   * `--dir DIR`: where the pty links and the Pis' trees and state go (default `<tmp>/ganglion-simulate`, so a
   * board's link path, `<dir>/<device>.tty`, is the same every run and the fleet file can name it).
   */
  dir?: string;
  /** Structured log (default: the hub's terminal logger). */
  logger?: Logger;
  /** Where the lines for the user go (default stdout). */
  print?: (line: string) => void;
  /** Resolves when the simulation should stop (default: Ctrl-C or SIGTERM). */
  until?: Promise<string>;
}

/** Resolves on Ctrl-C or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    onStopSignal((signal) => resolve(signal === "SIGINT" ? "interrupted" : "terminated"));
  });
}

/** The lines that tell the user where each board is and where its faults are injected. */
export function describeSimulation(sim: FleetSimulation): string[] {
  const lines: string[] = [];
  for (const b of sim.boards) {
    if (b.kind === "serial") {
      lines.push(
        `ganglion: ${b.device} on ${b.ptyPath ?? "(no pty)"} (set link.path to ${b.linkPath}, which always points at it, or run the hub with --simulate)`,
      );
    } else lines.push(`ganglion: ${b.device} (Raspberry Pi) → ${b.broker}`);
  }
  lines.push(`ganglion: physical faults at ${sim.apiUrl}/api/faults; Ctrl-C stops`);
  return lines;
}

/**
 * Runs the simulation for the CLI: loads the fleet and tokens files, starts every board, prints where they are and
 * the fault API's address, runs until Ctrl-C / SIGTERM (or `until`), then stops every board. Rejects with the fleet
 * file's line-numbered `FleetConfigError`, a `MissingTokenError`, or an `Error` that says what to do; the CLI prints
 * the message and exits non-zero.
 */
export async function runFleetSimulationCli(options: FleetSimulationCliOptions): Promise<void> {
  const print = options.print ?? ((line: string) => console.log(line));
  const config = await loadFleetConfig(options.config);
  let text: string;
  try {
    text = readFileSync(options.tokens, "utf8");
  } catch (err) {
    throw new Error(
      `cannot read ${options.tokens} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ` +
        "`ganglion device add ID --board raspberry-pi --tokens FILE` writes one",
    );
  }
  const tokens = parseTokensFile(text, options.tokens);
  const logger = options.logger ?? (await import("../../hub/run-hub.ts")).terminalLogger();
  const { startFleetSimulation } = await import("../fleet-sim.ts");
  const stopped = options.until ?? untilSignal();
  const sim = await startFleetSimulation({
    config,
    tokens,
    tokensFile: options.tokens,
    logger,
    ...(options.broker === undefined ? {} : { broker: options.broker }),
    ...(options.httpHost === undefined ? {} : { httpHost: options.httpHost }),
    ...(options.httpPort === undefined ? {} : { httpPort: options.httpPort }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...((options.apiToken ?? process.env.GANGLION_API_TOKEN)
      ? { apiToken: options.apiToken ?? (process.env.GANGLION_API_TOKEN as string) }
      : {}),
    dir: options.dir ?? join(tmpdir(), "ganglion-simulate"),
  });
  try {
    for (const line of describeSimulation(sim)) print(line);
    const why = await stopped;
    print(`ganglion: stopping (${why}); each board stops, each Pi says offline`);
  } finally {
    await sim.stop();
  }
  print("ganglion: stopped");
}
