/**
 * One timer for the periodic work of every load board (analog sampling, heartbeats) instead of two Node interval
 * timers per board: 100k boards held 200k `Timeout` objects (~0.46 KB a board) and armed as many timer-list entries.
 *
 * A timing wheel of {@link BoardClock.tickMs} slots keyed by absolute tick. Stopping a task costs nothing: an entry
 * whose task has since moved (rescheduled or stopped) is skipped when its slot comes up. A task that is due while the
 * event loop stalls fires once when the loop is back, then keeps its cadence from there, as `setInterval` does.
 */

/** Who a {@link PeriodicTask} belongs to: called when the task is due. */
export interface Ticking {
  tick(task: PeriodicTask): void;
}

/** A repeating piece of one board's work. */
export class PeriodicTask {
  /** The tick it is due at; -1 while stopped. */
  due = -1;
  periodTicks = 1;
  constructor(readonly owner: Ticking) {}

  get running(): boolean {
    return this.due >= 0;
  }
}

/** The shared clock of a fleet of load boards. */
export class BoardClock {
  private readonly slots = new Map<number, PeriodicTask[]>();
  private timer: NodeJS.Timeout | null = null;
  /** The last tick whose slot has run. */
  private done = 0;
  private running = 0;

  constructor(
    readonly tickMs = 10,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Tasks scheduled now. */
  get size(): number {
    return this.running;
  }

  /** Runs `task` every `periodMs` (rounded to whole ticks, at least one), the first time after `firstMs`. */
  every(task: PeriodicTask, periodMs: number, firstMs = periodMs): void {
    task.periodTicks = Math.max(1, Math.round(periodMs / this.tickMs));
    if (task.due < 0) this.running++;
    if (this.timer === null) {
      this.done = this.current();
      this.timer = setInterval(() => this.advance(), this.tickMs);
    }
    this.place(task, this.current() + Math.max(1, Math.round(firstMs / this.tickMs)));
  }

  stop(task: PeriodicTask): void {
    if (task.due < 0) return;
    task.due = -1;
    if (--this.running === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
      this.slots.clear();
    }
  }

  private current(): number {
    return Math.floor(this.now() / this.tickMs);
  }

  private place(task: PeriodicTask, tick: number): void {
    task.due = tick;
    const slot = this.slots.get(tick);
    if (slot === undefined) this.slots.set(tick, [task]);
    else slot.push(task);
  }

  private advance(): void {
    const now = this.current();
    while (this.done < now && this.timer !== null) {
      const tick = ++this.done;
      const slot = this.slots.get(tick);
      if (slot === undefined) continue;
      this.slots.delete(tick);
      for (const task of slot) {
        if (task.due !== tick) continue; // moved or stopped since
        // Placed before it runs, so the run may stop or re-time it. Late (the loop stalled): a period from now.
        const next = tick + task.periodTicks;
        this.place(task, next > now ? next : now + task.periodTicks);
        task.owner.tick(task);
      }
    }
  }
}

/** The clock load boards share unless given their own. */
export const sharedBoardClock = new BoardClock();
