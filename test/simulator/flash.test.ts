import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  BOARD_PRESETS,
  explainAvrdudeFailure,
  type FlashError,
  type FlashProgress,
  flashBoard,
  pickArduinoPort,
} from "../../hub/flash.ts";
import { type EmulatedBoard, startEmulatedBoard } from "../../simulator/boards/emulated-board.ts";
import { parseIntelHex } from "../../simulator/boards/intel-hex.ts";
import {
  ARDUINO_CORE,
  AVR_GCC,
  AVRDUDE,
  cleanTestFirmware,
  haveTools,
  MEGA_BOOTLOADER_HEX,
  OPTIBOOT_HEX,
  SOCAT,
  testFirmwarePath,
  waitFor,
} from "./toolchain.ts";

const flashing = haveTools("avrdude flashing tests", [...AVR_GCC, ...SOCAT, ...AVRDUDE, ...ARDUINO_CORE]);
const avrdude = haveTools("avrdude port tests", AVRDUDE);

let boards: EmulatedBoard[] = [];
afterEach(async () => {
  await Promise.all(boards.map((b) => b.stop()));
  boards = [];
});

/** Bytes of the application area that differ from the hex (erased bytes must read 0xFF). */
function differences(flash: Uint8Array, hexPath: string, appEnd: number): number {
  const expected = new Uint8Array(appEnd).fill(0xff);
  for (const seg of parseIntelHex(readFileSync(hexPath, "utf8")).segments)
    expected.set(seg.data, seg.address);
  let diff = 0;
  for (let i = 0; i < appEnd; i++) if (flash[i] !== expected[i]) diff++;
  return diff;
}

async function flashThroughPty(mcu: "uno" | "mega", bootloader: string, hex: string) {
  const board = await startEmulatedBoard({ mcu, bootloader, pty: true });
  boards.push(board);
  let out = "";
  board.serial.on("data", (b: Buffer) => {
    out += b.toString("latin1");
  });
  const bootBefore = (await board.readFlash()).slice(board.spec.flashBytes - 8192);
  // Like a board that has been plugged in for a moment (and a worker whose JIT has warmed up).
  const started = performance.now();
  while ((await board.stats()).seconds < 0.5 && performance.now() - started < 10_000) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const progress: FlashProgress[] = [];
  const flash = () =>
    flashBoard({ board: mcu, port: board.ptyPath!, hex, onProgress: (p) => progress.push(p) });
  // avrdude's STK500 sync assumes the bootloader keeps real time. On a starved machine (shared CI, parallel suites)
  // the emulation can fall behind and the first sync attempt misaligns: try once more, as a user would, and say so.
  const result = await flash().catch((error: FlashError) => {
    if (error.reason !== "no-answer") throw error;
    console.warn(
      `flash through the pty: first attempt got no answer (host overloaded?), retrying: ${error.message}`,
    );
    return flash();
  });
  return { board, result, progress, bootBefore, output: () => out };
}

describe.skipIf(!flashing)("flashBoard: the real avrdude through an emulated board's pty", () => {
  afterAll(() => cleanTestFirmware());

  it("flashes the emulated Uno running Debian's Optiboot: the flash equals the hex and the board boots it", async () => {
    const hex = testFirmwarePath("atmega328p");
    const { board, result, progress, bootBefore, output } = await flashThroughPty("uno", OPTIBOOT_HEX, hex);
    expect(result.verified).toBe(true);
    expect(result.bytes).toBe(parseIntelHex(readFileSync(hex, "utf8")).bytes);
    expect(result.command.slice(0, 5)).toEqual(["avrdude", "-c", "arduino", "-p", "m328p"]);
    expect(progress.filter((p) => p.phase === "writing").at(-1)?.percent).toBe(100);
    expect(progress.filter((p) => p.phase === "reading").at(-1)?.percent).toBe(100);
    const flash = await board.readFlash();
    expect(differences(flash, hex, 0x7e00)).toBe(0);
    expect(flash.slice(board.spec.flashBytes - 8192)).toEqual(bootBefore); // the bootloader is untouched
    const stats = await board.stats();
    expect(stats.flashPageWrites).toBe(Math.ceil(result.bytes / 128));
    // Optiboot's watchdog ends programming mode with a reset into the new application.
    await waitFor(() => output().endsWith("boot mcusr=0\n"), 5000, "the flashed firmware's banner");
  }, 100_000);

  it("flashes the emulated Mega's stk500v2 bootloader with -c wiring", async () => {
    const hex = testFirmwarePath("atmega2560");
    const { board, result, output } = await flashThroughPty("mega", MEGA_BOOTLOADER_HEX, hex);
    expect(result.verified).toBe(true);
    expect(result.command.slice(0, 5)).toEqual(["avrdude", "-c", "wiring", "-p", "m2560"]);
    expect(differences(await board.readFlash(), hex, 0x3e000)).toBe(0);
    await waitFor(() => output().includes("boot mcusr="), 5000, "the flashed firmware's banner");
  }, 100_000);

  it("explains in one line when the board's firmware does not answer as a bootloader", async () => {
    // A board running an application that echoes, with no bootloader to reset into.
    const board = await startEmulatedBoard({ mcu: "uno", hex: testFirmwarePath("atmega328p"), pty: true });
    boards.push(board);
    const error = (await flashBoard({
      board: "mega",
      port: board.ptyPath!,
      hex: testFirmwarePath("atmega2560"),
    }).catch((e: unknown) => e)) as FlashError;
    expect(error.reason).toBe("no-answer");
    expect(error.message).toMatch(/^no answer from the bootloader on .*: check --board/);
    expect(error.message).not.toContain("\n");
    expect(error.output).toContain("avrdude");
  }, 30_000);
});

