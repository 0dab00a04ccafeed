/**
 * Descriptions of the AVR microcontrollers the emulator runs: memory sizes, register addresses and the avr8js
 * peripheral configurations. avr8js ships ATmega328P defaults; the ATmega2560 ones are built here from the datasheet
 * (vector n of avr-libc's iom2560.h sits at word address 2n).
 */
import {
  type ADCConfig,
  type ADCMuxConfiguration,
  ADCMuxInputType,
  ADCReference,
  type AVREEPROMConfig,
  type AVRPortConfig,
  type AVRTimerConfig,
  adcConfig,
  eepromConfig,
  PCINT0,
  PCINT1,
  PCINT2,
  portAConfig,
  portBConfig,
  portCConfig,
  portDConfig,
  portEConfig,
  portFConfig,
  portGConfig,
  portHConfig,
  portJConfig,
  portKConfig,
  portLConfig,
  type TWIConfig,
  timer0Config,
  timer1Config,
  timer2Config,
  twiConfig,
  usart0Config,
  type WatchdogConfig,
  watchdogConfig,
} from "avr8js";

/** The microcontrollers the emulator knows. */
export type McuName = "atmega328p" | "atmega2560";

/** avr8js' USART configuration (its type is not exported by name). */
export type UsartConfig = typeof usart0Config;

/** A port letter and bit, e.g. `["B", 5]` for PB5. */
export type PortBit = readonly [port: string, bit: number];

/** Everything the board needs to know about one microcontroller. */
export interface McuSpec {
  name: McuName;
  /** avrdude's part id (`-p`). */
  avrdudePart: string;
  /** Device signature bytes. */
  signature: readonly [number, number, number];
  frequencyHz: number;
  flashBytes: number;
  /** Internal SRAM size. */
  sramBytes: number;
  /** Last data-space address (RAMEND); avr8js sizes its data space from it. */
  ramEnd: number;
  eepromBytes: number;
  /** SPM page size in bytes. */
  pageBytes: number;
  /** Possible boot section sizes in bytes (BOOTSZ fuses), smallest first. */
  bootSectionBytes: readonly number[];
  /** Data-space addresses of the registers the board handles itself. */
  registers: { MCUSR: number; SPMCSR: number; SMCR: number; WDTCSR: number };
  ports: Readonly<Record<string, AVRPortConfig>>;
  timers: readonly AVRTimerConfig[];
  usart0: UsartConfig;
  adc: ADCConfig;
  eeprom: AVREEPROMConfig;
  watchdog: WatchdogConfig;
  twi: TWIConfig;
  /** Arduino digital pin number → port and bit, as in the core's pins_arduino.h. */
  digitalPins: readonly PortBit[];
  /** Arduino pin number of A0; analog input n is ADC channel n. */
  analogPinBase: number;
  analogChannels: number;
}

const atmega328p: McuSpec = {
  name: "atmega328p",
  avrdudePart: "m328p",
  signature: [0x1e, 0x95, 0x0f],
  frequencyHz: 16_000_000,
  flashBytes: 32 * 1024,
  sramBytes: 2048,
  ramEnd: 0x8ff,
  eepromBytes: 1024,
  pageBytes: 128,
  bootSectionBytes: [512, 1024, 2048, 4096],
  registers: { MCUSR: 0x54, SPMCSR: 0x57, SMCR: 0x53, WDTCSR: 0x60 },
  ports: { B: portBConfig, C: portCConfig, D: portDConfig },
  timers: [timer0Config, timer1Config, timer2Config],
  usart0: usart0Config,
  adc: adcConfig,
  eeprom: eepromConfig,
  watchdog: watchdogConfig,
  twi: twiConfig,
  digitalPins: [
    ...[0, 1, 2, 3, 4, 5, 6, 7].map((b) => ["D", b] as const),
    ...[0, 1, 2, 3, 4, 5].map((b) => ["B", b] as const),
    ...[0, 1, 2, 3, 4, 5].map((b) => ["C", b] as const),
  ],
  analogPinBase: 14,
  analogChannels: 8,
};

// ---- ATmega2560 -------------------------------------------------------------------------------------------

