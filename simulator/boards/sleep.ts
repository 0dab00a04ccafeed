/**
 * Fast-forward for a sleeping CPU. avr8js executes SLEEP as a no-op, so a firmware that sleeps between interrupts
 * would spin through its sleep loop instruction by instruction. Instead the board stops executing and jumps the cycle
 * counter from one event that can wake it to the next: clock events (USART, ADC, EEPROM, watchdog) at their cycle,
 * and timers straight to their next compare match, overflow or turning point instead of one prescaler tick at a time.
 *
 * This reads avr8js 0.21 timer internals (the version is pinned in package.json); the board test suite checks that
 * a sleeping firmware's timer interrupts still arrive on the same cycles as without sleep.
 */
import type { AVRTimer, CPU } from "avr8js";

/** The avr8js 0.21 AVRTimer fields the horizon needs (private in its typings). */
interface TimerInternals {
  count: () => void;
  divider: number;
  lastCycle: number;
  tcnt: number;
  ocrA: number;
  ocrB: number;
  ocrC: number;
  hasOCRC: boolean;
  TOP: number;
  timerMode: number;
  countingUp: boolean;
  tcntUpdated: boolean;
  updateDivider: boolean;
}

interface ClockEvent {
  cycles: number;
  callback: () => void;
  next: ClockEvent | null;
}

const PWM_PHASE_CORRECT = 1;
const PWM_PHASE_FREQUENCY_CORRECT = 4;

/** Ticks from `tcnt` to `ocr` in the counting direction, or `limit` when the compare value is not on the way. */
function towards(tcnt: number, ocr: number, up: boolean, limit: number): number {
  const d = up ? ocr - tcnt : tcnt - ocr;
  return d > 0 && d < limit ? d : limit;
}

/** Number of timer ticks from the current count to the next tick at which anything can happen. */
function ticksToNextEvent(t: TimerInternals): number {
  const { tcnt, TOP } = t;
  const phase = t.timerMode === PWM_PHASE_CORRECT || t.timerMode === PWM_PHASE_FREQUENCY_CORRECT;
  // Phase-correct modes count up to TOP, then down to BOTTOM: stop at the turning point or a compare value on the
  // way. The other modes count up and wrap after TOP.
  const up = !phase || t.countingUp;
  let n = phase ? (up ? TOP - tcnt : tcnt) : TOP + 1 - tcnt;
  n = towards(tcnt, t.ocrA, up, n);
  n = towards(tcnt, t.ocrB, up, n);
  if (t.hasOCRC) n = towards(tcnt, t.ocrC, up, n);
  return Math.max(n, 1);
}

/** Finds the cycle at which a sleeping CPU must look again; built once per CPU. */
export class SleepHorizon {
  private readonly timersByCallback = new Map<() => void, TimerInternals>();

  constructor(
    private readonly cpu: CPU,
    timers: readonly AVRTimer[],
  ) {
    for (const timer of timers) {
      const t = timer as unknown as TimerInternals;
      this.timersByCallback.set(t.count, t);
    }
  }

  /** The earliest cycle at which a clock event or timer can change anything; Infinity when nothing is scheduled. */
  next(): number {
    let horizon = Number.POSITIVE_INFINITY;
    let ev = (this.cpu as unknown as { nextClockEvent: ClockEvent | null }).nextClockEvent;
    while (ev) {
      if (ev.cycles >= horizon) break; // the list is sorted by cycle; nothing later can come sooner
      const timer = this.timersByCallback.get(ev.callback);
      let at = ev.cycles;
      if (timer && timer.divider > 0 && !timer.tcntUpdated && !timer.updateDivider) {
        at = Math.max(ev.cycles, timer.lastCycle + ticksToNextEvent(timer) * timer.divider);
      }
      if (at < horizon) horizon = at;
      ev = ev.next;
    }
    return horizon;
  }
}
