import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isLoopbackHost, type RunningApi, startApi, tokenMatches } from "../../hub/api.ts";
import { hashToken } from "../../hub/config.ts";
import { FixtureHubView } from "./fixtures/fixture-hub-view.ts";

const silent = pino({ level: "silent" });
const running: RunningApi[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((api) => api.close()));
});

async function start(options: Partial<Parameters<typeof startApi>[0]> = {}) {
  const view = new FixtureHubView();
  const api = await startApi({ host: "127.0.0.1", port: 0, view, logger: silent, ...options });
  running.push(api);
  return { api, view, url: api.url };
}

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

async function call(url: string, method: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(`${url}${path}`, { method, ...init });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  return call(url, "POST", path, {
    body: JSON.stringify(body),
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A raw HTTP request, so the path is sent exactly as written (fetch would normalise `..`). */
function rawGet(url: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: "GET" }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => {
        body += c.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function errorCode(answer: Answer): string | undefined {
  return (answer.body as { error?: { code: string; message: string } }).error?.code;
}

describe("GET routes", () => {
  it("answers /api/health with status and uptime from the hub's start", async () => {
    const { url } = await start();
    const res = await call(url, "GET", "/api/health");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok", uptimeS: expect.any(Number) });
    expect((res.body as { uptimeS: number }).uptimeS).toBeGreaterThanOrEqual(4);
  });

  it("answers /api/tree with the root node", async () => {
    const { url } = await start();
    const res = await call(url, "GET", "/api/tree");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const tree = res.body as { id: string; children: { path: string }[] };
    expect(tree.id).toBe("hub");
    expect(tree.children.map((c) => c.path)).toEqual(["hub/fleet/uno-1", "hub/fleet/pi-1"]);
  });

  it("lists devices and answers one by id; unknown is 404, a malformed id 400", async () => {
    const { url } = await start();
    const list = await call(url, "GET", "/api/devices");
    expect((list.body as { id: string }[]).map((d) => d.id)).toEqual(["uno-1", "pi-1"]);
    const one = await call(url, "GET", "/api/devices/pi-1");
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ id: "pi-1", status: "offline", reason: "last will" });
    const missing = await call(url, "GET", "/api/devices/nope");
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: { code: "unknown_device", message: 'no device "nope"' } });
    const bad = await call(url, "GET", "/api/devices/Bad_Id");
    expect(bad.status).toBe(400);
    expect(errorCode(bad)).toBe("bad_id");
  });

  it("passes telemetry queries with defaults, and returns readings oldest first", async () => {
    const { url, view } = await start();
    const all = await call(url, "GET", "/api/devices/uno-1/telemetry");
    expect(all.status).toBe(200);
    expect(view.telemetryQueries.at(-1)).toEqual({ device: "uno-1", limit: 1000 });
    expect((all.body as unknown[]).length).toBe(20);
    const some = await call(url, "GET", "/api/devices/uno-1/telemetry?sensor=temp&since=1500&limit=3");
    expect(view.telemetryQueries.at(-1)).toEqual({ device: "uno-1", sensor: "temp", since: 1500, limit: 3 });
    expect(some.body).toEqual([
      { ts: 1500, value: 20.5, seq: 5 },
      { ts: 1600, value: 20.6, seq: 6 },
      { ts: 1700, value: 20.7, seq: 7 },
    ]);
    const max = await call(url, "GET", "/api/devices/uno-1/telemetry?limit=10000");
    expect(max.status).toBe(200);
  });

  it.each([
    ["since=abc"],
    ["since=-1"],
    ["since=1.5"],
    ["since="],
    ["limit=0"],
    ["limit=10001"],
    ["limit=ten"],
    ["sensor=Not_An_Id"],
  ])("refuses telemetry query %s with 400", async (query) => {
    const { url, view } = await start();
    const res = await call(url, "GET", `/api/devices/uno-1/telemetry?${query}`);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe("bad_query");
    expect(view.telemetryQueries).toEqual([]);
  });

  it("answers 404 for the telemetry of an unknown device", async () => {
    const { url } = await start();
    const res = await call(url, "GET", "/api/devices/ghost/telemetry");
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe("unknown_device");
  });

  it("filters events by since, limit, device and type", async () => {
    const { url, view } = await start();
    const all = await call(url, "GET", "/api/events");
    expect((all.body as unknown[]).length).toBe(3);
    expect(view.eventQueries.at(-1)).toEqual({ limit: 1000 });
    const some = await call(url, "GET", "/api/events?since=1000&limit=5&device=uno-1&type=restarted");
    expect(view.eventQueries.at(-1)).toEqual({ since: 1000, limit: 5, device: "uno-1", type: "restarted" });
    expect(some.body).toEqual([
      { type: "restarted", path: "hub/fleet/uno-1/sensors/temp", ts: 1500, reason: "boom", restarts: 1 },
    ]);
    for (const bad of ["type=DROP%20TABLE", "device=..", "limit=-5", "since=x"]) {
      const res = await call(url, "GET", `/api/events?${bad}`);
      expect(res.status, bad).toBe(400);
    }
  });
});

