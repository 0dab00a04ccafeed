/**
 * Test helper: runs the real hub (`hub/cli.ts start`) as a child process and reads its start-up lines.
 *
 * The child is `node --import tsx hub/cli.ts`, not `npx tsx`: tsx's CLI runs the program in a second node
 * process, so a `kill -9` of the wrapper would leave the hub itself running.
 */
import { type ChildProcess, spawn } from "node:child_process";

/** A hub child process with what it printed so far. */
export interface HubProcess {
  child: ChildProcess;
  /** Everything it wrote to stdout so far. */
  stdout(): string;
  /** Everything it wrote to stderr so far (pino JSON lines and the CLI's one-line errors). */
  stderr(): string;
  /** Resolves with the match once stdout so far matches `pattern`; rejects if the process exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string | null>;
}

const running = new Set<ChildProcess>();

/** Starts `ganglion start <args>`; the process is killed by {@link killAllHubs}. */
export function startHubProcess(args: string[], env: NodeJS.ProcessEnv = {}): HubProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "hub/cli.ts", "start", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, GANGLION_LOG_LEVEL: "warn", ...env },
  });
  running.add(child);
  let out = "";
  let err = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<number | string | null>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve(code ?? signal);
    });
  });
  const waitFor = (pattern: RegExp, timeoutMs = 30_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const timer = setInterval(() => {
        const match = out.match(pattern);
        if (match) {
          clearInterval(timer);
          resolve(match);
        } else if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
          clearInterval(timer);
          reject(
            new Error(
              `hub ${child.exitCode !== null || child.signalCode !== null ? "exited" : "timed out"} before printing ${pattern}\nstdout: ${out}\nstderr: ${err.slice(-4000)}`,
            ),
          );
        }
      }, 20);
    });
  return { child, stdout: () => out, stderr: () => err, waitFor, exited };
}

/** SIGKILLs every hub child still running (for afterAll/afterEach, so a failed test leaves none behind). */
export async function killAllHubs(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const child of running) {
    waits.push(new Promise((r) => child.once("exit", r)));
    child.kill("SIGKILL");
  }
  await Promise.all(waits);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns something truthy. */
export async function until<T>(
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
