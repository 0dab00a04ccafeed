/**
 * Encoding of messages that cross a worker-thread boundary. Structured clone copies plain data but not class
 * identity, so pids are sent as `{ [PID_TAG]: id }` and turned back into pids on the other side.
 */

/** The marker key of an encoded pid. */
export const PID_TAG = "__ganglion_pid";

/** Anything with a numeric pid id. */
export interface PidLike {
  readonly id: number;
}

/** Copies `value`, replacing every pid (as recognised by `isPid`) with its wire form. */
export function encodeValue(
  value: unknown,
  isPid: (v: unknown) => v is PidLike,
  seen = new Set<unknown>(),
): unknown {
  if (isPid(value)) return { [PID_TAG]: value.id };
  if (typeof value !== "object" || value === null) return value;
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  if (seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => encodeValue(v, isPid, seen));
  if (ArrayBuffer.isView(value) || value instanceof Date || value instanceof Map || value instanceof Set)
    return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = encodeValue(v, isPid, seen);
  return out;
}

/** The inverse of {@link encodeValue}. */
export function decodeValue<P>(value: unknown, toPid: (id: number) => P): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => decodeValue(v, toPid));
  if (ArrayBuffer.isView(value) || value instanceof Date || value instanceof Map || value instanceof Set)
    return value;
  const record = value as Record<string, unknown>;
  if (typeof record[PID_TAG] === "number" && Object.keys(record).length === 1) return toPid(record[PID_TAG]);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) out[k] = decodeValue(v, toPid);
  return out;
}

/** Messages from the main thread to an isolated process. */
export type ToWorker =
  | { t: "call"; id: number; request: unknown }
  | { t: "cast"; message: unknown }
  | { t: "info"; message: unknown }
  | { t: "stop"; reason: unknown };

/** Messages from an isolated process to the main thread. */
export type FromWorker =
  | { t: "ready" }
  | { t: "init_error"; error: unknown }
  | { t: "reply"; id: number; value: unknown }
  | { t: "send"; to: number; message: unknown }
  | { t: "exit"; reason: unknown };

/** What the worker bootstrap is started with. */
export interface IsolatedWorkerData {
  moduleUrl: string;
  exportName: string;
  args: unknown;
  selfId: number;
}
