/**
 * System tools the simulator suites need, and the test firmware (fixtures/board-test.c) built with avr-gcc into a
 * temp dir once per test file. A missing tool skips its suite loudly, naming the Debian package.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { McuName } from "../../simulator/boards/mcu.ts";

export const OPTIBOOT_HEX =
  "/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot_atmega328.hex";
export const MEGA_BOOTLOADER_HEX =
  "/usr/share/arduino/hardware/arduino/avr/bootloaders/stk500v2/stk500boot_v2_mega2560.hex";

function runs(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: "ignore" });
  return !(result.error && (result.error as NodeJS.ErrnoException).code === "ENOENT");
}

/** True when every listed tool is there; otherwise warns, naming the apt package, so the skip is visible. */
export function haveTools(suite: string, tools: { command?: string; file?: string; apt: string }[]): boolean {
  const missing = tools.filter((t) => (t.command ? !runs(t.command, ["--version"]) : !existsSync(t.file!)));
  if (missing.length > 0) {
    console.warn(
      `SKIPPING ${suite}: missing ${missing.map((t) => t.command ?? t.file).join(", ")} — ` +
        `apt-get install ${missing.map((t) => t.apt).join(" ")}`,
    );
  }
  return missing.length === 0;
}

export const AVR_GCC = [
  { command: "avr-gcc", apt: "gcc-avr" },
  { command: "avr-objcopy", apt: "binutils-avr" },
  { file: "/usr/lib/avr/include/avr/io.h", apt: "avr-libc" },
];
export const SOCAT = [{ command: "socat", apt: "socat" }];
export const AVRDUDE = [{ command: "avrdude", apt: "avrdude" }];
export const ARDUINO_CORE = [{ file: OPTIBOOT_HEX, apt: "arduino-core-avr" }];

const built = new Map<McuName, string>();
let buildDir: string | undefined;

/** Compiles fixtures/board-test.c for `mcu` and returns the Intel HEX text. */
export function testFirmware(mcu: McuName): string {
  const cached = built.get(mcu);
  if (cached) return cached;
  buildDir ??= mkdtempSync(join(tmpdir(), "ganglion-board-test-"));
  const source = join(import.meta.dirname, "fixtures/board-test.c");
  const elf = join(buildDir, `board-test-${mcu}.elf`);
  const hex = join(buildDir, `board-test-${mcu}.hex`);
  const cc = spawnSync("avr-gcc", [`-mmcu=${mcu}`, "-DF_CPU=16000000UL", "-Os", "-Wall", "-o", elf, source], {
    encoding: "utf8",
  });
  if (cc.status !== 0) throw new Error(`avr-gcc failed: ${cc.stderr}`);
  const oc = spawnSync("avr-objcopy", ["-O", "ihex", "-R", ".eeprom", elf, hex], { encoding: "utf8" });
  if (oc.status !== 0) throw new Error(`avr-objcopy failed: ${oc.stderr}`);
  const text = readFileSync(hex, "utf8");
  built.set(mcu, text);
  return text;
}

/** Compiles fixtures/mega-far.c (code at 0x30000, 3-byte PC) for the ATmega2560 and returns the Intel HEX text. */
export function megaFarFirmware(): string {
  buildDir ??= mkdtempSync(join(tmpdir(), "ganglion-board-test-"));
  const elf = join(buildDir, "mega-far.elf");
  const hex = join(buildDir, "mega-far.hex");
  const source = join(import.meta.dirname, "fixtures/mega-far.c");
  const flags = ["-mmcu=atmega2560", "-DF_CPU=16000000UL", "-Os", "-Wl,--section-start=.far=0x30000"];
  const cc = spawnSync("avr-gcc", [...flags, "-o", elf, source], { encoding: "utf8" });
  if (cc.status !== 0) throw new Error(`avr-gcc failed: ${cc.stderr}`);
  const oc = spawnSync("avr-objcopy", ["-O", "ihex", "-R", ".eeprom", elf, hex], { encoding: "utf8" });
  if (oc.status !== 0) throw new Error(`avr-objcopy failed: ${oc.stderr}`);
  return readFileSync(hex, "utf8");
}

/** Path of the built test firmware's HEX file (after {@link testFirmware}). */
export function testFirmwarePath(mcu: McuName): string {
  testFirmware(mcu);
  return join(buildDir!, `board-test-${mcu}.hex`);
}

/** Removes the build dir (call in afterAll). */
export function cleanTestFirmware(): void {
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  buildDir = undefined;
  built.clear();
}

/** Polls `check` every few ms until it is true or `ms` pass. */
export async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
