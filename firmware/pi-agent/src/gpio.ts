/**
 * GPIO lines through the sysfs interface, `sys/class/gpio/`: writing N to `export` makes the kernel create `gpioN/`
 * with `direction` (`in`, `out`, or `low`/`high` to set an output and its level at once) and `value` (`0`/`1`).
 *
 * On recent Raspberry Pi kernels sysfs numbers are the chip base plus the BCM number (see `gpioBase` in the config).
 */
import { access, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "./clock.ts";
import { SensorReadError } from "./sysfs/reading.ts";

export type Level = 0 | 1;

/** A GPIO operation that failed (export refused, line busy, permission denied). */
export class GpioError extends Error {
  override readonly name = "GpioError";
  constructor(
    readonly gpio: number,
    message: string,
  ) {
    super(`gpio ${gpio}: ${message}`);
  }
}

export interface GpioOptions {
  clock: Clock;
  /** How long to wait for udev to create `gpioN/` (and fix its permissions) after an export. */
  exportTimeoutMs?: number;
}

/** How long to wait for `gpioN/` before writing the export again. */
const REEXPORT_MS = 250;

/** The sysfs GPIO class under an IO root. */
export class SysfsGpio {
  private readonly base: string;
  private readonly clock: Clock;
  private readonly exportTimeoutMs: number;

  constructor(ioRoot: string, opts: GpioOptions) {
    this.base = join(ioRoot, "sys/class/gpio");
    this.clock = opts.clock;
    this.exportTimeoutMs = opts.exportTimeoutMs ?? 2000;
  }

  private file(gpio: number, name: string): string {
    return join(this.base, `gpio${gpio}`, name);
  }

  /** Exports a line unless it already is, and waits until its `value` and `direction` files are writable. */
  async export(gpio: number): Promise<void> {
    const ready = () =>
      Promise.all([access(this.file(gpio, "value")), access(this.file(gpio, "direction"))]).then(
        () => true,
        () => false,
      );
    if (await ready()) return;
    try {
      await writeFile(join(this.base, "export"), String(gpio));
    } catch (err) {
      throw new GpioError(gpio, `export failed: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    const deadline = this.clock.monotonic() + this.exportTimeoutMs;
    let nextExport = this.clock.monotonic() + REEXPORT_MS;
    while (!(await ready())) {
      if (this.clock.monotonic() > deadline) {
        throw new GpioError(gpio, `gpio${gpio}/ did not appear within ${this.exportTimeoutMs} ms of export`);
      }
      if (this.clock.monotonic() > nextExport) {
        // Asking again is harmless (a kernel that has the line answers EBUSY) and covers an export that was not
        // seen: the simulator's virtual kernel watches the file, and two quick writes can reach it as one.
        nextExport = this.clock.monotonic() + REEXPORT_MS;
        await writeFile(join(this.base, "export"), String(gpio)).catch(() => undefined);
      }
      await new Promise<void>((r) => this.clock.setTimeout(r, 20));
    }
  }

  /** Makes the line an input. */
  async input(gpio: number): Promise<void> {
    await this.export(gpio);
    await this.writeAttr(gpio, "direction", "in");
  }

  /** Makes the line an output driven to `level` without a glitch (`low`/`high` set direction and value at once). */
  async output(gpio: number, level: Level): Promise<void> {
    await this.export(gpio);
    await this.writeAttr(gpio, "direction", level ? "high" : "low");
  }

  /** Reads the line's level. Throws {@link SensorReadError} so input sensors report it like any failed reading. */
  async read(gpio: number): Promise<Level> {
    let text: string;
    try {
      text = await readFile(this.file(gpio, "value"), "utf8");
    } catch (err) {
      throw new SensorReadError(
        "io",
        `cannot read gpio${gpio}/value: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
    const t = text.trim();
    if (t !== "0" && t !== "1")
      throw new SensorReadError("parse", `gpio${gpio}/value holds ${JSON.stringify(t)}`);
    return t === "1" ? 1 : 0;
  }

  /** Drives an output line. */
  async write(gpio: number, level: Level): Promise<void> {
    await this.writeAttr(gpio, "value", level ? "1" : "0");
  }

  private async writeAttr(gpio: number, attr: string, value: string): Promise<void> {
    try {
      await writeFile(this.file(gpio, attr), value);
    } catch (err) {
      throw new GpioError(
        gpio,
        `cannot write ${attr}=${value}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
  }
}
