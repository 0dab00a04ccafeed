/**
 * Task (Elixir Task): run one piece of async work as a process and await its result. Tasks started under a task
 * supervisor are temporary children, so a crash is contained and reported rather than restarted.
 */

import { getClock } from "./clock.ts";
import type { Pid } from "./pid.ts";
import { exit, spawn } from "./process.ts";
import { type ExitReason, formatReason } from "./reasons.ts";
import type { ServerRef } from "./registry.ts";
import { type SupervisorStartOptions, startChild, startDynamicSupervisor } from "./supervisor.ts";

/** A running task. */
export interface Task<T> {
  pid: Pid;
  /** Settles with the result, or rejects with {@link TaskExitError} if the task's process dies. */
  result: Promise<T>;
}

/** The task's process exited before producing a result. */
export class TaskExitError extends Error {
  constructor(readonly reason: ExitReason) {
    super(`task exited: ${formatReason(reason)}`);
    this.name = "TaskExitError";
  }
}

/** The task did not finish within the await timeout (it has been killed). */
export class TaskTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`task did not finish within ${timeoutMs} ms`);
    this.name = "TaskTimeoutError";
  }
}

function runTask<T>(work: () => Promise<T>, link?: Pid): { pid: Pid; result: Promise<T> } {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const result = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  result.catch(() => undefined); // awaited by the owner; never an unhandled rejection on its own
  const pid = spawn(
    async () => {
      resolve(await work());
    },
    link === undefined ? {} : { link },
  );
  pid.proc?.onExit((reason) => {
    if (reason !== "normal") reject(new TaskExitError(reason));
  });
  return { pid, result };
}

/** Starts `work` as a task process (linked to `options.link` when given, like Task.async). */
export function startTask<T>(work: () => Promise<T>, options: { link?: Pid } = {}): Task<T> {
  return runTask(work, options.link);
}

/** Waits for a task's result; on timeout kills the task and rejects with {@link TaskTimeoutError}. */
export function awaitTask<T>(task: Task<T>, timeoutMs = 5000): Promise<T> {
  if (!Number.isFinite(timeoutMs)) return task.result;
  return new Promise<T>((resolve, reject) => {
    const clock = getClock();
    const timer = clock.setTimeout(() => {
      exit(task.pid, "kill");
      reject(new TaskTimeoutError(timeoutMs));
    }, timeoutMs);
    task.result.then(
      (v) => {
        clock.clearTimeout(timer);
        resolve(v);
      },
      (err: Error) => {
        clock.clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** Starts a task supervisor (Task.Supervisor): a dynamic supervisor of temporary task children. */
export function startTaskSupervisor(options: SupervisorStartOptions = {}): Promise<Pid> {
  return startDynamicSupervisor({ intensity: 1_000_000, periodMs: 1 }, options);
}

let taskSerial = 0;

/** Runs `work` under a task supervisor, not linked to the caller (Task.Supervisor.async_nolink). */
export async function supervisedTask<T>(sup: ServerRef, work: () => Promise<T>): Promise<Task<T>> {
  let task: { pid: Pid; result: Promise<T> } | undefined;
  await startChild(sup, {
    id: `task-${++taskSerial}`,
    restart: "temporary",
    shutdown: "brutal_kill",
    start: () => {
      task = runTask(work);
      return task.pid;
    },
  });
  return task as Task<T>;
}
