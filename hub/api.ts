/**
 * The hub's HTTP API (DESIGN.md §2, "HTTP API"): a small route table over `node:http`, one handler per route, all
 * answering JSON. The API only talks to a {@link HubView}; `/api/live` (hub/live.ts) shares its server.
 *
 * Errors are `{"error": {"code", "message"}}`: 400 bad input, 401 missing/wrong token, 404 unknown route or device,
 * 405 known path with another method (with `Allow`), 409 conflict, 413 body over the limit, 415 a body that is not
 * JSON, 503/504 from the hub (device offline, no confirmation), 500 for anything unexpected (logged, never leaked).
 *
 * Auth: bound to a loopback address, everything is open (the machine's own users). Bound elsewhere, mutating routes
 * (POST, DELETE) need `Authorization: Bearer <token>`; reads stay open. Browsers are kept out of what is open:
 * bodies must be `application/json` (a cross-origin page cannot send that without a CORS preflight, never granted);
 * a mutating request or `/api/live` upgrade whose `Origin` is not this server is refused (403 `bad_origin`); and a
 * loopback-bound hub refuses a `Host` that is not a loopback name (403 `bad_host`), which defeats DNS rebinding.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createReadStream } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, resolve, sep } from "node:path";
import { type Logger, pino } from "pino";
import { z } from "zod";
import { ID_PATTERN } from "./config.ts";
import { attachLive, type LiveOptions, type LiveServer } from "./live.ts";
import { DEFAULT_LIMIT, MAX_LIMIT } from "./store.ts";
import { type CommandRequest, HubApiError, type HubView } from "./view.ts";

/** Options for {@link startApi}. */
export interface ApiOptions {
  host: string;
  port: number;
  /**
   * The hub core. Without one only `GET /api/health` (and static files) answer; every other API route answers 503
   * `hub_unavailable`.
   */
  view?: HubView;
  /** Milliseconds since the epoch when the hub started; `uptimeS` counts from here (default `view.startedAt`). */
  startedAt?: number;
  /** Bearer token for mutating routes. Required when {@link ApiOptions.requireToken} is (or defaults to) true. */
  token?: string;
  /** Whether POST/DELETE need the token; default: true unless `host` is a loopback address. */
  requireToken?: boolean;
  /** Serve this directory's files at `/` (the dashboard); `index.html` for directories. */
  staticDir?: string;
  /** Largest request body accepted (default 64 KiB); larger answers 413. */
  maxBodyBytes?: number;
  /** Longest a command may wait for the hub's answer before the API answers 504 itself (default 10 s). */
  commandTimeoutMs?: number;
  /** Options of `/api/live` (see hub/live.ts). */
  live?: Omit<LiveOptions, "view">;
  /** Structured logger; default pino at info level on stderr. */
  logger?: Logger;
}

/** A listening API server. */
export interface RunningApi {
  server: Server;
  url: string;
  /** `/api/live`, when a view was given. */
  live?: LiveServer;
  /** Closes `/api/live` clients (1001), open connections and the server. */
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

/** Default largest request body. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** True for addresses only this machine can reach (`127.0.0.0/8`, `::1`, `localhost`). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return (
    h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h)
  );
}

/** The host part of a `Host` header value (`[::1]:8080` → `::1`), or `undefined` when it cannot be parsed. */
function hostnameOf(hostHeader: string): string | undefined {
  try {
    return new URL(`http://${hostHeader}`).hostname;
  } catch {
    return undefined;
  }
}

/**
 * Whether a request came from this server's own pages or from a non-browser client: no `Origin` header, or one
 * whose host and port are the request's `Host`.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === new URL(`http://${req.headers.host ?? ""}`).host;
  } catch {
    return false;
  }
}

/** For a loopback-bound server: whether the request's `Host` names a loopback address (absent is allowed). */
export function loopbackHostHeader(req: IncomingMessage): boolean {
  const header = req.headers.host;
  if (header === undefined) return true;
  const name = hostnameOf(header);
  return name !== undefined && isLoopbackHost(name);
}

/** Compares a presented bearer token with the expected one in constant time (both hashed to equal length first). */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

type Method = "GET" | "POST" | "DELETE";

/** What a handler gets: the request's path parameters, query, parsed body and the hub. */
interface RouteContext {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  view: HubView;
}

/** What a handler answers; `body` undefined means no content. */
interface Reply {
  status: number;
  body?: unknown;
}

interface Route {
  method: Method;
  /** `/api/devices/:id`: `:name` segments become params. */
  path: string;
  /** Reads a JSON body first. */
  body?: boolean;
  handler(ctx: RouteContext, api: ApiState): Reply | Promise<Reply>;
}

interface ApiState {
  startedAt: number;
  commandTimeoutMs: number;
}

// ---- query and body parsing -------------------------------------------------------------------------------

function bad(code: string, message: string): HubApiError {
  return new HubApiError(400, code, message);
}

/** A non-negative integer query parameter within `[min, max]`, or `undefined` when absent. */
function intParam(query: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^\d{1,16}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw bad("bad_query", `${name} must be an integer from ${min} to ${max}; got "${raw}"`);
  }
  return Number(raw);
}

