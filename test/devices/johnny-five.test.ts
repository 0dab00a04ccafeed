/**
 * johnny-five — the library most Arduino makers know — drives an emulated Uno running Ganglion's own firmware,
 * through firmata-io over the in-process stream and over the emulated board's pty (serialport@13), the same way
 * it drives a real board: 'ready', an LED on pin 13, and a Sensor on A0.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { SerialPort } from "serialport";
import { afterEach, describe, expect, it } from "vitest";
import type { PinChange } from "../../simulator/boards/avr-board.ts";
import { type EmulatedBoard, startEmulatedBoard } from "../../simulator/boards/emulated-board.ts";

const require = createRequire(import.meta.url);
const HEX = join(import.meta.dirname, "../../firmware/arduino/dist/ganglion-uno.hex");

/** The parts of johnny-five this test uses (the package ships no typings). */
interface Five {
  Board: new (options: {
    io: unknown;
    repl: boolean;
    debug: boolean;
    timeout?: number;
  }) => {
    on(event: "ready" | "error", listener: (err?: Error) => void): void;
  };
  Led: new (options: { pin: number; board: unknown }) => { on(): void; off(): void };
  Sensor: new (options: {
    pin: string;
    freq: number;
    board: unknown;
  }) => { on(event: "data", listener: (this: { value: number }) => void): void };
}
const five = require("johnny-five") as Five;
const { Firmata } = require("firmata-io") as { Firmata: new (transport: unknown) => unknown };

const boards: EmulatedBoard[] = [];
const ports: SerialPort[] = [];
afterEach(async () => {
  for (const p of ports.splice(0)) if (p.isOpen) await new Promise((r) => p.close(r));
  for (const b of boards.splice(0)) await b.stop();
});

async function driveWithJohnnyFive(board: EmulatedBoard, transport: unknown): Promise<void> {
  const started = performance.now();
  const j5 = new five.Board({ io: new Firmata(transport), repl: false, debug: false, timeout: 15_000 });
  await new Promise<void>((resolve, reject) => {
    j5.on("ready", () => resolve());
    j5.on("error", (err) => reject(err));
  });
  expect(performance.now() - started).toBeLessThan(15_000);

  const pin13 = (level: "high" | "low") =>
    new Promise<void>((resolve) => {
      const listener = (c: PinChange) => {
        if (c.pin === 13 && c.level === level) {
          board.off("pin", listener);
          resolve();
        }
      };
      board.on("pin", listener);
    });
  // Name the board: johnny-five otherwise mounts parts on the first board it ever saw.
  const led = new five.Led({ pin: 13, board: j5 });
  const high = pin13("high");
  led.on();
  await high;
  const low = pin13("low");
  led.off();
  await low;

  board.setAnalog(0, 2.5);
  const sensor = new five.Sensor({ pin: "A0", freq: 50, board: j5 });
  const value = await new Promise<number>((resolve) => {
    sensor.on("data", function onData(this: { value: number }) {
      if (Math.abs(this.value - 512) <= 3) resolve(this.value);
    });
  });
  expect(value).toBeGreaterThanOrEqual(509);
}

describe("johnny-five on the emulated Uno running firmware/arduino", () => {
  it("reaches ready, lights pin 13 and reads A0 through the in-process stream", async () => {
    const board = await startEmulatedBoard({ mcu: "uno", hex: HEX });
    boards.push(board);
    await driveWithJohnnyFive(board, board.serial);
  }, 40_000);

  it("does the same through the board's pty, opened with serialport like /dev/ttyACM0", async () => {
    const board = await startEmulatedBoard({ mcu: "uno", hex: HEX, pty: true });
    boards.push(board);
    const port = new SerialPort({ path: board.ptyPath as string, baudRate: 57600 });
    ports.push(port);
    await driveWithJohnnyFive(board, port);
  }, 40_000);
});
