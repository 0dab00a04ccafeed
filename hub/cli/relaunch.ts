/**
 * Runs this same CLI command again in a child Node with a bigger V8 heap, for a command that knows it needs more
 * than this process may use: `simulate --in-process` with 100k boards needs ~5 GB of heap, and Node's default limit
 * is about 4 GB. The child gets this process's own Node flags (tsx's loader, `--expose-gc`) plus
 * `--max-old-space-size`, and {@link RELAUNCHED_ENV} so it never relaunches again.
 */
import { spawn } from "node:child_process";

/** Set in the child's environment: a relaunched CLI takes the heap it was given. */
export const RELAUNCHED_ENV = "GANGLION_HEAP_RELAUNCHED";

/** Whether this process is already the relaunched one. */
export const wasRelaunched = (): boolean => process.env[RELAUNCHED_ENV] !== undefined;

/** Runs the command again with `--max-old-space-size=<heapMb>`; resolves with the child's exit code. */
export function relaunchWithHeap(heapMb: number): Promise<number> {
  const child = spawn(
    process.execPath,
    [...process.execArgv, `--max-old-space-size=${heapMb}`, ...process.argv.slice(1)],
    { stdio: "inherit", env: { ...process.env, [RELAUNCHED_ENV]: String(heapMb) } },
  );
  // A signal sent to this process alone (kill PID, a service manager) reaches the child, which stops cleanly;
  // Ctrl-C reaches both through the terminal's process group, and the CLI takes the two as one (stop-signal.ts).
  const relay = (signal: NodeJS.Signals) => {
    if (child.exitCode === null) child.kill(signal);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const signal of signals) process.on(signal, relay);
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      for (const s of signals) process.off(s, relay);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}
