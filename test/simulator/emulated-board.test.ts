import { closeSync, constants, existsSync, openSync, writeSync } from "node:fs";
import tty from "node:tty";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { PinChange } from "../../simulator/boards/avr-board.ts";
import { type EmulatedBoard, startEmulatedBoard } from "../../simulator/boards/emulated-board.ts";
import type { ResetCause } from "../../simulator/boards/mcu.ts";
import {
  AVR_GCC,
  cleanTestFirmware,
  haveTools,
  SOCAT,
  testFirmware,
  testFirmwarePath,
  waitFor,
} from "./toolchain.ts";

const toolchain = haveTools("emulated board worker tests", AVR_GCC);
const socat = haveTools("emulated board pty tests", SOCAT);

let boards: EmulatedBoard[] = [];

async function start(options: Parameters<typeof startEmulatedBoard>[0]) {
  const board = await startEmulatedBoard(options);
  boards.push(board);
  return board;
}

/** Collects what a board prints, its pin changes and resets. */
function watch(board: EmulatedBoard) {
  const seen = { out: "", pins: [] as PinChange[], resets: [] as { cause: ResetCause; mcusr: number }[] };
  board.serial.on("data", (b: Buffer) => {
    seen.out += b.toString("latin1");
  });
  board.on("pin", (change) => seen.pins.push(change));
  board.on("reset", (cause, mcusr) => seen.resets.push({ cause, mcusr }));
  return seen;
}

afterEach(async () => {
  await Promise.all(boards.map((b) => b.stop()));
  boards = [];
});

describe.skipIf(!toolchain)("startEmulatedBoard (a board in a worker thread)", () => {
  afterAll(() => cleanTestFirmware());

  it("gives a serial stream that emits 'open' (also to late listeners) and echoes through the firmware", async () => {
    const board = await start({ mcu: "uno", hex: testFirmware("atmega328p") });
    await new Promise((resolve) => setTimeout(resolve, 20));
    let opened = false;
    board.serial.once("open", () => {
      opened = true;
    });
    const seen = watch(board);
    await waitFor(() => opened && board.serial.isOpen, 1000, "'open'");
    await waitFor(() => seen.out === "boot mcusr=1\n", 2000, "the boot banner");
    board.serial.write("hello");
    await waitFor(() => seen.out.endsWith("hello"), 2000, "the echo");
  });

  it("proxies pins, analog inputs and resets across the thread boundary", async () => {
    const board = await start({ mcu: "mega", hex: testFirmwarePath("atmega2560") });
    const seen = watch(board);
    await waitFor(() => seen.out.includes("boot"), 2000, "the boot banner");
    board.setAnalog("A0", 3.75);
    board.serial.write("ab");
    await waitFor(() => seen.out.includes("pb5=1\n"), 2000, "adc and pb5 replies");
    expect(seen.out).toContain("adc=768\n");
    await waitFor(() => seen.pins.some((p) => p.pin === 11 && p.level === "high"), 1000, "the PB5 pin event");
    expect((await board.pinLevels())[11]).toBe("high");
    board.serial.write("w");
    await waitFor(() => seen.resets.length === 1, 2000, "the watchdog reset");
    expect(seen.resets[0]).toEqual({ cause: "watchdog", mcusr: 8 });
    await waitFor(() => seen.out.endsWith("boot mcusr=8\n"), 2000, "the banner after the watchdog reset");
    const stats = await board.stats();
    expect(stats.resets).toBe(1);
    expect(stats.seconds).toBeGreaterThan(0.01);
  });

  it("runs in real time: emulated time follows wall time while the main thread is blocked", async () => {
    const board = await start({ mcu: "uno", hex: testFirmware("atmega328p") });
    const before = await board.stats();
    const t0 = performance.now();
    const spinUntil = t0 + 300;
    while (performance.now() < spinUntil) {
      // a busy main thread: the board keeps running in its worker
    }
    const after = await board.stats();
    const wall = (performance.now() - t0) / 1000;
    const emulated = after.seconds - before.seconds;
    // The worker kept running while this thread was blocked (loosely: CI machines are shared and loaded)...
    expect(emulated).toBeGreaterThan(wall * 0.05);
    // ...and the pacer never lets the emulation run ahead of wall time.
    expect(emulated).toBeLessThan(wall * 1.1 + 0.06);
  });

  it("reopening the serial stream resets the board like a DTR pulse", async () => {
    const board = await start({ mcu: "uno", hex: testFirmware("atmega328p") });
    const first = watch(board);
    await waitFor(() => first.out === "boot mcusr=1\n", 2000, "the boot banner");
    const serial = board.openSerial();
    let again = "";
    serial.on("data", (b: Buffer) => {
      again += b.toString("latin1");
    });
    await waitFor(() => again === "boot mcusr=2\n", 2000, "the banner after reopening");
    expect(first.resets).toEqual([{ cause: "external", mcusr: 2 }]);
    expect(board.serial.isOpen).toBe(true);
  });

  it("rejects a bad HEX file with the loader's message", async () => {
    const hex = testFirmware("atmega328p").replace(/..\r?\n/, "00\n");
    await expect(startEmulatedBoard({ mcu: "uno", hex })).rejects.toThrow(/line 1: bad checksum/);
    await expect(startEmulatedBoard({ mcu: "uno", hex: "/nonexistent/fw.hex" })).rejects.toThrow(
      /cannot read firmware/,
    );
  });
});

/** Opens a pty like a serial program would; returns what it reads and a way to write and close. */
function openPort(path: string) {
  const fd = openSync(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  // libuv reopens the tty for its stream, so the original fd must be closed too.
  const stream = new tty.ReadStream(fd);
  const port = {
    out: "",
    write: (s: string) => writeSync(fd, s),
    close: () => {
      stream.destroy();
      closeSync(fd);
    },
  };
  stream.on("data", (b: Buffer) => {
    port.out += b.toString("latin1");
  });
  return port;
}

describe.skipIf(!toolchain || !socat)("the emulated board's pseudo-terminal", () => {
  afterAll(() => cleanTestFirmware());

  it("exchanges bytes with a program that opens it, and every open resets the board", async () => {
    const board = await start({ mcu: "uno", hex: testFirmware("atmega328p"), pty: true });
    expect(board.ptyPath && existsSync(board.ptyPath)).toBe(true);
    const seen = watch(board);
    await waitFor(() => seen.out === "boot mcusr=1\n", 2000, "power-on");

    const first = openPort(board.ptyPath!);
    await waitFor(() => first.out === "boot mcusr=2\n", 3000, "the banner after opening");
    expect(seen.resets).toEqual([{ cause: "external", mcusr: 2 }]);
    first.write("hello");
    await waitFor(() => first.out.endsWith("hello"), 2000, "the echo through the pty");
    let ready = false;
    board.once("pty-ready", () => {
      ready = true;
    });
    first.close();
    await waitFor(() => ready, 2000, "the pty to come back");
    let opened = false;
    board.once("pty-open", () => {
      opened = true;
    });
    const second = openPort(board.ptyPath!);
    await waitFor(() => second.out === "boot mcusr=2\n", 3000, "the banner after reopening");
    expect(opened).toBe(true);
    expect(seen.resets.map((r) => r.cause)).toEqual(["external", "external"]);
    second.write("ok");
    await waitFor(() => second.out.endsWith("ok"), 2000, "the echo after reopening");
    second.close();
    expect((await board.stats()).ptyOpens).toBe(2);
    const path = board.ptyPath!;
    await board.stop();
    expect(existsSync(path)).toBe(false);
  });
});
