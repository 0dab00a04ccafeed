/**
 * The dashboard against a hub that requires an API token (as one bound beyond loopback does, e.g. a Pi with
 * `--http-host 0.0.0.0`; here a token given on 127.0.0.1, which is required too), in Debian's chromium: reads and `/api/live` need none; an action answered 401 opens the token prompt,
 * a wrong token is refused with an error, the right one performs the action and is kept for the tab; "Forget token";
 * and `#token=` in the address pre-authorizes the tab and leaves the address bar. Tokens are generated per run.
 * Screenshots land in test-results/dashboard-token/.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type DemoHub,
  hasChromium,
  injectFromPage,
  launchChromium,
  startDemoHub,
  warnIfNoChromium,
} from "./helpers.ts";

const SHOTS = join("test-results", "dashboard-token");
warnIfNoChromium("test/e2e/dashboard-token.test.ts");

const newToken = () => randomBytes(24).toString("base64url");

describe.skipIf(!hasChromium)("the dashboard against a hub that requires an API token", () => {
  let work: string;
  let current: DemoHub;
  let base: string;
  let token: string;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  const shot = (p: Page, name: string) => p.screenshot({ path: join(SHOTS, `${name}.png`) });
  const dialog = (p: Page) => p.getByRole("dialog", { name: "API token needed" });
  const stored = (p: Page) =>
    p.evaluate('sessionStorage.getItem("ganglion.apiToken")') as Promise<string | null>;
  const focusedId = (p: Page) => p.evaluate("document.activeElement?.id ?? null") as Promise<string | null>;
  const focusedText = (p: Page) =>
    p.evaluate("document.activeElement?.textContent ?? null") as Promise<string | null>;
  const led = (p: Page) => p.locator('[data-device="tank-pi"] [data-actuator="status-led"]');
  const statusLed = () => current.demo.pis.get("tank-pi")!.sys.readGpio(27);
  const apiFaults = async () =>
    (await (await fetch(`${base}api/faults`)).json()) as { id: string; kind: string; sensor?: string }[];
  const clearAllFaults = async () => {
    for (const f of await apiFaults()) {
      await fetch(`${base}api/faults/${f.id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${token}` },
      });
    }
  };
  /** A new tab (its own sessionStorage) on `url`, once the fleet is on screen. */
  const openTab = async (url: string) => {
    const tab = await context.newPage();
    tab.on("pageerror", (e) => pageErrors.push(e.message));
    await tab.goto(url);
    await expect
      .poll(() => tab.locator('[data-device="tank-pi"] [data-role=device-status]').textContent(), {
        timeout: 20_000,
      })
      .toBe("online");
    return tab;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "ganglion-e2e-token-"));
    rmSync(SHOTS, { recursive: true, force: true });
    mkdirSync(SHOTS, { recursive: true });
    // The current sources, built into a directory of this test's own (the other e2e file rebuilds dist/ meanwhile).
    const staticDir = join(work, "dashboard");
    execFileSync(process.execPath, ["hub/dashboard/build.mjs", "--outdir", staticDir], { stdio: "pipe" });
    token = newToken();
    current = await startDemoHub({
      dataDir: join(work, "data"),
      simDir: join(work, "sim"),
      httpPort: 0,
      staticDir,
      apiToken: token,
    });
    base = `http://127.0.0.1:${new URL(current.hub.httpUrl!).port}/`;
    context = await launchChromium(join(work, "chromium-profile"));
    // Under the test's own timeout, so a step that waits in vain is the one reported.
    context.setDefaultTimeout(15_000);
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => pageErrors.push(e.message));
  }, 90_000);

  afterAll(async () => {
    await context?.close();
    await current?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("reads without a token: the fleet and the live socket work, and nothing asks for one", async () => {
    // The hub really requires it for changes.
    const refused = await fetch(`${base}api/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "throws", device: "tank-pi", sensor: "door" }),
    });
    expect(refused.status).toBe(401);
    await page.goto(base);
    await page.locator("[data-connection=live]").waitFor({ timeout: 20_000 });
    for (const id of ["tank-pi", "greenhouse-pi"]) {
      await expect
        .poll(() => page.locator(`[data-device="${id}"] [data-role=device-status]`).textContent(), {
          timeout: 20_000,
        })
        .toBe("online");
    }
    expect(await dialog(page).isVisible()).toBe(false);
    expect(await page.locator("[data-role=forget-token]").count()).toBe(0);
    expect(await stored(page)).toBeNull();
  }, 60_000);

  it("an action answered 401 prompts for the token; a wrong one is refused with an error; the right one performs it", async () => {
    expect(statusLed()).not.toBe(1);
    await led(page).getByRole("button", { name: "On" }).click();
    const prompt = dialog(page);
    await prompt.waitFor({ timeout: 10_000 });
    // Focus is in the token field, and the prompt says what it is for.
    await expect.poll(() => focusedId(page), { timeout: 5000 }).toBe("token-input");
    expect(await prompt.textContent()).toContain('send "on" to tank-pi/status-led');
    expect(await prompt.getByLabel("API token", { exact: true }).getAttribute("type")).toBe("password");
    expect(statusLed()).not.toBe(1);
    await shot(page, "01-prompt");

    // A wrong token, by keyboard: the hub refuses it, the prompt says so in words and asks again.
    await page.keyboard.type(newToken());
    await page.keyboard.press("Enter");
    const error = prompt.getByRole("alert");
    await expect
      .poll(() => error.textContent(), { timeout: 10_000 })
      .toContain("The hub refused that token (401)");
    expect((await error.textContent())?.startsWith("✕")).toBe(true);
    expect(await prompt.getByLabel("API token", { exact: true }).getAttribute("aria-invalid")).toBe("true");
    expect(await prompt.getByLabel("API token", { exact: true }).inputValue()).toBe("");
    await expect.poll(() => focusedId(page), { timeout: 5000 }).toBe("token-input");
    expect(await stored(page)).toBeNull();
    expect(statusLed()).not.toBe(1);
    await shot(page, "02-wrong-token");

    // The right one: the command reaches the board, and the tab keeps the token.
    await prompt.getByLabel("API token", { exact: true }).fill(token);
    await prompt.getByRole("button", { name: "Use token" }).click();
    await expect.poll(() => statusLed(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => prompt.isVisible(), { timeout: 5000 }).toBe(false);
    await expect
      .poll(() => led(page).locator("[data-role=value]").textContent(), { timeout: 10_000 })
      .toBe("on");
    expect(await stored(page)).toBe(token);
    expect(await page.locator("[data-role=token-state]").textContent()).toContain("API token set");
    expect(await led(page).locator("[role=alert]").count()).toBe(0);
    // Focus is back on the control that asked.
    await expect.poll(() => focusedText(page), { timeout: 5000 }).toBe("On");
    await shot(page, "03-token-accepted");
  }, 60_000);

  it("with the token kept, the next actions go through without asking: a fault injected from the page is active", async () => {
    await injectFromPage(page, { device: "tank-pi", sensor: "air-pressure", kind: "throws" });
    await expect
      .poll(async () => (await apiFaults()).map((f) => `${f.kind}/${f.sensor}`), { timeout: 10_000 })
      .toEqual(["throws/air-pressure"]);
    expect(await page.locator("[data-role=inject-done]").textContent()).toContain(
      "throws on tank-pi/air-pressure",
    );
    expect(await dialog(page).isVisible()).toBe(false);
    // Clear all is a DELETE per fault, with the token too.
    await page.locator("[data-fault]").first().waitFor({ timeout: 10_000 });
    await page.getByRole("button", { name: "Clear all" }).click();
    await expect.poll(async () => (await apiFaults()).length, { timeout: 10_000 }).toBe(0);
    expect(await dialog(page).isVisible()).toBe(false);
  }, 60_000);

  it("Forget token drops it; the next action asks again, and Escape cancels it unsent with a message", async () => {
    await page.getByRole("button", { name: "Forget token" }).click();
    expect(await stored(page)).toBeNull();
    await expect
      .poll(() => page.locator("[data-role=token-state]").textContent(), { timeout: 5000 })
      .toContain("API token forgotten");
    expect(await page.locator("[data-role=forget-token]").count()).toBe(0);

    await led(page).getByRole("button", { name: "Off" }).click();
    await dialog(page).waitFor({ timeout: 10_000 });
    await expect.poll(() => focusedId(page), { timeout: 5000 }).toBe("token-input");
    await page.keyboard.press("Escape");
    await expect.poll(() => dialog(page).isVisible(), { timeout: 5000 }).toBe(false);
    const alert = led(page).locator("[role=alert]");
    await expect.poll(() => alert.textContent(), { timeout: 5000 }).toContain("needs its API token");
    expect(statusLed()).toBe(1);
    await expect.poll(() => focusedText(page), { timeout: 5000 }).toBe("Off");
    await shot(page, "04-cancelled");
  }, 60_000);

  it("#token= in the address pre-authorizes the tab and is taken out of the address bar", async () => {
    const tab = await openTab(`${base}#token=${encodeURIComponent(token)}&view=faults`);
    // Gone from the address (other fragment parameters stay), kept for the tab.
    expect(tab.url()).toBe(`${base}#view=faults`);
    expect(await tab.evaluate("location.href")).not.toContain(token);
    expect(await stored(tab)).toBe(token);
    expect(await tab.locator("[data-role=token-state]").textContent()).toContain("API token set");
    await injectFromPage(tab, { device: "tank-pi", sensor: "air-humidity", kind: "throws" });
    await expect
      .poll(async () => (await apiFaults()).map((f) => `${f.kind}/${f.sensor}`), { timeout: 10_000 })
      .toEqual(["throws/air-humidity"]);
    expect(await dialog(tab).isVisible()).toBe(false);
    await shot(tab, "05-link-token");
    await clearAllFaults();
    await tab.close();
  }, 60_000);

  it("a wrong #token= is refused at the first action, the prompt naming the link; the right token then works", async () => {
    const tab = await openTab(`${base}#token=${newToken()}`);
    expect(tab.url()).toBe(base);
    await injectFromPage(tab, { device: "tank-pi", sensor: "air-temp", kind: "throws" });
    const prompt = dialog(tab);
    await prompt.waitFor({ timeout: 10_000 });
    await expect
      .poll(() => prompt.getByRole("alert").textContent(), { timeout: 10_000 })
      .toContain("The hub refused the token in the link you opened");
    expect(await stored(tab)).toBeNull();
    await prompt.getByLabel("API token", { exact: true }).fill(token);
    await tab.keyboard.press("Enter");
    await expect
      .poll(async () => (await apiFaults()).map((f) => `${f.kind}/${f.sensor}`), { timeout: 10_000 })
      .toEqual(["throws/air-temp"]);
    expect(await stored(tab)).toBe(token);
    await clearAllFaults();
    await tab.close();
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
