/**
 * Drives an {@link AvrBoard} from Node's event loop: in real time through a {@link RealTimePacer}, or as fast as
 * the host allows. Each turn runs a slice, then yields so sockets and messages are served; an idle (sleeping) board
 * is looked at less often, which with sleep fast-forward keeps its cost near zero.
 */
import type { AvrBoard } from "./avr-board.ts";
import { RealTimePacer } from "./pacing.ts";

/** Options for {@link BoardRunner}. */
export interface RunnerOptions {
  /** Pace to wall time (default true); false runs unthrottled. */
  realtime?: boolean;
  /** Emulated time per slice (ms); paced catch-up is split into slices of this size. Default 2. */
  sliceMs?: number;
  /**
   * When paced: the longest host stall (ms) made up by running faster; beyond it, time is forgiven. Default 1000: a
   * real board never stalls, and a busy host (a loaded CI runner) stalls the emulation for hundreds of ms at a time;
   * forgiving those let the board's clock fall seconds behind wall time, so the hub saw missed heartbeats (3 s) the
   * firmware never missed. A sleeping firmware runs a second of emulated time in a few ms, so catching up is cheap.
   */
  maxCatchUpMs?: number;
  /** Wall-time period of turns while the CPU sleeps with no serial input pending (ms). Default 10. */
  idleTurnMs?: number;
  /** Called after every turn (e.g. to flush batched events). */
  afterTurn?: () => void;
}

/** Runs a board until stopped. */
export class BoardRunner {
  readonly realtime: boolean;
  readonly pacer: RealTimePacer;
  private readonly sliceCycles: number;
  private readonly idleTurnMs: number;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private running = false;

  constructor(
    readonly board: AvrBoard,
    private readonly options: RunnerOptions = {},
  ) {
    this.realtime = options.realtime ?? true;
    const f = board.spec.frequencyHz;
    this.sliceCycles = Math.round(((options.sliceMs ?? 2) * f) / 1000);
    this.idleTurnMs = options.idleTurnMs ?? 10;
    this.pacer = new RealTimePacer(
      { frequencyHz: f, maxCatchUpMs: options.maxCatchUpMs ?? 1000 },
      board.cycles,
    );
  }

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.pacer.restart(this.board.cycles);
    this.schedule(0);
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  /** Forgives any lag now: emulated time from here on follows wall time (after a reset on opening the port). */
  resync(): void {
    this.pacer.restart(this.board.cycles);
  }

  /** Runs a turn soon (serial input arrived): a sleeping board's next idle turn would come too late. */
  kick(): void {
    if (!this.running || this.immediate) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (ms <= 0) this.immediate = setImmediate(this.turn);
    else this.timer = setTimeout(this.turn, ms);
  }

  private readonly turn = (): void => {
    this.immediate = undefined;
    this.timer = undefined;
    if (!this.running) return;
    const board = this.board;
    if (!this.realtime) {
      board.run(this.sliceCycles);
      this.options.afterTurn?.();
      this.schedule(0);
      return;
    }
    // Catching up runs in short slices with a turn between each, so serial replies leave at once instead of after a
    // long catch-up slice (avrdude's STK500 sync gives up on replies later than 250 ms).
    const due = this.pacer.due(board.cycles);
    const slept = board.stats.sleepCycles + board.stats.spinCycles;
    // A sleeping board with no serial input catches up in one go; anything else in short slices (replies leave early).
    const limit = board.isSleeping && board.rxPending === 0 ? due : this.sliceCycles;
    const ran = due > 0 ? board.run(Math.min(due, limit)) : 0;
    this.options.afterTurn?.();
    if (due > limit) {
      this.schedule(0);
      return;
    }
    // A board that slept (or spun in a skipped polling loop) through most of the slice is idle, even if the slice
    // ended inside an interrupt handler.
    const idle =
      board.stats.sleepCycles + board.stats.spinCycles - slept > ran * 0.9 && board.rxPending === 0;
    this.schedule(idle ? this.idleTurnMs : 1);
  };
}
