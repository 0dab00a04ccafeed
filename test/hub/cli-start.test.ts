import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DASHBOARD_DIR, dashboardLink, resolveApiToken } from "../../hub/run-hub.ts";

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

function runCli(args: string[]): ChildProcess {
  // No token from the environment: each test says whether it gives one.
  const { GANGLION_API_TOKEN: _, ...env } = process.env;
  const child = spawn(process.execPath, ["--import", "tsx", "hub/cli.ts", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  children.push(child);
  return child;
}

const outputs = new WeakMap<ChildProcess, { text: string }>();

/** Resolves once the child's stdout so far (not just new chunks) matches `pattern`. */
function waitForLine(child: ChildProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  let out = outputs.get(child);
  if (out === undefined) {
    const record = { text: "" };
    out = record;
    outputs.set(child, record);
    child.stdout?.on("data", (chunk: Buffer) => {
      record.text += chunk.toString();
    });
  }
  const seen = out;
  return new Promise((resolve, reject) => {
    const check = () => {
      const match = seen.text.match(pattern);
      if (match) {
        clearInterval(timer);
        child.off("exit", onExit);
        resolve(match);
      }
    };
    const onExit = (code: number | null) => {
      clearInterval(timer);
      reject(new Error(`exited ${code} before printing ${pattern}: ${seen.text}`));
    };
    const timer = setInterval(check, 20);
    child.once("exit", onExit);
    check();
  });
}

let dataDir: string;
beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), "ganglion-start-"));
  // The dashboard line is printed when the dashboard is built (npm install does it; a bare checkout may not have).
  if (!existsSync(join(DASHBOARD_DIR, "index.html"))) {
    execFileSync(process.execPath, ["hub/dashboard/build.mjs"], { stdio: "pipe" });
  }
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("ganglion start", () => {
  it("prints its listening line and answers /api/health", async () => {
    const child = runCli(["start", "--http-port", "0", "--mqtt-port", "0", "--data-dir", dataDir]);
    const [, url] = await waitForLine(child, /^ganglion: http listening on (http:\/\/127\.0\.0\.1:\d+)$/m);
    // On loopback no token is in force: the dashboard's address is plain.
    const [, dashboard] = await waitForLine(child, /^ganglion: dashboard at (\S+)$/m);
    expect(dashboard).toBe(`${url}/`);
    const res = await fetch(`${url}/api/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; uptimeS: number };
    expect(body.status).toBe("ok");
    expect(typeof body.uptimeS).toBe("number");
  });

  it("off loopback without --api-token, makes a fresh token, prints it and puts it in the dashboard's address", () => {
    // Decided before anything binds (tests only bind 127.0.0.1): the token and the line the hub prints with it.
    const printed: string[] = [];
    const log = console.log;
    console.log = (line: string) => printed.push(line);
    let token: string | undefined;
    try {
      token = resolveApiToken("0.0.0.0", undefined);
    } finally {
      console.log = log;
    }
    expect(token).toMatch(/^[\w-]{32}$/);
    expect(printed).toEqual([
      `ganglion: api token (new each start; pass --api-token or GANGLION_API_TOKEN to keep one): ${token}`,
    ]);
    expect(resolveApiToken("0.0.0.0", undefined)).not.toBe(token);
    expect(dashboardLink("http://pi.local:8080", token)).toBe(
      `http://pi.local:8080/#token=${encodeURIComponent(token!)}`,
    );
    // On loopback without a token, none is made: changes are open to this machine's users.
    expect(resolveApiToken("127.0.0.1", undefined)).toBeUndefined();
    expect(dashboardLink("http://127.0.0.1:8080", undefined)).toBe("http://127.0.0.1:8080/");
  });

  it("with --api-token, requires it (on loopback too) and prints the dashboard's address with it as #token=", async () => {
    const token = randomBytes(18).toString("base64url");
    const child = runCli([
      "start",
      "--http-port",
      "0",
      "--mqtt-port",
      "0",
      "--data-dir",
      dataDir,
      "--api-token",
      token,
    ]);
    const [, url] = await waitForLine(child, /^ganglion: http listening on (http:\/\/127\.0\.0\.1:\d+)$/m);
    const [, dashboard] = await waitForLine(child, /^ganglion: dashboard at (\S+)$/m);
    expect(dashboard).toBe(`${url}/#token=${token}`);
    // The fragment's token is the one the hub requires.
    const without = await fetch(`${url}/api/faults/f999`, { method: "DELETE" });
    expect(without.status).toBe(401);
    const fromLink = decodeURIComponent(new URL(dashboard!).hash.replace(/^#token=/, ""));
    const withToken = await fetch(`${url}/api/faults/f999`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${fromLink}` },
    });
    expect(withToken.status).toBe(404);
    // Reads stay open.
    expect((await fetch(`${url}/api/devices`)).status).toBe(200);
  }, 60_000);

  it("exits 2 with one line naming the port when it is taken", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const child = runCli(["start", "--http-port", String(port), "--mqtt-port", "0", "--data-dir", dataDir]);
      let err = "";
      child.stderr?.on("data", (c: Buffer) => {
        err += c.toString();
      });
      const code = await new Promise<number | null>((r) => child.once("exit", r));
      expect(code).toBe(2);
      // Logs are JSON lines on stderr; the failure itself is one plain line.
      const plain = err
        .trim()
        .split("\n")
        .filter((l) => !l.startsWith("{"));
      expect(plain).toHaveLength(1);
      expect(err).toContain(String(port));
      expect(err).toContain("--http-port");
    } finally {
      blocker.close();
    }
  });

  it("refuses a bad port with a clear error and a non-zero exit", async () => {
    const child = runCli(["start", "--http-port", "eighty"]);
    let err = "";
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    expect(code).not.toBe(0);
    expect(err).toContain('"eighty" is not a port number');
  });
});

describe("ganglion start --simulate (what npm start runs)", () => {
  it("runs the hub with the demo Pis and emulated Unos: all come online with readings, a command reaches a board, SIGTERM stops it", async () => {
    const demoDir = mkdtempSync(join(tmpdir(), "ganglion-demo-"));
    const child = runCli([
      "start",
      "--simulate",
      "--http-port",
      "0",
      "--mqtt-port",
      "0",
      "--data-dir",
      demoDir,
    ]);
    try {
      const [, url] = await waitForLine(child, /^ganglion: http listening on (http:\/\/127\.0\.0\.1:\d+)$/m);
      await waitForLine(child, /^ganglion: mqtt listening on mqtt:\/\/127\.0\.0\.1:\d+$/m);
      // The terminal says how to inject a fault.
      await waitForLine(
        child,
        /^ganglion: inject a fault: {2}ganglion fault uno-1 throws --sensor temp --for 10s/m,
      );
      type Device = { id: string; status: string; sensors: { id: string; value: unknown }[] };
      let devices: Device[] = [];
      const deadline = Date.now() + 25_000;
      while (Date.now() < deadline) {
        devices = (await (await fetch(`${url}/api/devices`)).json()) as Device[];
        const ready = devices.every(
          (d) =>
            d.status === "online" &&
            d.sensors.find((s) => s.id === "water-temp" || s.id === "temp")?.value != null,
        );
        if (devices.length === 4 && ready) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(devices.map((d) => d.id).sort()).toEqual(["greenhouse-pi", "tank-pi", "uno-1", "uno-2"]);
      expect(devices.every((d) => d.status === "online")).toBe(true);
      const res = await fetch(`${url}/api/devices/tank-pi/commands`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ target: "pump", op: "close" }),
      });
      expect(res.status).toBe(200);
      // The emulated Uno's relay, over serial Firmata, confirmed by the board.
      const fan = await fetch(`${url}/api/devices/uno-1/commands`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ target: "fan", op: "close" }),
      });
      expect(fan.status).toBe(200);
      const code = new Promise<number | null>((r) => child.once("exit", r));
      child.kill("SIGTERM");
      expect(await code).toBe(0);
    } finally {
      rmSync(demoDir, { recursive: true, force: true });
    }
  }, 60_000);
});