describe("mutating routes", () => {
  it("adds a device (201) validated by the fleet schema; a duplicate is 409, an invalid one 400", async () => {
    const { url, view } = await start();
    const device = { id: "uno-2", board: "uno", link: { type: "serial", path: "/dev/ttyACM1" } };
    const added = await post(url, "/api/devices", device);
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({ id: "uno-2", board: "arduino-uno", link: "serial" });
    expect(view.device("uno-2")).toBeDefined();
    const again = await post(url, "/api/devices", device);
    expect(again.status).toBe(409);
    const invalid = await post(url, "/api/devices", { id: "hub", board: "toaster" });
    expect(invalid.status).toBe(400);
    expect(errorCode(invalid)).toBe("invalid_device");
  });

  it("removes a device (204); an unknown one is 404", async () => {
    const { url, view } = await start();
    const res = await call(url, "DELETE", "/api/devices/pi-1");
    expect(res.status).toBe(204);
    expect(view.device("pi-1")).toBeUndefined();
    const again = await call(url, "DELETE", "/api/devices/pi-1");
    expect(again.status).toBe(404);
  });

  it("sends a command and answers once confirmed", async () => {
    const { url, view } = await start();
    const res = await post(url, "/api/devices/uno-1/commands", { target: "led", op: "on" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: "cmd-1", ok: true });
    expect(view.commands).toEqual([{ device: "uno-1", command: { target: "led", op: "on" } }]);
    const withArgs = await post(url, "/api/devices/uno-1/commands", {
      target: "led",
      op: "toggle",
      args: {},
    });
    expect(withArgs.status).toBe(200);
    expect(view.commands[1]?.command).toEqual({ target: "led", op: "toggle", args: {} });
  });

  it("maps command failures: bad body 400, bad op 400, unknown target/device 404, offline 503", async () => {
    const { url } = await start();
    const cases: [unknown, string, number, string][] = [
      [{ target: "led" }, "uno-1", 400, "bad_command"],
      [{ target: "led", op: "on", extra: 1 }, "uno-1", 400, "bad_command"],
      [{ target: "led", op: "on", args: [1] }, "uno-1", 400, "bad_command"],
      [[], "uno-1", 400, "bad_command"],
      [{ target: "led", op: "explode" }, "uno-1", 400, "bad_op"],
      [{ target: "fan", op: "on" }, "uno-1", 404, "unknown_target"],
      [{ target: "led", op: "on" }, "ghost", 404, "unknown_device"],
      [{ target: "led", op: "on" }, "pi-1", 503, "device_offline"],
    ];
    for (const [body, device, status, code] of cases) {
      const res = await post(url, `/api/devices/${device}/commands`, body);
      expect([res.status, errorCode(res)], JSON.stringify(body)).toEqual([status, code]);
    }
  });

  it("answers 504 when the hub never confirms a command", async () => {
    const { url } = await start({ commandTimeoutMs: 200 });
    const res = await post(url, "/api/devices/uno-1/commands", { target: "slow", op: "on" });
    expect(res.status).toBe(504);
    expect(errorCode(res)).toBe("no_confirmation");
  });

  it("refuses a non-JSON body with 415 and malformed JSON with 400", async () => {
    const { url } = await start();
    const text = await call(url, "POST", "/api/devices", {
      body: "id=uno-3",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(text.status).toBe(415);
    expect(errorCode(text)).toBe("unsupported_media_type");
    const broken = await call(url, "POST", "/api/devices", {
      body: "{not json",
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(broken.status).toBe(400);
    expect(errorCode(broken)).toBe("bad_json");
  });

  it("refuses a body over the limit with 413, by content-length and when streamed without one", async () => {
    const { url, view } = await start({ maxBodyBytes: 1024 });
    const big = JSON.stringify({ id: "uno-3", board: "uno", name: "x".repeat(2000) });
    const declared = await post(url, "/api/devices", JSON.parse(big));
    expect(declared.status).toBe(413);
    expect(errorCode(declared)).toBe("body_too_large");
    const { hostname, port } = new URL(url);
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: hostname,
          port,
          path: "/api/devices",
          method: "POST",
          headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      for (let i = 0; i < 8; i++) req.write(big.slice(i * 256, (i + 1) * 256));
      req.end(big.slice(2048));
    });
    expect(streamed).toBe(413);
    expect(view.device("uno-3")).toBeUndefined();
    // The server still answers afterwards.
    expect((await call(url, "GET", "/api/health")).status).toBe(200);
  });
});

describe("routing and errors", () => {
  it("answers 405 with Allow for a known path and another method, 404 for an unknown route", async () => {
    const { url } = await start();
    const res = await call(url, "PUT", "/api/devices/uno-1");
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, DELETE");
    expect(errorCode(res)).toBe("method_not_allowed");
    const health = await call(url, "POST", "/api/health");
    expect(health.status).toBe(405);
    const unknown = await call(url, "GET", "/api/nothing");
    expect(unknown.status).toBe(404);
    expect(errorCode(unknown)).toBe("not_found");
  });

  it("answers 500 without leaking the cause when the hub throws something unexpected", async () => {
    const view = new FixtureHubView();
    view.tree = () => {
      throw new Error("secret internals");
    };
    const api = await startApi({ host: "127.0.0.1", port: 0, view, logger: silent });
    running.push(api);
    const res = await call(api.url, "GET", "/api/tree");
    expect(res.status).toBe(500);
    expect(errorCode(res)).toBe("internal_error");
    expect(JSON.stringify(res.body)).not.toContain("secret");
  });

  it("without a hub core answers health and 503 elsewhere", async () => {
    const api = await startApi({ host: "127.0.0.1", port: 0, logger: silent });
    running.push(api);
    expect((await call(api.url, "GET", "/api/health")).status).toBe(200);
    const res = await call(api.url, "GET", "/api/devices");
    expect(res.status).toBe(503);
    expect(errorCode(res)).toBe("hub_unavailable");
  });
});

describe("auth", () => {
  it("treats only loopback addresses as loopback", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "128.0.0.1"]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });

  it("compares tokens by value", () => {
    expect(tokenMatches("abc", "abc")).toBe(true);
    expect(tokenMatches("abd", "abc")).toBe(false);
    expect(tokenMatches("abcd", "abc")).toBe(false);
    expect(tokenMatches("", "abc")).toBe(false);
  });

  it("refuses to start on a non-loopback address without a token", async () => {
    await expect(startApi({ host: "0.0.0.0", port: 0, view: new FixtureHubView() })).rejects.toThrow(
      /API token is required/,
    );
  });

  it("in token mode, POST and DELETE need the bearer token; reads stay open", async () => {
    const token = "s3cret-token";
    const { url, view } = await start({ requireToken: true, token });
    const device = { id: "uno-9", board: "uno", link: { type: "serial", path: "/dev/ttyACM9" } };
    const none = await post(url, "/api/devices", device);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(errorCode(none)).toBe("unauthorized");
    const wrong = await post(url, "/api/devices", device, { authorization: "Bearer s3cret-tokem" });
    expect(wrong.status).toBe(401);
    const basic = await post(url, "/api/devices", device, {
      authorization: `Basic ${btoa("u:s3cret-token")}`,
    });
    expect(basic.status).toBe(401);
    expect(view.device("uno-9")).toBeUndefined();
    const del = await call(url, "DELETE", "/api/devices/pi-1");
    expect(del.status).toBe(401);
    const cmd = await post(url, "/api/devices/uno-1/commands", { target: "led", op: "on" });
    expect(cmd.status).toBe(401);
    expect(view.commands).toEqual([]);

    const ok = await post(url, "/api/devices", device, { authorization: `Bearer ${token}` });
    expect(ok.status).toBe(201);
    const delOk = await call(url, "DELETE", "/api/devices/pi-1", {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(delOk.status).toBe(204);
    expect((await call(url, "GET", "/api/devices")).status).toBe(200);
  });

  it("bound to loopback, refuses a Host that is not a loopback name (DNS rebinding)", async () => {
    const { url } = await start();
    const { port } = new URL(url);
    const answer = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, path: "/api/devices", headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    expect(await answer(`evil.example:${port}`)).toBe(403);
    expect(await answer(`localhost:${port}`)).toBe(200);
    expect(await answer(`[::1]:${port}`)).toBe(200);
    expect(await answer(`127.0.0.1:${port}`)).toBe(200);
  });

  it("refuses mutating requests from another origin, accepts its own", async () => {
    const { url, view } = await start();
    const foreign = await post(
      url,
      "/api/devices/uno-1/commands",
      { target: "led", op: "on" },
      {
        origin: "http://evil.example",
      },
    );
    expect(foreign.status).toBe(403);
    expect(errorCode(foreign)).toBe("bad_origin");
    expect(view.commands).toEqual([]);
    const own = await post(url, "/api/devices/uno-1/commands", { target: "led", op: "on" }, { origin: url });
    expect(own.status).toBe(200);
  });

  it("on loopback without token mode, mutating routes are open", async () => {
    const { url } = await start();
    const res = await call(url, "DELETE", "/api/devices/pi-1");
    expect(res.status).toBe(204);
  });

  it("accepts a device added with a hashed token like the CLI posts it", async () => {
    const { url } = await start();
    const tokenHash = await hashToken("t");
    const res = await post(url, "/api/devices", {
      id: "pi-2",
      board: "raspberry-pi",
      link: { type: "mqtt", tokenHash },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id: "pi-2", link: "mqtt" });
  });
});

describe("static files", () => {
  let root: string;
  let site: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "ganglion-static-"));
    site = join(root, "site");
    await mkdir(join(site, "assets"), { recursive: true });
    await writeFile(join(site, "index.html"), "<h1>dashboard</h1>");
    await writeFile(join(site, "assets", "app.js"), "console.log(1)");
    await writeFile(join(root, "secret.txt"), "do not serve");
    await symlink(join(root, "secret.txt"), join(site, "escape.txt"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("serves index.html at / and files with their content type", async () => {
    const { url } = await start({ staticDir: site });
    const index = await fetch(`${url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await index.text()).toBe("<h1>dashboard</h1>");
    const js = await fetch(`${url}/assets/app.js`);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(await js.text()).toBe("console.log(1)");
    expect((await fetch(`${url}/nope.html`)).status).toBe(404);
    expect((await call(url, "POST", "/index.html")).status).toBe(405);
  });

  it("refuses paths that leave the directory, encoded or through a symlink", async () => {
    const { url } = await start({ staticDir: site });
    for (const path of [
      "/../secret.txt",
      "/..%2fsecret.txt",
      "/%2e%2e/secret.txt",
      "/assets/..%2F..%2Fsecret.txt",
      "/..%5csecret.txt",
      "/escape.txt",
      "/%00index.html",
    ]) {
      const res = await rawGet(url, path);
      expect(res.status, path).not.toBe(200);
      expect(res.body, path).not.toContain("do not serve");
    }
  });

  it("keeps /api routes JSON even with a static directory", async () => {
    const { url } = await start({ staticDir: site });
    const res = await call(url, "GET", "/api/unknown");
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe("not_found");
  });

  it("answers 404 for everything outside /api without a static directory", async () => {
    const { url } = await start();
    expect((await fetch(`${url}/`)).status).toBe(404);
  });
});
