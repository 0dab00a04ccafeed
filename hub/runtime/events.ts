/**
 * The runtime's event stream (what Observer and the dashboard show): every start, exit, restart, give-up and
 * backoff of a supervised process, with its supervision path and a timestamp.
 */
import { getClock } from "./clock.ts";

/** The kinds of supervision event. */
export type RuntimeEventType = "started" | "exited" | "restarted" | "gave_up" | "backoff";

/** One supervision event. `path` joins supervision ids with `/`, e.g. `hub/fleet/uno-1/sensors/temp`. */
export interface RuntimeEvent {
  type: RuntimeEventType;
  path: string;
  /** Epoch milliseconds (from the runtime's clock). */
  ts: number;
  pid?: string;
  /** The exit reason, formatted, for `exited`, `gave_up` and `backoff`. */
  reason?: string;
  /** How many times the child has been restarted so far. */
  restarts?: number;
  /** For `backoff`: how long until the next attempt. */
  delayMs?: number;
  /** For `backoff`: the consecutive failed attempts so far. */
  attempt?: number;
}

type Listener = (event: RuntimeEvent) => void;
const listeners = new Set<Listener>();

/** Subscribes to supervision events; returns the function that unsubscribes. */
export function onRuntimeEvent(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** @internal publishes an event to every listener; a throwing listener does not stop the others. */
export function emitRuntimeEvent(event: Omit<RuntimeEvent, "ts">): void {
  if (listeners.size === 0) return;
  const full = { ...event, ts: getClock().now() } as RuntimeEvent;
  for (const listener of listeners) {
    try {
      listener(full);
    } catch {
      // A broken listener must not break supervision.
    }
  }
}
