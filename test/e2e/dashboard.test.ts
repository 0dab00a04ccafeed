/**
 * The dashboard end to end, in Debian's chromium driven by playwright-core (never a downloaded browser): the hub and
 * the demo fleet (two virtual Pis running the real agent) in this process, the page built from the current sources;
 * the reconnect step runs `ganglion start --simulate` processes instead, so the hub really goes away. One screenshot
 * per step lands in test-results/dashboard/.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeviceSchema, FleetConfigSchema, generateToken, hashToken } from "../../hub/config.ts";
import { partName } from "../../hub/context.ts";
import { FAULT_KINDS as DASHBOARD_FAULT_KINDS } from "../../hub/dashboard/src/types.ts";
import { FAULT_KINDS } from "../../hub/faults/contract.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import { DASHBOARD_DIR } from "../../hub/run-hub.ts";
import { exit } from "../../hub/runtime/index.ts";
import {
  type DemoHub,
  hasChromium,
  injectFromPage as inject,
  launchChromium,
  silent,
  startDemoHub,
  warnIfNoChromium,
} from "./helpers.ts";

const SHOTS = join("test-results", "dashboard");
warnIfNoChromium("test/e2e/dashboard.test.ts");

const hubProcesses: ChildProcess[] = [];

/** Runs `ganglion start --simulate` in its own process; resolves once it printed its dashboard line. */
async function startCliHub(args: string[]): Promise<{ dashboard: string; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "hub/cli.ts", "start", "--simulate", "--mqtt-port", "0", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, GANGLION_LOG_LEVEL: "warn" } },
  );
  hubProcesses.push(child);
  let err = "";
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const dashboard = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /^ganglion: dashboard at (http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out);
      // Wait for the simulated fleet too (the line after it), so the devices are on their way online.
      if (m && /^ganglion: simulating /m.test(out)) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`ganglion start exited ${code}: ${out}${err}`)));
  });
  return {
    dashboard,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** What the page records about itself (installed before its scripts run). */
interface Marks {
  /** performance.now() when the first device card appeared. */
  devicesShownMs?: number;
  /** Date.now() when the killed sensor's row first showed restart 1. */
  restartShownAt?: number;
}

const WATCHED = "hub/fleet/tank-pi/sensors/water-temp";

/**
 * Page-side bookkeeping, run before the page's own scripts. A string, because this project's type-check has no DOM
 * library (the page's code is checked by hub/dashboard/tsconfig.json).
 */
const INIT_SCRIPT = `
  window.__marks = {};
  new MutationObserver(() => {
    const m = window.__marks;
    if (m.devicesShownMs === undefined && document.querySelector("[data-device]")) m.devicesShownMs = performance.now();
    const row = document.querySelector('[data-path="${WATCHED}"]');
    if (m.restartShownAt === undefined && row?.dataset.restarts === "1") m.restartShownAt = Date.now();
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-restarts"] });
`;
let largeStep = 0;
/** A screenshot of the large-fleet suite (numbered after the demo fleet's steps). */
async function largeShot(page: Page, name: string): Promise<void> {
  largeStep++;
  await page.screenshot({ path: join(SHOTS, `5${largeStep}-${name}.png`) });
}
const marks = (page: Page) => page.evaluate("window.__marks") as Promise<Marks>;
const focusedPath = (page: Page) =>
  page.evaluate('document.activeElement?.getAttribute("data-path")') as Promise<string | null>;

describe.skipIf(!hasChromium)("the dashboard in a real browser", () => {
  let work: string;
  let staticDir: string;
  let current: DemoHub | undefined;
  let port: number;
  let context: BrowserContext;
  let page: Page;
  let step = 0;
  let openedAt = 0;
  const pageErrors: string[] = [];

  const shot = async (name: string) => {
    step++;
    await page.screenshot({
      path: join(SHOTS, `${String(step).padStart(2, "0")}-${name}.png`),
      fullPage: true,
    });
  };
  const sensorRow = (device: string, sensor: string) =>
    page.locator(`[data-device="${device}"] [data-sensor="${sensor}"]`);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "ganglion-e2e-"));
    rmSync(SHOTS, { recursive: true, force: true }); // no stale screenshots from an earlier run
    mkdirSync(SHOTS, { recursive: true });
    // What `npm install` (prepare) builds, from the current sources; the hub processes below serve it too.
    execFileSync(process.execPath, ["hub/dashboard/build.mjs"], { stdio: "pipe" });
    staticDir = DASHBOARD_DIR;
    current = await startDemoHub({
      dataDir: join(work, "data"),
      simDir: join(work, "sim-1"),
      httpPort: 0,
      staticDir,
    });
    port = Number(new URL(current.hub.httpUrl!).port);
    // Let a few readings reach the history, so the sparklines have something to read.
    await new Promise((r) => setTimeout(r, 2500));
    context = await launchChromium(join(work, "chromium-profile"));
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.addInitScript(INIT_SCRIPT);
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    for (const child of hubProcesses) if (child.exitCode === null) child.kill("SIGKILL");
    await current?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("shows every device of the demo fleet with its sensor values, and the whole tree", async () => {
    openedAt = Date.now();
    await page.goto(`http://127.0.0.1:${port}/`);
    for (const device of current!.demo.devices) {
      const card = page.locator(`[data-device="${device.id}"]`);
      await card.waitFor({ timeout: 10_000 });
      await expect
        .poll(() => card.locator("[data-role=device-status]").textContent(), { timeout: 10_000 })
        .toBe("online");
      for (const sensor of device.sensors) {
        // A number with its unit (or a switch state): the reading the hub holds, not the placeholder.
        const value = sensorRow(device.id, sensor.id).locator("[data-role=value]");
        await expect.poll(() => value.textContent(), { timeout: 15_000 }).not.toBe("—");
        const text = (await sensorRow(device.id, sensor.id).locator("td.value").textContent()) ?? "";
        expect(text).toMatch(
          sensor.unit
            ? new RegExp(`^-?\\d+(\\.\\d+)? ${sensor.unit}$`)
            : sensor.kind === "button"
              ? /^(pressed|released)$/
              : /^-?\d+(\.\d+)?$/,
        );
      }
      for (const actuator of device.actuators) {
        expect(
          await page.locator(`[data-device="${device.id}"] [data-actuator="${actuator.id}"]`).count(),
        ).toBe(1);
      }
      // The tree has the device's supervisor and each of its parts, with status as text.
      for (const part of [...device.sensors, ...device.actuators]) {
        const item = page.locator(`[role=treeitem][data-path="hub/fleet/${device.id}/sensors/${part.id}"]`);
        expect(await item.getAttribute("data-status")).toBe("running");
        expect(await item.locator(".badge").first().textContent()).toBe("running");
      }
    }
    const fleet = page.locator('[role=treeitem][data-path="hub/fleet"] > .row');
    expect(await fleet.textContent()).toContain("budget 0 of 10 in 10 s");
    const fcp = (await page.evaluate(
      'performance.getEntriesByName("first-contentful-paint")[0]?.startTime',
    )) as number | undefined;
    const { devicesShownMs } = await marks(page);
    console.log(
      `dashboard: first contentful paint ${fcp?.toFixed(0)} ms, device cards shown ${devicesShownMs?.toFixed(0)} ms after navigation`,
    );
    expect(pageErrors).toEqual([]);
    await shot("fleet");
  }, 60_000);

  it("renders sparklines from the telemetry history", async () => {
    const spark = sensorRow("tank-pi", "water-temp").locator(".sparkline");
    await expect
      .poll(async () => Number(await spark.getAttribute("data-points")), { timeout: 10_000 })
      .toBeGreaterThan(1);
    // The first point is older than the page: it came from GET /api/devices/:id/telemetry, not from /api/live.
    expect(Number(await spark.getAttribute("data-first-ts"))).toBeLessThan(openedAt);
    // The canvas has drawn pixels.
    const inked = await spark.evaluate((el) => {
      const canvas = el.querySelector("canvas");
      const ctx = canvas?.getContext("2d");
      if (!canvas || !ctx) return 0;
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
      return n;
    });
    expect(inked).toBeGreaterThan(20);
    await shot("sparklines");
  }, 30_000);

  it("shows a killed sensor actor's restart in the tree within 2 s, and the node running again", async () => {
    const item = page.locator(`[role=treeitem][data-path="${WATCHED}"]`);
    expect(await item.getAttribute("data-restarts")).toBe("0");
    const pid = current!.hub.context.names.whereis(partName("tank-pi", "water-temp"));
    expect(pid).toBeDefined();
    const killedAt = Date.now();
    exit(pid!, "kill");
    await page.waitForSelector(
      `[role=treeitem][data-path="${WATCHED}"][data-restarts="1"][data-status="running"]`,
      {
        timeout: 2000,
      },
    );
    const shownAt = (await marks(page)).restartShownAt;
    const row = item.locator(":scope > .row");
    // The restart flashes the row (for 1.6 s).
    expect(await row.getAttribute("class")).toMatch(/flash-[ab]/);
    expect(await row.textContent()).toContain("1 restart");
    expect(await row.textContent()).toContain("last exit: killed");
    // The budget of its supervisor counts the restart.
    const sensors = page.locator('[role=treeitem][data-path="hub/fleet/tank-pi/sensors"] > .row');
    await expect.poll(() => sensors.textContent(), { timeout: 2000 }).toContain("budget 1 of 3 in 5 s");
    // And the timeline has it.
    const restarted = page.locator(`li.event[data-type="restarted"]`, { hasText: WATCHED });
    await restarted.first().waitFor({ timeout: 2000 });
    const events = (await (
      await fetch(`http://127.0.0.1:${port}/api/events?type=restarted&device=tank-pi`)
    ).json()) as { ts: number; path: string }[];
    const event = events.find((e) => e.path === WATCHED);
    expect(event).toBeDefined();
    console.log(
      `dashboard: restart shown ${shownAt! - killedAt} ms after the kill, ${shownAt! - event!.ts} ms after the hub's restarted event`,
    );
    await shot("restart");
  }, 20_000);

  it("filters the timeline by type and by device", async () => {
    await page.selectOption("[data-role=filter-type]", "restarted");
    const types = await page
      .locator("li.event")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-type")));
    expect(types.length).toBeGreaterThan(0);
    expect(new Set(types)).toEqual(new Set(["restarted"]));
    await page.selectOption("[data-role=filter-type]", "");
    await page.selectOption("[data-role=filter-device]", "greenhouse-pi");
    const paths = await page.locator("li.event .path").allTextContents();
    expect(paths.length).toBeGreaterThan(0);
    for (const p of paths) expect(p.startsWith("hub/fleet/greenhouse-pi")).toBe(true);
    await shot("timeline-filter");
    await page.selectOption("[data-role=filter-device]", "");
  }, 20_000);

  it("is keyboard navigable: arrows move, Left/Enter collapse and expand", async () => {
    const hub = page.locator('[role=treeitem][data-path="hub"]');
    await hub.focus();
    await page.keyboard.press("ArrowDown");
    expect(await focusedPath(page)).toBe("hub/events");
    expect(await page.locator('[data-path="hub/events"]').getAttribute("aria-selected")).toBe("true");
    await page.keyboard.press("End");
    expect(await focusedPath(page)).toBe("hub/api");
    await page.keyboard.press("Home");
    expect(await focusedPath(page)).toBe("hub");
    await page.keyboard.press("ArrowLeft");
    expect(await hub.getAttribute("aria-expanded")).toBe("false");
    expect(await page.locator('[data-path="hub/fleet"]').count()).toBe(0);
    await page.keyboard.press("Enter");
    expect(await hub.getAttribute("aria-expanded")).toBe("true");
    expect(await page.locator('[data-path="hub/fleet"]').count()).toBe(1);
  }, 20_000);

  it("drives the relay and the LED of a virtual Pi from the page's controls", async () => {
    const pi = current!.demo.pis.get("tank-pi")!;
    const pump = page.locator('[data-device="tank-pi"] [data-actuator="pump"]');
    // Active-low relay on GPIO 22: closed drives the line low.
    await pump.getByRole("button", { name: "Close" }).click();
    await expect.poll(() => pi.sys.readGpio(22), { timeout: 5000 }).toBe(0);
    await expect
      .poll(() => pump.locator("[data-role=value]").textContent(), { timeout: 5000 })
      .toBe("closed");
    await pump.getByRole("button", { name: "Open" }).click();
    await expect.poll(() => pi.sys.readGpio(22), { timeout: 5000 }).toBe(1);
    const led = page.locator('[data-device="tank-pi"] [data-actuator="status-led"]');
    await led.getByRole("button", { name: "On" }).click();
    await expect.poll(() => pi.sys.readGpio(27), { timeout: 5000 }).toBe(1);
    expect(await page.locator('[data-device="tank-pi"] [role=alert]').count()).toBe(0);
    await shot("actuators");
  }, 20_000);

  /** Fills the page's fault form and presses Inject (as a user would, through labelled controls). */
  const injectFromPage = (f: { device: string; sensor?: string; kind: string; seconds?: string }) =>
    inject(page, f);
  const activeFault = (kind: string, target: string) =>
    page.locator(`[data-fault][data-kind="${kind}"]`, { hasText: target });
  const apiFaults = async () =>
    (await (await fetch(`http://127.0.0.1:${port}/api/faults`)).json()) as { id: string; kind: string }[];

  it("offers only the fault kinds that fit the picked target", async () => {
    const form = page.getByRole("form", { name: "Inject a fault" });
    const kinds = () =>
      form
        .getByLabel("Fault", { exact: true })
        .locator("option")
        .evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    const byLayer = (layer: string) =>
      Object.entries(FAULT_KINDS)
        .filter(([, l]) => l === layer)
        .map(([k]) => k);
    await form.getByLabel("Device", { exact: true }).selectOption("");
    expect(await kinds()).toEqual(byLayer("hub"));
    expect(await form.getByLabel("Sensor", { exact: true }).isDisabled()).toBe(true);
    expect(await form.getByLabel("For (s)", { exact: true }).isDisabled()).toBe(true);
    await form.getByLabel("Device", { exact: true }).selectOption("tank-pi");
    expect(await kinds()).toEqual(byLayer("device"));
    // Sensors only: actuators are not sensor actors.
    const sensors = await form
      .getByLabel("Sensor", { exact: true })
      .locator("option")
      .evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    expect(sensors).toEqual(["", "water-temp", "air-temp", "air-humidity", "air-pressure", "door"]);
    await form.getByLabel("Sensor", { exact: true }).selectOption("door");
    expect(await kinds()).toEqual(byLayer("sensor"));
    // The page's kinds are the hub's contract itself (hub/faults/contract.ts, bundled), not a copy.
    expect(DASHBOARD_FAULT_KINDS).toBe(FAULT_KINDS);
  }, 20_000);

  it("injects `throws` from the page: the sensor restarts in the tree within 2 s, then runs healthy", async () => {
    const path = "hub/fleet/tank-pi/sensors/door";
    const item = page.locator(`[role=treeitem][data-path="${path}"]`);
    const before = Number(await item.getAttribute("data-restarts"));
    const clickedAt = await injectFromPage({
      device: "tank-pi",
      sensor: "door",
      kind: "throws",
      seconds: "1.5",
    });
    await page.waitForSelector(`[role=treeitem][data-path="${path}"]:not([data-restarts="${before}"])`, {
      timeout: Math.max(1, clickedAt + 2000 - Date.now()),
    });
    const shownAfter = Date.now() - clickedAt;
    expect(await page.locator("[data-role=inject-done]").textContent()).toMatch(
      /Injected f\d+: throws on tank-pi\/door/,
    );
    expect(await item.locator(":scope > .row").textContent()).toContain("InjectedDriverError");
    await shot("fault-throws-restart");
    // The duration ends: the fault leaves the list by itself, the node runs and the sensor reads healthy again.
    await expect.poll(() => activeFault("throws", "tank-pi/door").count(), { timeout: 5000 }).toBe(0);
    await expect.poll(() => item.getAttribute("data-status"), { timeout: 5000 }).toBe("running");
    const health = sensorRow("tank-pi", "door").locator(".badge");
    await expect.poll(() => health.textContent(), { timeout: 5000 }).toBe("ok");
    const cleared = page.locator('li.event[data-type="fault_cleared"]', { hasText: path });
    await cleared.first().waitFor({ timeout: 2000 });
    console.log(`dashboard: restart from a page-injected fault shown ${shownAfter} ms after the click`);
    await shot("fault-throws-recovered");
  }, 30_000);

  it("injects `disconnect` on an emulated Uno from the page: its link restarts within 2 s, and it comes back online", async () => {
    const path = "hub/fleet/uno-1/link";
    const item = page.locator(`[role=treeitem][data-path="${path}"]`);
    const before = Number(await item.getAttribute("data-restarts"));
    const clickedAt = await injectFromPage({ device: "uno-1", kind: "disconnect", seconds: "2" });
    await page.waitForSelector(`[role=treeitem][data-path="${path}"]:not([data-restarts="${before}"])`, {
      timeout: Math.max(1, clickedAt + 2000 - Date.now()),
    });
    const shownAfter = Date.now() - clickedAt;
    await activeFault("disconnect", "uno-1").waitFor({ timeout: 2000 });
    await shot("fault-disconnect-restart");
    // The cable is plugged back when the 2 s end: the link, the board and the sensors run again, the card is online.
    await expect.poll(() => activeFault("disconnect", "uno-1").count(), { timeout: 5000 }).toBe(0);
    const status = page.locator('[data-device="uno-1"] [data-role=device-status]');
    await expect.poll(() => status.textContent(), { timeout: 15_000 }).toBe("online");
    await expect.poll(() => item.getAttribute("data-status"), { timeout: 5000 }).toBe("running");
    expect(
      await page.locator('[role=treeitem][data-path="hub/fleet/uno-1"]').getAttribute("data-status"),
    ).toBe("running");
    // The rest of the fleet never noticed.
    expect(await page.locator('[data-device="tank-pi"] [data-role=device-status]').textContent()).toBe(
      "online",
    );
    console.log(
      `dashboard: uno-1 link restart from a page-injected disconnect shown ${shownAfter} ms after the click`,
    );
    await shot("fault-disconnect-recovered");
  }, 40_000);

  it("clears a fault with its Clear button, and every fault with Clear all", async () => {
    await injectFromPage({ device: "tank-pi", sensor: "air-pressure", kind: "throws" });
    const one = activeFault("throws", "tank-pi/air-pressure");
    await one.waitFor({ timeout: 2000 });
    expect(await one.textContent()).toContain("until cleared");
    await shot("fault-active");
    await one.getByRole("button", { name: /^Clear f\d+/ }).click();
    await expect.poll(() => one.count(), { timeout: 2000 }).toBe(0);
    expect(await apiFaults()).toEqual([]);
    await expect.poll(() => page.locator("[data-role=no-faults]").count(), { timeout: 2000 }).toBe(1);

    await injectFromPage({ device: "tank-pi", sensor: "air-pressure", kind: "throws" });
    await injectFromPage({ device: "tank-pi", sensor: "air-humidity", kind: "throws", seconds: "600" });
    await expect.poll(() => page.locator("[data-fault]").count(), { timeout: 2000 }).toBe(2);
    expect((await apiFaults()).length).toBe(2);
    expect(await activeFault("throws", "tank-pi/air-humidity").textContent()).toMatch(
      /clears in (9\.\d|10) min/,
    );
    await page.getByRole("button", { name: "Clear all" }).click();
    await expect.poll(() => page.locator("[data-fault]").count(), { timeout: 2000 }).toBe(0);
    expect(await apiFaults()).toEqual([]);
    expect(await page.getByRole("button", { name: "Clear all" }).isDisabled()).toBe(true);
    await shot("faults-cleared");
  }, 20_000);

  it("shows the API's own message when an injection is refused", async () => {
    // 100,000 s is past the API's 24 h limit: the page sends it as typed, and the hub says why not.
    await injectFromPage({ device: "tank-pi", sensor: "water-temp", kind: "stuck", seconds: "100000" });
    const alert = page.locator("[data-role=inject-error]");
    await alert.waitFor({ timeout: 2000 });
    const res = await fetch(`http://127.0.0.1:${port}/api/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        kind: "stuck",
        device: "tank-pi",
        sensor: "water-temp",
        durationMs: 100_000_000,
      }),
    });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { message: string } };
    expect(await alert.textContent()).toBe(`✕ ${error.message}`);
    // A serial Uno has no network to partition: the simulator refuses, and the page says so in its words.
    await injectFromPage({ device: "uno-1", kind: "partition" });
    await expect.poll(() => alert.textContent(), { timeout: 2000 }).toContain("no network to partition");
    // A second throws on the same sensor: 409, and the page names the fault already there.
    await injectFromPage({ device: "tank-pi", sensor: "air-temp", kind: "throws" });
    await activeFault("throws", "tank-pi/air-temp").waitFor({ timeout: 2000 });
    const [held] = await apiFaults();
    await injectFromPage({ device: "tank-pi", sensor: "air-temp", kind: "throws" });
    await expect
      .poll(() => alert.textContent(), { timeout: 2000 })
      .toContain(`already has fault ${held!.id}`);
    expect(await page.locator("[data-fault]").count()).toBe(1);
    await shot("fault-refused");
    await page.getByRole("button", { name: "Clear all" }).click();
    await expect.poll(() => page.locator("[data-fault]").count(), { timeout: 2000 }).toBe(0);
  }, 20_000);

  it("lists the shipped scenarios and runs one from the page, its progress lines arriving as events", async () => {
    const listed = (await (await fetch(`http://127.0.0.1:${port}/api/scenarios`)).json()) as {
      name: string;
    }[];
    expect(listed.map((s) => s.name)).toContain("sensor-throws");
    const panel = page.locator("[data-role=scenarios]");
    for (const s of listed) {
      await panel
        .locator(`[data-scenario="${s.name}"]`)
        .getByRole("button", { name: `Run ${s.name}` })
        .waitFor();
    }
    // sensor-throws: uno-1's thermometer raises for a second, is restarted alone and is healthy again (14 s).
    const item = panel.locator('[data-scenario="sensor-throws"]');
    await item.getByRole("button", { name: "Run sensor-throws" }).click();
    await expect
      .poll(() => item.locator("[data-role=scenario-state]").textContent(), { timeout: 5000 })
      .toBe("running");
    expect(await item.getByRole("button", { name: "Run sensor-throws" }).isDisabled()).toBe(true);
    const lines = item.locator("ol.scenario-lines li");
    await expect.poll(() => lines.count(), { timeout: 10_000 }).toBeGreaterThan(0);
    await shot("scenario-running");
    // A second run while one goes: the API's 409, in its words.
    const busy = await fetch(`http://127.0.0.1:${port}/api/scenarios/sensor-throws/run`, { method: "POST" });
    expect(busy.status).toBe(409);
    await expect
      .poll(() => item.locator("[data-role=scenario-state]").textContent(), { timeout: 30_000 })
      .toBe("✓ passed");
    const text = (await lines.allTextContents()).join("\n");
    expect(text).toContain("⚡");
    expect(text).toMatch(/✓/);
    expect(await item.getByRole("button", { name: "Run sensor-throws" }).isDisabled()).toBe(false);
    await shot("scenario-passed");
  }, 60_000);

  it("shows a device that went away as offline with the reason, its controls disabled", async () => {
    await current!.demo.pis.get("greenhouse-pi")!.stop();
    const card = page.locator('[data-device="greenhouse-pi"]');
    await expect
      .poll(() => card.locator("[data-role=device-status]").textContent(), { timeout: 10_000 })
      .toBe("offline");
    expect(await card.locator(".meta .reason").textContent()).toMatch(/\S/);
    expect(await card.getByRole("button", { name: "Close" }).isDisabled()).toBe(true);
    expect(await card.getByRole("button", { name: "On" }).isDisabled()).toBe(true);
    // The other device is untouched.
    expect(await page.locator('[data-device="tank-pi"] [data-role=device-status]').textContent()).toBe(
      "online",
    );
    await page
      .locator('li.event[data-type="offline"]', { hasText: "hub/fleet/greenhouse-pi" })
      .first()
      .waitFor();
    await shot("device-offline");
  }, 20_000);

  it("shows 'disconnected' when the hub process stops and recovers when a new one starts on the same port", async () => {
    // `ganglion start --simulate` processes (what npm start runs), serving the built dashboard: killing one is the
    // hub going away for real, and the second must bind the port the first held.
    await current?.stop();
    current = undefined;
    const dataDir = join(work, "cli-data");
    const first = await startCliHub(["--http-port", "0", "--data-dir", dataDir]);
    const url = first.dashboard;
    await page.goto(url);
    await page.locator("[data-connection=live]").waitFor({ timeout: 10_000 });
    const status = (id: string) => page.locator(`[data-device="${id}"] [data-role=device-status]`);
    for (const id of ["greenhouse-pi", "tank-pi"]) {
      await expect.poll(() => status(id).textContent(), { timeout: 15_000 }).toBe("online");
    }
    const spark = sensorRow("tank-pi", "water-temp").locator(".sparkline");
    await expect
      .poll(async () => Number(await spark.getAttribute("data-points")), { timeout: 10_000 })
      .toBeGreaterThan(0);
    const firstReadingBefore = Number(await spark.getAttribute("data-first-ts"));

    await first.stop();
    const banner = page.locator("[data-connection=disconnected]");
    await banner.waitFor({ timeout: 5000 });
    expect(await banner.textContent()).toContain("disconnected — reconnecting");
    await shot("disconnected");

    const second = await startCliHub(["--http-port", new URL(url).port, "--data-dir", dataDir]);
    expect(second.dashboard).toBe(url);
    await page.locator("[data-connection=live]").waitFor({ timeout: 15_000 });
    for (const id of ["greenhouse-pi", "tank-pi"]) {
      await expect.poll(() => status(id).textContent(), { timeout: 15_000 }).toBe("online");
    }
    // The snapshot replaced the state, and the history read again from the database reaches back before the restart.
    await expect
      .poll(async () => Number(await spark.getAttribute("data-first-ts")), { timeout: 10_000 })
      .toBeLessThanOrEqual(firstReadingBefore);
    expect(pageErrors).toEqual([]);
    await shot("reconnected");
    await second.stop();
  }, 90_000);
});

