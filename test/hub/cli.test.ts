import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RunningApi, startApi } from "../../hub/api.ts";
import { classifyPort, listFromSysfs } from "../../hub/cli/serial-ports.ts";
import { parseFleetConfig, starterFleetYaml, verifyToken } from "../../hub/config.ts";
import { FixtureHubView } from "./fixtures/fixture-hub-view.ts";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `hub/cli.ts` in a child process, without any GANGLION_* variables of the test's environment. */
function cli(args: string[]): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("GANGLION_")));
  const child = spawn(process.execPath, ["--import", "tsx", "hub/cli.ts", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`ganglion ${args.join(" ")} did not exit: ${stdout}${stderr}`));
    }, 60_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A failed run: non-zero exit, exactly one line on stderr. */
function expectOneLineFailure(run: Run, pattern: RegExp): void {
  expect(run.code, run.stderr).not.toBe(0);
  const lines = run.stderr.trimEnd().split("\n");
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^ganglion: /);
  expect(lines[0]).toMatch(pattern);
}

/** A URL nothing answers at: a port that was free a moment ago. */
let DEAD_URL: string;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ganglion-cli-"));
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
  DEAD_URL = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise((resolve) => probe.close(resolve));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const apis: RunningApi[] = [];
afterEach(async () => {
  await Promise.all(apis.splice(0).map((api) => api.close()));
});

async function fleetFile(name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, starterFleetYaml());
  return path;
}

describe("ganglion init", { timeout: 90_000 }, () => {
  it("writes the starter fleet file, refuses to overwrite it, and overwrites with --force", async () => {
    const path = join(dir, "init.yaml");
    const first = await cli(["init", "--config", path]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`wrote ${path}`);
    const text = await readFile(path, "utf8");
    expect(text).toBe(starterFleetYaml());
    expect(parseFleetConfig(text, path).devices).toEqual([]);

    await writeFile(path, "# mine\n");
    const again = await cli(["init", "--config", path]);
    expectOneLineFailure(again, /already exists; pass --force/);
    expect(await readFile(path, "utf8")).toBe("# mine\n");

    const forced = await cli(["init", "--config", path, "--force"]);
    expect(forced.code).toBe(0);
    expect(await readFile(path, "utf8")).toBe(starterFleetYaml());
  });
});

