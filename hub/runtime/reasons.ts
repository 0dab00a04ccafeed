/**
 * Exit reasons and the runtime's typed errors.
 *
 * A reason is any value, as in Erlang. The atoms that carry meaning are strings here: `normal` (finished),
 * `shutdown` (asked to stop by its supervisor), `kill` (the untrappable signal), `killed` (what a killed process
 * exits with), `noproc` (the target did not exist).
 */
export type ExitReason = unknown;

/** `{ shutdown: detail }`: a clean stop that carries a detail, like Erlang's `{shutdown, Term}`. */
export interface ShutdownWith {
  shutdown: unknown;
}

/** True for the reasons a transient child is not restarted for: `normal`, `shutdown`, `{shutdown: _}`. */
export function isCleanExit(reason: ExitReason): boolean {
  return (
    reason === "normal" ||
    reason === "shutdown" ||
    (typeof reason === "object" && reason !== null && "shutdown" in reason && !(reason instanceof Error))
  );
}

/** A short human-readable form of a reason for logs, events and the dashboard. */
export function formatReason(reason: ExitReason): string {
  if (typeof reason === "string") return reason;
  if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
  try {
    return JSON.stringify(reason) ?? String(reason);
  } catch {
    return String(reason);
  }
}

/** Base class of errors a `call` rejects with. `reason` is the exit reason to act on, as in `{'EXIT', Reason}`. */
export class CallError extends Error {
  constructor(
    message: string,
    readonly reason: ExitReason,
  ) {
    super(message);
    this.name = "CallError";
  }
}

/** The server did not reply within the timeout. */
export class CallTimeoutError extends CallError {
  constructor(
    readonly target: string,
    readonly timeoutMs: number,
  ) {
    super(`call to ${target} timed out after ${timeoutMs} ms`, "timeout");
    this.name = "CallTimeoutError";
  }
}

/** The server was not alive when called (reason `noproc`). */
export class NoProcError extends CallError {
  constructor(readonly target: string) {
    super(`no process ${target}`, "noproc");
    this.name = "NoProcError";
  }
}

/** The server exited before it replied; `reason` is its exit reason. */
export class ServerExitError extends CallError {
  constructor(
    readonly target: string,
    reason: ExitReason,
  ) {
    super(`${target} exited before replying: ${formatReason(reason)}`, reason);
    this.name = "ServerExitError";
  }
}

/** A process failed to start (its init threw or returned a stop). */
export class StartError extends Error {
  constructor(
    message: string,
    readonly reason: ExitReason,
  ) {
    super(message);
    this.name = "StartError";
  }
}

/** A name was already taken in a Registry. */
export class AlreadyRegisteredError extends Error {
  constructor(
    readonly key: unknown,
    readonly owner: string,
  ) {
    super(`name ${formatReason(key)} is already registered to ${owner}`);
    this.name = "AlreadyRegisteredError";
  }
}
