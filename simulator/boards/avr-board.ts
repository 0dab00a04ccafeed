/**
 * One emulated AVR board on avr8js: CPU, timers, USART0, GPIO ports, ADC, EEPROM, watchdog, TWI, self-programming and
 * the reset logic (BOOTRST, MCUSR flags), plus sleep fast-forward. Synchronous and clock-free: whoever owns the board
 * calls {@link AvrBoard.run} with a cycle budget (see runner.ts for real-time pacing).
 */
import {
  ADCMuxInputType,
  AVRADC,
  AVRClock,
  AVREEPROM,
  AVRIOPort,
  AVRTimer,
  AVRTWI,
  AVRUSART,
  AVRWatchdog,
  avrInstruction,
  CPU,
  EEPROMMemoryBackend,
  PinState,
  type TWIEventHandler,
} from "avr8js";
import { type HexImage, loadIntelHex, parseIntelHex } from "./intel-hex.ts";
import { type McuName, type McuSpec, mcuSpec, RESET_FLAG, type ResetCause, ResetFlag } from "./mcu.ts";
import { SleepHorizon } from "./sleep.ts";
import { SpinDetector } from "./spin.ts";
import { FlashProgrammer } from "./spm.ts";
import { type RxQueue, UsartReceiver } from "./usart-rx.ts";

const OPCODE_SLEEP = 0x9588;

interface ClockEvent {
  cycles: number;
  callback: () => void;
  next: ClockEvent | null;
}
const SMCR_SE = 0x01;
const WDTCSR_WDCE = 0x10;
const WDTCSR_WDE = 0x08;

/** A pin's level as the outside world sees it. */
export type PinLevel = "low" | "high" | "input" | "input-pullup";

const LEVEL: Record<PinState, PinLevel> = {
  [PinState.Low]: "low",
  [PinState.High]: "high",
  [PinState.Input]: "input",
  [PinState.InputPullUp]: "input-pullup",
};

/** A change on one pin, as the firmware drives it. */
export interface PinChange {
  port: string;
  bit: number;
  /** Arduino pin number, when the pin has one. */
  pin: number | undefined;
  level: PinLevel;
  /** Emulated time of the change, in CPU cycles since power-on. */
  cycles: number;
}

/** How to build a board. Hex texts, not paths: the board does no IO. */
export interface AvrBoardOptions {
  mcu: McuName;
  /** Application firmware (Intel HEX text). */
  hex?: string;
  /** Bootloader (Intel HEX text). The reset vector moves to the boot section that holds it (BOOTRST programmed). */
  bootloader?: string;
  /** Initial EEPROM contents (defaults to erased, 0xFF). */
  eeprom?: Uint8Array;
}

/** Counters for benchmarks and tests; all cumulative since power-on. */
export interface BoardStats {
  /** Emulated CPU cycles. */
  cycles: number;
  /** Instructions executed. */
  instructions: number;
  /** Cycles skipped while the CPU slept. */
  sleepCycles: number;
  /** Cycles skipped while the CPU spun in a pure polling loop (spin.ts). */
  spinCycles: number;
  resets: number;
}

/** Callbacks a board owner installs (one each; the board is not an EventEmitter to keep the hot path lean). */
export interface AvrBoardHooks {
  onTransmit?: (bytes: Uint8Array) => void;
  onPinChange?: (change: PinChange) => void;
  onReset?: (cause: ResetCause, mcusr: number) => void;
  /** Every SPM page write (byte address). */
  onFlashWrite?: (address: number) => void;
}

/** An emulated AVR board. */
export class AvrBoard {
  readonly spec: McuSpec;
  readonly flash: Uint8Array;
  readonly eeprom: EEPROMMemoryBackend;
  /** Byte address the CPU starts at after a reset (0, or the boot section when a bootloader is loaded). */
  readonly resetVector: number;
  readonly hooks: AvrBoardHooks = {};
  readonly stats: BoardStats = { cycles: 0, instructions: 0, sleepCycles: 0, spinCycles: 0, resets: 0 };
  readonly firmware: HexImage | undefined;
  readonly bootloaderImage: HexImage | undefined;
  /** Bootloader bytes that lay past the end of flash and were dropped. */
  readonly bootloaderBytesDropped: number = 0;

  private readonly progMem: Uint16Array;
  private readonly programmer: FlashProgrammer;
  private readonly analog: number[];
  /** Analog channels with nothing connected (see {@link AvrBoard.setAnalog} with `null`). */
  private readonly floating = new Set<number>();
  /** The voltage the ADC's sample-and-hold capacitor kept from the last conversion. */
  private heldVolts = 0;
  /** State of the generator behind a floating input's coupled noise. */
  private pickup = 0x2545f491;
  /** Levels driven onto input pins from outside, by port letter: [mask, values]. */
  private readonly inputs = new Map<string, { mask: number; values: number }>();
  private readonly rxQueue: RxQueue = { bytes: [], notBefore: [] };
  private txBuffer: number[] = [];