function idParam(query: URLSearchParams, name: string): string | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!ID_PATTERN.test(raw))
    throw bad("bad_query", `${name} must match [a-z0-9][a-z0-9-]{0,63}; got "${raw}"`);
  return raw;
}

function historyWindow(query: URLSearchParams): { since?: number; limit: number } {
  const since = intParam(query, "since", 0, Number.MAX_SAFE_INTEGER);
  const limit = intParam(query, "limit", 1, MAX_LIMIT) ?? DEFAULT_LIMIT;
  return since === undefined ? { limit } : { since, limit };
}

function deviceId(ctx: RouteContext): string {
  const id = ctx.params.id ?? "";
  if (!ID_PATTERN.test(id)) throw bad("bad_id", `device id must match [a-z0-9][a-z0-9-]{0,63}; got "${id}"`);
  return id;
}

function knownDevice(ctx: RouteContext): string {
  const id = deviceId(ctx);
  if (ctx.view.device(id) === undefined) throw new HubApiError(404, "unknown_device", `no device "${id}"`);
  return id;
}

const CommandBody = z.strictObject({
  target: z.string().regex(ID_PATTERN, { error: "target must be a sensor/actuator id" }),
  op: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, { error: "op must be a short lowercase word" }),
  args: z.record(z.string(), z.unknown()).optional(),
});

