/**
 * The USART receiver as the chip has it: characters arrive one frame time apart at the firmware's baud rate, into a
 * two-character FIFO, and a third can wait in the shift register; one more before the firmware reads UDR is lost
 * (data overrun). avr8js keeps
 * a single received byte, so without this a bootloader busy blinking its LED (Optiboot) loses avrdude's two-byte
 * sync message and resets.
 */
import type { AVRUSART, CPU } from "avr8js";

/** Host bytes waiting for the wire: `notBefore[i]` is the board cycle before which byte i cannot start (0: any time). */
export interface RxQueue {
  bytes: number[];
  notBefore: number[];
}

/** Feeds host bytes into one CPU's USART; rebuilt with the CPU, while the host queue outlives it. */
export class UsartReceiver {
  /** Characters lost because the FIFO and the shift register were full. */
  overruns = 0;
  private readonly fifo: number[] = [];
  private arriving = false;

  constructor(
    private readonly cpu: CPU,
    private readonly usart: AVRUSART,
    UDR: number,
    /** Bytes the host sent that are not on the wire yet (shared across CPU rebuilds). */
    private readonly queue: RxQueue,
    /** Board cycles before this CPU's cycle 0 (the queue's times are board cycles). */
    private readonly cycleOffset: number,
  ) {
    const avr8jsRead = cpu.readHooks[UDR]!;
    cpu.readHooks[UDR] = (addr) => {
      const value = avr8jsRead(addr); // the head of the FIFO; clears RXC
      this.fifo.shift();
      if (this.fifo.length > 0) usart.writeByte(this.fifo[0]!, true);
      return value;
    };
    usart.onConfigurationChange = () => this.pump();
  }

  /** Starts the next character on the wire, if any and the receiver is on. */
  pump(): void {
    if (this.arriving || this.queue.bytes.length === 0 || !this.usart.rxEnable) return;
    this.arriving = true;
    // A byte sent (in wall time) after this point of emulated time starts on the wire at that point, not earlier.
    const wait = Math.max(0, this.queue.notBefore[0]! - this.cycleOffset - this.cpu.cycles);
    // cyclesPerChar is private in avr8js 0.21 typings, public in its code.
    this.cpu.addClockEvent(
      this.arrive,
      wait + (this.usart as unknown as { cyclesPerChar: number }).cyclesPerChar,
    );
  }

  private readonly arrive = (): void => {
    this.arriving = false;
    const byte = this.queue.bytes.shift();
    this.queue.notBefore.shift();
    if (byte !== undefined && this.usart.rxEnable) {
      if (this.fifo.length < 3) {
        this.fifo.push(byte);
        if (this.fifo.length === 1) this.usart.writeByte(byte, true);
      } else {
        this.overruns++;
      }
    }
    this.pump();
  };
}