describe.skipIf(!hasChromium)("the dashboard with a large fleet", () => {
  const COUNT = 300;
  let work: string;
  let hub: RunningHub;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "ganglion-e2e-large-"));
    execFileSync(process.execPath, ["hub/dashboard/build.mjs"], { stdio: "pipe" });
    // 300 Pis that never connect: the tree and the cards are all there, offline, and nothing else loads the host.
    const tokenHash = await hashToken(generateToken(), { N: 1024 });
    const config = FleetConfigSchema.parse({});
    for (let i = 0; i < COUNT; i++) {
      config.devices.push(
        DeviceSchema.parse({
          id: `dev-${String(i).padStart(3, "0")}`,
          board: "raspberry-pi",
          link: { type: "mqtt", tokenHash },
          sensors: [{ id: "temp", kind: "thermometer", unit: "°C", periodMs: 1000 }],
        }),
      );
    }
    hub = await startHub({
      config,
      dataDir: join(work, "data"),
      httpPort: 0,
      mqttPort: 0,
      staticDir: DASHBOARD_DIR,
      logger: silent,
    });
    context = await launchChromium(join(work, "chromium-profile"));
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => pageErrors.push(e.message));
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await hub?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("renders only the tree rows and cards in view, and keyboard moves reach rows out of view", async () => {
    await page.goto(hub.httpUrl!);
    const tree = page.locator(".tree");
    await page.locator('[data-path="hub/fleet"]').waitFor({ timeout: 10_000 });
    // Device subtrees start collapsed: hub, its five children, 300 devices.
    expect(await tree.getAttribute("data-total")).toBe(String(6 + COUNT));
    expect(await tree.getAttribute("class")).toContain("windowed");
    const treeRows = await page.locator("[role=treeitem]").count();
    expect(treeRows).toBeLessThan(120);
    expect(Number(await tree.getAttribute("data-rendered"))).toBe(treeRows);
    const cards = await page.locator("[data-device]").count();
    expect(cards).toBeGreaterThan(0);
    expect(cards).toBeLessThan(80);
    await largeShot(page, "large-fleet");

    // End goes to the last row (the api), which was not rendered until then; ArrowUp to the last device.
    await page.locator('[role=treeitem][data-path="hub"]').focus();
    await page.keyboard.press("End");
    await expect.poll(() => focusedPath(page)).toBe("hub/api");
    await page.keyboard.press("ArrowUp");
    await expect.poll(() => focusedPath(page)).toBe(`hub/fleet/dev-${COUNT - 1}`);
    // Opening it adds its parts to the list, in place.
    await page.keyboard.press("Enter");
    await expect.poll(() => tree.getAttribute("data-total")).toBe(String(6 + COUNT + 4));
    await page.keyboard.press("ArrowDown");
    await expect.poll(() => focusedPath(page)).toBe(`hub/fleet/dev-${COUNT - 1}/link`);
    expect(await page.locator('[role=treeitem][data-path="hub/fleet/dev-000"]').count()).toBe(0);
    await largeShot(page, "large-fleet-end");

    // The cards' list scrolls by itself; scrolled to the end, the last device's card is rendered.
    const last = page.locator(`[data-device="dev-${COUNT - 1}"]`);
    expect(await last.count()).toBe(0);
    await page.locator(".cards-window").evaluate((el) => {
      el.scrollTop = el.scrollHeight;
    });
    await last.waitFor({ timeout: 5000 });
    expect(await last.locator("[data-role=device-status]").textContent()).toMatch(/^(offline|down)$/);
    expect(await page.locator('[data-device="dev-000"]').count()).toBe(0);
    expect(pageErrors).toEqual([]);
    await largeShot(page, "large-fleet-cards-end");
  }, 60_000);
});
