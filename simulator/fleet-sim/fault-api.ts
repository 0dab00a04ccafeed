/**
 * The fleet simulation's own small HTTP API: the physical faults of its boards, with the same bodies and answers as
 * the hub's `/api/faults` (DESIGN.md §2, §3), kept by the hub's own {@link FaultBook}:
 *
 * | route | answer |
 * |---|---|
 * | `GET /api/faults` | 200, the active faults, oldest first |
 * | `POST /api/faults` `{"kind","device","sensor"?,"durationMs"?}` | 202, the fault; 400 `bad-fault`, 404 unknown device/sensor |
 * | `DELETE /api/faults/:id` | 204; 404 `unknown_fault` |
 * | `GET /api/health` | 200 `{"status":"ok"}` |
 *
 * Errors are `{"error":{"code","message"}}`. Hub-side faults (`throws`, `hang`, `broker-restart`) live in the hub,
 * so they are refused here with where to send them. Bound to loopback by default; like the hub, a mutating request
 * from another origin is refused, so a web page cannot pull a board's cable.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { isLoopbackHost, loopbackHostHeader, sameOrigin, tokenMatches } from "../../hub/api.ts";
import type { DeviceConfig } from "../../hub/config.ts";
import { FaultBook } from "../../hub/faults/book.ts";
import { driverFaultTable, HUB_SIDE_KINDS, type PhysicalFaults } from "../../hub/faults/contract.ts";
import { HubApiError } from "../../hub/view.ts";

/** Options of {@link startFaultApi}. */
export interface FaultApiOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  devices: readonly DeviceConfig[];
  physical: PhysicalFaults;
  /** Bearer token for POST and DELETE; required when `host` is not a loopback address. */
  token?: string;
  logger: Logger;
}

/** The running fault API. */
export interface FaultApi {
  /** `http://HOST:PORT`. */
  readonly url: string;
  readonly book: FaultBook;
  /** Clears every active fault (boards back to health), then closes the server. */
  close(): Promise<void>;
}

const MAX_BODY = 16 * 1024;

function send(
  res: ServerResponse,
  status: number,
  body?: unknown,
  headers: Record<string, string> = {},
): void {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

const fail = (
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers?: Record<string, string>,
) => send(res, status, { error: { code, message } }, headers);

async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpError(
      415,
      "unsupported_media_type",
      `expected content-type application/json${type ? `; got ${type}` : ""}`,
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, "body_too_large", `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "bad_json", "the body is not valid JSON");
  }
}

/** An answer other than the fault book's (its own are {@link HubApiError}s). */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Starts the fault API; resolves once it listens. Rejects when bound beyond loopback without a token: anyone who
 * reaches it could pull the boards' cables.
 */
export async function startFaultApi(o: FaultApiOptions): Promise<FaultApi> {
  const loopback = isLoopbackHost(o.host);
  if (!loopback && !o.token) {
    throw new Error(
      `the simulation's API on ${o.host} needs an API token (anyone who reaches it could inject faults): give one, or bind it to 127.0.0.1`,
    );
  }
  const log = o.logger.child({ service: "simulate-api" });
  const book = new FaultBook({
    // No hub here: the book's events go to the log (the hub sees the faults' outcomes, not the faults).
    hub: {
      driverFaults: driverFaultTable(),
      emit: (event) => log.debug({ event }, event.type),
      log: o.logger,
    },
    sensorsOf: (device) => o.devices.find((d) => d.id === device)?.sensors.map((s) => s.id),
    restartBroker: () => Promise.reject(new Error("the simulation has no broker")),
    physical: o.physical,
  });

  const route = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const method = req.method ?? "GET";
    if (loopback && !loopbackHostHeader(req)) {
      return fail(res, 403, "bad_host", "this simulation only answers requests addressed to a loopback name");
    }
    if (method !== "GET" && !sameOrigin(req)) {
      return fail(
        res,
        403,
        "bad_origin",
        `requests from ${req.headers.origin} may not change this simulation`,
      );
    }
    if (method !== "GET" && o.token !== undefined) {
      const presented = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1];
      if (presented === undefined || !tokenMatches(presented, o.token)) {
        return fail(res, 401, "unauthorized", "this endpoint needs Authorization: Bearer <api token>", {
          "www-authenticate": 'Bearer realm="ganglion-simulate"',
        });
      }
    }
    if (path === "/api/health") {
      if (method !== "GET")
        return fail(res, 405, "method_not_allowed", `${method} not allowed on ${path}`, { allow: "GET" });
      return send(res, 200, { status: "ok" });
    }
    if (path === "/api/faults") {
      if (method === "GET") return send(res, 200, book.list());
      if (method !== "POST") {
        return fail(res, 405, "method_not_allowed", `${method} not allowed on ${path}`, {
          allow: "GET, POST",
        });
      }
      const body = await jsonBody(req);
      const kind = (body as { kind?: unknown } | null)?.kind;
      if (typeof kind === "string" && HUB_SIDE_KINDS.has(kind as never)) {
        throw new HttpError(
          400,
          "bad-fault",
          `fault "${kind}" happens inside the hub, not on a board: POST it to the hub's /api/faults (ganglion fault)`,
        );
      }
      // 202: the fault is applied; its outcome (the hub's restarts and reconnects) is still to come.
      return send(res, 202, await book.inject(body));
    }
    const match = /^\/api\/faults\/([^/]+)$/.exec(path);
    if (match) {
      if (method !== "DELETE") {
        return fail(res, 405, "method_not_allowed", `${method} not allowed on ${path}`, { allow: "DELETE" });
      }
      await book.clear(decodeURIComponent(match[1] as string));
      return send(res, 204);
    }
    return fail(
      res,
      404,
      "not_found",
      `no route for ${method} ${path} (this is the simulation's API: /api/faults)`,
    );
  };

  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (err instanceof HubApiError || err instanceof HttpError) {
        return fail(
          res,
          err.status,
          err.code,
          err.message,
          err.status === 413 ? { connection: "close" } : {},
        );
      }
      log.error({ err, method: req.method, url: req.url }, "simulation API handler failed");
      fail(res, 500, "internal_error", "internal error (see the simulation's log)");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE"
          ? new Error(
              `port ${o.host}:${o.port} is already in use; pick another with --http-port (0 picks a free one)`,
            )
          : err,
      ),
    );
    server.listen(o.port, o.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    book,
    async close() {
      await book.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
