import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ConfigError, loadConfig, parseConfig } from "../../firmware/pi-agent/src/config.ts";
import { tempDir } from "./helpers.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function issues(raw: unknown): string[] {
  try {
    parseConfig(raw, "/etc/ganglion");
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error("config was accepted");
}

describe("agent config", () => {
  it("loads YAML with defaults, resolving paths and the token file against the config's directory", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    writeFileSync(join(t.dir, "token"), "s3cret\n");
    writeFileSync(
      join(t.dir, "agent.yaml"),
      [
        "device: greenhouse-pi",
        "tokenFile: token",
        "broker: mqtt://192.168.1.10:1883",
        "stateDir: state",
        "sensors:",
        "  - { id: soil, kind: ds18b20, address: 28-0000075c2f2a }",
        "  - { id: air, kind: iio, device: bme280, channel: humidityrelative, periodMs: 10000 }",
        "outputs:",
        "  - { id: valve, kind: relay, gpio: 22, activeLow: true }",
      ].join("\n"),
    );
    const cfg = loadConfig(join(t.dir, "agent.yaml"));
    expect(cfg).toMatchObject({
      device: "greenhouse-pi",
      token: "s3cret",
      prefix: "ganglion",
      heartbeatMs: 5000,
      ioRoot: "/",
      gpioBase: 0,
      stateDir: join(t.dir, "state"),
      buffer: { dir: join(t.dir, "state", "buffer"), maxBytes: 8 * 1024 * 1024 },
      reconnect: { minMs: 500, maxMs: 30_000 },
    });
    expect(cfg.sensors[0]).toMatchObject({ id: "soil", periodMs: 5000 });
    expect(cfg.outputs[0]).toMatchObject({ kind: "relay", activeLow: true });
  });

  it("accepts the shipped example config", () => {
    const text = readFileSync(
      join(import.meta.dirname, "../../firmware/pi-agent/agent.example.yaml"),
      "utf8",
    );
    const raw = parseYaml(text) as Record<string, unknown>;
    delete raw.tokenFile;
    delete raw.caFile;
    const cfg = parseConfig({ ...raw, token: "t" }, "/etc/ganglion");
    expect(cfg.sensors.map((s) => s.kind)).toEqual(["ds18b20", "iio", "iio", "iio", "gpio-input"]);
    expect(cfg.outputs).toHaveLength(3);
  });

  it("names the path of every problem", () => {
    const found = issues({
      device: "Pi_1",
      broker: "http://x",
      sensors: [
        { id: "t", kind: "ds18b20", address: "10-abc", periodMs: 5 },
        { id: "t", kind: "thermistor" },
      ],
      outputs: [{ id: "led", kind: "led", gpio: "17" }],
      extra: 1,
    });
    const text = found.join("\n");
    expect(text).toMatch(/^device: must match/m);
    expect(text).toMatch(/^broker: must be mqtt:\/\/host:port/m);
    expect(text).toMatch(/^sensors\.0\.address: must look like 28-/m);
    expect(text).toMatch(/^sensors\.0\.periodMs: /m);
    expect(text).toMatch(/^sensors\.1\.kind: /m);
    expect(text).toMatch(/^outputs\.0\.gpio: /m);
    expect(text).toMatch(/extra/);
  });

  it("requires a token, refuses duplicate ids and shared pins, and the reserved id hub", () => {
    const base = { broker: "mqtt://h:1883", token: "t" };
    expect(issues({ device: "pi", broker: "mqtt://h:1883" }).join()).toMatch(
      /token: one of token or tokenFile/,
    );
    expect(issues({ ...base, device: "hub" }).join()).toMatch(/device: `hub` is reserved/);
    const dup = issues({
      ...base,
      device: "pi",
      sensors: [{ id: "a", kind: "gpio-input", gpio: 4 }],
      outputs: [{ id: "a", kind: "led", gpio: 4 }],
    }).join("\n");
    expect(dup).toMatch(/outputs\.0\.id: duplicate id "a" \(also sensors\.0\)/);
    expect(dup).toMatch(/outputs\.0\.gpio: gpio 4 is already used by sensors\.0/);
  });

  it("reports unreadable files and bad syntax in one message naming the file", () => {
    const t = tempDir();
    cleanups.push(t.remove);
    expect(() => loadConfig(join(t.dir, "missing.yaml"))).toThrow(/missing\.yaml: cannot read config/);
    writeFileSync(join(t.dir, "bad.json"), "{");
    expect(() => loadConfig(join(t.dir, "bad.json"))).toThrow(/bad\.json: not valid JSON/);
    writeFileSync(join(t.dir, "a.yaml"), "device: pi\nbroker: mqtt://h:1\ntokenFile: nope\n");
    expect(() => loadConfig(join(t.dir, "a.yaml"))).toThrow(/tokenFile: cannot read .*nope/);
  });
});
