/** Messages between {@link startEmulatedBoard}'s main-thread handle and the board's worker thread. */
import type { BoardStats, PinChange, PinLevel } from "./avr-board.ts";
import type { McuName, ResetCause } from "./mcu.ts";

/** What the worker needs to build and run a board (hex as text: the worker does no file IO for firmware). */
export interface WorkerBoardConfig {
  mcu: McuName;
  hex?: string;
  bootloader?: string;
  eeprom?: Uint8Array;
  realtime: boolean;
  /** Symlink path for a pty, when one is wanted. */
  ptyPath?: string;
  /** Reset the board when the pty is opened (default true). */
  resetOnOpen: boolean;
}

/** Emulation figures reported by {@link EmulatedBoard.stats}. */
export interface EmulationStats extends BoardStats {
  /** Emulated seconds since power-on. */
  seconds: number;
  /** Emulated time forgiven because the host fell behind (ms). */
  lagMs: number;
  /** SPM page writes since power-on. */
  flashPageWrites: number;
  /** Times the pty was opened. */
  ptyOpens: number;
}

export type ToWorker =
  | { type: "rx"; bytes: Uint8Array }
  /** `volts: null` leaves the input floating. */
  | { type: "analog"; channel: number; volts: number | null }
  | { type: "digital"; pin: number; high: boolean | null }
  | { type: "reset"; cause: ResetCause }
  /** Power off stops the chip (no serial, pins unpowered); power on boots it with a power-on reset. */
  | { type: "power"; on: boolean }
  | { type: "query"; id: number; what: "stats" | "flash" | "eeprom" | "pins" }
  | { type: "stop" };

export type FromWorker =
  | { type: "ready"; ptyPath?: string; resetVector: number }
  | { type: "turn"; tx?: Uint8Array; pins?: PinChange[] }
  | { type: "reset"; cause: ResetCause; mcusr: number }
  | { type: "pty"; event: "open" | "close" | "ready" }
  | { type: "reply"; id: number; value: EmulationStats | Uint8Array | PinLevel[] }
  | { type: "error"; message: string; fatal: boolean }
  | { type: "stopped" };
