/**
 * `ganglion start`: runs the hub. {@link runStart} is the one place that builds it from the options, so the hub
 * core (`startHub`) replaces its body without touching the command's flags.
 */
import { randomBytes } from "node:crypto";
import type { Command } from "commander";
import { isLoopbackHost, PortInUseError, startApi } from "../api.ts";
import { action, CliError, parsePort } from "./common.ts";

/** Options of `ganglion start`. */
export interface StartOptions {
  httpHost: string;
  httpPort: number;
  /** Bearer token for the API's mutating routes; needed (and generated if absent) off loopback. */
  apiToken?: string;
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
    `ganglion: api token (shown once; pass --api-token or GANGLION_API_TOKEN to keep one): ${token}`,
  );
  return token;
}

/** Starts the hub and prints its listening lines; stops it on SIGINT/SIGTERM. A taken port exits 2. */
export async function runStart(opts: StartOptions): Promise<void> {
  const token = resolveApiToken(opts.httpHost, opts.apiToken);
  try {
    const api = await startApi({
      host: opts.httpHost,
      port: opts.httpPort,
      ...(token === undefined ? {} : { token }),
    });
    console.log(`ganglion: http listening on ${api.url}`);
    const stop = () => {
      void api.close().then(() => process.exit(0));
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  } catch (err) {
    if (err instanceof PortInUseError) throw new CliError(err.message, 2);
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
    .action(action((opts: StartOptions) => runStart(opts)));
}
