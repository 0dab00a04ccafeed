import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { createServer } from "node:tls";
import { Aedes } from "aedes";
import { afterEach, describe, expect, it } from "vitest";
import { Agent } from "../../firmware/pi-agent/src/agent.ts";
import { loadConfig } from "../../firmware/pi-agent/src/config.ts";
import { createVirtualSysfs } from "../../simulator/pi/virtual-sysfs.ts";
import { tempDir, testConfigInput, W1_ADDRESS, waitFor } from "./helpers.ts";

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A private CA and a certificate for 127.0.0.1 signed by it, as a LAN hub would have. */
function makeCerts(dir: string): { ca: string; key: string; cert: string } {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  run(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=test-ca",
  );
  run(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "hub.key",
    "-out",
    "hub.csr",
    "-subj",
    "/CN=127.0.0.1",
  );
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
  run(
    "x509",
    "-req",
    "-in",
    "hub.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "hub.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  );
  return { ca: join(dir, "ca.pem"), key: join(dir, "hub.key"), cert: join(dir, "hub.pem") };
}

describe.skipIf(!hasOpenssl)("pi-agent over mqtts (needs the Debian package openssl)", () => {
  it("verifies the hub's certificate against caFile, and refuses a hub it cannot verify", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const certs = makeCerts(t.dir);
    const aedes = await Aedes.createBroker();
    aedes.authenticate = (_c, username, password, done) =>
      done(null, username === "pi-1" && `${password}` === "tls-tok");
    const received: string[] = [];
    aedes.on("publish", (packet, client) => {
      if (client) received.push(packet.topic);
    });
    const sockets = new Set<Socket>();
    const server = createServer(
      { key: readFileSync(certs.key), cert: readFileSync(certs.cert) },
      (socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
        aedes.handle(socket);
      },
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => aedes.close(() => r()));
    });
    const port = (server.address() as { port: number }).port;
    const sys = await createVirtualSysfs(join(t.dir, "root"));
    cleanups.push(() => sys.close());
    sys.addDs18b20(W1_ADDRESS, 21);

    const write = (name: string, extra: Record<string, unknown>) => {
      const input = testConfigInput(port, "root", name, {
        sensors: [{ id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 50 }],
        outputs: [],
      });
      const file = join(t.dir, `${name}.json`);
      writeFileSync(
        file,
        JSON.stringify({ ...input, token: "tls-tok", broker: `mqtts://127.0.0.1:${port}`, ...extra }),
      );
      return loadConfig(file);
    };

    const trusting = new Agent({ config: write("trusting", { caFile: "ca.pem" }) });
    cleanups.push(() => trusting.stop());
    await trusting.start();
    await waitFor(() => received.includes("ganglion/pi-1/telemetry/water"), 8000, "telemetry over TLS");

    const stranger = new Agent({ config: write("stranger", {}) }); // no caFile: the private CA is unknown
    cleanups.push(() => stranger.stop());
    const reasons: string[] = [];
    stranger.on("offline", (e) => reasons.push(e.reason));
    await stranger.start();
    await waitFor(() => reasons.length >= 1, 8000, "refused TLS handshake");
    expect(reasons[0]).toMatch(/certificate/i);
    expect(stranger.online).toBe(false);
  });
});
