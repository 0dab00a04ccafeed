/**
 * The hub's HTTP API. For now it answers `GET /api/health`; the fleet routes of DESIGN.md §2 grow here.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Options for {@link startApi}. */
export interface ApiOptions {
  host: string;
  port: number;
  /** Milliseconds since the epoch when the hub started; `uptimeS` counts from here. */
  startedAt?: number;
}

/** A listening API server. */
export interface RunningApi {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Thrown when the HTTP port is already taken, so the CLI can print one line and exit 2. */
export class PortInUseError extends Error {
  constructor(
    readonly kind: "http" | "mqtt",
    readonly port: number,
    readonly host: string,
  ) {
    super(
      `${kind} port ${host}:${port} is already in use; pick another with --${kind}-port (0 picks a free one)`,
    );
    this.name = "PortInUseError";
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function route(req: IncomingMessage, res: ServerResponse, startedAt: number): void {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (req.method === "GET" && url.pathname === "/api/health") {
    sendJson(res, 200, { status: "ok", uptimeS: Math.floor((Date.now() - startedAt) / 1000) });
    return;
  }
  sendJson(res, 404, { error: { code: "not_found", message: `no route for ${req.method} ${url.pathname}` } });
}

/** Starts the HTTP API; resolves once it listens, rejects with {@link PortInUseError} if the port is taken. */
export function startApi(options: ApiOptions): Promise<RunningApi> {
  const startedAt = options.startedAt ?? Date.now();
  const server = createServer((req, res) => route(req, res, startedAt));
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(err.code === "EADDRINUSE" ? new PortInUseError("http", options.port, options.host) : err);
    });
    server.listen(options.port, options.host, () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        server,
        url: `http://${options.host}:${port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}
