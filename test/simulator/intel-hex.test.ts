import { describe, expect, it } from "vitest";
import { AvrBoard } from "../../simulator/boards/avr-board.ts";
import { IntelHexError, loadIntelHex, parseIntelHex } from "../../simulator/boards/intel-hex.ts";

/** Builds one record with a correct checksum. */
function record(type: number, address: number, data: number[]): string {
  const bytes = [data.length, (address >> 8) & 0xff, address & 0xff, type, ...data];
  const sum = (0x100 - (bytes.reduce((a, b) => a + b, 0) & 0xff)) & 0xff;
  return `:${[...bytes, sum].map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join("")}`;
}

const EOF_RECORD = ":00000001FF";

describe("Intel HEX loader", () => {
  it("loads data records, with extended linear addresses, into memory", () => {
    const text = [
      record(0, 0x0000, [0x0c, 0x94, 0x34, 0x00]),
      record(0, 0x0010, [0xaa, 0xbb]),
      record(4, 0, [0x00, 0x01]),
      record(0, 0x0002, [0x11, 0x22]),
      EOF_RECORD,
      record(0, 0x0100, [0x99]), // after end of file: ignored
    ].join("\r\n");
    const memory = new Uint8Array(0x20000).fill(0xff);
    const image = loadIntelHex(text, memory);
    expect(image.start).toBe(0);
    expect(image.end).toBe(0x10004);
    expect(image.bytes).toBe(8);
    expect([...memory.subarray(0, 4)]).toEqual([0x0c, 0x94, 0x34, 0x00]);
    expect([...memory.subarray(0x10, 0x12)]).toEqual([0xaa, 0xbb]);
    expect([...memory.subarray(0x10002, 0x10004)]).toEqual([0x11, 0x22]);
    expect(memory[0x100]).toBe(0xff);
  });

  it("refuses a record with a bad checksum, naming the line and the expected value", () => {
    const good = record(0, 0x0000, [1, 2, 3, 4]);
    const bad = `${good.slice(0, -2)}00`;
    const text = [record(0, 0x10, [5]), bad, EOF_RECORD].join("\n");
    let error: unknown;
    try {
      parseIntelHex(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IntelHexError);
    expect((error as IntelHexError).kind).toBe("checksum");
    expect((error as IntelHexError).line).toBe(2);
    expect((error as Error).message).toMatch(/^line 2: bad checksum 0x00 \(expected 0x[0-9A-F]{2}\)$/);
    expect((error as Error).message).toContain(good.slice(-2));
  });

  it("refuses an image larger than the flash, naming both sizes", () => {
    const text = [record(4, 0, [0x00, 0x00]), record(0, 0x7ffe, [1, 2, 3, 4]), EOF_RECORD].join("\n");
    expect(() => loadIntelHex(text, new Uint8Array(0x8000))).toThrowError(
      expect.objectContaining({
        kind: "too-large",
        message: expect.stringMatching(/32770 bytes.*32768-byte flash/),
      }),
    );
    expect(() => new AvrBoard({ mcu: "atmega328p", hex: text })).toThrowError(
      /larger than the 32768-byte atmega328p/,
    );
    // The same image fits the Mega's 256 KiB.
    expect(new AvrBoard({ mcu: "atmega2560", hex: text }).flash[0x8001]).toBe(4);
  });

  it("refuses lines that are not records, unknown record types and files without data", () => {
    expect(() => parseIntelHex("hello\n")).toThrowError(expect.objectContaining({ kind: "syntax", line: 1 }));
    expect(() => parseIntelHex(":0100000")).toThrowError(expect.objectContaining({ kind: "syntax" }));
    expect(() => parseIntelHex(`${record(0, 0, [1])}\n:0200000001`)).toThrowError(
      expect.objectContaining({ kind: "syntax", line: 2 }),
    );
    expect(() => parseIntelHex(record(7, 0, [1]))).toThrowError(
      expect.objectContaining({ kind: "record-type" }),
    );
    expect(() => parseIntelHex(EOF_RECORD)).toThrowError(expect.objectContaining({ kind: "empty" }));
  });
});
