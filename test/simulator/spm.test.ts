import { CPU } from "avr8js";
import { describe, expect, it } from "vitest";
import { FlashProgrammer } from "../../simulator/boards/spm.ts";

const SPMCSR = 0x57;
const SPMEN = 0x01;
const PGERS = 0x03;
const PGWRT = 0x05;

/** A CPU whose PC and Z/r1:r0 we set by hand, then write SPMCSR as `out SPMCSR` would. */
function rig(flashBytes: number, pageBytes: number, bootStart: number) {
  const flash = new Uint8Array(flashBytes).fill(0xff);
  const cpu = new CPU(new Uint16Array(flash.buffer), 2048);
  const programmer = new FlashProgrammer(flash, pageBytes, bootStart);
  programmer.attach(cpu, SPMCSR);
  const spm = (command: number, z: number, word = 0, pcByte = bootStart) => {
    cpu.pc = pcByte >> 1;
    cpu.data[30] = z & 0xff;
    cpu.data[31] = (z >> 8) & 0xff;
    cpu.data[0x5b] = z >> 16; // RAMPZ
    cpu.data[0] = word & 0xff;
    cpu.data[1] = word >> 8;
    cpu.writeData(SPMCSR, command);
  };
  return { flash, cpu, programmer, spm };
}

describe("SPM emulation (page fill, erase, write)", () => {
  it("writes a page from the boot section: fill the buffer, erase, write", () => {
    const { flash, cpu, programmer, spm } = rig(32 * 1024, 128, 0x7e00);
    flash.fill(0x00, 0x100, 0x180); // old contents of the page
    for (let i = 0; i < 64; i++) spm(SPMEN, 0x100 + i * 2, 0x1000 + i);
    expect(flash[0x100]).toBe(0x00); // filling the buffer does not touch the flash
    spm(PGERS, 0x100);
    expect([...flash.subarray(0x100, 0x180)].every((b) => b === 0xff)).toBe(true);
    spm(PGWRT, 0x100);
    expect(flash[0x100]).toBe(0x00);
    expect(flash[0x101]).toBe(0x10);
    expect(flash[0x17e]).toBe(63);
    expect(flash[0x17f]).toBe(0x10);
    expect(flash[0x180]).toBe(0xff);
    expect(programmer.writes).toBe(1);
    expect(programmer.erases).toBe(1);
    // The busy bit reads back clear at once, so boot_spm_busy_wait() ends.
    expect(cpu.data[SPMCSR]! & SPMEN).toBe(0);
  });

  it("ignores SPM from the application section, as the chip does", () => {
    const { flash, spm, programmer } = rig(32 * 1024, 128, 0x7e00);
    spm(SPMEN, 0x200, 0x1234, 0x0100);
    spm(PGERS, 0x200, 0, 0x0100);
    spm(PGWRT, 0x200, 0, 0x0100);
    expect(flash[0x200]).toBe(0xff);
    expect(programmer.writes).toBe(0);
    flash[0x200] = 0;
    spm(PGERS, 0x200, 0, 0x0100);
    expect(flash[0x200]).toBe(0);
  });

  it("uses RAMPZ above 64 KiB on the ATmega2560 (256-byte pages)", () => {
    const { flash, spm } = rig(256 * 1024, 256, 0x3e000);
    spm(SPMEN, 0x20004, 0xbeef);
    spm(PGERS, 0x20000);
    spm(PGWRT, 0x20000);
    expect(flash[0x20004]).toBe(0xef);
    expect(flash[0x20005]).toBe(0xbe);
    expect(flash[0x00004]).toBe(0xff);
  });
});
