#!/usr/bin/env node
// Entry point for `npm start`, `npx ganglion` and a global install: runs the TypeScript CLI through tsx's loader,
// with the Node flags in node-flags.json (bench/fleet.ts runs its hub with the same ones):
// --heap-growing-percent=50 lets V8's old generation grow by 1.5× between full collections instead of up to 4×.
// A hub's garbage arrives in bursts (10k devices logging in after a restart: aedes's per-connection stream
// pipelines), and at 4× the heap reached ~480 MB before V8 first collected it (10k devices peaked at 535-590 MB
// RSS; with 1.5×, 425-446 MB), for incremental marking steps that cost no measurable throughput (bench fleet).
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
// reaches both through the terminal's process group, and the CLI handles it once.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    if (child.exitCode === null) child.kill(signal);
  });
}
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
