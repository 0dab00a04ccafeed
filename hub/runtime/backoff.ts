/**
 * Backoff restarts for children that fail because the world is down (a board unplugged): instead of burning
 * through the supervisor's restart intensity, the child is restarted after an exponentially growing, jittered
 * delay, and the delay resets once the child has stayed up for a while (Akka's BackoffSupervisor; beyond OTP).
 */

/** Backoff policy of a child. */
export interface BackoffOptions {
  /** First delay in ms (default 100). */
  minMs?: number;
  /** Largest delay in ms (default 30000). */
  maxMs?: number;
  /** Random spread as a fraction of the delay, 0..1 (default 0.2: ±20%). */
  jitter?: number;
  /** After running this long (ms) the next failure starts again from `minMs` (default 10000). */
  resetAfterMs?: number;
  /** After this many consecutive failures the child is shown as `down` rather than `restarting` (default 3). */
  downAfter?: number;
  /** Random source in [0, 1), for deterministic tests (default Math.random). */
  random?: () => number;
}

/** The delay before attempt number `attempt` (1-based). */
export function backoffDelay(options: BackoffOptions, attempt: number): number {
  const min = options.minMs ?? 100;
  const max = options.maxMs ?? 30_000;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.2));
  const base = Math.min(max, min * 2 ** Math.max(0, attempt - 1));
  const spread = base * jitter * (2 * (options.random ?? Math.random)() - 1);
  return Math.max(0, Math.round(Math.min(max, base + spread)));
}
