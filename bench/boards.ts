/**
 * Benchmarks of the emulated Arduino (simulator/boards): emulation speed of a busy board unthrottled, the CPU an
 * idle board costs in real time, and how long the real avrdude takes to flash the emulated Uno through its pty.
 *
 *   npx tsx bench/boards.ts [--json]        (also: npm run bench -- boards)
 *
 * The table goes to stdout; with --json, one `{"suite":"boards","bench","metric","value","unit"}` line per figure.
 * Parts that need a missing Debian package (avr-gcc, avrdude, socat, arduino-core-avr) are skipped with a note.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type FlashError, flashBoard } from "../hub/flash.ts";
import { AvrBoard } from "../simulator/boards/avr-board.ts";
import { startEmulatedBoard } from "../simulator/boards/emulated-board.ts";
import type { McuName } from "../simulator/boards/mcu.ts";

const root = join(import.meta.dirname, "..");
const DIST = join(root, "firmware/arduino/dist");
const FIXTURE = join(root, "test/simulator/fixtures/board-test.c");
const OPTIBOOT = "/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot_atmega328.hex";
const MEGA_BOOT = "/usr/share/arduino/hardware/arduino/avr/bootloaders/stk500v2/stk500boot_v2_mega2560.hex";

interface Row {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  /** How the table shows it. */
  shown: string;
}

const has = (command: string) => {
  const r = spawnSync(command, ["--version"], { stdio: "ignore" });
  return !(r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT");
};

/** Builds the test fixture (a busy loop on command 'p') when avr-gcc is there. */
function fixtureHex(mcu: McuName, dir: string): string | undefined {
  if (!has("avr-gcc") || !has("avr-objcopy")) return undefined;
  const elf = join(dir, `${mcu}.elf`);
  const hex = join(dir, `${mcu}.hex`);
  const cc = spawnSync("avr-gcc", [`-mmcu=${mcu}`, "-DF_CPU=16000000UL", "-Os", "-o", elf, FIXTURE]);
  if (cc.status !== 0) return undefined;
  if (spawnSync("avr-objcopy", ["-O", "ihex", "-R", ".eeprom", elf, hex]).status !== 0) return undefined;
  return readFileSync(hex, "utf8");
}

/** A busy board, unthrottled, on this thread: emulated seconds per wall second. */
function busy(
  mcu: McuName,
  firmware: { hex?: string; bootloader?: string; command?: string },
  wallMs: number,
) {
  const board = new AvrBoard({ mcu, ...firmware });
  board.run(1_600_000);
  if (firmware.command) {
    board.receive(Buffer.from(firmware.command));
    board.run(160_000);
  }
  board.run(16_000_000); // warm up the JIT
  const c0 = board.cycles;
  const i0 = board.stats.instructions;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < wallMs) {
    board.run(80_000);
    t = performance.now();
  }
  const wall = (t - t0) / 1000;
  if (board.isSleeping) throw new Error("the busy benchmark board went to sleep");
  return {
    xRealtime: (board.cycles - c0) / board.spec.frequencyHz / wall,
    mips: (board.stats.instructions - i0) / wall / 1e6,
  };
}

/** CPU this process spends per wall second while an idle board runs in real time in its worker. */
async function idle(hex: string, seconds: number) {
  const board = await startEmulatedBoard({ mcu: "uno", hex });
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const s0 = await board.stats();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const cpu = process.cpuUsage(cpu0);
    const wall = (performance.now() - t0) / 1000;
    const s1 = await board.stats();
    const cycles = s1.cycles - s0.cycles;
    return {
      cpuUsPerS: (cpu.user + cpu.system) / wall,
      sleptFraction: (s1.sleepCycles - s0.sleepCycles) / cycles,
      instructionsPerS: (s1.instructions - s0.instructions) / (s1.seconds - s0.seconds),
      emulatedPerWall: (s1.seconds - s0.seconds) / wall,
    };
  } finally {
    await board.stop();
  }
}

/** Flashes `hex` with the real avrdude through the pty of an emulated board running `bootloader`. */
async function flash(board: "uno" | "mega", bootloader: string, hex: string) {
  const emulated = await startEmulatedBoard({ mcu: board, bootloader, pty: true });
  try {
    await new Promise((resolve) => setTimeout(resolve, 700));
    const attempt = () => flashBoard({ board, port: emulated.ptyPath!, hex, timeoutMs: 60_000 });
    // On a starved host the first STK500 sync can misalign (see test/simulator/flash.test.ts): one retry, counted.
    let retries = 0;
    const result = await attempt().catch((error: FlashError) => {
      if (error.reason !== "no-answer") throw error;
      retries++;
      return attempt();
    });
    return { ms: result.durationMs, bytes: result.bytes, retries };
  } finally {
    await emulated.stop();
  }
}