describe("flashBoard: failures before avrdude runs", () => {
  const dir = tmpdir();

  it("refuses a hex too large for the board, naming both sizes", async () => {
    const lines: string[] = [];
    for (let a = 0; a < 32_768; a += 16) {
      const bytes = [16, a >> 8, a & 0xff, 0, ...new Array(16).fill(0)];
      const sum = (0x100 - (bytes.reduce((x, y) => x + y, 0) & 0xff)) & 0xff;
      lines.push(`:${[...bytes, sum].map((b) => b.toString(16).padStart(2, "0")).join("")}`);
    }
    lines.push(":00000001FF");
    const hex = join(dir, `ganglion-too-large-${process.pid}.hex`);
    writeFileSync(hex, lines.join("\n"));
    const error = (await flashBoard({ board: "uno", port: "/dev/null", hex }).catch((e) => e)) as FlashError;
    expect(error.reason).toBe("too-large");
    expect(error.message).toBe(
      `hex too large: ${hex} needs 32768 bytes, the Arduino Uno has room for ${BOARD_PRESETS.uno.maxSketchBytes}`,
    );
    // The same file fits a Mega.
    await expect(
      flashBoard({ board: "mega", port: "/dev/null", hex, avrdude: "/nonexistent/avrdude" }),
    ).rejects.toThrow(/avrdude not found: install it/);
  });

  it("refuses a file that is not Intel HEX and an unknown board", async () => {
    const hex = join(dir, `ganglion-bad-${process.pid}.hex`);
    writeFileSync(hex, ":10000000FFFF\n");
    await expect(flashBoard({ board: "uno", port: "/dev/null", hex })).rejects.toMatchObject({
      reason: "bad-hex",
    });
    await expect(
      flashBoard({ board: "leonardo" as "uno", port: "/dev/null", hex: "/nonexistent.hex" }),
    ).rejects.toThrow(/unknown board "leonardo"/);
  });

  it.skipIf(!avrdude)("explains a port that does not exist", async () => {
    const hex = join(dir, `ganglion-small-${process.pid}.hex`);
    writeFileSync(hex, ":020000000C945E\n:00000001FF\n");
    const error = (await flashBoard({ board: "nano", port: "/dev/ttyNOPE9", hex }).catch(
      (e) => e,
    )) as FlashError;
    expect(error.reason).toBe("port-not-found");
    expect(error.message).toBe("port /dev/ttyNOPE9 not found: is the board plugged in? (ganglion boards)");
  });
});

describe("explainAvrdudeFailure", () => {
  const port = "/dev/ttyACM0";
  it("names a busy port", () => {
    const e = explainAvrdudeFailure(
      "avrdude OS error: cannot open port /dev/ttyACM0: Device or resource busy\navrdude error: unable to open programmer arduino on port /dev/ttyACM0\n",
      { port, board: "uno" },
    );
    expect(e.reason).toBe("port-busy");
    expect(e.message).toMatch(/^port \/dev\/ttyACM0 is busy: another program/);
  });

  it("names a wrong signature with what the board reported", () => {
    const e = explainAvrdudeFailure(
      "avrdude: Device signature = 0x1e950f (probably m328p)\navrdude error: expected signature for ATmega2560 is 1E 98 01\n",
      { port, board: "mega" },
    );
    expect(e.reason).toBe("wrong-signature");
    expect(e.message).toBe(
      "wrong signature: the board reports 1E 95 0F, expected 1E 98 01 for Arduino Mega 2560: pick the right --board",
    );
  });

  it("names a verification failure, missing permissions, and falls back to avrdude's last error", () => {
    expect(
      explainAvrdudeFailure("avrdude error: verification mismatch\n", { port, board: "uno" }).reason,
    ).toBe("verify-failed");
    expect(
      explainAvrdudeFailure("avrdude OS error: cannot open port /dev/ttyACM0: Permission denied\n", {
        port,
        board: "uno",
      }).message,
    ).toMatch(/dialout/);
    const other = explainAvrdudeFailure("avrdude error: something new\n\navrdude done.  Thank you.\n", {
      port,
      board: "uno",
    });
    expect(other).toMatchObject({ reason: "failed", message: "avrdude failed: something new" });
  });
});

describe("pickArduinoPort", () => {
  it("picks the only port with an Arduino or USB-serial vendor id, and explains none or several", () => {
    const serial0 = { path: "/dev/ttyS0" };
    const uno = { path: "/dev/ttyACM0", vendorId: "2341", productId: "0043" };
    const clone = { path: "/dev/ttyUSB0", vendorId: "1A86", productId: "7523" };
    expect(pickArduinoPort([serial0, uno])).toBe("/dev/ttyACM0");
    expect(pickArduinoPort([clone])).toBe("/dev/ttyUSB0");
    expect(() => pickArduinoPort([serial0])).toThrow(/^no Arduino found on USB: plug it in, or give --port/);
    expect(() => pickArduinoPort([uno, clone])).toThrow(
      "several boards found (/dev/ttyACM0: Arduino, /dev/ttyUSB0: CH340 (clone)): choose one with --port",
    );
  });
});
