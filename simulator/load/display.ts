/**
 * The load mode's terminal output: one line rewritten in place on a terminal, plain lines (every few seconds)
 * otherwise, so a log file or CI shows the run without control characters.
 */

/** Where status lines go. */
export interface StatusOutput {
  write(text: string): void;
  isTTY?: boolean;
}

/** Shows a changing status line; `done` leaves the last one on screen. */
export class StatusLine {
  private last = 0;
  private shown = false;

  constructor(
    private readonly out: StatusOutput,
    /** Plain-mode spacing between lines. */
    private readonly plainEveryMs = 5000,
  ) {}

  /** Updates the line (a terminal sees every update; plain output one per `plainEveryMs`, or when `force`). */
  update(text: string, force = false): void {
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${text}`);
      this.shown = true;
      return;
    }
    const now = Date.now();
    if (!force && now - this.last < this.plainEveryMs) return;
    this.last = now;
    this.out.write(`${text}\n`);
  }

  /** Ends the in-place line so what follows starts on a fresh one. */
  done(): void {
    if (this.out.isTTY && this.shown) this.out.write("\n");
    this.shown = false;
  }
}

/** Messages per second from a growing counter, over the interval since the previous call. */
export class RateMeter {
  private lastCount = 0;
  private lastAt = Date.now();

  /** The rate since the previous call. */
  rate(count: number): number {
    const now = Date.now();
    const dt = (now - this.lastAt) / 1000;
    const r = dt > 0 ? (count - this.lastCount) / dt : 0;
    this.lastCount = count;
    this.lastAt = now;
    return r;
  }
}