function commandOf(body: unknown): CommandRequest {
  const parsed = CommandBody.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    throw bad("bad_command", `expected {"target", "op", "args"?}: ${where}${issue?.message ?? "invalid"}`);
  }
  const { target, op, args } = parsed.data;
  return args === undefined ? { target, op } : { target, op, args };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HubApiError(504, "no_confirmation", `no confirmation within ${ms / 1000} s`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---- the routes (DESIGN.md §2) ------------------------------------------------------------------------------

const ROUTES: Route[] = [
  {
    method: "GET",
    path: "/api/tree",
    handler: ({ view }) => ({ status: 200, body: view.tree() }),
  },
  {
    method: "GET",
    path: "/api/devices",
    handler: ({ view }) => ({ status: 200, body: view.devices() }),
  },
  {
    method: "POST",
    path: "/api/devices",
    body: true,
    handler: async ({ view, body }) => ({ status: 201, body: await view.addDevice(body) }),
  },
  {
    method: "GET",
    path: "/api/devices/:id",
    handler: (ctx) => {
      const id = deviceId(ctx);
      const device = ctx.view.device(id);
      if (!device) throw new HubApiError(404, "unknown_device", `no device "${id}"`);
      return { status: 200, body: device };
    },
  },
  {
    method: "DELETE",
    path: "/api/devices/:id",
    handler: async (ctx) => {
      await ctx.view.removeDevice(deviceId(ctx));
      return { status: 204 };
    },
  },
  {
    method: "GET",
    path: "/api/devices/:id/telemetry",
    handler: (ctx) => {
      const device = knownDevice(ctx);
      const sensor = idParam(ctx.query, "sensor");
      const window = historyWindow(ctx.query);
      const query = sensor === undefined ? { device, ...window } : { device, sensor, ...window };
      return { status: 200, body: ctx.view.telemetry(query) };
    },
  },
  {
    method: "POST",
    path: "/api/devices/:id/commands",
    body: true,
    handler: async (ctx, api) => {
      const id = deviceId(ctx);
      const command = commandOf(ctx.body);
      return { status: 200, body: await withTimeout(ctx.view.command(id, command), api.commandTimeoutMs) };
    },
  },
  {
    method: "GET",
    path: "/api/events",
    handler: ({ view, query }) => {
      const device = idParam(query, "device");
      const type = query.get("type");
      if (type !== null && !/^[a-z][a-z_]{0,63}$/.test(type)) {
        throw bad("bad_query", `type must be an event type such as "restarted"; got "${type}"`);
      }
      const filter = {
        ...historyWindow(query),
        ...(device === undefined ? {} : { device }),
        ...(type === null ? {} : { type }),
      };
      return { status: 200, body: view.events(filter) };
    },
  },
  {
    method: "GET",
    path: "/api/faults",
    handler: ({ view }) => ({ status: 200, body: view.faults() }),
  },
  {
    method: "POST",
    path: "/api/faults",
    body: true,
    // 202: the fault is applied, but its outcome (a restart, a reconnect) is still to come, as events.
    handler: async ({ view, body }) => ({ status: 202, body: await view.injectFault(body) }),
  },
  {
    method: "GET",
    path: "/api/scenarios",
    handler: ({ view }) => ({ status: 200, body: view.scenarios() }),
  },
  {
    method: "POST",
    path: "/api/scenarios/:name/run",
    // 202: the run has started; its timeline arrives as `scenario` events.
    handler: ({ view, params }) => ({ status: 202, body: view.runScenario(params.name ?? "") }),
  },
  {
    method: "DELETE",
    path: "/api/faults/:id",
    handler: async (ctx) => {
      await ctx.view.clearFault(ctx.params.id ?? "");
      return { status: 204 };
    },
  },
];

function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split("/");
  const got = path.split("/");
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(":")) {
      if (g === "") return undefined;
      try {
        params[w.slice(1)] = decodeURIComponent(g);
      } catch {
        throw bad("bad_path", `cannot decode path segment "${g}"`);
      }
    } else if (w !== g) return undefined;
  }
  return params;
}

// ---- responses ---------------------------------------------------------------------------------------------

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
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
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers?: Record<string, string>,
): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

// ---- bodies ------------------------------------------------------------------------------------------------

class BodyTooLarge extends Error {}

/** Reads the whole body up to `limit` bytes; rejects with {@link BodyTooLarge} beyond it. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolvePromise(Buffer.concat(chunks)));
    req.once("error", reject);
  });
}

/**
 * After a refused body, reads and discards what the client still sends (so it can read the answer instead of
 * getting a reset), up to a bound past which the connection is dropped.
 */
function discardRest(req: IncomingMessage, res: ServerResponse, bound: number): void {
  let discarded = 0;
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > bound) req.socket.destroy();
  });
  req.resume();
  res.once("finish", () => {
    if (req.complete) return;
    // Give the client a moment to read the answer, then drop it.
    setTimeout(() => req.socket.destroy(), 1000).unref();
  });
}

async function jsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    throw new HubApiError(413, "body_too_large", `request body over ${limit} bytes`);
  }
  if (type !== "application/json") {
    throw new UnsupportedMediaType(type);
  }
  let raw: Buffer;
  try {
    raw = await readBody(req, limit);
  } catch (err) {
    if (err instanceof BodyTooLarge)
      throw new HubApiError(413, "body_too_large", `request body over ${limit} bytes`);
    throw err;
  }
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw bad("bad_json", "the body is not valid JSON");
  }
}

class UnsupportedMediaType extends Error {
  constructor(readonly type: string) {
    super(`expected content-type application/json${type ? `; got ${type}` : ""}`);
  }
}

// ---- static files ------------------------------------------------------------------------------------------

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".map": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
};

