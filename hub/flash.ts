/**
 * Flashing Arduino boards with Debian's avrdude (7.x): board presets, size check before touching the board,
 * progress from avrdude's bars, verification, and one-line explanations of the usual failures.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { parseIntelHex } from "../simulator/boards/intel-hex.ts";

/** How avrdude talks to one kind of board's bootloader. */
export interface BoardPreset {
  /** avrdude part (`-p`). */
  part: string;
  /** avrdude programmer (`-c`): `arduino` is STK500v1 (Optiboot), `wiring` is STK500v2 (Mega bootloader). */
  programmer: string;
  baudRate: number;
  /** Flash bytes available to a sketch (flash minus the bootloader). */
  maxSketchBytes: number;
  /** Device signature, for the error message. */
  signature: string;
  label: string;
}

/** Board presets; keys are the CLI's board names (`arduino-uno` etc. are accepted too). */
export const BOARD_PRESETS = {
  uno: {
    part: "m328p",
    programmer: "arduino",
    baudRate: 115200,
    maxSketchBytes: 32256,
    signature: "1E 95 0F",
    label: "Arduino Uno",
  },
  nano: {
    part: "m328p",
    programmer: "arduino",
    baudRate: 115200,
    maxSketchBytes: 32256,
    signature: "1E 95 0F",
    label: "Arduino Nano",
  },
  /** Nanos sold before 2018 (and most clones) still carry the old 2 KiB ATmegaBOOT at 57600 baud. */
  "nano-old-bootloader": {
    part: "m328p",
    programmer: "arduino",
    baudRate: 57600,
    maxSketchBytes: 30720,
    signature: "1E 95 0F",
    label: "Arduino Nano (old bootloader)",
  },
  mega: {
    part: "m2560",
    programmer: "wiring",
    baudRate: 115200,
    maxSketchBytes: 253952,
    signature: "1E 98 01",
    label: "Arduino Mega 2560",
  },
} as const satisfies Record<string, BoardPreset>;

/** A board name {@link flashBoard} accepts. */
export type FlashBoardName = keyof typeof BOARD_PRESETS | "arduino-uno" | "arduino-nano" | "arduino-mega";

/** Why flashing failed; `reason` is stable for callers, `message` is the one line to show a user. */
export type FlashFailure =
  | "avrdude-missing"
  | "bad-hex"
  | "too-large"
  | "port-not-found"
  | "port-busy"
  | "permission"
  | "no-answer"
  | "wrong-signature"
  | "verify-failed"
  | "timeout"
  | "failed";

/** A failed flash. `output` holds avrdude's full output for a `--verbose` display. */
export class FlashError extends Error {
  override readonly name = "FlashError";
  constructor(
    readonly reason: FlashFailure,
    message: string,
    readonly output = "",
  ) {
    super(message);
  }
}

/** Progress of one avrdude phase (`writing`, `reading`: avrdude reads back to verify). */
export interface FlashProgress {
  phase: "reading" | "writing";
  percent: number;
}

/** Options of {@link flashBoard}. */
export interface FlashOptions {
  board: FlashBoardName;
  /** Serial port (e.g. /dev/ttyACM0, or an emulated board's pty path); by default the only Arduino on USB. */
  port?: string;
  /** Intel HEX file to write. */
  hex: string;
  /** Override the preset's baud rate. */
  baudRate?: number;
  /** Read back and compare after writing (default true). */
  verify?: boolean;
  /** avrdude executable (default `avrdude` on PATH). */
  avrdude?: string;
  /** Give up after this long (default 120 s). */
  timeoutMs?: number;
  onProgress?: (progress: FlashProgress) => void;
  /** Every chunk avrdude prints (stderr), for a verbose mode. */
  onOutput?: (text: string) => void;
}

/** What a successful flash did. */
export interface FlashResult {
  /** Data bytes in the HEX file. */
  bytes: number;
  verified: boolean;
  durationMs: number;
  /** avrdude's command line, for display. */
  command: string[];
}

/** A serial port as `serialport`'s `SerialPort.list()` describes it. */
export interface PortInfo {
  path: string;
  vendorId?: string | undefined;
  productId?: string | undefined;
  manufacturer?: string | undefined;
}

/** USB vendor ids of Arduinos and the USB-serial chips on their clones. */
const ARDUINO_VENDORS: Readonly<Record<string, string>> = {
  "2341": "Arduino",
  "2a03": "Arduino (arduino.org)",
  "1a86": "CH340 (clone)",
  "0403": "FTDI",
  "10c4": "CP210x",
};

