/**
 * Busy-wait detection. Bootloaders poll instead of sleeping (Optiboot: `while (!(UCSR0A & _BV(RXC0)));`, and its
 * LED blink waits on TIFR1), so a board waiting for avrdude would otherwise cost a full core, and on a starved host it
 * falls behind avrdude's timing. A loop whose body only reads and tests (LDS, IN, SBIS/SBIC, SBRS/SBRC, ANDI, CPI,
 * AND, CP, branches) and that comes back to its head with the same registers, the same SREG and no clock event in
 * between can only change when a clock event (USART, timer, watchdog) or an interrupt happens: the board skips whole
 * iterations up to the next event, keeping the loop's phase.
 */
import type { CPU } from "avr8js";

const MAX_BODY_WORDS = 8;
const PURE = 1;
const IMPURE = 2;

interface ClockEvent {
  cycles: number;
  next: ClockEvent | null;
}

/** Is `op` (with `next`, the following word) an instruction that neither writes memory nor keeps state? */
function readOnly(op: number): 0 | 1 | 2 {
  if ((op & 0xfe0f) === 0x9000) return 2; // LDS Rd, k (two words)
  if ((op & 0xf800) === 0xb000) return 1; // IN Rd, A
  if ((op & 0xfd00) === 0x9900) return 1; // SBIC / SBIS A, b
  if ((op & 0xfc08) === 0xfc00) return 1; // SBRC / SBRS Rr, b
  if ((op & 0xf000) === 0x7000) return 1; // ANDI Rd, K
  if ((op & 0xf000) === 0x3000) return 1; // CPI Rd, K
  if ((op & 0xfc00) === 0x2000) return 1; // AND Rd, Rr (TST)
  if ((op & 0xfc00) === 0x1400) return 1; // CP Rd, Rr
  if ((op & 0xf000) === 0xc000) return 1; // RJMP
  if ((op & 0xf800) === 0xf000) return 1; // BRBS / BRBC
  if (op === 0x0000) return 1; // NOP
  return 0;
}

/** Finds pure polling loops and tells how many cycles one iteration takes once it has seen two identical ones. */
export class SpinDetector {
  /** Per loop head (word address): 0 (not analysed), PURE or IMPURE, for the branch recorded in `branchOf`. */
  private readonly kind: Uint8Array;
  private readonly branchOf: Int32Array;
  private head = -1;
  private headCycles = 0;
  private period = 0;
  private readonly regs = new Uint8Array(33);
  private event: ClockEvent | null = null;
  private eventCycles = 0;

  constructor(
    private readonly cpu: CPU,
    private readonly progMem: Uint16Array,
  ) {
    this.kind = new Uint8Array(progMem.length);
    this.branchOf = new Int32Array(progMem.length);
  }

  /**
   * Called after a backward jump from `branch` to `head` (word addresses). Returns the loop period in cycles when the
   * CPU is provably spinning in a pure loop, else 0.
   */
  check(head: number, branch: number): number {
    const kind = this.kind[head];
    if (kind === IMPURE && this.branchOf[head] === branch) return 0;
    if (kind !== PURE || this.branchOf[head] !== branch) {
      if (!this.analyse(head, branch)) return 0;
    }
    const cpu = this.cpu;
    const data = cpu.data;
    const ev = (cpu as unknown as { nextClockEvent: ClockEvent | null }).nextClockEvent;
    let same = this.head === head && ev === this.event && (ev === null || ev.cycles === this.eventCycles);
    if (same) {
      const regs = this.regs;
      for (let i = 0; i < 32; i++) {
        if (regs[i] !== data[i]) {
          same = false;
          break;
        }
      }
      if (same && regs[32] !== data[95]) same = false;
    }
    const period = cpu.cycles - this.headCycles;
    const confirmed = same && period === this.period && period > 0;
    // Remember this visit for the next one.
    this.head = head;
    this.period = period;
    this.headCycles = cpu.cycles;
    this.event = ev;
    this.eventCycles = ev ? ev.cycles : 0;
    this.regs.set(data.subarray(0, 32));
    this.regs[32] = data[95]!;
    return confirmed ? period : 0;
  }

  /** Shifts the last visit after the board skipped `cycles` (so the next visit compares like with like). */
  skipped(cycles: number): void {
    this.headCycles += cycles;
  }

  /** Forgets the last visit (after an interrupt or anything else that breaks the loop). */
  reset(): void {
    this.head = -1;
  }

  private analyse(head: number, branch: number): boolean {
    const words = branch - head + 1;
    let pure = words > 0 && words <= MAX_BODY_WORDS;
    for (let pc = head; pure && pc <= branch; ) {
      const size = readOnly(this.progMem[pc]!);
      if (size === 0) pure = false;
      pc += size || 1;
    }
    this.kind[head] = pure ? PURE : IMPURE;
    this.branchOf[head] = branch;
    return pure;
  }
}