/**
 * Resolves a URL path to a file under `root`, or `undefined` when there is none. Refuses `..` segments, NUL and
 * backslashes outright, and anything whose real path (symlinks followed) leaves the root.
 */
async function staticFile(root: string, pathname: string): Promise<string | undefined> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    throw bad("bad_path", "cannot decode the path");
  }
  if (decoded.includes("\0") || decoded.includes("\\") || decoded.split("/").some((s) => s === "..")) {
    throw bad("bad_path", "the path may not contain .. segments");
  }
  const realRoot = await realpath(root);
  let file = resolve(realRoot, `.${decoded}`);
  if (file !== realRoot && !file.startsWith(realRoot + sep)) return undefined;
  try {
    let info = await stat(file);
    if (info.isDirectory()) {
      file = join(file, "index.html");
      info = await stat(file);
    }
    if (!info.isFile()) return undefined;
    const real = await realpath(file);
    return real.startsWith(realRoot + sep) ? real : undefined;
  } catch {
    return undefined;
  }
}

async function serveStatic(req: IncomingMessage, res: ServerResponse, root: string, pathname: string) {
  if (req.method !== "GET" && req.method !== "HEAD") {
    sendError(res, 405, "method_not_allowed", `${req.method} is not allowed here`, { allow: "GET, HEAD" });
    return;
  }
  const file = await staticFile(root, pathname);
  if (!file) {
    sendError(res, 404, "not_found", `no file at ${pathname}`);
    return;
  }
  const info = await stat(file);
  res.writeHead(200, {
    "content-type": CONTENT_TYPES[extname(file).toLowerCase()] ?? "application/octet-stream",
    "content-length": String(info.size),
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",
  });
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  createReadStream(file)
    .on("error", () => res.destroy())
    .pipe(res);
}

// ---- dispatch ----------------------------------------------------------------------------------------------

interface Dispatcher {
  view: HubView | undefined;
  state: ApiState;
  token: string | undefined;
  requireToken: boolean;
  maxBodyBytes: number;
  staticDir: string | undefined;
  /** Bound to a loopback address: `Host` must name one. */
  loopback: boolean;
  log: Logger;
}

function authorised(req: IncomingMessage, d: Dispatcher): boolean {
  if (!d.requireToken) return true;
  const header = req.headers.authorization ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match !== null && d.token !== undefined && tokenMatches(match[1]!, d.token);
}

async function dispatch(req: IncomingMessage, res: ServerResponse, d: Dispatcher): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname;
  const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");
  if (d.loopback && !loopbackHostHeader(req)) {
    sendError(
      res,
      403,
      "bad_host",
      "this hub only answers requests addressed to a loopback name (127.0.0.1, localhost)",
    );
    return;
  }
  if (path === "/api/health") {
    if (method !== "GET") {
      sendError(res, 405, "method_not_allowed", `${req.method} not allowed on /api/health`, { allow: "GET" });
      return;
    }
    sendJson(res, 200, { status: "ok", uptimeS: Math.floor((Date.now() - d.state.startedAt) / 1000) });
    return;
  }
  if (path !== "/api" && !path.startsWith("/api/")) {
    if (d.staticDir !== undefined) await serveStatic(req, res, d.staticDir, path);
    else sendError(res, 404, "not_found", `no route for ${req.method} ${path}`);
    return;
  }
  let allowed: Method[] = [];
  let found: { route: Route; params: Record<string, string> } | undefined;
  for (const route of ROUTES) {
    const params = matchPath(route.path, path);
    if (params === undefined) continue;
    allowed.push(route.method);
    if (route.method === method) found = { route, params };
  }
  if (!found) {
    allowed = [...new Set(allowed)];
    if (allowed.length > 0) {
      sendError(res, 405, "method_not_allowed", `${req.method} not allowed on ${path}`, {
        allow: allowed.join(", "),
      });
    } else sendError(res, 404, "not_found", `no route for ${req.method} ${path}`);
    return;
  }
  const { route, params } = found;
  if (route.method !== "GET" && !sameOrigin(req)) {
    sendError(res, 403, "bad_origin", `requests from ${req.headers.origin} may not change this hub`);
    return;
  }
  if (route.method !== "GET" && !authorised(req, d)) {
    sendError(res, 401, "unauthorized", "this endpoint needs Authorization: Bearer <api token>", {
      "www-authenticate": 'Bearer realm="ganglion"',
    });
    return;
  }
  if (!d.view) {
    sendError(res, 503, "hub_unavailable", "the hub core is not running");
    return;
  }
  let body: unknown;
  if (route.body) {
    try {
      body = await jsonBody(req, d.maxBodyBytes);
    } catch (err) {
      if (err instanceof UnsupportedMediaType) {
        discardRest(req, res, d.maxBodyBytes * 16);
        sendError(res, 415, "unsupported_media_type", err.message, { connection: "close" });
        return;
      }
      throw err;
    }
  }
  const reply = await route.handler({ params, query: url.searchParams, body, view: d.view }, d.state);
  sendJson(res, reply.status, reply.body);
}

