/**
 * The page's connection to `/api/live`: connects, hands every message on, and when the socket closes (hub stopped,
 * network gone) reconnects by itself with exponential backoff and jitter (250 ms doubling to 5 s). The hub sends a
 * fresh snapshot on every connect, so nothing is replayed here.
 */
import type { LiveMessage } from "./types.ts";

export type ConnectionState =
  | { state: "connecting"; attempt: number }
  | { state: "open"; since: number }
  | { state: "reconnecting"; attempt: number; retryAt: number; reason: string };

export interface LiveHandlers {
  message(msg: LiveMessage): void;
  connection(state: ConnectionState): void;
}

const MIN_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

/** Opens the live socket at `url`; returns the function that closes it for good. */
export function connectLive(url: string, handlers: LiveHandlers): () => void {
  let socket: WebSocket | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let attempt = 0;
  let stopped = false;

  const open = () => {
    if (stopped) return;
    handlers.connection({ state: "connecting", attempt });
    const ws = new WebSocket(url);
    socket = ws;
    ws.onopen = () => {
      attempt = 0;
      handlers.connection({ state: "open", since: Date.now() });
    };
    ws.onmessage = (e: MessageEvent) => {
      let msg: LiveMessage;
      try {
        msg = JSON.parse(String(e.data)) as LiveMessage;
      } catch {
        return;
      }
      handlers.message(msg);
    };
    ws.onclose = (e: CloseEvent) => {
      if (socket !== ws || stopped) return;
      socket = undefined;
      const delay = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** attempt) * (0.8 + Math.random() * 0.4);
      attempt++;
      const reason = e.reason || (e.code === 1006 ? "connection lost" : `closed (${e.code})`);
      handlers.connection({ state: "reconnecting", attempt, retryAt: Date.now() + delay, reason });
      timer = setTimeout(open, delay);
    };
  };
  open();

  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    socket?.close(1000, "page closed");
  };
}
