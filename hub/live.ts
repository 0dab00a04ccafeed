/**
 * `/api/live` (DESIGN.md §2): a WebSocket that sends `{"type": "snapshot", "tree", "devices", "faults"}` on
 * connect, then every {@link LiveUpdate} of the hub as one JSON text message, in the order the hub emitted them.
 *
 * Backpressure. Each update is serialised once and written to every client. A client whose socket is not draining
 * (its `bufferedAmount` over `maxBufferedBytes`) is marked behind: from then on its updates are dropped, not
 * queued, and once what was already written has reached the kernel it is sent a fresh snapshot and resumes. A
 * slow dashboard thus costs at most about `maxBufferedBytes` (plus one snapshot) of hub memory, and it never sees
 * a stale state.
 *
 * Keepalive: a ping every `pingIntervalMs`; a client that has not answered the previous ping is terminated (the
 * same rule as ws's documented heartbeat).
 */
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { type Logger, pino } from "pino";
import { WebSocket, WebSocketServer } from "ws";
import type { HubView, LiveUpdate } from "./view.ts";

/** Options of {@link attachLive}. */
export interface LiveOptions {
  view: HubView;
  /** URL path of the socket (default `/api/live`). */
  path?: string;
  /** A client with more than this many bytes unsent is resynchronised with a snapshot (default 1 MiB). */
  maxBufferedBytes?: number;
  /** Ping period; a client that missed the previous ping is dropped (default 30 s). */
  pingIntervalMs?: number;
  /** Refuses an upgrade (403) when this returns false, e.g. a foreign `Origin`. Default: all allowed. */
  allowUpgrade?: (req: IncomingMessage) => boolean;
  logger?: Logger;
}

/** `/api/live` attached to an HTTP server. */
export interface LiveServer {
  /** Connected clients. */
  readonly clientCount: number;
  /** Snapshots sent because a client fell behind (for tests and metrics). */
  readonly resyncs: number;
  /** Closes every client with 1001 ("going away"), stops listening to the hub and to upgrades. Idempotent. */
  close(): void;
}

/** Default bound on a client's unsent bytes. */
export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;

interface Client {
  ws: WebSocket;
  /** Answered the last ping. */
  alive: boolean;
  /** Messages handed to ws whose write has not completed. */
  inFlight: number;
  /** Updates are being dropped until a fresh snapshot is sent. */
  behind: boolean;
  /**
   * Unsent bytes beyond which the client is behind: the bound plus the last snapshot's size, so a snapshot larger
   * than the bound (a big fleet) does not by itself make the next update trigger another snapshot, forever.
   */
  limit: number;
}

function refuse(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
}

/**
 * Serves `/api/live` on `server` (which keeps answering plain HTTP); other upgrade paths are refused with 404.
 * Subscribes to the hub once and fans each update out to every client.
 */
export function attachLive(server: Server, options: LiveOptions): LiveServer {
  const { view } = options;
  const livePath = options.path ?? "/api/live";
  const maxBuffered = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const log = (options.logger ?? pino({ level: "info" }, pino.destination(2))).child({ service: "live" });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  const clients = new Set<Client>();
  let closed = false;
  let resyncs = 0;

  const send = (client: Client, text: string) => {
    client.inFlight++;
    client.ws.send(text, (err) => {
      client.inFlight--;
      if (!err && client.behind && client.inFlight === 0) sendSnapshot(client);
    });
  };

  const sendSnapshot = (client: Client) => {
    if (client.ws.readyState !== WebSocket.OPEN) return;
    client.behind = false;
    let text: string;
    try {
      text = JSON.stringify({
        type: "snapshot",
        tree: view.tree(),
        devices: view.devices(),
        faults: view.faults(),
      });
    } catch (err) {
      log.error({ err }, "cannot build the live snapshot");
      client.ws.close(1011, "snapshot failed");
      return;
    }
    client.limit = maxBuffered + Buffer.byteLength(text);
    send(client, text);
  };

  const unsubscribe = view.subscribe((update: LiveUpdate) => {
    if (clients.size === 0) return;
    const text = JSON.stringify(update);
    for (const client of clients) {
      if (client.behind || client.ws.readyState !== WebSocket.OPEN) continue;
      if (client.ws.bufferedAmount > client.limit) {
        client.behind = true;
        resyncs++;
        log.warn(
          { bufferedBytes: client.ws.bufferedAmount },
          "live client fell behind: dropping its updates until it drains, then sending a fresh snapshot",
        );
        if (client.inFlight === 0) sendSnapshot(client);
        continue;
      }
      send(client, text);
    }
  });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (path !== livePath) return refuse(socket, "404 Not Found");
    if (closed) return refuse(socket, "503 Service Unavailable");
    if (options.allowUpgrade && !options.allowUpgrade(req)) return refuse(socket, "403 Forbidden");
    wss.handleUpgrade(req, socket, head, (ws) => {
      const client: Client = { ws, alive: true, inFlight: 0, behind: false, limit: maxBuffered };
      clients.add(client);
      ws.on("pong", () => {
        client.alive = true;
      });
      ws.on("error", (err) => log.debug({ err }, "live client error"));
      ws.on("close", () => clients.delete(client));
      sendSnapshot(client);
    });
  };
  server.on("upgrade", onUpgrade);

  const pinger = setInterval(() => {
    for (const client of clients) {
      if (!client.alive) {
        log.debug("live client missed a ping; dropping it");
        client.ws.terminate();
        clients.delete(client);
        continue;
      }
      client.alive = false;
      client.ws.ping();
    }
  }, options.pingIntervalMs ?? 30_000);
  pinger.unref();

  return {
    get clientCount() {
      return clients.size;
    },
    get resyncs() {
      return resyncs;
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(pinger);
      unsubscribe();
      server.off("upgrade", onUpgrade);
      for (const client of clients) client.ws.close(1001, "hub stopping");
      const stragglers = setTimeout(() => {
        for (const client of clients) client.ws.terminate();
      }, 1000);
      stragglers.unref();
      wss.close();
    },
  };
}