  private cpu!: CPU;
  private usart!: AVRUSART;
  private receiver!: UsartReceiver;
  private adc!: AVRADC;
  private ports!: Map<string, AVRIOPort>;
  private horizon!: SleepHorizon;
  private spin!: SpinDetector;
  private pinLevels!: Map<string, PinState[]>;
  private pendingReset = 0;
  private cyclesAtPendingReset = 0;
  /** Cycles of CPUs that were replaced by a reset. */
  private cyclesBefore = 0;
  private sleepArmed = false;
  private sleeping = false;
  private readonly pinOfPortBit = new Map<string, number>();
  private i2cFactory: ((twi: AVRTWI) => TWIEventHandler) | undefined;
  private twi!: AVRTWI;

  constructor(options: AvrBoardOptions) {
    this.spec = mcuSpec(options.mcu);
    const spec = this.spec;
    this.flash = new Uint8Array(spec.flashBytes).fill(0xff);
    this.progMem = new Uint16Array(this.flash.buffer);
    if (options.hex) this.firmware = loadIntelHex(options.hex, this.flash, `${spec.name} flash`);
    let bootStart = spec.flashBytes - spec.bootSectionBytes[0]!;
    if (options.bootloader) {
      // Debian's optiboot_atmega328.hex (4.4) carries 20 bytes past 0x7FFF: the end of appStart, which no chip
      // can hold. On the chip the PC wraps from the last word to 0 and so reaches the application anyway (see run()),
      // so bytes past the end of flash are dropped here rather than refused.
      this.bootloaderImage = parseIntelHex(options.bootloader);
      for (const seg of this.bootloaderImage.segments) {
        const fits = Math.max(0, Math.min(seg.data.length, spec.flashBytes - seg.address));
        if (fits > 0) this.flash.set(seg.data.subarray(0, fits), seg.address);
        this.bootloaderBytesDropped += seg.data.length - fits;
      }
      const size = spec.bootSectionBytes.find((s) => spec.flashBytes - s <= this.bootloaderImage!.start);
      if (size === undefined) {
        throw new Error(
          `bootloader starts at 0x${this.bootloaderImage.start.toString(16)}, below the largest ${spec.name} boot section`,
        );
      }
      bootStart = spec.flashBytes - size;
    }
    this.resetVector = options.bootloader ? bootStart : 0;
    this.programmer = new FlashProgrammer(this.flash, spec.pageBytes, bootStart);
    this.programmer.onPageWrite = (address) => this.hooks.onFlashWrite?.(address);
    this.eeprom = new EEPROMMemoryBackend(spec.eepromBytes);
    if (options.eeprom) this.eeprom.memory.set(options.eeprom.subarray(0, spec.eepromBytes));
    this.analog = new Array(spec.analogChannels).fill(0);
    spec.digitalPins.forEach(([port, bit], pin) => {
      this.pinOfPortBit.set(`${port}${bit}`, pin);
    });
    this.build(ResetFlag.PORF);
  }

  /** Emulated cycles since power-on. */
  get cycles(): number {
    return (
      this.cyclesBefore + (Number.isFinite(this.cpu.cycles) ? this.cpu.cycles : this.cyclesAtPendingReset)
    );
  }

  /** Emulated time since power-on, in seconds. */
  get seconds(): number {
    return this.cycles / this.spec.frequencyHz;
  }

  /** Whether the CPU is asleep (SLEEP executed, waiting for an interrupt). */
  get isSleeping(): boolean {
    return this.sleeping;
  }

  /** The firmware's current baud rate on USART0 (0 before it configured it). */
  get baudRate(): number {
    return this.usart.baudRate;
  }

  /** Current MCUSR value. */
  get mcusr(): number {
    return this.cpu.data[this.spec.registers.MCUSR]!;
  }

  /** Received characters lost to data overrun (the firmware did not read UDR in time) since the last reset. */
  get rxOverruns(): number {
    return this.receiver.overruns;
  }

  /** Pages written by SPM since power-on. */
  get flashPageWrites(): number {
    return this.programmer.writes;
  }

