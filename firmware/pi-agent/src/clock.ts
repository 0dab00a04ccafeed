/**
 * Time, injected: the agent never calls `Date.now()` or the global timers directly, so tests and the simulator can
 * run it on their own clock.
 */

/** An opaque timer handle returned by a {@link Clock}. */
export type TimerHandle = { readonly __timer: unique symbol } | NodeJS.Timeout;

export interface Clock {
  /** Wall-clock time, epoch milliseconds (the `ts` of readings and heartbeats). */
  now(): number;
  /** Monotonic milliseconds, for uptime and intervals; never goes back when the wall clock is set. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock. Timers are unref'd so a stopped agent lets the process exit. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Calls `fn` every `ms` on `clock`, measured from the previous call's scheduled time so a slow read does not make the
 * period drift. Returns a function that stops it.
 */
export function every(clock: Clock, ms: number, fn: () => void): () => void {
  let stopped = false;
  let next = clock.monotonic() + ms;
  let handle = clock.setTimeout(tick, ms);
  function tick(): void {
    if (stopped) return;
    fn();
    const now = clock.monotonic();
    next += ms;
    if (next < now) next = now + ms; // fell behind (suspended, overloaded): skip, do not burst
    handle = clock.setTimeout(tick, next - now);
  }
  return () => {
    stopped = true;
    clock.clearTimeout(handle);
  };
}
