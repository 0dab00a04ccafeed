/**
 * Call deadlines without a timer per call. Pending calls sit in a set; one clock timer is armed for the earliest
 * deadline known when it was armed. When it fires it expires what is due and re-arms for the next. A call that
 * completes just leaves the set; the timer is not touched, so the hot path never arms or clears a timer.
 */
import { type Clock, getClock, onClockChange, type TimerHandle } from "./clock.ts";

/** Something with a deadline that can be expired. */
export interface Deadline {
  deadline: number;
  expire(): void;
}

const pending = new Set<Deadline>();
let timer: TimerHandle | null = null;
let timerClock: Clock | null = null;
let armedFor = Number.POSITIVE_INFINITY;

function arm(at: number): void {
  const clock = getClock();
  if (timer !== null) timerClock?.clearTimeout(timer);
  armedFor = at;
  timerClock = clock;
  timer = clock.setTimeout(fire, Math.max(0, at - clock.now()));
}

function fire(): void {
  timer = null;
  armedFor = Number.POSITIVE_INFINITY;
  const now = getClock().now();
  let next = Number.POSITIVE_INFINITY;
  const due: Deadline[] = [];
  for (const d of pending) {
    if (d.deadline <= now) due.push(d);
    else if (d.deadline < next) next = d.deadline;
  }
  for (const d of due) {
    pending.delete(d);
    d.expire();
  }
  if (next !== Number.POSITIVE_INFINITY) arm(next);
}

/** Starts watching a deadline. */
export function watchDeadline(d: Deadline): void {
  pending.add(d);
  if (d.deadline < armedFor) arm(d.deadline);
}

/** Stops watching a deadline (the call completed). */
export function unwatchDeadline(d: Deadline): void {
  pending.delete(d);
}

/** Number of deadlines being watched (tests check nothing leaks). */
export function watchedDeadlines(): number {
  return pending.size;
}

onClockChange(() => {
  // A timer armed on the previous clock is dropped and re-armed on the new one.
  if (timer !== null) timerClock?.clearTimeout(timer);
  timer = null;
  armedFor = Number.POSITIVE_INFINITY;
  let next = Number.POSITIVE_INFINITY;
  for (const d of pending) if (d.deadline < next) next = d.deadline;
  if (next !== Number.POSITIVE_INFINITY) arm(next);
});
