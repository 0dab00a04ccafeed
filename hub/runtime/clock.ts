/**
 * Time for the runtime. Every timer the runtime arms (receive timeouts, call deadlines, restart backoff) goes
 * through the current {@link Clock}, so tests can swap in a {@link ManualClock} and advance time deterministically
 * instead of sleeping.
 */

/** An opaque handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = { readonly __timer: true } | object;

/** A source of time and timers. */
export interface Clock {
  /** Milliseconds since the epoch (wall time; may be virtual). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. Timers never keep the Node process alive on their own. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock: `Date.now()` and unref'd Node timers. */
export class RealClock implements Clock {
  now(): number {
    return Date.now();
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  }
  clearTimeout(handle: TimerHandle): void {
    clearTimeout(handle as NodeJS.Timeout);
  }
}

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that only moves when told to. `advance(ms)` fires due timers in deadline order (ties in the order they
 * were set), letting the runtime's scheduler run between timers, so whatever a timer triggers has happened by
 * the time `advance` resolves.
 */
export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private timers: ManualTimer[] = [];

  constructor(startAt = 1_700_000_000_000) {
    this.time = startAt;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    (handle as ManualTimer).cancelled = true;
    this.timers = this.timers.filter((t) => t !== handle);
  }

  /** Number of armed timers: tests use it to check nothing is left behind. */
  pendingTimers(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    for (;;) {
      await settle();
      const next = this.nextDue(until);
      if (next === undefined) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.time = Math.max(this.time, next.at);
      if (!next.cancelled) next.fn();
    }
    this.time = until;
    await settle();
  }

  private nextDue(until: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.timers) {
      if (t.at > until) continue;
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** Lets queued microtasks and the runtime's scheduler run to quiescence (a few macrotask turns). */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

let current: Clock = new RealClock();
const clockListeners: Array<() => void> = [];

/** The clock the runtime uses now. */
export function getClock(): Clock {
  return current;
}

/** Replaces the runtime's clock (tests); returns the previous one. */
export function useClock(clock: Clock): Clock {
  const previous = current;
  current = clock;
  for (const listener of clockListeners) listener();
  return previous;
}

/** Internal: lets modules that cache timers re-arm them when the clock is replaced. */
export function onClockChange(listener: () => void): void {
  clockListeners.push(listener);
}
