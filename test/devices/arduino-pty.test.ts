/**
 * The whole serial path with nothing injected: the hub's default opener (serialport@13 and its native binding)
 * opens a pseudo-terminal by path, behind which an emulated Uno runs the Ganglion firmware (simulator/boards, with
 * Debian's socat making the pty). Opening the pty resets the board, as a Uno's DTR line does.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetConfigSchema } from "../../hub/config.ts";
import { type RunningHub, startHub } from "../../hub/hub.ts";
import type { HubEvent } from "../../hub/store.ts";
import { type EmulatedBoard, startEmulatedBoard } from "../../simulator/boards/emulated-board.ts";

const HEX = join(import.meta.dirname, "../../firmware/arduino/dist/ganglion-uno.hex");

function hasSocat(): boolean {
  try {
    execFileSync("socat", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
const socat = hasSocat();
if (!socat) {
  console.error(
    "SKIPPING test/devices/arduino-pty.test.ts: socat is not installed (apt-get install socat); the pty needs it",
  );
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until<T>(
  check: () => T | undefined | null | false | Promise<unknown>,
  timeoutMs: number,
  what: string,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let hub: RunningHub | undefined;
let uno: EmulatedBoard | undefined;
let dataDir: string;

beforeAll(async () => {
  if (!socat) return;
  uno = await startEmulatedBoard({ mcu: "uno", hex: HEX, pty: true });
  dataDir = mkdtempSync(join(tmpdir(), "ganglion-pty-"));
  const config = FleetConfigSchema.parse({
    devices: [
      {
        id: "uno-pty",
        board: "arduino-uno",
        link: { type: "serial", path: uno.ptyPath },
        sensors: [{ id: "pot", kind: "analog", pin: "A0", periodMs: 100, staleMs: 5000 }],
        actuators: [{ id: "led", kind: "led", pin: 13 }],
      },
    ],
  });
  hub = await startHub({ config, httpPort: 0, mqttPort: 0, dataDir, logger: pino({ level: "silent" }) });
}, 30_000);

afterAll(async () => {
  await hub?.stop();
  await uno?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe.skipIf(!socat || !existsSync(HEX))("an emulated Uno behind a pty, opened by serialport", () => {
  it("comes online with a board_reset from the open, reads A0 and drives the LED", async () => {
    const h = hub as RunningHub;
    const board = uno as EmulatedBoard;
    await until(() => h.device("uno-pty")?.status === "online", 15_000, "online over the pty");
    // Opening the port reset the board (DTR): the hub saw the start-up heartbeat.
    const resets = h.events({ device: "uno-pty", type: "board_reset" }) as HubEvent[];
    expect(resets[0]).toMatchObject({ cause: "external" });
    board.setAnalog(0, 1.25);
    await until(
      () => {
        const v = h.device("uno-pty")?.sensors.find((s) => s.id === "pot")?.value;
        return typeof v === "number" && Math.abs(v - 256) <= 3;
      },
      10_000,
      "pot ≈ 256",
    );
    await expect(h.command("uno-pty", { target: "led", op: "on" })).resolves.toMatchObject({ ok: true });
    expect((await board.pinLevels())[13]).toBe("high");
  }, 30_000);
});