/** Runs the boards suite; prints the table (or JSON lines with `json`). */
export async function run(options: { json: boolean }): Promise<void> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const add = (bench: string, metric: string, value: number, unit: string, shown: string) =>
    rows.push({ bench, metric, value, unit, shown });
  const dir = mkdtempSync(join(tmpdir(), "ganglion-bench-boards-"));
  try {
    for (const mcu of ["atmega328p", "atmega2560"] as const) {
      const fixture = fixtureHex(mcu, dir);
      let firmware: { hex?: string; bootloader?: string; command?: string } | undefined;
      let what = "";
      if (fixture) {
        firmware = { hex: fixture, command: "c" };
        what = "test fixture counting loop";
      }
      if (!firmware) {
        notes.push(`busy ${mcu}: skipped (apt-get install gcc-avr avr-libc binutils-avr)`);
        continue;
      }
      const r = busy(mcu, firmware, 3000);
      add(`busy_${mcu}`, "emulated_s_per_s", r.xRealtime, "per_s", `${r.xRealtime.toFixed(2)}× real time`);
      add(
        `busy_${mcu}`,
        "instructions_per_s",
        r.mips * 1e6,
        "per_s",
        `${r.mips.toFixed(1)} M instr/s (${what})`,
      );
    }

    const uno = join(DIST, "ganglion-uno.hex");
    const idleHex = existsSync(uno) ? uno : fixtureHex("atmega328p", dir);
    if (idleHex) {
      const r = await idle(idleHex, 5);
      const label = existsSync(uno) ? "ganglion-uno.hex" : "test fixture";
      add(
        "idle_uno",
        "cpu_us_per_s",
        r.cpuUsPerS,
        "us",
        `${(r.cpuUsPerS / 1e4).toFixed(2)} % of a core (${label})`,
      );
      // Table only: DESIGN.md's JSON units have no ratio.
      notes.push(`idle_uno: the CPU slept ${(r.sleptFraction * 100).toFixed(2)} % of the emulated cycles`);
      add(
        "idle_uno",
        "instructions_per_s",
        r.instructionsPerS,
        "per_s",
        `${Math.round(r.instructionsPerS)} instr per emulated s`,
      );
    } else {
      notes.push("idle: skipped (no firmware/arduino/dist/ganglion-uno.hex and no avr-gcc)");
    }

    const tools = has("avrdude") && has("socat");
    const jobs: ["uno" | "mega", string, string][] = [
      ["uno", OPTIBOOT, join(DIST, "ganglion-uno.hex")],
      ["mega", MEGA_BOOT, join(DIST, "ganglion-mega.hex")],
    ];
    for (const [board, bootloader, hex] of jobs) {
      if (!tools || !existsSync(bootloader) || !existsSync(hex)) {
        notes.push(`flash ${board}: skipped (apt-get install avrdude socat arduino-core-avr; needs ${hex})`);
        continue;
      }
      const r = await flash(board, bootloader, hex);
      const retried = r.retries > 0 ? " (after one retry: host starved)" : "";
      add(
        `flash_${board}`,
        "ms",
        r.ms,
        "ms",
        `${(r.ms / 1000).toFixed(2)} s for ${r.bytes} bytes, verified${retried}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (options.json) {
    for (const r of rows) {
      const value = Number(r.value.toPrecision(6));
      console.log(JSON.stringify({ suite: "boards", bench: r.bench, metric: r.metric, value, unit: r.unit }));
    }
    for (const n of notes) console.error(`bench boards: ${n}`);
    return;
  }
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  console.log(`boards — emulated Arduino (avr8js), ${cpus().length} cores, ${cpu}, Node ${process.version}`);
  const w = Math.max(...rows.map((r) => `${r.bench} ${r.metric}`.length)) + 2;
  for (const r of rows) console.log(`  ${`${r.bench} ${r.metric}`.padEnd(w)}${r.shown}`);
  for (const n of notes) console.log(`  ${n}`);
  console.log("  targets: busy ≥ 1.5× real time per board on one core; idle < 5 % of a core; flash ≤ 8 s");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ json: process.argv.includes("--json") });
}
