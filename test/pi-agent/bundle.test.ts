import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { BUNDLE, bundle, LICENSES } from "../../firmware/pi-agent/build.ts";
import { createVirtualSysfs } from "../../simulator/pi/virtual-sysfs.ts";
import { hubClient, startBroker, tempDir, testConfigInput, W1_ADDRESS, waitFor } from "./helpers.ts";

const T = "ganglion/pi-1";
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs the committed bundle with plain node, as on a Pi. */
function runBundle(configFile: string): {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, [BUNDLE, "--config", configFile], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    return exited;
  });
  return { child, out: () => out, exited };
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

interface Telemetry {
  value: number;
  ts: number;
  seq: number;
}

describe("the bundled agent (dist/ganglion-agent.mjs)", () => {
  it("is what the sources build (run npx tsx firmware/pi-agent/build.ts after a change)", async () => {
    const built = await bundle();
    expect(built.text === readFileSync(BUNDLE, "utf8"), "dist/ganglion-agent.mjs is stale").toBe(true);
    expect(built.licenses === readFileSync(LICENSES, "utf8"), "dist/THIRD-PARTY-LICENSES.txt is stale").toBe(
      true,
    );
    expect(built.text).not.toMatch(/\/work\/|\/home\/|\/root\//); // no absolute paths of this checkout
  });

  it("runs under plain node: telemetry, structured logs, RSS under 80 MB, clean stop on SIGTERM", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(join(t.dir, "root"));
    cleanups.push(() => sys.close());
    sys.addDs18b20(W1_ADDRESS, 24.5);
    sys.addIio("bme280", { temp: 22, pressure: 1000 });
    const broker = await startBroker(0, { "pi-1": "from-file" });
    cleanups.push(() => broker.close());
    const hub = await hubClient(broker.port, [`${T}/#`]);
    cleanups.push(() => hub.close());
    writeFileSync(join(t.dir, "token"), "from-file\n");
    const input = testConfigInput(broker.port, "root", "state", { heartbeatMs: 500 });
    delete input.token;
    const config = join(t.dir, "agent.yaml");
    writeFileSync(config, stringify({ ...input, tokenFile: "token" }));

    const agent = runBundle(config);
    await hub.until(
      (m) => m.filter((x) => x.topic === `${T}/telemetry/water`).length >= 20,
      15_000,
      "telemetry",
    );
    const water = hub.json<Telemetry>(`${T}/telemetry/water`);
    expect(water[0]).toMatchObject({ value: 24.5, seq: 1 });
    expect(hub.messages.some((m) => m.topic === `${T}/heartbeat`)).toBe(true);
    // Send a command through the bundle as well.
    hub.client.publish(`${T}/cmd/led`, JSON.stringify({ id: "b1", op: "on" }), { qos: 1 });
    await hub.until((m) => m.some((x) => x.topic === `${T}/reply`));
    expect(sys.readGpio(27)).toBe(1);

    await new Promise((r) => setTimeout(r, 2000)); // let it settle into its steady state
    const rss = rssMiB(agent.child.pid as number);
    console.log(`pi-agent bundle RSS after ~3 s with 4 sensors at 20 Hz: ${rss.toFixed(1)} MiB`);
    expect(rss).toBeLessThan(80);

    const log = agent
      .out()
      .split("\n")
      .find((l) => l.includes('"msg":"connected"'));
    expect(JSON.parse(log as string)).toMatchObject({ device: "pi-1", level: 30 });

    agent.child.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
    await hub.until((m) => m.at(-1)?.topic === `${T}/status` && m.at(-1)?.text === "offline");
  }, 40_000);

  it("prints its usage with --help, and one line with exit 2 for a bad flag or no config", async () => {
    const help = spawnSync(process.execPath, [BUNDLE, "--help"], { encoding: "utf8" });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: ganglion-agent --config FILE/);
    const bad = spawnSync(process.execPath, [BUNDLE, "--nope"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toMatch(/--nope/);
    const env = { ...process.env };
    delete env.GANGLION_AGENT_CONFIG;
    const none = spawnSync(process.execPath, [BUNDLE], { encoding: "utf8", env });
    expect(none.status).toBe(2);
    expect(none.stderr).toBe("ganglion-agent: no config: pass --config FILE or set GANGLION_AGENT_CONFIG\n");
  });

  it("exits 2 with the bad key named when the config is invalid", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const config = join(t.dir, "agent.json");
    writeFileSync(
      config,
      JSON.stringify({ device: "pi-1", token: "x", broker: "mqtt://127.0.0.1:1", heartbeatMs: -1 }),
    );
    const agent = runBundle(config);
    expect(await agent.exited).toBe(2);
    expect(agent.out()).toMatch(/agent\.json: invalid configuration:\n\s+heartbeatMs: /);
  });

  it("loses nothing when killed (SIGKILL) while buffering and again in the middle of a replay", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(join(t.dir, "root"));
    cleanups.push(() => sys.close());
    sys.addDs18b20(W1_ADDRESS, 20);
    // Reserve a port, then take the broker away.
    const first = await startBroker(0, { "pi-1": "secret-pi-1" });
    const port = first.port;
    await first.close();
    const config = join(t.dir, "agent.json");
    const input = testConfigInput(port, "root", "state", {
      sensors: [{ id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 10 }],
      outputs: [],
    });
    writeFileSync(config, JSON.stringify(input));
    /** The last seq the agent used, recovered the way the agent recovers it (buffer mark, then buffered readings). */
    const lastSeq = () => {
      const dir = join(t.dir, "state/buffer");
      let last = 0;
      try {
        const mark = JSON.parse(readFileSync(join(dir, "ack"), "utf8")) as {
          meta?: { seqs?: { water?: number } };
        };
        last = mark.meta?.seqs?.water ?? 0;
        for (const f of readdirSync(dir).filter((n) => n.endsWith(".seg"))) {
          for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
            if (line.endsWith("}")) last = Math.max(last, (JSON.parse(line) as { seq: number }).seq);
          }
        }
      } catch {
        // not written yet
      }
      return last;
    };

    const offline = runBundle(config);
    await waitFor(() => lastSeq() >= 150, 20_000, "readings buffered offline");
    offline.child.kill("SIGKILL");
    await offline.exited;
    const producedOffline = lastSeq();

    // A slow broker, so the replay takes a while and the kill lands in its middle.
    const broker = await startBroker(port, { "pi-1": "secret-pi-1" }, { pubackDelayMs: 40 });
    cleanups.push(() => broker.close());
    const hub = await hubClient(port, [`${T}/telemetry/water`]);
    cleanups.push(() => hub.close());
    const replaying = runBundle(config);
    await hub.until((m) => m.length >= 50, 15_000, "replay to start");
    replaying.child.kill("SIGKILL");
    await replaying.exited;
    const seen = () => new Set(hub.json<Telemetry>(`${T}/telemetry/water`).map((m) => m.seq));
    expect(seen().size).toBeLessThan(producedOffline); // really killed mid-replay
    const producedBeforeSecondKill = lastSeq();

    const final = runBundle(config);
    cleanups.push(() => {
      final.child.kill("SIGTERM");
      return final.exited;
    });
    await hub.until(() => seen().has(producedBeforeSecondKill + 5), 40_000, "replay to finish");
    const got = [...seen()].sort((a, b) => a - b);
    const upTo = got.filter((s) => s <= producedBeforeSecondKill);
    expect(upTo).toEqual(Array.from({ length: producedBeforeSecondKill }, (_, i) => i + 1));
    // Original timestamps: the readings buffered offline were taken before the broker existed.
    const offlineOnes = hub.json<Telemetry>(`${T}/telemetry/water`).filter((m) => m.seq <= producedOffline);
    const brokerStart = Math.min(...hub.messages.map((m) => m.at));
    expect(offlineOnes.every((m) => m.ts < brokerStart)).toBe(true);
  }, 60_000);
});