describe("ganglion device add|remove", { timeout: 90_000 }, () => {
  it("adds a Pi: prints its token once, writes only its hash, appends id=token to --tokens", async () => {
    const config = await fleetFile("add-pi.yaml");
    const tokens = join(dir, "add-pi.tokens");
    await writeFile(tokens, "other=abc\n");
    const run = await cli([
      "device",
      "add",
      "pi-1",
      "--board",
      "pi",
      "--config",
      config,
      "--tokens",
      tokens,
      "--url",
      DEAD_URL,
    ]);
    expect(run.code, run.stderr).toBe(0);
    const token = /device token \(shown once[^)]*\): (\S+)$/m.exec(run.stdout)?.[1];
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(run.stdout.split(token!).length - 1).toBe(1);
    expect(run.stdout).toContain(`no hub answers at ${DEAD_URL}`);

    const text = await readFile(config, "utf8");
    expect(text).not.toContain(token);
    const device = parseFleetConfig(text, config).devices.find((d) => d.id === "pi-1");
    expect(device?.board).toBe("raspberry-pi");
    expect(device?.link.type).toBe("mqtt");
    const hash = device?.link.type === "mqtt" ? device.link.tokenHash : "";
    expect(await verifyToken(token!, hash)).toBe(true);
    expect(text).toContain("# Ganglion fleet file"); // the user's comments are kept

    expect(await readFile(tokens, "utf8")).toBe(`other=abc\npi-1=${token}\n`);

    const removed = await cli([
      "device",
      "remove",
      "pi-1",
      "--config",
      config,
      "--tokens",
      tokens,
      "--url",
      DEAD_URL,
    ]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(parseFleetConfig(await readFile(config, "utf8"), config).devices).toEqual([]);
    expect(await readFile(tokens, "utf8")).toBe("other=abc\n");
  });

  it("adds and removes on a running hub too", async () => {
    const view = new FixtureHubView();
    const api = await startApi({ host: "127.0.0.1", port: 0, view, logger: pino({ level: "silent" }) });
    apis.push(api);
    const config = await fleetFile("running.yaml");
    const add = await cli([
      "device",
      "add",
      "uno-7",
      "--board",
      "uno",
      "--serial-port",
      "/dev/ttyACM7",
      "--config",
      config,
      "--url",
      api.url,
    ]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain(`the hub at ${api.url} now runs uno-7`);
    expect(view.device("uno-7")).toMatchObject({ board: "arduino-uno", link: "serial" });
    expect(parseFleetConfig(await readFile(config, "utf8"), config).devices.map((d) => d.id)).toEqual([
      "uno-7",
    ]);

    const list = await cli(["devices", "--url", api.url]);
    expect(list.code, list.stderr).toBe(0);
    const lines = list.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+BOARD\s+LINK\s+STATUS\s+SENSORS$/);
    expect(lines.find((l) => l.startsWith("pi-1"))).toMatch(/offline \(last will\)\s+temp=- \(down\)$/);
    expect(lines.find((l) => l.startsWith("uno-1"))).toMatch(/online\s+temp=21.5°C, led=false$/);
    const json = await cli(["devices", "--url", api.url, "--json"]);
    expect((JSON.parse(json.stdout) as { id: string }[]).map((d) => d.id)).toEqual([
      "uno-1",
      "pi-1",
      "uno-7",
    ]);

    const remove = await cli(["device", "remove", "uno-7", "--config", config, "--url", api.url]);
    expect(remove.code, remove.stderr).toBe(0);
    expect(remove.stdout).toContain("stopped uno-7");
    expect(view.device("uno-7")).toBeUndefined();
  });

  it("needs the API token of a hub in token mode, and says so in one line", async () => {
    const view = new FixtureHubView();
    const api = await startApi({
      host: "127.0.0.1",
      port: 0,
      view,
      requireToken: true,
      token: "tok-123",
      logger: pino({ level: "silent" }),
    });
    apis.push(api);
    const config = await fleetFile("token-mode.yaml");
    const refused = await cli([
      "device",
      "add",
      "pi-5",
      "--board",
      "pi",
      "--config",
      config,
      "--url",
      api.url,
    ]);
    expectOneLineFailure(refused, /pi-5 is in .*needs its API token: pass --api-token/);
    expect(view.device("pi-5")).toBeUndefined();
    const ok = await cli([
      "device",
      "add",
      "pi-6",
      "--board",
      "pi",
      "--config",
      config,
      "--url",
      api.url,
      "--api-token",
      "tok-123",
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(view.device("pi-6")).toBeDefined();
  });

  it("refuses bad input with one line and a non-zero exit, leaving the file alone", async () => {
    const config = await fleetFile("bad.yaml");
    const before = await readFile(config, "utf8");
    const cases: [string[], RegExp][] = [
      [["device", "add", "Bad_Id", "--board", "pi", "--config", config], /"Bad_Id" is not a device id/],
      [["device", "add", "hub", "--board", "pi", "--config", config], /"hub" is reserved/],
      [["device", "add", "x1", "--board", "toaster", "--config", config], /unknown board kind "toaster"/],
      [["device", "add", "x1", "--config", config], /required option '--board/],
      [
        ["device", "add", "x1", "--board", "uno", "--config", config],
        /an arduino-uno needs --serial-port PATH or --usb/,
      ],
      [
        ["device", "add", "x1", "--board", "pi", "--config", join(dir, "missing.yaml")],
        /missing\.yaml: file not found/,
      ],
      [["device", "remove", "ghost", "--config", config, "--url", DEAD_URL], /no device "ghost"/],
      [
        ["device", "add", "x1", "--board", "pi", "--config", config, "--url", "ftp://x"],
        /not an http\(s\) URL/,
      ],
      [["devices", "--url", DEAD_URL], /no hub answers at http:\/\/127\.0\.0\.1:\d+ \(start one/],
      [["flash", "--board", "due"], /unknown board "due"/],
      [["start", "--http-port", "70000"], /"70000" is not a port number/],
      [["frobnicate"], /unknown command 'frobnicate'/],
    ];
    // Three at a time: each run is a Node process, and CI machines have two cores.
    for (let i = 0; i < cases.length; i += 3) {
      const batch = cases.slice(i, i + 3);
      const runs = await Promise.all(batch.map(([args]) => cli(args)));
      for (const [j, run] of runs.entries()) expectOneLineFailure(run, batch[j]![1]);
    }
    expect(await readFile(config, "utf8")).toBe(before);
  });

  it("adds an Arduino found by USB id", async () => {
    const config = await fleetFile("usb.yaml");
    const run = await cli([
      "device",
      "add",
      "nano-1",
      "--board",
      "nano",
      "--usb",
      "1A86:7523",
      "--config",
      config,
      "--url",
      DEAD_URL,
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).not.toContain("token");
    const device = parseFleetConfig(await readFile(config, "utf8"), config).devices[0];
    expect(device).toMatchObject({
      id: "nano-1",
      board: "arduino-nano",
      link: { type: "serial", vendorId: "1a86", productId: "7523" },
    });
    const bad = await cli([
      "device",
      "add",
      "nano-2",
      "--board",
      "nano",
      "--usb",
      "arduino",
      "--config",
      config,
    ]);
    expectOneLineFailure(bad, /--usb expects VID:PID in hex/);
  });

  it("says so when a hub accepts the connection but never answers", async () => {
    const held: Socket[] = [];
    const silentHub = createServer((socket) => {
      held.push(socket);
    });
    await new Promise<void>((resolve) => silentHub.listen(0, "127.0.0.1", () => resolve()));
    try {
      const url = `http://127.0.0.1:${(silentHub.address() as AddressInfo).port}`;
      const run = await cli(["devices", "--url", url]);
      expectOneLineFailure(run, /the hub at http:\/\/127\.0\.0\.1:\d+ did not answer within 5 s/);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silentHub.close(resolve));
    }
  });

  it("refuses a duplicate id", async () => {
    const config = await fleetFile("dup.yaml");
    const first = await cli([
      "device",
      "add",
      "pi-2",
      "--board",
      "pi",
      "--config",
      config,
      "--url",
      DEAD_URL,
    ]);
    expect(first.code).toBe(0);
    const second = await cli([
      "device",
      "add",
      "pi-2",
      "--board",
      "pi",
      "--config",
      config,
      "--url",
      DEAD_URL,
    ]);
    expectOneLineFailure(second, /device "pi-2" already exists/);
  });
});

describe("ganglion device add|remove with a real hub", { timeout: 120_000 }, () => {
  it("reaches the running hub: the device is supervised, then stopped", async () => {
    const config = join(dir, "real.yaml");
    expect((await cli(["init", "--config", config])).code).toBe(0);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("GANGLION_")));
    const hub = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "hub/cli.ts",
        "start",
        "--config",
        config,
        "--data-dir",
        join(dir, "real-data"),
        "--http-port",
        "0",
        "--mqtt-port",
        "0",
      ],
      { stdio: ["ignore", "pipe", "ignore"], env },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        hub.stdout.on("data", (c: Buffer) => {
          out += c.toString();
          const match = /^ganglion: http listening on (http:\/\/\S+)$/m.exec(out);
          if (match) resolve(match[1]!);
        });
        hub.once("exit", (code) => reject(new Error(`hub exited ${code}: ${out}`)));
      });
      const add = await cli(["device", "add", "pi-3", "--board", "pi", "--config", config, "--url", url]);
      expect(add.code, add.stderr).toBe(0);
      expect(add.stdout).toContain(`the hub at ${url} now runs pi-3`);
      const device = (await (await fetch(`${url}/api/devices/pi-3`)).json()) as {
        board: string;
        link: string;
      };
      expect(device).toMatchObject({ board: "raspberry-pi", link: "mqtt" });
      const tree = await (await fetch(`${url}/api/tree`)).text();
      expect(tree).toContain('"path":"hub/fleet/pi-3"');

      const remove = await cli(["device", "remove", "pi-3", "--config", config, "--url", url]);
      expect(remove.code, remove.stderr).toBe(0);
      expect((await fetch(`${url}/api/devices/pi-3`)).status).toBe(404);
    } finally {
      const exited = new Promise((resolve) => hub.once("exit", resolve));
      hub.kill("SIGTERM");
      const timer = setTimeout(() => hub.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
  });
});