/** The serial ports of this machine (serialport's native binding, loaded only when needed). */
export async function listPorts(): Promise<PortInfo[]> {
  const { SerialPort } = await import("serialport");
  return SerialPort.list();
}

/** The ports that look like Arduinos (by USB vendor id), each with why. */
export function likelyArduinoPorts(ports: readonly PortInfo[]): (PortInfo & { why: string })[] {
  return ports.flatMap((p) => {
    const why = p.vendorId ? ARDUINO_VENDORS[p.vendorId.toLowerCase()] : undefined;
    return why ? [{ ...p, why }] : [];
  });
}

/**
 * The port to flash when none was given: the only likely Arduino among `ports`. Throws a {@link FlashError} naming
 * the candidates when there are none or several.
 */
export function pickArduinoPort(ports: readonly PortInfo[]): string {
  const likely = likelyArduinoPorts(ports);
  if (likely.length === 1) return likely[0]!.path;
  if (likely.length === 0) {
    throw new FlashError(
      "port-not-found",
      "no Arduino found on USB: plug it in, or give --port (ganglion boards)",
    );
  }
  throw new FlashError(
    "failed",
    `several boards found (${likely.map((p) => `${p.path}: ${p.why}`).join(", ")}): choose one with --port`,
  );
}

/** Resolves a board name (`uno`, `arduino-uno`, ...) to its preset. */
export function boardPreset(board: FlashBoardName): BoardPreset {
  const key = board.replace(/^arduino-/, "") as keyof typeof BOARD_PRESETS;
  const preset = BOARD_PRESETS[key];
  if (!preset) {
    throw new FlashError(
      "failed",
      `unknown board "${board}" (known: ${Object.keys(BOARD_PRESETS).join(", ")})`,
    );
  }
  return preset;
}

/** avrdude's arguments for a preset: `-D` keeps the bootloader's own erase-per-page, as the Arduino IDE does. */
export function avrdudeArgs(
  preset: BoardPreset,
  options: Pick<FlashOptions, "hex" | "baudRate" | "verify"> & { port: string },
): string[] {
  const args = [
    "-c",
    preset.programmer,
    "-p",
    preset.part,
    "-P",
    options.port,
    "-b",
    String(options.baudRate ?? preset.baudRate),
    "-D",
  ];
  if (options.verify === false) args.push("-V");
  args.push("-U", `flash:w:${options.hex}:i`);
  return args;
}

/** Turns avrdude's output into a one-line explanation. */
export function explainAvrdudeFailure(
  output: string,
  options: { port: string; board: FlashBoardName },
): FlashError {
  const { port, board } = options;
  const preset = boardPreset(board);
  const has = (re: RegExp) => re.test(output);
  if (has(/cannot open port[^\n]*(No such file|No such device)/i)) {
    return new FlashError(
      "port-not-found",
      `port ${port} not found: is the board plugged in? (ganglion boards)`,
      output,
    );
  }
  if (
    has(/cannot open port[^\n]*(busy|Resource temporarily unavailable)/i) ||
    has(/Device or resource busy/i)
  ) {
    return new FlashError(
      "port-busy",
      `port ${port} is busy: another program (a serial monitor, the hub) has it open; close it and retry`,
      output,
    );
  }
  if (has(/cannot open port[^\n]*Permission denied/i)) {
    return new FlashError(
      "permission",
      `no permission to open ${port}: add yourself to the dialout group (sudo usermod -aG dialout $USER) and log in again`,
      output,
    );
  }
  const sig = /device signature = 0x([0-9a-f]{6})/i.exec(output);
  if (
    has(/expected signature for/i) ||
    has(/signature does not match/i) ||
    has(/Invalid device signature/i)
  ) {
    const got = sig ? sig[1]!.toUpperCase().replace(/(..)(?=.)/g, "$1 ") : "an unexpected signature";
    return new FlashError(
      "wrong-signature",
      `wrong signature: the board reports ${got}, expected ${preset.signature} for ${preset.label}: pick the right --board`,
      output,
    );
  }
  if (has(/verification (mismatch|error)/i) || has(/failed verification/i)) {
    return new FlashError(
      "verify-failed",
      "verification failed: the flash read back differs from the hex (try again; a failing board may need a new chip)",
      output,
    );
  }
  if (
    has(/not in sync/i) ||
    has(/programmer is not responding/i) ||
    has(/stk500v2_(getsync|ReceiveMessage)/i) ||
    has(/timeout/i) ||
    has(/initialization failed/i) ||
    has(/unable to set parameter/i)
  ) {
    return new FlashError(
      "no-answer",
      `no answer from the bootloader on ${port}: check --board (${board} expects ${preset.programmer} at ${preset.baudRate} baud), press reset, or the board has no bootloader`,
      output,
    );
  }
  const last = output
    .split("\n")
    .map((l) => /avrdude error:\s*(\S.*)$/.exec(l.trim())?.[1])
    .filter((l) => l !== undefined)
    .pop();
  return new FlashError("failed", `avrdude failed${last ? `: ${last}` : ""}`, output);
}