function handle(req: IncomingMessage, res: ServerResponse, d: Dispatcher): void {
  if (d.log.isLevelEnabled("debug")) {
    const started = performance.now();
    res.once("finish", () => {
      const ms = Math.round((performance.now() - started) * 10) / 10;
      d.log.debug({ method: req.method, url: req.url, status: res.statusCode, ms }, "request");
    });
  }
  dispatch(req, res, d).catch((err: unknown) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HubApiError) {
      const headers: Record<string, string> = err.status === 413 ? { connection: "close" } : {};
      if (err.status === 413 && !req.complete) discardRest(req, res, d.maxBodyBytes * 16);
      sendError(res, err.status, err.code, err.message, headers);
      return;
    }
    d.log.error({ err, method: req.method, url: req.url }, "API handler failed");
    sendError(res, 500, "internal_error", "internal error (see the hub's log)");
  });
}

/**
 * Starts the HTTP API (and `/api/live` when a view is given); resolves once it listens, rejects with
 * {@link PortInUseError} if the port is taken, and with an `Error` when a token is required but none was given.
 */
export function startApi(options: ApiOptions): Promise<RunningApi> {
  const requireToken = options.requireToken ?? !isLoopbackHost(options.host);
  if (requireToken && !options.token) {
    return Promise.reject(
      new Error(`an API token is required when binding ${options.host} (a non-loopback address)`),
    );
  }
  const log = (options.logger ?? pino({ level: "info" }, pino.destination(2))).child({ service: "api" });
  const dispatcher: Dispatcher = {
    view: options.view,
    state: {
      startedAt: options.startedAt ?? options.view?.startedAt ?? Date.now(),
      commandTimeoutMs: options.commandTimeoutMs ?? 10_000,
    },
    token: options.token,
    requireToken,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    staticDir: options.staticDir,
    loopback: isLoopbackHost(options.host),
    log,
  };
  const server = createServer((req, res) => handle(req, res, dispatcher));
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  let live: LiveServer | undefined;
  if (options.view) {
    live = attachLive(server, {
      ...options.live,
      view: options.view,
      logger: log,
      allowUpgrade: (req) => sameOrigin(req) && (!dispatcher.loopback || loopbackHostHeader(req)),
    });
  } else {
    server.on("upgrade", (_req, socket) => {
      socket.end("HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    });
  }
  return new Promise((resolvePromise, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(err.code === "EADDRINUSE" ? new PortInUseError("http", options.port, options.host) : err);
    });
    server.listen(options.port, options.host, () => {
      const { port } = server.address() as AddressInfo;
      const host = options.host.includes(":") ? `[${options.host}]` : options.host;
      let closing: Promise<void> | undefined;
      resolvePromise({
        server,
        url: `http://${host}:${port}`,
        ...(live ? { live } : {}),
        close: () => {
          closing ??= new Promise<void>((done) => {
            live?.close();
            server.close(() => done());
            server.closeIdleConnections();
            setTimeout(() => server.closeAllConnections(), 1000).unref();
          });
          return closing;
        },
      });
    });
  });
}
