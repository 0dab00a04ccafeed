#!/usr/bin/env node
// Entry point for `npm start`, `npx ganglion` and a global install: runs the TypeScript CLI through tsx's loader,
// with the Node flags in node-flags.json (bench/node-flags.ts starts the benches' hubs with the same ones):
// --expose-gc lets the hub request a full collection after each 1,000 logins (hub/broker/login-gc.ts), so a fleet
// logging in at once does not grow the heap 4x before V8 first collects it (10k devices: ~435 MB RSS, was 535-590).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const { hub: nodeFlags } = JSON.parse(readFileSync(join(here, "node-flags.json"), "utf8"));
const child = spawn(
  process.execPath,
  [...nodeFlags, "--import", "tsx", join(root, "hub/cli.ts"), ...process.argv.slice(2)],
  { stdio: "inherit" },
);
// A signal sent to this wrapper alone (kill PID, a service manager) reaches the CLI, which stops cleanly; Ctrl-C
// reaches both through the terminal's process group, and the CLI takes the two as one (hub/cli/stop-signal.ts).
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    if (child.exitCode === null) child.kill(signal);
  });
}
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