  /**
   * Resets the board. `external` is the RESET pin (a Uno's DTR auto-reset), `power-on` also clears MCUSR's other
   * flags; the bootloader, if any, runs first. Queued serial input is dropped, as the USB-serial chip's bytes would be.
   */
  reset(cause: ResetCause = "external"): void {
    this.rxQueue.bytes.length = 0;
    this.rxQueue.notBefore.length = 0;
    this.finishPendingReset();
    this.build(RESET_FLAG[cause]);
  }

  /**
   * Queues bytes for the firmware's USART0 receiver; they arrive one character time apart at its baud rate.
   * `atCycle` (board cycles) is when they were sent, for a board that runs behind wall time: they do not reach the
   * firmware before that emulated moment, so the firmware sees them as late after its reset as the sender sent them.
   */
  receive(bytes: Uint8Array | readonly number[], atCycle = 0): void {
    for (const b of bytes) {
      this.rxQueue.bytes.push(b);
      this.rxQueue.notBefore.push(atCycle);
    }
    this.receiver.pump();
  }

  /** Bytes queued for the receiver and not yet delivered. */
  get rxPending(): number {
    return this.rxQueue.bytes.length;
  }

  /**
   * Sets the voltage on an analog input (channel n = An), 0..5 V at the default AVCC reference. `null` leaves the
   * input floating (a sensor wire come loose): see {@link AvrBoard.floatingVolts} for what the ADC then reads.
   */
  setAnalog(channel: number, volts: number | null): void {
    if (!Number.isInteger(channel) || channel < 0 || channel >= this.spec.analogChannels) {
      throw new RangeError(`analog channel ${channel} out of range (0..${this.spec.analogChannels - 1})`);
    }
    if (volts === null) {
      this.floating.add(channel);
      return;
    }
    if (!Number.isFinite(volts)) throw new RangeError(`analog voltage must be a number, got ${volts}`);
    this.floating.delete(channel);
    this.analog[channel] = volts;
    this.adc.channelValues[channel] = volts;
  }

  /**
   * What a real ATmega's ADC reads on a floating input: the high-impedance pin cannot charge the sample-and-hold
   * capacitor, so a conversion keeps part of the charge the previous conversion (another channel) left on it, and
   * the loose wire picks up mains hum big enough to hit the input's clamp diodes, plus whatever else couples in.
   * The grid is never exactly 50 Hz, so fixed-interval samples do not lock onto one phase. Readings jump between
   * the rails. Deterministic: a function of emulated time and a per-board generator.
   */
  private floatingVolts(): number {
    const t = this.cycles / this.spec.frequencyHz;
    const hz = 50 + 0.05 * Math.sin(2 * Math.PI * 0.1 * t);
    const hum = 2.5 + 3.5 * Math.sin(2 * Math.PI * hz * t);
    this.pickup = (Math.imul(this.pickup, 1664525) + 1013904223) >>> 0;
    const coupled = (this.pickup / 2 ** 32 - 0.5) * 3;
    return Math.min(5, Math.max(0, hum + coupled + 0.3 * (this.heldVolts - 2.5)));
  }

  /** Drives an input pin high or low from outside (a button, a sensor); `null` releases it. */
  setDigitalInput(pin: number, high: boolean | null): void {
    const [port, bit] = this.portBit(pin);
    const entry = this.inputs.get(port) ?? { mask: 0, values: 0 };
    if (high === null) entry.mask &= ~(1 << bit);
    else entry.mask |= 1 << bit;
    entry.values = high ? entry.values | (1 << bit) : entry.values & ~(1 << bit);
    this.inputs.set(port, entry);
    this.ports.get(port)!.setPin(bit, high ?? false);
  }

  /** The level of an Arduino pin. */
  pinLevel(pin: number): PinLevel {
    const [port, bit] = this.portBit(pin);
    return LEVEL[this.ports.get(port)!.pinState(bit)];
  }

  /**
   * Connects I2C devices to the TWI bus. `factory` receives the board's avr8js TWI unit (whose `complete*` methods
   * the handler calls) and is called again after every reset, since a reset rebuilds the peripherals.
   */
  attachI2c(factory: (twi: AVRTWI) => TWIEventHandler): void {
    this.i2cFactory = factory;
    this.twi.eventHandler = factory(this.twi);
  }

  /** Reads a data-space byte (registers, I/O, SRAM) — for tests and debugging. */
  peek(address: number): number {
    return this.cpu.data[address] ?? 0;
  }

  /** Arduino pin number → [port letter, bit]. */
  portBit(pin: number): readonly [string, number] {
    const pb = this.spec.digitalPins[pin];
    if (!pb)
      throw new RangeError(
        `pin ${pin} does not exist on ${this.spec.name} (0..${this.spec.digitalPins.length - 1})`,
      );
    return pb;
  }

