/**
 * The run queue and its fairness rule (DESIGN.md §1): runnable processes are run in batches from microtasks, and
 * once a batch has used up its slice (1 ms of work) the next one waits for a macrotask, so Node's event loop —
 * sockets, timers, I/O — gets a turn at least every millisecond however busy the mailboxes are.
 *
 * A slice starts at the first scheduler activity after an event-loop turn and ends when that turn's
 * `setImmediate` marker runs.
 */
import { Queue } from "./queue.ts";

/** Anything the scheduler can run. */
export interface Runnable {
  run(): void;
}

const SLICE_MS = 1;
const runQueue = new Queue<Runnable>();
let tickPending = false;
let sliceStart = 0;
let sliceExpired = false;
let workSinceCheck = 0;

function endSlice(): void {
  sliceStart = 0;
  sliceExpired = false;
}

function startSliceIfIdle(): void {
  if (sliceStart === 0) {
    sliceStart = performance.now();
    setImmediate(endSlice);
  }
}

/**
 * Counts one unit of work and reports whether the current slice still has budget. Cheap: reads the clock once
 * every 64 units.
 */
export function sliceHasBudget(): boolean {
  if (sliceExpired) return false;
  if (++workSinceCheck < 64) return true;
  workSinceCheck = 0;
  startSliceIfIdle();
  if (performance.now() - sliceStart > SLICE_MS) sliceExpired = true;
  return !sliceExpired;
}

function requestTick(): void {
  tickPending = true;
  if (sliceExpired) setImmediate(tick);
  else queueMicrotask(tick);
}

function tick(): void {
  tickPending = false;
  startSliceIfIdle();
  while (runQueue.length > 0) {
    if (!sliceHasBudget()) break;
    (runQueue.shift() as Runnable).run();
  }
  if (runQueue.length > 0 && !tickPending) requestTick();
}

/** Puts a process on the run queue. */
export function schedule(r: Runnable): void {
  runQueue.push(r);
  if (!tickPending) requestTick();
}

/** Number of processes waiting to run (introspection and tests). */
export function runQueueLength(): number {
  return runQueue.length;
}

/** Resolves on the scheduler's next batch: a macrotask away once the current slice is used up. */
export function yieldToScheduler(): Promise<void> {
  return new Promise((resolve) => schedule({ run: resolve }));
}
