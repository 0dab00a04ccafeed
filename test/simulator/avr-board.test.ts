import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { AvrBoard, type PinChange } from "../../simulator/boards/avr-board.ts";
import type { McuName, ResetCause } from "../../simulator/boards/mcu.ts";
import {
  ARDUINO_CORE,
  AVR_GCC,
  cleanTestFirmware,
  haveTools,
  MEGA_BOOTLOADER_HEX,
  megaFarFirmware,
  OPTIBOOT_HEX,
  testFirmware,
} from "./toolchain.ts";

const HZ = 16_000_000;
const CHAR_CYCLES = 2800; // 57600 baud with U2X (UBRR 34): 35 * 8 * 10 cycles per 8N1 character

/** A board running the test firmware, with what it printed, its pin changes and its resets. */
class Rig {
  readonly board: AvrBoard;
  out = "";
  readonly pins: PinChange[] = [];
  readonly resets: { cause: ResetCause; mcusr: number }[] = [];

  constructor(mcu: McuName, options: { bootloader?: string; hex?: string | null } = {}) {
    this.board = new AvrBoard({
      mcu,
      hex: options.hex === null ? undefined : (options.hex ?? testFirmware(mcu)),
      bootloader: options.bootloader,
    });
    this.board.hooks.onTransmit = (bytes) => {
      this.out += Buffer.from(bytes).toString("latin1");
    };
    this.board.hooks.onPinChange = (change) => this.pins.push(change);
    this.board.hooks.onReset = (cause, mcusr) => this.resets.push({ cause, mcusr });
  }

  runMs(ms: number): void {
    const end = this.board.cycles + (ms * HZ) / 1000;
    while (this.board.cycles < end) this.board.run(Math.min(80_000, end - this.board.cycles));
  }

  /** Sends `text` and runs until the output grows by a line containing `expected` (at most `ms`). */
  command(text: string, ms = 50): string {
    const before = this.out.length;
    this.board.receive(Buffer.from(text, "latin1"));
    this.runMs(ms);
    return this.out.slice(before);
  }
}

const toolchain = haveTools("emulated board firmware tests", AVR_GCC);

describe.skipIf(!toolchain)("AvrBoard running a compiled test program", () => {
  afterAll(() => cleanTestFirmware());

  for (const mcu of ["atmega328p", "atmega2560"] as const) {
    describe(mcu, () => {
      const led = mcu === "atmega328p" ? 13 : 11; // PB5

      it("boots with the power-on flag and echoes serial bytes", () => {
        const rig = new Rig(mcu);
        rig.runMs(20);
        expect(rig.out).toBe("boot mcusr=1\n");
        expect(rig.board.baudRate).toBe(57142);
        expect(rig.command("hello")).toBe("hello");
      });

      it("delivers serial input at the firmware's baud rate, not all at once", () => {
        const rig = new Rig(mcu);
        rig.runMs(20);
        rig.board.receive(Buffer.from("0123456789"));
        rig.board.run(CHAR_CYCLES * 4 + 100);
        const early = rig.out.length - "boot mcusr=1\n".length;
        expect(early).toBeGreaterThanOrEqual(3);
        expect(early).toBeLessThanOrEqual(4);
        rig.runMs(5);
        expect(rig.out).toBe("boot mcusr=1\n0123456789");
      });

      it("reports a PB5 toggle as a pin change", () => {
        const rig = new Rig(mcu);
        rig.runMs(20);
        expect(rig.pins.map((p) => [p.port, p.bit, p.pin, p.level])).toEqual([["B", 5, led, "low"]]); // DDR set
        expect(rig.command("b")).toBe("pb5=1\n");
        expect(rig.pins.at(-1)).toMatchObject({ port: "B", bit: 5, pin: led, level: "high" });
        expect(rig.board.pinLevel(led)).toBe("high");
        rig.command("b");
        expect(rig.pins.at(-1)).toMatchObject({ pin: led, level: "low" });
        expect(rig.pins.at(-1)!.cycles).toBeGreaterThan(rig.pins.at(-2)!.cycles);
      });

      it("reads the analog voltage set on A0", () => {
        const rig = new Rig(mcu);
        rig.runMs(20);
        rig.board.setAnalog(0, 2.5);
        expect(rig.command("a")).toBe("adc=512\n");
        rig.board.setAnalog(0, 1.25);
        expect(rig.command("a")).toBe("adc=256\n");
        rig.board.setAnalog(0, 7);
        expect(rig.command("a")).toBe("adc=1023\n");
        expect(() => rig.board.setAnalog(rig.board.spec.analogChannels, 1)).toThrow(RangeError);
      });

      it("resets on a watchdog timeout with WDRF in MCUSR, keeping the EEPROM", () => {
        const rig = new Rig(mcu);
        rig.runMs(20);
        expect(rig.command("E")).toBe("ok\n");
        expect(rig.command("w", 40)).toBe("wdt\nboot mcusr=8\n");
        expect(rig.resets).toEqual([{ cause: "watchdog", mcusr: 8 }]);
        expect(rig.board.stats.resets).toBe(1);
        expect(rig.command("r")).toBe("ee=5a\n");
        expect(rig.board.eeprom.memory[0]).toBe(0x5a);
      });

      it("reports an external reset with EXTRF", () => {
        const rig = new Rig(mcu);
        rig.runMs(20);
        rig.command("junk");
        rig.board.reset("external");
        rig.runMs(20);
        expect(rig.out.endsWith("junkboot mcusr=2\n")).toBe(true);
        expect(rig.resets).toEqual([{ cause: "external", mcusr: 2 }]);
      });

      it("fast-forwards an idle-sleeping CPU: the clock advances, few instructions run, timers stay exact", () => {
        const rig = new Rig(mcu);
        rig.runMs(20);
        const c0 = rig.board.cycles;
        const i0 = rig.board.stats.instructions;
        const s0 = rig.board.stats.sleepCycles;
        rig.runMs(2000);
        const cycles = rig.board.cycles - c0;
        expect(cycles).toBeGreaterThanOrEqual(2 * HZ);
        // The 1 kHz timer ISR and the sleep loop: ~60 instructions per ms, against ~16,000 cycles per ms.
        expect(rig.board.stats.instructions - i0).toBeLessThan(cycles / 100);
        expect(rig.board.stats.sleepCycles - s0).toBeGreaterThan(cycles * 0.97);
        // The firmware's millisecond counter (timer0 compare interrupts) matches emulated time.
        const asked = rig.board.cycles / 16_000;
        const ms = Number(/ms=(\d+)/.exec(rig.command("m", 5))?.[1]);
        expect(ms).toBeGreaterThanOrEqual(Math.floor(asked) - 1);
        expect(ms).toBeLessThanOrEqual(asked + 1);
      });

      it("executes every cycle of a busy loop that does work", () => {
        const rig = new Rig(mcu);
        rig.runMs(20);
        expect(rig.command("c", 5)).toBe("counting\n");
        const c0 = rig.board.cycles;
        const i0 = rig.board.stats.instructions;
        const spin0 = rig.board.stats.spinCycles;
        rig.runMs(100);
        expect(rig.board.isSleeping).toBe(false);
        expect(rig.board.stats.instructions - i0).toBeGreaterThan((rig.board.cycles - c0) / 3);
        expect(rig.board.stats.spinCycles - spin0).toBe(0);
        const spins = Number(/spins=(\d+)/.exec(rig.command("x", 5))?.[1]);
        expect(spins).toBeGreaterThan(10_000); // ~100 ms of a loop of a few dozen cycles
      });

      it("skips a pure polling loop up to the event that ends it, and the loop still sees that event", () => {
        const rig = new Rig(mcu);
        rig.runMs(20);
        expect(rig.command("p", 5)).toBe("busy\n");
        const c0 = rig.board.cycles;
        const spin0 = rig.board.stats.spinCycles;
        const i0 = rig.board.stats.instructions;
        rig.runMs(100);
        const cycles = rig.board.cycles - c0;
        expect(rig.board.isSleeping).toBe(false);
        // The 1 kHz timer interrupt breaks the loop every ms; in between it is skipped.
        expect(rig.board.stats.spinCycles - spin0).toBeGreaterThan(cycles * 0.9);
        expect(rig.board.stats.instructions - i0).toBeLessThan(cycles / 50);
        // The byte that ends the loop is seen: the loop exits and the main loop echoes it and the next one.
        expect(rig.command("xy", 2)).toBe("xy");
        // And the timer kept exact time through the skipped iterations.
        const asked = rig.board.cycles / 16_000;
        const ms = Number(/ms=(\d+)/.exec(rig.command("m", 5))?.[1]);
        expect(ms).toBeGreaterThanOrEqual(Math.floor(asked) - 1);
        expect(ms).toBeLessThanOrEqual(asked + 1);
      });
    });
  }
});