  /**
   * Runs the CPU for up to `budget` cycles. A sleeping CPU skips ahead to its next wake-up event. Returns the cycles
   * actually emulated (a reset during the slice ends it early).
   */
  run(budget: number): number {
    const start = this.cycles;
    let cpu = this.cpu;
    const end = cpu.cycles + budget;
    const progMem = this.progMem;
    const words = progMem.length;
    let instructions = 0;
    while (cpu.cycles < end) {
      if (cpu.pc >= words) cpu.pc -= words; // the PC wraps at the end of flash, as on the chip
      if (this.sleeping) {
        if (!this.sleepUntil(end)) break;
        continue;
      }
      if (this.sleepArmed && progMem[cpu.pc] === OPCODE_SLEEP) {
        cpu.pc++;
        cpu.cycles++;
        instructions++;
        this.sleeping = true;
        continue;
      }
      const pc = cpu.pc;
      avrInstruction(cpu);
      cpu.tick();
      instructions++;
      if (cpu.pc < pc) {
        const period = this.spin.check(cpu.pc, pc);
        if (period > 0) this.skipSpin(period, end);
      }
    }
    this.stats.instructions += instructions;
    if (this.pendingReset) {
      const flag = this.pendingReset;
      this.finishPendingReset();
      this.build(flag);
      cpu = this.cpu;
    }
    this.flushTx();
    const ran = this.cycles - start;
    this.stats.cycles = this.cycles;
    return ran;
  }

  /** Sleeps until an interrupt is taken (returns true) or `end` is reached (returns false). */
  private sleepUntil(end: number): boolean {
    const cpu = this.cpu;
    for (;;) {
      const from = cpu.cycles;
      const target = Math.min(this.horizon.next(), end);
      if (target > from) {
        cpu.cycles = target;
        this.stats.sleepCycles += target - from;
      }
      // Fire the due clock events the way CPU.tick() does, but take interrupts only afterwards (takeInterrupt).
      const events = cpu as unknown as { nextClockEvent: ClockEvent | null };
      for (let ev = events.nextClockEvent; ev && ev.cycles <= cpu.cycles; ev = events.nextClockEvent) {
        ev.callback();
        events.nextClockEvent = ev.next;
        if (!Number.isFinite(cpu.cycles)) return false; // watchdog reset
      }
      if (this.takeInterrupt()) return true;
      if (cpu.cycles >= end) return false;
    }
  }

  /** Skips whole iterations of a pure polling loop up to the next event that can end it, keeping its phase. */
  private skipSpin(period: number, end: number): void {
    const cpu = this.cpu;
    const until = Math.min(this.horizon.next(), end);
    const iterations = Math.floor((until - cpu.cycles) / period) - 1;
    if (iterations < 1) return;
    const skip = iterations * period;
    cpu.cycles += skip;
    this.stats.spinCycles += skip;
    this.spin.skipped(skip);
  }

  /** Wakes the CPU if an enabled interrupt is pending: the vector is taken before the next instruction. */
  private takeInterrupt(): boolean {
    const cpu = this.cpu;
    if (!cpu.interruptsEnabled || cpu.nextInterrupt < 0) return false;
    this.sleeping = false;
    cpu.tick();
    return true;
  }

  private finishPendingReset(): void {
    if (!this.pendingReset) return;
    this.cpu.cycles = this.cyclesAtPendingReset;
    this.pendingReset = 0;
  }

