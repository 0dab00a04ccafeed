import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

function runCli(args: string[]): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "hub/cli.ts", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  return child;
}

function waitForLine(child: ChildProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = out.match(pattern);
      if (match) resolve(match);
    });
    child.once("exit", (code) => reject(new Error(`exited ${code} before printing ${pattern}: ${out}`)));
  });
}

describe("ganglion start", () => {
  it("prints its listening line and answers /api/health", async () => {
    const child = runCli(["start", "--http-port", "0"]);
    const [, url] = await waitForLine(child, /^ganglion: http listening on (http:\/\/127\.0\.0\.1:\d+)$/m);
    const res = await fetch(`${url}/api/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; uptimeS: number };
    expect(body.status).toBe("ok");
    expect(typeof body.uptimeS).toBe("number");
  });

  it("exits 2 with one line naming the port when it is taken", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const child = runCli(["start", "--http-port", String(port)]);
      let err = "";
      child.stderr?.on("data", (c: Buffer) => {
        err += c.toString();
      });
      const code = await new Promise<number | null>((r) => child.once("exit", r));
      expect(code).toBe(2);
      expect(err.trim().split("\n")).toHaveLength(1);
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