describe("ganglion boards", { timeout: 90_000 }, () => {
  it("lists serial ports as JSON (an empty list is fine without hardware)", async () => {
    const run = await cli(["boards", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const ports = JSON.parse(run.stdout) as { path: string; likelyArduino: boolean }[];
    expect(Array.isArray(ports)).toBe(true);
    for (const port of ports) {
      expect(port.path).toMatch(/^\/dev\//);
      expect(typeof port.likelyArduino).toBe("boolean");
    }
  });

  it("prints a table or says there are none", async () => {
    const run = await cli(["boards"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^(PATH\s+USB ID\s+MANUFACTURER\s+SERIAL\s+ARDUINO\?|no serial ports found)/);
  });
});

describe("ganglion flash", { timeout: 90_000 }, () => {
  it("explains a missing port in one line", async () => {
    const run = await cli(["flash", "--board", "uno", "--port", "/dev/ttyGANGLION-NOPE"]);
    expectOneLineFailure(run, /port \/dev\/ttyGANGLION-NOPE not found: is the board plugged in\?/);
  });

  it("explains a missing hex file in one line", async () => {
    const run = await cli(["flash", "--board", "nano", "--port", "/dev/null", join(dir, "none.hex")]);
    expectOneLineFailure(run, /hex file .*none\.hex not found/);
  });

  it("runs avrdude with the board's preset, shows progress, and explains its failures", async () => {
    // A stand-in avrdude that records its arguments and draws avrdude's progress bars.
    const argsFile = join(dir, "avrdude.args");
    const fake = join(dir, "fake-avrdude");
    await writeFile(
      fake,
      `#!/bin/sh
echo "$@" > "${argsFile}"
if [ -n "$FAIL" ]; then echo "avrdude: stk500_recv(): programmer is not responding" >&2; exit 1; fi
printf 'Writing | ' >&2; for i in 1 2 3 4 5; do printf '##########' >&2; done; printf ' | 100%% 0.1 s\\n' >&2
printf 'Reading | ' >&2; for i in 1 2 3 4 5; do printf '##########' >&2; done; printf ' | 100%% 0.1 s\\n' >&2
`,
    );
    await chmod(fake, 0o755);
    const port = join(dir, "ttyFAKE");
    await writeFile(port, "");
    const run = await cli(["flash", "--board", "uno", "--port", port, "--avrdude", fake]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/flashing ganglion-uno\.hex onto the Arduino Uno at .*ttyFAKE/);
    expect(run.stdout).toMatch(/flashed \d+ bytes, verified, in \d+\.\d s/);
    expect(run.stderr).toContain("writing 100%");
    expect(run.stderr).toContain("verifying 100%");
    const args = await readFile(argsFile, "utf8");
    expect(args).toContain("-c arduino -p m328p");
    expect(args).toMatch(/flash:w:.*firmware\/arduino\/dist\/ganglion-uno\.hex:i/);

    const verbose = await cli(["flash", "--board", "nano", "--port", port, "--avrdude", fake, "--verbose"]);
    expect(verbose.code, verbose.stderr).toBe(0);
    expect(verbose.stderr).toContain("Writing | ##########");
    expect(verbose.stderr).not.toContain("writing 100%");

    const env = { ...process.env, FAIL: "1" };
    const failing = await new Promise<Run>((resolve) => {
      const child = spawn(
        process.execPath,
        ["--import", "tsx", "hub/cli.ts", "flash", "--board", "mega", "--port", port, "--avrdude", fake],
        { env, stdio: ["ignore", "pipe", "pipe"] },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      child.once("exit", (code) => resolve({ code, stdout, stderr }));
    });
    expectOneLineFailure(
      failing,
      /no answer from the bootloader on .*ttyFAKE: check --board \(mega expects wiring/,
    );
  });
});

describe("serial port detection", () => {
  it("flags Arduinos and their clones' USB chips by vendor id", () => {
    expect(classifyPort({ path: "/dev/ttyACM0", vendorId: "2341", productId: "0043" })).toMatchObject({
      likelyArduino: true,
      chip: "Arduino",
    });
    for (const vendorId of ["2a03", "1a86", "0403", "10C4"]) {
      expect(classifyPort({ path: "/dev/ttyUSB0", vendorId }).likelyArduino, vendorId).toBe(true);
    }
    expect(classifyPort({ path: "/dev/ttyUSB0", vendorId: "067b" }).likelyArduino).toBe(false);
    expect(classifyPort({ path: "/dev/ttyS0" }).likelyArduino).toBe(false);
  });

  it("reads ports and their USB ids from sysfs when udev is missing", async () => {
    const sys = join(dir, "sys");
    const usb = join(sys, "devices/pci0000:00/usb1/1-1");
    const iface = join(usb, "1-1:1.0");
    await mkdir(join(iface, "tty/ttyACM0"), { recursive: true });
    for (const [name, value] of [
      ["idVendor", "2341\n"],
      ["idProduct", "0043\n"],
      ["manufacturer", "Arduino (www.arduino.cc)\n"],
      ["serial", "85735313932351C0E1A1\n"],
    ]) {
      await writeFile(join(usb, name!), value!);
    }
    const phantom = join(sys, "devices/platform/serial8250/tty/ttyS1");
    const uart = join(sys, "devices/pnp0/00:00");
    await mkdir(phantom, { recursive: true });
    await mkdir(uart, { recursive: true });
    await mkdir(join(sys, "class/tty"), { recursive: true });
    for (const [name, device] of [
      ["ttyACM0", iface],
      ["ttyS1", join(sys, "devices/platform/serial8250")],
      ["ttyS0", uart],
    ]) {
      await mkdir(join(sys, "class/tty", name!));
      await symlink(device!, join(sys, "class/tty", name!, "device"));
    }
    await mkdir(join(sys, "class/tty/tty1")); // a virtual terminal: no device link
    await mkdir(join(sys, "class/tty/ptmx"));

    expect(await listFromSysfs(sys, "/dev")).toEqual([
      {
        path: "/dev/ttyACM0",
        vendorId: "2341",
        productId: "0043",
        manufacturer: "Arduino (www.arduino.cc)",
        serialNumber: "85735313932351C0E1A1",
      },
      { path: "/dev/ttyS0" },
    ]);
  });
});
