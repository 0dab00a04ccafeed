/**
 * Agent (Elixir Agent): a process that holds a value; others read and update it through functions.
 */
import * as GenServer from "./gen-server.ts";
import type { Pid } from "./pid.ts";
import type { ServerRef } from "./registry.ts";

type AgentCall = { op: "get"; fn: (s: unknown) => unknown } | { op: "update"; fn: (s: unknown) => unknown };

const spec: GenServer.GenServerSpec<unknown, () => unknown, AgentCall, unknown, (s: unknown) => unknown> = {
  init: (initial) => initial(),
  handleCall(req, _from, state) {
    if (req.op === "get") return GenServer.replyWith(req.fn(state), state);
    const next = req.fn(state);
    return GenServer.replyWith(undefined, next);
  },
  handleCast: (fn, state) => fn(state),
};

/** Starts an agent whose value is `initial()`. */
export function startAgent<T>(initial: () => T, options: GenServer.StartOptions = {}): Promise<Pid> {
  return GenServer.start(spec, initial as () => unknown, options);
}

/** Reads `fn(value)`. */
export function getAgent<T, R = T>(
  agent: ServerRef,
  fn: (value: T) => R = (v) => v as unknown as R,
  timeoutMs?: number,
): Promise<R> {
  return GenServer.call<R>(agent, { op: "get", fn: fn as (s: unknown) => unknown }, timeoutMs);
}

/** Replaces the value with `fn(value)` and waits until done. */
export async function updateAgent<T>(
  agent: ServerRef,
  fn: (value: T) => T,
  timeoutMs?: number,
): Promise<void> {
  await GenServer.call(agent, { op: "update", fn: fn as (s: unknown) => unknown }, timeoutMs);
}

/** Replaces the value with `fn(value)` without waiting. */
export function castAgent<T>(agent: ServerRef, fn: (value: T) => T): void {
  GenServer.cast(agent, fn);
}
