/**
 * The committed firmware in firmware/arduino/dist/ must be exactly what the sources build to, on any checkout:
 * each board is rebuilt with make into a temporary directory and compared byte for byte.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const FIRMWARE_DIR = join(import.meta.dirname, "../../firmware/arduino");
const BOARDS = ["uno", "nano", "mega"] as const;
const APT = "apt-get install gcc-avr avr-libc binutils-avr";

const hasAvrGcc = spawnSync("avr-gcc", ["--version"]).status === 0;
if (!hasAvrGcc) {
  console.warn(`test/firmware/build: SKIPPED, avr-gcc not found. Install the toolchain: ${APT}`);
}

/** Bytes of an Intel HEX file's data records, concatenated (enough to look for stray strings). */
function hexData(text: string): Buffer {
  const parts: Buffer[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith(":")) continue;
    const rec = Buffer.from(line.slice(1), "hex");
    if (rec[3] === 0) parts.push(rec.subarray(4, 4 + rec[0]!));
  }
  return Buffer.concat(parts);
}

describe.skipIf(!hasAvrGcc)("firmware/arduino build", () => {
  const out = mkdtempSync(join(tmpdir(), "ganglion-fw-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  for (const board of BOARDS) {
    it(`rebuilds ganglion-${board}.hex identical to dist/`, () => {
      execFileSync(
        "make",
        ["-s", "-C", FIRMWARE_DIR, `BOARD=${board}`, `OUT=${out}`, `BUILD_ROOT=${join(out, "obj")}`],
        {
          stdio: "pipe",
        },
      );
      const built = readFileSync(join(out, `ganglion-${board}.hex`));
      const committed = readFileSync(join(FIRMWARE_DIR, "dist", `ganglion-${board}.hex`));
      expect(built.length).toBeGreaterThan(1000);
      expect(
        built.equals(committed),
        `dist/ganglion-${board}.hex differs from a fresh build; run make all`,
      ).toBe(true);
      // No build paths may leak into the image (they would differ on another checkout).
      const data = hexData(built.toString("latin1")).toString("latin1");
      expect(data).not.toContain(FIRMWARE_DIR);
      expect(data).not.toContain(out);
      expect(data).toContain("Ganglion"); // the firmware name REPORT_FIRMWARE sends
    }, 60_000);
  }
});
