/** simulator/boards: emulated Arduino boards (ATmega328P, ATmega2560) on avr8js. */
export {
  AvrBoard,
  type AvrBoardOptions,
  type BoardStats,
  type PinChange,
  type PinLevel,
} from "./avr-board.ts";
export {
  EmulatedBoard,
  EmulatedBoardError,
  type EmulatedBoardEvents,
  type EmulatedBoardOptions,
  startEmulatedBoard,
} from "./emulated-board.ts";
export { type HexImage, IntelHexError, loadIntelHex, parseIntelHex } from "./intel-hex.ts";
export { BOARD_MCU, type McuName, type McuSpec, mcuSpec, type ResetCause } from "./mcu.ts";
export { RealTimePacer } from "./pacing.ts";
export type { EmulationStats } from "./protocol.ts";
export { PtyBridge, PtyError } from "./pty.ts";
export { BoardRunner } from "./runner.ts";
export { BoardSerialStream } from "./serial-stream.ts";
