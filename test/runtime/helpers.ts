/** Small helpers shared by the runtime tests. */
import { type Pid, type Process, spawn } from "../../hub/runtime/index.ts";

/** Resolves after `ms` of real time. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it is truthy or `timeoutMs` passes. */
export async function until<T>(
  check: () => T | undefined | null | false,
  timeoutMs = 2000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A process that records every message it receives. */
export async function collector(
  options: { trapExit?: boolean } = {},
): Promise<{ pid: Pid; messages: unknown[]; self: () => Process }> {
  const messages: unknown[] = [];
  let proc: Process | undefined;
  const pid = spawn(
    async (self) => {
      proc = self;
      for (;;) messages.push(await self.receive());
    },
    options.trapExit ? { trapExit: true } : {},
  );
  await until(() => proc !== undefined, 2000, "collector to start");
  return { pid, messages, self: () => proc as Process };
}

/** A process that waits forever (until killed). */
export function idle(options: { link?: Pid; trapExit?: boolean } = {}): Pid {
  return spawn(async (self) => {
    for (;;) await self.receive();
  }, options);
}
