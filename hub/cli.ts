/**
 * `ganglion` — the command line and the composition root: it builds a hub from flags and the fleet file.
 */
import { Command, InvalidArgumentError } from "commander";
import { PortInUseError, startApi } from "./api.ts";

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`"${value}" is not a port number (0-65535; 0 picks a free port)`);
  }
  return port;
}

const program = new Command("ganglion")
  .description(
    "Supervise a fleet of Arduino and Raspberry Pi boards the way Erlang/OTP supervises processes.",
  )
  .showHelpAfterError("(run with --help for usage)");

program
  .command("start")
  .description("start the hub")
  .option("--http-host <host>", "address the HTTP API binds to", "127.0.0.1")
  .option(
    "--http-port <port>",
    "HTTP port (0 picks a free port)",
    parsePort,
    parsePort(process.env.GANGLION_HTTP_PORT ?? "8080"),
  )
  .action(async (opts: { httpHost: string; httpPort: number }) => {
    try {
      const api = await startApi({ host: opts.httpHost, port: opts.httpPort });
      console.log(`ganglion: http listening on ${api.url}`);
      const stop = () => {
        void api.close().then(() => process.exit(0));
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    } catch (err) {
      if (err instanceof PortInUseError) {
        console.error(`ganglion: ${err.message}`);
        process.exit(2);
      }
      throw err;
    }
  });

await program.parseAsync(process.argv);