/**
 * Flashes `hex` onto the board at `port` (by default the only Arduino found on USB) with avrdude, using the board's preset (Uno/Nano: STK500v1 `-c arduino` at
 * 115200 baud, old-bootloader Nano at 57600, Mega: STK500v2 `-c wiring` at 115200), and verifies it.
 *
 * Checks the HEX file and its size against the board before opening the port. Reports progress through
 * `onProgress`. Rejects with a {@link FlashError} whose message is one line a user can act on (port busy, no answer
 * from the bootloader, wrong signature, hex too large, ...) and whose `output` keeps avrdude's full text.
 */
export async function flashBoard(options: FlashOptions): Promise<FlashResult> {
  const preset = boardPreset(options.board);
  let text: string;
  try {
    text = await readFile(options.hex, "utf8");
  } catch (error) {
    throw new FlashError("bad-hex", `cannot read ${options.hex}: ${(error as Error).message}`);
  }
  let image: ReturnType<typeof parseIntelHex>;
  try {
    image = parseIntelHex(text);
  } catch (error) {
    throw new FlashError(
      "bad-hex",
      `${options.hex} is not a valid Intel HEX file: ${(error as Error).message}`,
    );
  }
  if (image.end > preset.maxSketchBytes) {
    throw new FlashError(
      "too-large",
      `hex too large: ${options.hex} needs ${image.end} bytes, the ${preset.label} has room for ${preset.maxSketchBytes}`,
    );
  }
  const port = options.port ?? pickArduinoPort(await listPorts());
  const args = avrdudeArgs(preset, { ...options, port });
  const command = [options.avrdude ?? "avrdude", ...args];
  const started = performance.now();
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(command[0]!, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let phase: FlashProgress["phase"] | undefined;
    let hashes = 0;
    const onText = (chunk: Buffer) => {
      const s = chunk.toString();
      out += s;
      options.onOutput?.(s);
      if (!options.onProgress) return;
      // avrdude draws "Writing | ####...#### | 100% 1.23 s": 50 hashes, written as the phase advances.
      for (const part of s.split(/(Reading \||Writing \|)/)) {
        if (part === "Reading |" || part === "Writing |") {
          phase = part.startsWith("R") ? "reading" : "writing";
          hashes = 0;
          options.onProgress({ phase, percent: 0 });
          continue;
        }
        if (!phase) continue;
        const barEnd = part.indexOf("|");
        const n = (barEnd >= 0 ? part.slice(0, barEnd) : part).split("#").length - 1;
        if (n > 0) {
          hashes = Math.min(50, hashes + n);
          options.onProgress({ phase, percent: hashes * 2 });
        }
        if (barEnd >= 0) phase = undefined;
      }
    };
    child.stdout.on("data", onText);
    child.stderr.on("data", onText);
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      setTimeout(
        () => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"),
        2000,
      ).unref();
      reject(
        new FlashError(
          "timeout",
          `avrdude did not finish within ${(options.timeoutMs ?? 120_000) / 1000} s`,
          out,
        ),
      );
    }, options.timeoutMs ?? 120_000);
    child.on("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        error.code === "ENOENT"
          ? new FlashError(
              "avrdude-missing",
              `${command[0]} not found: install it (sudo apt-get install avrdude)`,
            )
          : new FlashError("failed", `cannot run ${command[0]}: ${error.message}`),
      );
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(explainAvrdudeFailure(out, { port, board: options.board }));
    });
  });
  const verified = options.verify !== false && !/verification mismatch/i.test(output);
  return { bytes: image.bytes, verified, durationMs: performance.now() - started, command };
}
