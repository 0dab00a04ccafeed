/**
 * Intel HEX reader for AVR firmware images (record types 00 data, 01 end of file, 02 extended segment address,
 * 03/05 start address (ignored: an AVR starts at its reset vector), 04 extended linear address).
 */

/** Why a HEX file was refused; `line` is 1-based. */
export type IntelHexErrorKind = "syntax" | "checksum" | "record-type" | "too-large" | "empty";

/** A HEX file that cannot be loaded; the message names the line and what is wrong with it. */
export class IntelHexError extends Error {
  override readonly name = "IntelHexError";
  constructor(
    readonly kind: IntelHexErrorKind,
    message: string,
    readonly line?: number,
  ) {
    super(line === undefined ? message : `line ${line}: ${message}`);
  }
}

/** One contiguous run of bytes from the file. */
export interface HexSegment {
  address: number;
  data: Uint8Array;
}

/** A parsed HEX image: its segments in file order, and the byte range it covers. */
export interface HexImage {
  segments: HexSegment[];
  /** Lowest address written. */
  start: number;
  /** One past the highest address written. */
  end: number;
  /** Number of data bytes (overlaps counted once per record). */
  bytes: number;
}

/** Parses Intel HEX text. Throws {@link IntelHexError} on a malformed line or a bad checksum. */
export function parseIntelHex(text: string): HexImage {
  const segments: HexSegment[] = [];
  let base = 0;
  let start = Number.POSITIVE_INFINITY;
  let end = 0;
  let bytes = 0;
  let sawEof = false;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length && !sawEof; i++) {
    const lineNo = i + 1;
    const line = (lines[i] ?? "").trim();
    if (line === "") continue;
    if (!line.startsWith(":")) throw new IntelHexError("syntax", "a record must start with ':'", lineNo);
    const hex = line.slice(1);
    if (hex.length < 10 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) {
      throw new IntelHexError("syntax", "not a record of hexadecimal byte pairs", lineNo);
    }
    const rec = Buffer.from(hex, "hex");
    const len = rec[0]!;
    if (rec.length !== len + 5) {
      throw new IntelHexError(
        "syntax",
        `length field says ${len} data bytes, the record has ${rec.length - 5}`,
        lineNo,
      );
    }
    let sum = 0;
    for (const b of rec) sum = (sum + b) & 0xff;
    if (sum !== 0) {
      const expected = (rec[rec.length - 1]! - sum) & 0xff;
      throw new IntelHexError(
        "checksum",
        `bad checksum 0x${hex.slice(-2).toUpperCase()} (expected 0x${expected.toString(16).toUpperCase().padStart(2, "0")})`,
        lineNo,
      );
    }
    const offset = (rec[1]! << 8) | rec[2]!;
    const type = rec[3]!;
    const data = rec.subarray(4, 4 + len);
    switch (type) {
      case 0x00: {
        const address = base + offset;
        segments.push({ address, data: new Uint8Array(data) });
        start = Math.min(start, address);
        end = Math.max(end, address + len);
        bytes += len;
        break;
      }
      case 0x01:
        sawEof = true;
        break;
      case 0x02:
        if (len !== 2)
          throw new IntelHexError("syntax", "extended segment address record needs 2 bytes", lineNo);
        base = ((data[0]! << 8) | data[1]!) << 4;
        break;
      case 0x04:
        if (len !== 2)
          throw new IntelHexError("syntax", "extended linear address record needs 2 bytes", lineNo);
        base = ((data[0]! << 8) | data[1]!) * 0x10000;
        break;
      case 0x03:
      case 0x05:
        break;
      default:
        throw new IntelHexError(
          "record-type",
          `unknown record type 0x${type.toString(16).padStart(2, "0")}`,
          lineNo,
        );
    }
  }
  if (segments.length === 0) throw new IntelHexError("empty", "no data records");
  return { segments, start, end, bytes };
}

/**
 * Writes a parsed image into `memory` (e.g. flash). Throws {@link IntelHexError} `too-large` when the image reaches past
 * the memory's end, naming both sizes.
 */
export function writeHexImage(image: HexImage, memory: Uint8Array, what = "flash"): void {
  if (image.end > memory.length) {
    throw new IntelHexError(
      "too-large",
      `image ends at 0x${image.end.toString(16)} (${image.end} bytes), larger than the ${memory.length}-byte ${what}`,
    );
  }
  for (const seg of image.segments) memory.set(seg.data, seg.address);
}

/** Parses `text` and writes it into `memory`; returns the image. */
export function loadIntelHex(text: string, memory: Uint8Array, what = "flash"): HexImage {
  const image = parseIntelHex(text);
  writeHexImage(image, memory, what);
  return image;
}
