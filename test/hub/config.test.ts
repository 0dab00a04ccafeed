import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  addDeviceToFleetFile,
  addDeviceToFleetText,
  FleetConfigError,
  FleetEditError,
  generateToken,
  hashToken,
  loadFleetConfig,
  parseDeviceInput,
  parseFleetConfig,
  parseTokensFile,
  removeDeviceFromFleetFile,
  removeDeviceFromFleetText,
  starterFleetYaml,
  verifyToken,
} from "../../hub/config.ts";

const fixture = new URL("./fixtures/fleet.yaml", import.meta.url);

async function fixtureText(): Promise<string> {
  return readFile(fixture, "utf8");
}

/** Parses and returns the single issue, failing if the text is valid. */
function issuesOf(text: string): FleetConfigError {
  try {
    parseFleetConfig(text, "fleet.yaml");
  } catch (err) {
    if (err instanceof FleetConfigError) return err;
    throw err;
  }
  throw new Error("expected the fleet text to be refused");
}

/** Replaces the first occurrence of `from` (which must exist) in the fixture text. */
function edit(text: string, from: string, to: string): string {
  expect(text).toContain(from);
  return text.replace(from, to);
}

describe("fleet config: loading", () => {
  it("loads a valid file, fills defaults and normalises board aliases", async () => {
    const config = await loadFleetConfig(fixture.pathname);
    expect(config.hub.mqtt).toMatchObject({
      host: "127.0.0.1",
      port: 0,
      topicPrefix: "ganglion",
      anonymousRead: true,
    });
    expect(config.hub.http).toMatchObject({ host: "127.0.0.1", port: 8080 });
    expect(config.hub.heartbeatMs).toBe(5000);
    expect(config.hub.retention).toBe(500);
    expect(config.hub.dataDir).toBe("./data");
    expect(config.devices.map((d) => [d.id, d.board])).toEqual([
      ["uno-1", "arduino-uno"],
      ["mega-2", "arduino-mega"],
      ["pi-1", "raspberry-pi"],
    ]);
    const uno = config.devices[0]!;
    expect(uno.sensors[0]).toMatchObject({
      id: "temp",
      kind: "thermometer",
      pin: "A0",
      range: [-20, 60],
      periodMs: 1000,
    });
    expect(uno.actuators[0]).toMatchObject({ id: "led", kind: "led", pin: 13 });
    expect(config.devices[1]!.link).toEqual({
      type: "serial",
      vendorId: "2341",
      productId: "0042",
      baudRate: 57600,
    });
    expect(config.devices[2]!.sensors[0]!.address).toBe("28-0316a2794bff");
  });

  it("reads an unquoted I2C address (YAML's hex number) as 0x48, and refuses a bad address", () => {
    const text = `devices:
  - id: mega-1
    board: mega
    link: { type: serial, path: /dev/ttyACM1 }
    sensors:
      - { id: t, kind: thermometer, address: 0x48 }
      - { id: u, kind: thermometer, address: "0x49" }
`;
    const config = parseFleetConfig(text, "fleet.yaml");
    expect(config.devices[0]!.sensors.map((s) => s.address)).toEqual(["0x48", "0x49"]);
    const err = issuesOf(text.replace('"0x49"', "i2c-49"));
    expect(err.message).toBe(
      "fleet.yaml:7: devices[0].sensors[1].address: expected a 1-Wire id (28-xxxxxxxxxxxx), an I2C address (0x48), iio:deviceN or iio:<name>",
    );
  });

  it("accepts JSON with the same keys", () => {
    const config = parseFleetConfig(
      JSON.stringify({
        devices: [{ id: "n", board: "nano", link: { type: "serial", path: "/dev/ttyUSB0" } }],
      }),
      "fleet.json",
    );
    expect(config.devices[0]!.board).toBe("arduino-nano");
  });

  it("accepts an empty file and the starter file", () => {
    expect(parseFleetConfig("", "fleet.yaml").devices).toEqual([]);
    const starter = parseFleetConfig(starterFleetYaml(), "fleet.yaml");
    expect(starter.devices).toEqual([]);
    expect(starter.hub.mqtt.port).toBe(1883);
  });

  it("names a missing file and how to make one", async () => {
    await expect(loadFleetConfig("/nonexistent/fleet.yaml")).rejects.toThrow(
      /^\/nonexistent\/fleet\.yaml: file not found \(`ganglion init`/,
    );
  });
});

describe("fleet config: errors name the line, the path and what is expected", () => {
  let text: string;
  beforeEach(async () => {
    text = await fixtureText();
  });

  it("refuses an unknown key, naming it and its line", () => {
    const err = issuesOf(edit(text, "        maxRatePerS: 5", "        maxRatePerS: 5\n        colour: red"));
    expect(err.message).toBe(
      'fleet.yaml:22: devices[0].sensors[0].colour: unknown key "colour" (allowed: id, kind, unit, pin, address, ' +
        "periodMs, range, maxRatePerS, staleMs, flatLineMs, retention)",
    );
  });

  it("refuses an unknown top-level hub key", () => {
    const err = issuesOf(edit(text, "  retention: 500", "  retension: 500"));
    expect(err.message).toBe(
      'fleet.yaml:6: hub.retension: unknown key "retension" (did you mean "retention"?)',
    );
  });

  it("refuses a bad device id", () => {
    const err = issuesOf(edit(text, "  - id: mega-2", "  - id: Mega_2"));
    expect(err.issues).toHaveLength(1);
    expect(err.message).toBe(
      "fleet.yaml:26: devices[1].id: expected a device id matching [a-z0-9][a-z0-9-]{0,63}",
    );
  });

  it("refuses a duplicate device id, pointing at the second one", () => {
    const err = issuesOf(edit(text, "  - id: mega-2", "  - id: uno-1"));
    expect(err.message).toBe(
      'fleet.yaml:26: devices[1].id: duplicate device id "uno-1" (already used by devices[0])',
    );
  });

  it('refuses the reserved id "hub"', () => {
    const err = issuesOf(edit(text, "  - id: pi-1 # kitchen", "  - id: hub"));
    expect(err.message).toBe('fleet.yaml:29: devices[2].id: "hub" is reserved; pick another device id');
  });

  it("refuses a range whose min is not below its max", () => {
    const err = issuesOf(edit(text, "range: [-20, 60]", "range: [60, -20]"));
    expect(err.message).toBe(
      "fleet.yaml:20: devices[0].sensors[0].range: expected [min, max] with min < max",
    );
  });

  it("refuses a bad board kind, listing the kinds", () => {
    const err = issuesOf(edit(text, "board: arduino-mega", "board: arduino-due"));
    expect(err.issues[0]).toMatchObject({ line: 27, path: "devices[1].board" });
    expect(err.message).toMatch(
      /expected a board kind: arduino-uno, arduino-nano, arduino-mega, raspberry-pi/,
    );
    expect(err.message).toMatch(/got "arduino-due"/);
  });

  it("refuses duplicate sensor ids within a device", () => {
    const err = issuesOf(edit(text, "      - id: led", "      - id: temp"));
    expect(err.message).toBe(
      'fleet.yaml:23: devices[0].actuators[0].id: duplicate id "temp" (already used by sensors[0])',
    );
  });

  it("refuses a serial link without a path or USB ids, and a Pi on serial", () => {
    const err = issuesOf(edit(text, "      path: /dev/ttyACM0\n", ""));
    expect(err.message).toBe(
      "fleet.yaml:12: devices[0].link: expected a port path, or both vendorId and productId",
    );
    const pi = issuesOf(edit(text, "board: raspberry-pi", "board: uno"));
    expect(pi.message).toBe('fleet.yaml:32: devices[2].link.type: expected "serial" for an arduino-uno');
  });

  it("needs a pin or bus address on an Arduino's parts, not on a Pi's (its agent knows the hardware)", () => {
    const err = issuesOf(edit(text, "        pin: 13\n", ""));
    expect(err.message).toBe("fleet.yaml:23: devices[0].actuators[0]: expected a pin or a bus address");
    const pi = parseFleetConfig(edit(text, "        address: 28-0316a2794bff\n", ""), "fleet.yaml");
    expect(pi.devices[2]!.sensors[0]!.address).toBeUndefined();
    const both = issuesOf(edit(text, "        pin: 13\n", "        pin: 13\n        address: 0x48\n"));
    expect(both.message).toBe(
      "fleet.yaml:26: devices[0].actuators[0].address: expected either pin or address, not both",
    );
  });

  it("reports a missing required key at its parent, and several problems at once in line order", () => {
    let bad = edit(text, "        kind: thermometer\n        unit", "        unit");
    bad = edit(bad, "    port: 0", "    port: 70000");
    const err = issuesOf(bad);
    expect(err.issues.map((i) => [i.line, i.path])).toEqual([
      [4, "hub.mqtt.port"],
      [16, "devices[0].sensors[0].kind"],
    ]);
    expect(err.issues[1]!.message).toMatch(/^expected a sensor kind: thermometer/);
  });

  it("words type and bound errors the way a YAML user reads them", () => {
    expect(issuesOf("hub: 3\n").message).toBe("fleet.yaml:1: hub: expected a mapping (key: value)");
    expect(issuesOf("hub:\n  mqtt:\n    anonymousRead: yes\n").message).toBe(
      "fleet.yaml:3: hub.mqtt.anonymousRead: expected true or false",
    );
    expect(issuesOf("hub:\n  heartbeatMs: 0\n").message).toBe(
      "fleet.yaml:2: hub.heartbeatMs: expected heartbeatMs > 0 ms",
    );
    expect(issuesOf("hub:\n  retention: 0\n").message).toBe(
      "fleet.yaml:2: hub.retention: expected number to be >0",
    );
  });

  it("reports YAML syntax errors with their line", () => {
    const err = issuesOf("hub:\n  mqtt:\n    port: [1\n");
    expect(err.issues[0]!.line).toBeGreaterThan(0);
    expect(err.message).toMatch(/^fleet\.yaml:\d+: not valid YAML/);
  });
});

describe("one device, as the API receives it", () => {
  it("validates with the fleet file's schema, naming each bad path", () => {
    expect(
      parseDeviceInput({ id: "pi-7", board: "rpi", link: { type: "mqtt", tokenHash: "scrypt$1$1$1$YQ$Yg" } }),
    ).toMatchObject({
      id: "pi-7",
      board: "raspberry-pi",
      sensors: [],
    });
    let err: unknown;
    try {
      parseDeviceInput({
        id: "Pi 7",
        board: "uno",
        link: { type: "serial", path: "/dev/ttyACM0" },
        sensors: [{ id: "t", kind: "thermometer", pin: 2, range: [5, 1], colour: "red" }],
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FleetEditError);
    expect((err as FleetEditError).code).toBe("invalid");
    expect((err as FleetEditError).issues.map((i) => i.path).sort()).toEqual([
      "id",
      "sensors[0].colour",
      "sensors[0].range",
    ]);
    expect((err as Error).message).toContain("device.sensors[0].range: expected [min, max] with min < max");
    expect((err as Error).message).toContain(
      'device.sensors[0].colour: unknown key "colour" (allowed: id, kind,',
    );
  });
});

describe("device tokens", () => {
  it("hashes with scrypt and a random salt, and verifies only the right token", async () => {
    const token = generateToken();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const a = await hashToken(token);
    const b = await hashToken(token);
    expect(a).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(await verifyToken(token, a)).toBe(true);
    expect(await verifyToken(token, b)).toBe(true);
    expect(await verifyToken(`${token}x`, a)).toBe(false);
    expect(await verifyToken(generateToken(), a)).toBe(false);
  });

  it("lets a large fleet choose a cheaper scrypt cost, verified side by side with the default", async () => {
    const token = generateToken();
    const cheap = await hashToken(token, { N: 1024 });
    expect(cheap).toMatch(/^scrypt\$1024\$8\$1\$/);
    expect(await verifyToken(token, cheap)).toBe(true);
    expect(await verifyToken(generateToken(), cheap)).toBe(false);
    await expect(hashToken(token, { N: 1000 })).rejects.toThrow(RangeError);
  });

  it("treats malformed or absurd hashes as a failed verification", async () => {
    expect(await verifyToken("t", "plain")).toBe(false);
    expect(await verifyToken("t", "scrypt$3$8$1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA")).toBe(false);
    expect(await verifyToken("t", "scrypt$1073741824$8$1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA")).toBe(false);
  });

  it("reads id=token files", () => {
    expect([...parseTokensFile("# tokens\npi-1=abc\n\npi-2=d=ef\n")]).toEqual([
      ["pi-1", "abc"],
      ["pi-2", "d=ef"],
    ]);
  });
});

describe("adding and removing devices", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "ganglion-config-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("adds a Pi with a fresh token, keeps comments, and appends id=token", async () => {
    const path = join(dir, "fleet.yaml");
    const tokens = join(dir, "tokens.txt");
    const before = await fixtureText();
    await writeFile(path, before);
    const added = await addDeviceToFleetFile(
      path,
      { id: "pi-2", board: "raspberry-pi" },
      { tokensFile: tokens },
    );
    expect(added.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const after = await readFile(path, "utf8");
    // Everything that was there is still there, byte for byte, comments included.
    expect(after.startsWith(before.trimEnd())).toBe(true);
    expect(after).toContain("# the bench Uno");
    expect(after).toContain("- id: pi-1 # kitchen");
    expect(after).not.toContain(added.token);
    const config = await loadFleetConfig(path);
    const pi2 = config.devices.find((d) => d.id === "pi-2")!;
    expect(pi2.link.type).toBe("mqtt");
    expect(await verifyToken(added.token!, pi2.link.type === "mqtt" ? pi2.link.tokenHash : "")).toBe(true);
    expect(await readFile(tokens, "utf8")).toBe(`pi-2=${added.token}\n`);

    await removeDeviceFromFleetFile(path, "pi-2");
    expect(await readFile(path, "utf8")).toBe(before);
  });

  it("removes a device in the middle and keeps the others' comments", async () => {
    const path = join(dir, "fleet.yaml");
    await writeFile(path, await fixtureText());
    const removed = await removeDeviceFromFleetFile(path, "mega-2");
    expect(removed.board).toBe("arduino-mega");
    const after = await readFile(path, "utf8");
    expect(after).not.toContain("mega-2");
    expect(after).toContain("# the bench Uno");
    expect(after).toContain("- id: pi-1 # kitchen");
    expect((await loadFleetConfig(path)).devices.map((d) => d.id)).toEqual(["uno-1", "pi-1"]);
  });

  it("turns the starter's `devices: []` into a block list", async () => {
    const { text, token } = await addDeviceToFleetText(starterFleetYaml(), "fleet.yaml", {
      id: "uno-1",
      board: "uno",
      link: { type: "serial", path: "/dev/ttyACM0" },
    });
    expect(token).toBeUndefined();
    expect(text).toContain("devices:\n  - id: uno-1\n    board: arduino-uno\n");
    expect(text).toContain("# Examples:");
    expect(parseFleetConfig(text, "fleet.yaml").devices[0]!.board).toBe("arduino-uno");
  });

  it("writes a new device's sensors readably, and an emptied list as `devices: []`", async () => {
    const { text } = await addDeviceToFleetText(starterFleetYaml(), "fleet.yaml", {
      id: "nano-1",
      board: "nano",
      link: { type: "serial", path: "/dev/ttyUSB0" },
      sensors: [{ id: "t", kind: "thermometer", pin: "A1", range: [-20, 60] }],
    });
    expect(text).toContain(
      "    sensors:\n      - id: t\n        kind: thermometer\n        pin: A1\n        range: [-20, 60]\n",
    );
    const { text: emptied } = removeDeviceFromFleetText(text, "fleet.yaml", "nano-1");
    expect(emptied).toBe(starterFleetYaml());
  });

  it("keeps a JSON fleet file JSON", async () => {
    const { text } = await addDeviceToFleetText('{ "devices": [] }', "fleet.json", {
      id: "pi-9",
      board: "rpi",
    });
    const data = JSON.parse(text) as { devices: { id: string; board: string }[] };
    expect(data.devices[0]).toMatchObject({ id: "pi-9", board: "raspberry-pi" });
  });

  it("refuses a duplicate, an unknown id to remove, and an invalid device", async () => {
    const text = await fixtureText();
    await expect(
      addDeviceToFleetText(text, "fleet.yaml", { id: "uno-1", board: "uno" }),
    ).rejects.toMatchObject({
      code: "duplicate",
    });
    const path = join(dir, "fleet.yaml");
    await writeFile(path, text);
    await expect(removeDeviceFromFleetFile(path, "nope")).rejects.toBeInstanceOf(FleetEditError);
    await expect(addDeviceToFleetText(text, "fleet.yaml", { id: "hub", board: "pi" })).rejects.toThrow(
      /device\.id: "hub" is reserved/,
    );
    await expect(addDeviceToFleetText(text, "fleet.yaml", { id: "x", board: "uno" })).rejects.toMatchObject({
      code: "invalid",
    });
    expect(await readFile(path, "utf8")).toBe(text);
  });
});
