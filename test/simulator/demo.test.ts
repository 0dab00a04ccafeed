/**
 * The demo fleet's models and boards: the same seed gives the same readings, a different seed different ones; the
 * models stay within what their sensors can show and never flat-line on their own; an emulated Uno's ADC reads
 * what its models (and its faults) put on its pins.
 */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { startEmulatedBoard } from "../../simulator/boards/emulated-board.ts";
import { DEMO_DAY_MS, DEMO_UNOS, demoPiModels, demoUnoInputs, UNO_HEX } from "../../simulator/demo.ts";
import { deriveSeed, seededRandom } from "../../simulator/random.ts";
import type { UnoInput } from "../../simulator/uno/virtual-uno.ts";

/** The values a Uno's inputs produce over `ticks` steps (volts for analog inputs, pressed for buttons). */
function unoSeries(id: (typeof DEMO_UNOS)[number], seed: number, ticks: number): (number | boolean)[][] {
  const inputs = demoUnoInputs(id, seed);
  const out: (number | boolean)[][] = [];
  for (let i = 0; i < ticks; i++) {
    out.push(
      inputs.map((input: UnoInput) =>
        input.kind === "analog" ? input.volts(input.model.step()) : input.model.step(),
      ),
    );
  }
  return out;
}

function piSeries(seed: number, ticks: number) {
  const models = demoPiModels("tank-pi", seed);
  return Array.from({ length: ticks }, () => models.step());
}

describe("the demo's seeded models", () => {
  it("repeat exactly for the same seed and differ for another", () => {
    for (const id of DEMO_UNOS) {
      expect(unoSeries(id, 7, 2000)).toEqual(unoSeries(id, 7, 2000));
      expect(unoSeries(id, 7, 50)).not.toEqual(unoSeries(id, 8, 50));
    }
    expect(piSeries(7, 500)).toEqual(piSeries(7, 500));
    expect(piSeries(7, 50)).not.toEqual(piSeries(8, 50));
    // Each part draws from its own stream: the seeds of two parts differ.
    expect(deriveSeed(7, "uno-1/temp")).not.toBe(deriveSeed(7, "uno-1/pot"));
    const a = seededRandom(3);
    const b = seededRandom(3);
    expect([a(), a(), a()]).toEqual([b(), b(), b()]);
  });

  it("follow a compressed day within the sensors' ranges, and keep moving", () => {
    // One compressed day of uno-2 (by the window): 250 ms ticks.
    const day = unoSeries("uno-2", 42, DEMO_DAY_MS / 250);
    const temps = day.map((row) => (row[0] as number) * 100); // LM35: 10 mV/°C
    const light = day.map((row) => row[1] as number);
    expect(Math.min(...temps)).toBeGreaterThan(5);
    expect(Math.max(...temps)).toBeLessThan(30);
    expect(Math.max(...temps) - Math.min(...temps)).toBeGreaterThan(6); // a day's swing, not noise
    expect(Math.min(...light)).toBeGreaterThan(0.05); // the LDR divider never reads a rail
    expect(Math.max(...light)).toBeGreaterThan(3); // midday sun
    expect(Math.max(...light)).toBeLessThan(4.9);
    // The ADC (4.9 mV a count) never sees the same temperature for 20 s (the flat-line window): 80 ticks.
    const counts = temps.map((c) => Math.floor((c / 100 / 5) * 1024));
    let run = 1;
    let longest = 1;
    for (let i = 1; i < counts.length; i++) {
      run = counts[i] === counts[i - 1] ? run + 1 : 1;
      longest = Math.max(longest, run);
    }
    expect(longest).toBeLessThan(80);
    // Someone rings the bell now and then.
    expect(day.filter((row) => row[2] === true).length).toBeGreaterThan(0);
    const pi = piSeries(42, DEMO_DAY_MS / 1000);
    for (const v of pi) {
      expect(v.water).toBeGreaterThan(-10);
      expect(v.water).toBeLessThan(60);
      expect(v.humidity).toBeGreaterThanOrEqual(15);
      expect(v.humidity).toBeLessThanOrEqual(98);
      expect(v.pressure).toBeGreaterThan(800);
    }
  });
});

describe.skipIf(!existsSync(UNO_HEX))("an emulated Uno's analog inputs", () => {
  it("a driven pin reads its voltage; a floating pin reads rail-to-rail garbage", async () => {
    const board = await startEmulatedBoard({ mcu: "uno", hex: UNO_HEX });
    try {
      const seen: number[] = [];
      // Raw Firmata keeps this small: sampling every 19 ms (sysex 0x7A), report analog pin 1 (0xC1 0x01); the
      // firmware answers with 0xE1 LSB MSB analog messages.
      board.serial.on("data", (chunk: Buffer) => {
        for (let i = 0; i + 2 < chunk.length; i++) {
          if (chunk[i] === 0xe1) seen.push((chunk[i + 1] as number) | ((chunk[i + 2] as number) << 7));
        }
      });
      board.setAnalog(1, 2.5);
      await new Promise((r) => setTimeout(r, 1500)); // boot
      board.serial.write(Buffer.from([0xf0, 0x7a, 19, 0, 0xf7, 0xc1, 0x01]));
      await waitFor(() => seen.length >= 5, 5000);
      for (const v of seen.slice(-3)) expect(Math.abs(v - 512)).toBeLessThanOrEqual(1);
      seen.length = 0;
      board.setAnalog(1, null);
      await waitFor(() => seen.length >= 60, 10_000);
      const floating = seen.slice(5);
      expect(Math.min(...floating)).toBeLessThan(60);
      expect(Math.max(...floating)).toBeGreaterThan(960);
      expect(new Set(floating).size).toBeGreaterThan(10);
    } finally {
      await board.stop();
    }
  }, 30_000);
});

async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}