  /** (Re)creates CPU and peripherals, keeping flash, EEPROM, analog inputs and externally driven pins. */
  private build(flag: number): void {
    const spec = this.spec;
    const old = this.cpu;
    const oldMcusr = old ? old.data[spec.registers.MCUSR]! : 0;
    if (old) {
      this.cyclesBefore += old.cycles;
      this.stats.resets++;
    }
    const cpu = new CPU(this.progMem, spec.ramEnd + 1 - 0x100);
    this.cpu = cpu;
    const clock = new AVRClock(cpu, spec.frequencyHz);
    const timers = spec.timers.map((config) => new AVRTimer(cpu, config));
    this.usart = new AVRUSART(cpu, spec.usart0, spec.frequencyHz);
    this.ports = new Map();
    this.pinLevels = new Map();
    for (const [name, config] of Object.entries(spec.ports)) {
      const port = new AVRIOPort(cpu, config);
      this.ports.set(name, port);
      this.pinLevels.set(
        name,
        Array.from({ length: 8 }, (_, bit) => port.pinState(bit)),
      );
      const input = this.inputs.get(name);
      if (input) {
        for (let bit = 0; bit < 8; bit++)
          if (input.mask & (1 << bit)) port.setPin(bit, !!(input.values & (1 << bit)));
      }
      port.addListener(() => this.portChanged(name, port));
    }
    const adc = new AVRADC(cpu, spec.adc);
    this.adc = adc;
    this.analog.forEach((v, i) => {
      adc.channelValues[i] = v;
    });
    const convert = adc.onADCRead;
    adc.onADCRead = (input) => {
      if (input.type === ADCMuxInputType.SingleEnded) {
        const floating = this.floating.has(input.channel);
        const volts = floating ? this.floatingVolts() : (this.analog[input.channel] ?? 0);
        adc.channelValues[input.channel] = volts;
        this.heldVolts = volts;
      }
      convert(input);
    };
    new AVREEPROM(cpu, this.eeprom, spec.eeprom);
    new AVRWatchdog(cpu, spec.watchdog, clock);
    this.twi = new AVRTWI(cpu, spec.twi, spec.frequencyHz);
    if (this.i2cFactory) this.twi.eventHandler = this.i2cFactory(this.twi);
    this.horizon = new SleepHorizon(cpu, timers);
    this.spin = new SpinDetector(cpu, this.progMem);
    this.programmer.attach(cpu, spec.registers.SPMCSR);

    // avr8js' watchdog calls cpu.reset(), which only rewinds PC and SP: end the slice and rebuild everything instead.
    cpu.reset = () => {
      this.pendingReset = ResetFlag.WDRF;
      this.cyclesAtPendingReset = cpu.cycles;
      cpu.cycles = Number.POSITIVE_INFINITY;
    };
    cpu.writeHooks[spec.registers.SMCR] = (value) => {
      this.sleepArmed = (value & SMCR_SE) !== 0;
      return false;
    };
    this.fixUcsraWrites(cpu);
    this.usart.onByteTransmit = (b) => this.txBuffer.push(b);
    this.receiver = new UsartReceiver(cpu, this.usart, spec.usart0.UDR, this.rxQueue, this.cyclesBefore);

    this.sleepArmed = false;
    this.sleeping = false;
    // MCUSR keeps earlier flags until the firmware clears it; a power-on reset clears the others.
    cpu.data[spec.registers.MCUSR] = flag === ResetFlag.PORF ? flag : oldMcusr | flag;
    if (flag === ResetFlag.WDRF) {
      // WDRF forces WDE on, at the shortest timeout (16 ms): firmware must turn the watchdog off early.
      cpu.writeData(spec.registers.WDTCSR, WDTCSR_WDCE | WDTCSR_WDE);
      cpu.writeData(spec.registers.WDTCSR, WDTCSR_WDE);
    }
    cpu.pc = this.resetVector >> 1;
    const cause = (Object.entries(RESET_FLAG).find(([, f]) => f === flag)?.[0] ?? "external") as ResetCause;
    this.hooks.onReset?.(cause, cpu.data[spec.registers.MCUSR]!);
  }

  /**
   * avr8js 0.21 stores only U2X and MPCM on a UCSRnA write, wiping the status flags: RXC and UDRE are read-only on
   * the chip, and TXC clears only when written 1. The Mega's stk500v2 bootloader clears U2X just before starting the
   * application, which then waited forever for UDRE.
   */
  private fixUcsraWrites(cpu: CPU): void {
    const UCSRA = this.spec.usart0.UCSRA;
    const RXC = 0x80;
    const TXC = 0x40;
    const UDRE = 0x20;
    const avr8jsHook = cpu.writeHooks[UCSRA]!;
    cpu.writeHooks[UCSRA] = (value, oldValue, addr, mask) => {
      const flags = cpu.data[UCSRA]! & (RXC | UDRE | (value & TXC ? 0 : TXC));
      avr8jsHook(value, oldValue, addr, mask);
      cpu.data[UCSRA] = cpu.data[UCSRA]! | flags;
      return true;
    };
  }

  private portChanged(name: string, port: AVRIOPort): void {
    const levels = this.pinLevels.get(name)!;
    for (let bit = 0; bit < 8; bit++) {
      const state = port.pinState(bit);
      if (state !== levels[bit]) {
        levels[bit] = state;
        this.hooks.onPinChange?.({
          port: name,
          bit,
          pin: this.pinOfPortBit.get(`${name}${bit}`),
          level: LEVEL[state],
          cycles: this.cycles,
        });
      }
    }
  }

  private flushTx(): void {
    if (this.txBuffer.length === 0) return;
    const bytes = Uint8Array.from(this.txBuffer);
    this.txBuffer = [];
    this.hooks.onTransmit?.(bytes);
  }
}
