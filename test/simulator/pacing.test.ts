import { describe, expect, it } from "vitest";
import { RealTimePacer } from "../../simulator/boards/pacing.ts";

describe("RealTimePacer", () => {
  it("allows as many cycles as wall time has passed", () => {
    let now = 1000;
    const pacer = new RealTimePacer({ frequencyHz: 16e6, maxCatchUpMs: 50, now: () => now });
    expect(pacer.due(0)).toBe(0);
    now += 2;
    expect(pacer.due(0)).toBe(32_000);
    // Ran only part of it: the rest is still due, plus the new time.
    now += 1;
    expect(pacer.due(20_000)).toBe(28_000);
    expect(pacer.lagCycles).toBe(0);
  });

  it("forgives a stall longer than the catch-up limit instead of running fast later", () => {
    let now = 0;
    const pacer = new RealTimePacer({ frequencyHz: 1e6, maxCatchUpMs: 10, now: () => now });
    now = 500; // the host stalled for half a second
    expect(pacer.due(0)).toBe(10_000);
    expect(pacer.lagCycles).toBe(490_000);
    expect(pacer.lagMs).toBe(490);
    // After running the allowed budget the emulation is level with wall time, not 490 ms behind it.
    expect(pacer.due(10_000)).toBe(0);
    now += 1;
    expect(pacer.due(10_000)).toBe(1000);
  });

  it("never asks for negative cycles when the emulation is ahead", () => {
    let now = 0;
    const pacer = new RealTimePacer({ frequencyHz: 1e6, now: () => now });
    expect(pacer.due(5000)).toBe(0);
    now = 3;
    expect(pacer.due(5000)).toBe(0);
    pacer.restart(5000);
    now = 4;
    expect(pacer.due(5000)).toBe(1000);
  });
});
