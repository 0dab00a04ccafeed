/**
 * Self-programming (SPM) for avr8js, which treats the SPM instruction as a no-op. Bootloaders (Optiboot,
 * stk500v2) set Z, r1:r0 and then write SPMCSR right before `spm`, so the operation is carried out on that write.
 * Like the hardware, only code running in the boot section may program the flash.
 */
import type { CPU } from "avr8js";

const SPMEN = 0x01;
const PGERS = 0x02;
const PGWRT = 0x04;
const BLBSET = 0x08;
const RWWSRE = 0x10;
const SIGRD = 0x20;
const RWWSB = 0x40;

/** The flash memory and page buffer the SPM emulation writes to; it outlives CPU rebuilds. */
export class FlashProgrammer {
  readonly pageBuffer: Uint16Array;
  /** Pages erased and written since creation. */
  erases = 0;
  writes = 0;
  /** Called after each page write with the page's byte address. */
  onPageWrite: ((address: number) => void) | null = null;

  constructor(
    readonly flash: Uint8Array,
    readonly pageBytes: number,
    /** Byte address where the boot section starts; SPM from below it is ignored. */
    readonly bootStart: number,
  ) {
    this.pageBuffer = new Uint16Array(pageBytes / 2).fill(0xffff);
  }

  /** Installs the SPMCSR write hook on a (new) CPU. RAMPZ (data 0x5B) extends Z on parts over 64 KiB. */
  attach(cpu: CPU, spmcsr: number): void {
    const words = new Uint16Array(this.flash.buffer, this.flash.byteOffset, this.flash.length / 2);
    const hasRampz = this.flash.length > 0x10000;
    cpu.writeHooks[spmcsr] = (value) => {
      const op = value & (PGERS | PGWRT | BLBSET | RWWSRE | SIGRD | SPMEN);
      // Only the command bits with SPMEN start an operation; RWWSB and SPMIE are kept as written minus RWWSB.
      if (!(op & SPMEN) || cpu.pc * 2 < this.bootStart) {
        cpu.data[spmcsr] = value & ~(SPMEN | RWWSB);
        return true;
      }
      const z = cpu.data[30]! | (cpu.data[31]! << 8) | (hasRampz ? cpu.data[0x5b]! << 16 : 0);
      const page = z & ~(this.pageBytes - 1) & (this.flash.length - 1);
      switch (op) {
        case SPMEN:
          this.pageBuffer[(z & (this.pageBytes - 1)) >> 1] = cpu.data[0]! | (cpu.data[1]! << 8);
          break;
        case PGERS | SPMEN:
          this.flash.fill(0xff, page, page + this.pageBytes);
          this.erases++;
          break;
        case PGWRT | SPMEN: {
          const w = page >> 1;
          for (let i = 0; i < this.pageBuffer.length; i++) words[w + i]! &= this.pageBuffer[i]!;
          this.pageBuffer.fill(0xffff);
          this.writes++;
          this.onPageWrite?.(page);
          break;
        }
        default:
          // RWWSRE (re-enable the read-while-write section), BLBSET and SIGRD: nothing to keep.
          break;
      }
      // Operations complete at once: SPMEN (busy) and RWWSB read back as 0, so busy-wait loops end.
      cpu.data[spmcsr] = value & ~(SPMEN | RWWSB | PGERS | PGWRT | BLBSET | RWWSRE | SIGRD);
      return true;
    };
  }
}
