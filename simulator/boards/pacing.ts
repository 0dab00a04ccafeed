/**
 * Real-time pacing for an emulated clock. The emulation may run at most as far as wall time allows; when the host
 * falls behind (busy core, GC pause), the debt beyond `maxCatchUpMs` is forgiven and counted as lag instead of being
 * paid back by running fast later — so emulated timing stays close to wall time, as a real board's would.
 */

/** Options for {@link RealTimePacer}. */
export interface PacerOptions {
  /** Emulated clock rate in Hz. */
  frequencyHz: number;
  /** How much emulated time (ms) may be run at once to catch up; any more is forgiven as lag. Default 20. */
  maxCatchUpMs?: number;
  /** Wall clock in ms (injectable for tests). Default `performance.now`. */
  now?: () => number;
}

/** Converts wall time into a budget of emulated cycles. */
export class RealTimePacer {
  /** Cycles forgiven because the host fell behind. */
  lagCycles = 0;
  private readonly frequencyHz: number;
  private readonly maxCatchUp: number;
  private readonly now: () => number;
  private originMs: number;
  /** Emulated cycle count that corresponds to `originMs`. */
  private originCycles: number;

  constructor(options: PacerOptions, startCycles = 0) {
    this.frequencyHz = options.frequencyHz;
    this.maxCatchUp = ((options.maxCatchUpMs ?? 20) * options.frequencyHz) / 1000;
    this.now = options.now ?? (() => performance.now());
    this.originMs = this.now();
    this.originCycles = startCycles;
  }

  /** Restarts the clock at `cycles` now (after a pause). */
  restart(cycles: number): void {
    this.originMs = this.now();
    this.originCycles = cycles;
  }

  /** Cycles the emulation may run now, given it has reached `cycles`. Never more than the catch-up limit. */
  due(cycles: number): number {
    const target = this.originCycles + ((this.now() - this.originMs) * this.frequencyHz) / 1000;
    let due = target - cycles;
    if (due > this.maxCatchUp) {
      const forgiven = due - this.maxCatchUp;
      this.originCycles -= forgiven;
      this.lagCycles += forgiven;
      due = this.maxCatchUp;
    }
    return Math.max(0, Math.floor(due));
  }

  /** The emulated cycle that corresponds to wall time now (where the emulation should be). */
  target(): number {
    return this.originCycles + ((this.now() - this.originMs) * this.frequencyHz) / 1000;
  }

  /** Lag forgiven so far, in ms of emulated time. */
  get lagMs(): number {
    return (this.lagCycles * 1000) / this.frequencyHz;
  }
}
