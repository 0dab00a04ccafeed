/**
 * `ganglion flash`: writes Ganglion's firmware (or any Intel HEX file) onto an Arduino with avrdude
 * (hub/flash.ts), finding the board's port when `--port` is left out.
 */
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, InvalidArgumentError } from "commander";
import {
  BOARD_PRESETS,
  boardPreset,
  type FlashBoardName,
  FlashError,
  type FlashProgress,
  flashBoard,
} from "../flash.ts";
import { action, CliError } from "./common.ts";

/** Options of `ganglion flash`. */
export interface FlashCommandOptions {
  board: FlashBoardName;
  port?: string;
  verify: boolean;
  avrdude?: string;
  /** Show avrdude's own output (stderr) instead of progress. */
  verbose?: boolean;
}

/** Parses `--board`: a preset name (`uno`, `nano`, `mega`, `nano-old-bootloader`) or `arduino-*`. */
export function parseFlashBoard(value: string): FlashBoardName {
  const key = value.replace(/^arduino-/, "");
  if (!Object.hasOwn(BOARD_PRESETS, key)) {
    throw new InvalidArgumentError(
      `unknown board "${value}" (expected ${Object.keys(BOARD_PRESETS).join(", ")}; a raspberry-pi is not flashed)`,
    );
  }
  return value as FlashBoardName;
}

/** The firmware shipped for a board: `firmware/arduino/dist/ganglion-<uno|nano|mega>.hex`. */
export function defaultHex(board: FlashBoardName): string {
  const key = board.replace(/^arduino-/, "").replace(/-old-bootloader$/, "");
  return fileURLToPath(new URL(`../../firmware/arduino/dist/ganglion-${key}.hex`, import.meta.url));
}

/** The one likely Arduino on USB, or a one-line error when there are none or several. */
async function findPort(): Promise<string> {
  const { detectPorts } = await import("./serial-ports.ts");
  const likely = (await detectPorts()).filter((p) => p.likelyArduino);
  if (likely.length === 0) {
    throw new CliError(
      "no Arduino found on USB: plug one in, or pass --port PATH (`ganglion boards` lists ports)",
    );
  }
  if (likely.length > 1) {
    throw new CliError(
      `several Arduinos found (${likely.map((p) => p.path).join(", ")}): pick one with --port`,
    );
  }
  return likely[0]!.path;
}

function progressPrinter(): (p: FlashProgress) => void {
  const tty = process.stderr.isTTY;
  let lastStep = -1;
  return ({ phase, percent }) => {
    const label = phase === "writing" ? "writing" : "verifying";
    if (tty) {
      process.stderr.write(`\r${label} ${String(percent).padStart(3)}%${percent === 100 ? "\n" : ""}`);
      return;
    }
    const step = Math.floor(percent / 25);
    if (percent === 0) lastStep = -1;
    if (step !== lastStep) {
      lastStep = step;
      process.stderr.write(`${label} ${percent}%\n`);
    }
  };
}

/** Flashes `hex` (default: the shipped firmware) onto the board. */
export async function runFlash(hex: string | undefined, opts: FlashCommandOptions): Promise<void> {
  const preset = boardPreset(opts.board);
  const file = hex ?? defaultHex(opts.board);
  try {
    await stat(file);
  } catch {
    throw new CliError(
      hex === undefined
        ? `firmware ${file} not found: build it with \`make -C firmware/arduino\`, or pass a .hex file`
        : `hex file ${file} not found`,
    );
  }
  const port = opts.port ?? (await findPort());
  try {
    await stat(port);
  } catch {
    throw new CliError(
      `port ${port} not found: is the board plugged in? (\`ganglion boards\` lists serial ports)`,
    );
  }
  console.log(`ganglion: flashing ${basename(file)} onto the ${preset.label} at ${port}`);
  try {
    const result = await flashBoard({
      board: opts.board,
      port,
      hex: file,
      verify: opts.verify,
      ...(opts.avrdude ? { avrdude: opts.avrdude } : {}),
      ...(opts.verbose
        ? { onOutput: (text: string) => process.stderr.write(text) }
        : { onProgress: progressPrinter() }),
    });
    const verified = result.verified ? "verified" : "not verified";
    console.log(
      `ganglion: flashed ${result.bytes} bytes, ${verified}, in ${(result.durationMs / 1000).toFixed(1)} s`,
    );
  } catch (err) {
    if (err instanceof FlashError) throw new CliError(err.message);
    throw err;
  }
}

/** Registers `flash`. */
export function registerFlash(program: Command): void {
  program
    .command("flash")
    .description("flash Ganglion's firmware (or a .hex file) onto an Arduino with avrdude")
    .argument("[hex]", "Intel HEX file (default: firmware/arduino/dist/ganglion-<board>.hex)")
    .requiredOption(
      "--board <board>",
      "uno, nano, mega (or nano-old-bootloader for older Nanos)",
      parseFlashBoard,
    )
    .option("--port <path>", "serial port (default: the one Arduino found on USB)")
    .option("--no-verify", "skip reading the flash back")
    .option("--avrdude <path>", "avrdude executable", process.env.GANGLION_AVRDUDE)
    .option("--verbose", "show avrdude's own output")
    .action(action((hex: string | undefined, opts: FlashCommandOptions) => runFlash(hex, opts)));
}