describe.skipIf(!toolchain)("AvrBoard ATmega2560 above 128 KiB", () => {
  afterAll(() => cleanTestFirmware());

  it("runs code at 0x30000: 22-bit CALL, EICALL through a trampoline, 3-byte return addresses from interrupts", () => {
    const rig = new Rig("atmega2560", { hex: megaFarFirmware() });
    expect(rig.board.firmware!.end).toBeGreaterThan(0x30000);
    rig.runMs(200);
    // sum(1..20000) + sum(1..1000), with timer interrupts taken while running up there.
    expect(rig.out).toBe("far=200510500 ticks=1\n");
  });
});

describe.skipIf(!toolchain || !haveTools("bootloader tests", ARDUINO_CORE))(
  "AvrBoard with a bootloader",
  () => {
    afterAll(() => cleanTestFirmware());

    it("starts Debian's Optiboot at 0x7E00 and hands over to the application", () => {
      const rig = new Rig("atmega328p", { bootloader: readFileSync(OPTIBOOT_HEX, "utf8") });
      expect(rig.board.resetVector).toBe(0x7e00);
      // optiboot_atmega328.hex 4.4 has 20 bytes past 0x7FFF; the PC wraps there on the chip (and here).
      expect(rig.board.bootloaderBytesDropped).toBe(20);
      // Power-on: Optiboot starts the application at once.
      rig.runMs(30);
      expect(rig.out).toBe("boot mcusr=0\n");
      // External reset (DTR): Optiboot blinks, waits 1 s for avrdude, then its watchdog starts the application.
      rig.board.reset("external");
      rig.runMs(1000);
      expect(rig.out).toBe("boot mcusr=0\n");
      rig.runMs(500);
      expect(rig.out).toBe("boot mcusr=0\nboot mcusr=0\n");
      expect(rig.resets.map((r) => r.cause)).toEqual(["external", "watchdog"]);
    });

    it("runs nothing but Optiboot when the flash holds no application", () => {
      const rig = new Rig("atmega328p", { hex: null, bootloader: readFileSync(OPTIBOOT_HEX, "utf8") });
      rig.runMs(50);
      expect(rig.out).toBe("");
    });

    it("starts the Mega's stk500v2 bootloader in the boot section and hands over to the application", () => {
      const rig = new Rig("atmega2560", { bootloader: readFileSync(MEGA_BOOTLOADER_HEX, "utf8") });
      expect(rig.board.resetVector).toBe(0x3e000);
      rig.board.reset("external");
      rig.runMs(2000);
      expect(rig.out).toContain("boot mcusr=");
    });
  },
);
