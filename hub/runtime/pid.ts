/**
 * Process identifiers. A Pid is a small value that names a process; holding one never keeps a dead process's
 * memory alive (the link to the process is dropped when it exits).
 */
import type { Process } from "./process.ts";

let nextSerial = 0;

/** A process identifier, printed Erlang-style as `<0.42.0>` (node 0 = this thread). */
export class Pid {
  /** @internal the live process, or null once it has exited. */
  proc: Process | null;
  readonly id: number;

  constructor(proc: Process | null, id = ++nextSerial) {
    this.proc = proc;
    this.id = id;
  }

  /** True while the process runs. */
  get alive(): boolean {
    return this.proc !== null;
  }

  toString(): string {
    return `<0.${this.id}.0>`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** Allocates an id from the pid space without a process (for remote proxies). */
export function nextPidId(): number {
  return ++nextSerial;
}