const vec = (n: number) => n * 2;
const PORTB = portBConfig.PORT;
const PORTD = portDConfig.PORT;
const PORTE = portEConfig.PORT;
const PORTG = portGConfig.PORT;
const PORTH = portHConfig.PORT;
const PORTL = portLConfig.PORT;
const timer16Bits = { OCFC: 8, OCIEC: 8 };

const mega: Pick<McuSpec, "ports" | "timers" | "usart0" | "adc" | "eeprom" | "watchdog" | "twi"> = (() => {
  const extInt = (index: number) => ({
    EICR: index < 4 ? 0x69 : 0x6a,
    EIMSK: 0x3d,
    EIFR: 0x3c,
    index,
    iscOffset: (index % 4) * 2,
    interrupt: vec(1 + index),
  });
  const ports: Record<string, AVRPortConfig> = {
    A: portAConfig,
    B: { ...portBConfig, pinChange: { ...PCINT0, pinChangeInterrupt: vec(9) } },
    // PCINT8 is PE0 and PCINT9..15 are PJ0..6; avr8js maps a pin-change group to one port, so PCINT1 covers PJ.
    C: { ...portCConfig, pinChange: undefined },
    D: {
      ...portDConfig,
      pinChange: undefined,
      externalInterrupts: [extInt(0), extInt(1), extInt(2), extInt(3)],
    },
    E: {
      ...portEConfig,
      externalInterrupts: [null, null, null, null, extInt(4), extInt(5), extInt(6), extInt(7)],
    },
    F: portFConfig,
    G: portGConfig,
    H: portHConfig,
    J: { ...portJConfig, pinChange: { ...PCINT1, pinChangeInterrupt: vec(10), mask: 0x7f, offset: 1 } },
    K: { ...portKConfig, pinChange: { ...PCINT2, pinChangeInterrupt: vec(11) } },
    L: portLConfig,
  };
  const timers: AVRTimerConfig[] = [
    {
      ...timer0Config,
      compAInterrupt: vec(21),
      compBInterrupt: vec(22),
      ovfInterrupt: vec(23),
      compPortA: PORTB,
      compPinA: 7,
      compPortB: PORTG,
      compPinB: 5,
      externalClockPort: PORTD,
      externalClockPin: 7,
    },
    {
      ...timer1Config,
      ...timer16Bits,
      captureInterrupt: vec(16),
      compAInterrupt: vec(17),
      compBInterrupt: vec(18),
      compCInterrupt: vec(19),
      ovfInterrupt: vec(20),
      OCRC: 0x8c,
      compPortA: PORTB,
      compPinA: 5,
      compPortB: PORTB,
      compPinB: 6,
      compPortC: PORTB,
      compPinC: 7,
      externalClockPort: PORTD,
      externalClockPin: 6,
    },
    {
      ...timer2Config,
      compAInterrupt: vec(13),
      compBInterrupt: vec(14),
      ovfInterrupt: vec(15),
      compPortA: PORTB,
      compPinA: 4,
      compPortB: PORTH,
      compPinB: 6,
    },
  ];
  // Timers 3, 4 and 5 share timer 1's layout, 16 bytes apart in the extended I/O space.
  const t16 = (
    base: number,
    timsk: number,
    tifr: number,
    firstVector: number,
    port: number,
    pins: number[],
  ) => ({
    ...timer1Config,
    ...timer16Bits,
    TCCRA: base,
    TCCRB: base + 1,
    TCCRC: base + 2,
    TCNT: base + 4,
    ICR: base + 6,
    OCRA: base + 8,
    OCRB: base + 10,
    OCRC: base + 12,
    TIMSK: timsk,
    TIFR: tifr,
    captureInterrupt: vec(firstVector),
    compAInterrupt: vec(firstVector + 1),
    compBInterrupt: vec(firstVector + 2),
    compCInterrupt: vec(firstVector + 3),
    ovfInterrupt: vec(firstVector + 4),
    compPortA: port,
    compPinA: pins[0]!,
    compPortB: port,
    compPinB: pins[1]!,
    compPortC: port,
    compPinC: pins[2]!,
    externalClockPort: 0,
    externalClockPin: 0,
  });
  timers.push(t16(0x90, 0x71, 0x38, 31, PORTE, [3, 4, 5]));
  timers.push(t16(0xa0, 0x72, 0x39, 41, PORTH, [3, 4, 5]));
  timers.push(t16(0x120, 0x73, 0x3a, 46, PORTL, [3, 4, 5]));

  const muxChannels: ADCMuxConfiguration = {
    30: { type: ADCMuxInputType.Constant, voltage: 1.1 },
    31: { type: ADCMuxInputType.Constant, voltage: 0 },
  };
  for (let i = 0; i < 8; i++) {
    muxChannels[i] = { type: ADCMuxInputType.SingleEnded, channel: i };
    muxChannels[0x20 + i] = { type: ADCMuxInputType.SingleEnded, channel: 8 + i };
  }
  return {
    ports,
    timers,
    usart0: {
      ...usart0Config,
      rxCompleteInterrupt: vec(25),
      dataRegisterEmptyInterrupt: vec(26),
      txCompleteInterrupt: vec(27),
    },
    adc: {
      ...adcConfig,
      adcInterrupt: vec(29),
      numChannels: 16,
      muxInputMask: 0x3f,
      muxChannels,
      adcReferences: [
        ADCReference.AREF,
        ADCReference.AVCC,
        ADCReference.Internal1V1,
        ADCReference.Internal2V56,
      ],
    },
    eeprom: { ...eepromConfig, eepromReadyInterrupt: vec(30) },
    watchdog: { ...watchdogConfig, watchdogInterrupt: vec(12) },
    twi: { ...twiConfig, twiInterrupt: vec(39) },
  };
})();

