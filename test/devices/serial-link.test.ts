/**
 * The serial link's default opener (serialport@13 over its mock binding) and the Firmata helpers the board actor
 * relies on: the heartbeat decoder and the garbage-counting frame scanner.
 */
import { SerialPortMock } from "serialport";
import { beforeEach, describe, expect, it } from "vitest";
import {
  FrameScanner,
  heartbeatIntervalCommand,
  parseHeartbeat,
  RESET_CAUSES,
} from "../../devices/boards/firmata.ts";
import { type SerialBinding, SerialLinkError, serialportOpener } from "../../devices/links/serial-link.ts";
import { SerialLinkSchema } from "../../hub/config/schema.ts";

const binding = SerialPortMock.binding;
const open = serialportOpener(binding as unknown as SerialBinding);
const link = (input: Record<string, unknown>) => SerialLinkSchema.parse({ type: "serial", ...input });

describe("serialportOpener (the hub's default SerialOpener)", () => {
  beforeEach(() => {
    binding.reset();
    binding.createPort("/dev/ttyACM0", { vendorId: "2341", productId: "0043", echo: true, record: false });
    binding.createPort("/dev/ttyUSB0", { vendorId: "1a86", productId: "7523", echo: true, record: false });
  });

  it("opens a port by path at the configured baud rate", async () => {
    const port = await open(link({ path: "/dev/ttyUSB0" }), "nano-1");
    expect(port).toMatchObject({ path: "/dev/ttyUSB0", baudRate: 57600, isOpen: true });
    port.destroy();
  });

  it("finds a port by USB vendor/product id (case and 0x prefix do not matter)", async () => {
    const port = await open(link({ vendorId: "0x2341", productId: "0043" }), "uno-1");
    expect(port).toMatchObject({ path: "/dev/ttyACM0", isOpen: true });
    const echoed = new Promise<Buffer>((resolve) => port.once("data", resolve));
    port.write(Buffer.from([0xf9]));
    expect([...(await echoed)]).toEqual([0xf9]);
    port.destroy();
  });

  it("says what to do when the port is missing, the USB id matches nothing, or the port is busy", async () => {
    await expect(open(link({ path: "/dev/ttyACM9" }), "uno-1")).rejects.toThrow(
      "serial port /dev/ttyACM9 not found: plug uno-1 in or fix link.path in fleet.yaml",
    );
    const missing = open(link({ vendorId: "2341", productId: "0042" }), "mega-1");
    await expect(missing).rejects.toBeInstanceOf(SerialLinkError);
    await expect(missing).rejects.toThrow(
      /no serial port with USB id 2341:0042 found \(2 ports listed\): plug mega-1 in or fix link\.vendorId\/productId/,
    );
    const first = await open(link({ path: "/dev/ttyACM0" }), "uno-1");
    await expect(open(link({ path: "/dev/ttyACM0" }), "uno-2")).rejects.toThrow(
      /serial port \/dev\/ttyACM0 is busy/,
    );
    first.destroy();
  });
});

describe("Ganglion's heartbeat sysex", () => {
  it("decodes PROTOCOL.md's example (power-on, uptime 0, seq 0, 1000 ms)", () => {
    const frame = [0xf0, 0x0a, 0x01, 0x01, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0x68, 0x07, 0xf7];
    const beat = parseHeartbeat(frame.slice(2, -1));
    expect(beat).toEqual({
      version: 1,
      cause: 1,
      flags: 1,
      source: 0,
      uptimeMs: 0,
      seq: 0,
      intervalMs: 1000,
    });
    expect(RESET_CAUSES[beat?.cause ?? 0]).toBe("power-on");
  });

  it("decodes 32-bit uptimes and 14-bit seqs, and ignores other lengths and format versions", () => {
    // uptime 0xFFFFFFFF in 7-bit LE groups: 7F 7F 7F 7F 0F; seq 16383: 7F 7F
    const beat = parseHeartbeat([1, 4, 8, 0, 0x7f, 0x7f, 0x7f, 0x7f, 0x0f, 0x7f, 0x7f, 0, 0]);
    expect(beat).toMatchObject({ cause: 4, uptimeMs: 0xffffffff, seq: 16383, intervalMs: 0 });
    expect(parseHeartbeat([1, 1, 1])).toBeNull();
    expect(parseHeartbeat([2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).toBeNull();
  });

  it("encodes the set-interval request", () => {
    expect(heartbeatIntervalCommand(1000)).toEqual([0x0a, 0x68, 0x07]);
  });
});

describe("FrameScanner", () => {
  it("counts Firmata frames and no garbage in a clean stream, across chunk boundaries", () => {
    const scanner = new FrameScanner();
    const wire = [0xf9, 0x02, 0x06, 0xe0, 0x7f, 0x03, 0x90, 0x01, 0x00, 0xf0, 0x0a, 1, 2, 3, 0xf7, 0xff];
    scanner.scan(Uint8Array.from(wire.slice(0, 5)));
    scanner.scan(Uint8Array.from(wire.slice(5)));
    expect(scanner).toMatchObject({ frames: 5, garbage: 0 });
  });

  it("counts stray data bytes, unknown commands and cut-short frames, then resyncs", () => {
    const scanner = new FrameScanner();
    // 3 stray bytes, an unknown command byte, an analog message cut after 1 data byte, then a good one.
    scanner.scan(Uint8Array.from([0x13, 0x37, 0x42, 0x85, 0xe0, 0x10, 0xe1, 0x01, 0x02]));
    expect(scanner).toMatchObject({ frames: 1, garbage: 5 });
    // A sysex cut short by a new command.
    scanner.scan(Uint8Array.from([0xf0, 0x0a, 0x01, 0xf9, 0x02, 0x06]));
    expect(scanner).toMatchObject({ frames: 2, garbage: 6 });
  });
});