const MEGA_PINS =
  "E0 E1 E4 E5 G5 E3 H3 H4 H5 H6 B4 B5 B6 B7 J1 J0 H1 H0 D3 D2 D1 D0 A0 A1 A2 A3 A4 A5 A6 A7 C7 C6 C5 C4 C3 C2 C1 " +
  "C0 D7 G2 G1 G0 L7 L6 L5 L4 L3 L2 L1 L0 B3 B2 B1 B0 F0 F1 F2 F3 F4 F5 F6 F7 K0 K1 K2 K3 K4 K5 K6 K7";

const atmega2560: McuSpec = {
  name: "atmega2560",
  avrdudePart: "m2560",
  signature: [0x1e, 0x98, 0x01],
  frequencyHz: 16_000_000,
  flashBytes: 256 * 1024,
  sramBytes: 8192,
  ramEnd: 0x21ff,
  eepromBytes: 4096,
  pageBytes: 256,
  bootSectionBytes: [1024, 2048, 4096, 8192],
  registers: { MCUSR: 0x54, SPMCSR: 0x57, SMCR: 0x53, WDTCSR: 0x60 },
  ...mega,
  digitalPins: MEGA_PINS.split(" ").map((s) => [s[0]!, Number(s[1])] as const),
  analogPinBase: 54,
  analogChannels: 16,
};

const MCUS: Readonly<Record<McuName, McuSpec>> = { atmega328p, atmega2560 };

/** Board kinds (DESIGN.md) and the microcontroller each carries. */
export const BOARD_MCU: Readonly<Record<string, McuName>> = {
  uno: "atmega328p",
  nano: "atmega328p",
  mega: "atmega2560",
  "arduino-uno": "atmega328p",
  "arduino-nano": "atmega328p",
  "arduino-mega": "atmega2560",
};

/** Looks up a microcontroller by name (`atmega328p`, `atmega2560`). */
export function mcuSpec(name: McuName): McuSpec {
  const spec = MCUS[name];
  if (!spec) throw new Error(`unknown microcontroller "${name}" (known: ${Object.keys(MCUS).join(", ")})`);
  return spec;
}

/** MCUSR reset flags. */
export const ResetFlag = { PORF: 0x01, EXTRF: 0x02, BORF: 0x04, WDRF: 0x08 } as const;

/** Why a board reset, as the firmware sees it in MCUSR. */
export type ResetCause = "power-on" | "external" | "brown-out" | "watchdog";

/** MCUSR flag for each reset cause. */
export const RESET_FLAG: Readonly<Record<ResetCause, number>> = {
  "power-on": ResetFlag.PORF,
  external: ResetFlag.EXTRF,
  "brown-out": ResetFlag.BORF,
  watchdog: ResetFlag.WDRF,
};
