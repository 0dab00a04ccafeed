/**
 * A virtual Raspberry Pi sysfs tree in a directory, for running the real pi-agent with `ioRoot` pointing at it.
 *
 * ```ts
 * const sys = await createVirtualSysfs(dir);
 * sys.addDs18b20("28-0000075c2f2a", 21.5);     // sys/bus/w1/devices/28-.../w1_slave
 * sys.addIio("bme280", { temp: 22, humidityrelative: 40, pressure: 1013.25 }); // iio:device0
 * sys.setGpioInput(17, 1);                     // what the agent reads once it exports gpio17
 * sys.readGpio(27);                            // what the agent drove an output to
 * sys.setCrcError("28-0000075c2f2a", true);    // w1_slave now says "crc=.. NO"
 * await sys.close();
 * ```
 *
 * What it emulates of the kernel: `w1_slave` files with a real scratchpad and Dallas CRC-8 (so `YES` lines are
 * correct and `NO` lines are genuinely corrupted); IIO channel files in the kernel ABI's units; the GPIO class's
 * `export`/`unexport` (a watcher creates and removes `gpioN/`) and `direction` `low`/`high`; the kernel boot id (which
 * {@link VirtualSysfs.reboot} changes, so the agent reports `power-on`). Values are replaced atomically (write +
 * rename), as a sysfs read never sees half a value. Values are in the units the agent publishes (°C, %RH, hPa).
 */
import { randomUUID } from "node:crypto";
import {
  type FSWatcher,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

export type IioChannel = "temp" | "humidityrelative" | "pressure";

/** One value a sensor reads: a DS18B20 by address, or an IIO device's channel. */
export type SysfsValue = { w1: string } | { iio: string; channel: IioChannel };

/** A physical fault on a value: what the sensor reports given the true value (°C, %RH or hPa). */
export type ValueFault = (truth: number) => number;

export interface VirtualSysfs {
  /** The directory to use as the agent's `ioRoot`. */
  readonly root: string;
  /** Adds a DS18B20 (address like `28-0000075c2f2a`) reading `celsius`. */
  addDs18b20(address: string, celsius?: number): void;
  /** Sets a DS18B20's temperature (°C, resolution 1/16 °C as on the chip). */
  setTemperature(address: string, celsius: number): void;
  /** Makes a DS18B20's reads fail their CRC (`crc=.. NO`) until turned off. */
  setCrcError(address: string, on: boolean): void;
  /** Adds an IIO device with a `name` (e.g. `bme280`) and channel values; returns its directory name `iio:deviceN`. */
  addIio(name: string, values?: Partial<Record<IioChannel, number>>): string;
  /** Sets an IIO channel of a device given by name or `iio:deviceN` (°C, %RH or hPa). */
  setIio(device: string, channel: IioChannel, value: number): void;
  /** Sets the level an input line reads (remembered until the agent exports the line). */
  setGpioInput(gpio: number, level: 0 | 1): void;
  /** The level of a line (for outputs: what the agent drove it to), or undefined if it is not exported. */
  readGpio(gpio: number): 0 | 1 | undefined;
  /** The direction of an exported line (`in`/`out`), or undefined. */
  gpioDirection(gpio: number): "in" | "out" | undefined;
  /** The true value (°C, %RH or hPa), faults aside. */
  valueOf(target: SysfsValue): number;
  /**
   * Puts a physical fault on a value (or clears it with `undefined`): the file shows `fault(truth)` from now on,
   * rewritten at once and on every later change of the true value; calling it again with the same fault draws anew.
   */
  setValueFault(target: SysfsValue, fault: ValueFault | undefined): void;
  /** Random-walks every temperature and IIO value every `periodMs`, like a real room (until {@link close}). */
  startDrift(periodMs: number, random?: () => number): void;
  /** Simulates a reboot: a new kernel boot id, and every GPIO line unexported. */
  reboot(): void;
  /** Stops watchers and timers; the files stay. */
  close(): Promise<void>;
}

/** Dallas/Maxim 1-Wire CRC-8 (polynomial x^8 + x^5 + x^4 + 1, reflected 0x8c), as the kernel's w1_calc_crc8. */
export function crc8(bytes: readonly number[]): number {
  let crc = 0;
  for (const byte of bytes) {
    let b = byte;
    for (let i = 0; i < 8; i++) {
      const mix = (crc ^ b) & 1;
      crc >>= 1;
      if (mix) crc ^= 0x8c;
      b >>= 1;
    }
  }
  return crc;
}

const hex = (bytes: readonly number[]) => bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ");

/** The `w1_slave` text a DS18B20 at `celsius` produces; with `corrupt`, a byte flipped on the wire and `NO`. */
export function w1SlaveText(celsius: number, corrupt = false): string {
  const raw = Math.max(-880, Math.min(2000, Math.round(celsius * 16))); // -55..125 °C, 1/16 °C steps
  const u = raw & 0xffff;
  const pad = [u & 0xff, u >> 8, 0x4b, 0x46, 0x7f, 0xff, (0x10 - (raw & 0x0f)) & 0xff, 0x10];
  const crc = crc8(pad);
  const seen = corrupt ? [(pad[0] as number) ^ 0x5a, ...pad.slice(1)] : pad;
  const verdict = crc8(seen) === crc ? "YES" : "NO";
  const seenRaw = ((((seen[1] as number) << 8) | (seen[0] as number)) << 16) >> 16;
  const milli = Math.trunc((seenRaw * 1000) / 16);
  const bytes = hex([...seen, crc]);
  return `${bytes} : crc=${crc.toString(16).padStart(2, "0")} ${verdict}\n${bytes} t=${milli}\n`;
}

/** IIO ABI units from published units: milli °C, milli %RH, kPa. */
function iioText(channel: IioChannel, value: number): string {
  if (channel === "pressure") return `${(value / 10).toFixed(6)}\n`;
  return `${Math.round(value * 1000)}\n`;
}

/** Lays out an empty Pi sysfs tree under `dir` (created if needed) and returns its controls. */
export async function createVirtualSysfs(dir: string): Promise<VirtualSysfs> {
  const w1 = join(dir, "sys/bus/w1/devices");
  const iio = join(dir, "sys/bus/iio/devices");
  const gpioDir = join(dir, "sys/class/gpio");
  for (const d of [w1, iio, gpioDir, join(dir, "proc/sys/kernel/random")]) mkdirSync(d, { recursive: true });

  const put = (file: string, text: string) => {
    const tmp = `${file}.vtmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  };
  put(join(dir, "proc/sys/kernel/random/boot_id"), `${randomUUID()}\n`);

  const temps = new Map<string, { celsius: number; crcError: boolean }>();
  const iioDevices = new Map<string, { name: string; values: Partial<Record<IioChannel, number>> }>();
  const pendingInputs = new Map<number, 0 | 1>();
  const timers: NodeJS.Timeout[] = [];
  const faults = new Map<string, ValueFault>();
  const faultKey = (target: SysfsValue) =>
    "w1" in target ? `w1:${target.w1}` : `iio:${target.iio}:${target.channel}`;

  const writeW1 = (address: string) => {
    const t = temps.get(address);
    const fault = faults.get(`w1:${address}`);
    const shown = fault ? fault(t?.celsius ?? 0) : t?.celsius;
    if (t && shown !== undefined) put(join(w1, address, "w1_slave"), w1SlaveText(shown, t.crcError));
  };
  const lineDir = (gpio: number) => join(gpioDir, `gpio${gpio}`);
  /**
   * The kernel's side of a line's files. Writing `high`/`low` to `direction` makes the line an output at that level;
   * a later write to `value` wins. The files are only read here, never rewritten (rewriting a file the agent is
   * writing at the same moment loses its write): `value` files this module writes end with "\n" and the agent's do
   * not, so a newline means the agent has not written `value` since the export, and otherwise the newer file (by
   * mtime) wins. Returns undefined for a line that is not exported.
   */
  const readLine = (gpio: number): { direction: "in" | "out"; level: 0 | 1 } | undefined => {
    const d = lineDir(gpio);
    try {
      const direction = readFileSync(join(d, "direction"), "utf8").trim();
      const value = readFileSync(join(d, "value"), "utf8");
      if (direction === "high" || direction === "low") {
        const dirWritten = statSync(join(d, "direction"), { bigint: true }).mtimeNs;
        const valueWritten = statSync(join(d, "value"), { bigint: true }).mtimeNs;
        if (value.endsWith("\n") || dirWritten > valueWritten) {
          return { direction: "out", level: direction === "high" ? 1 : 0 };
        }
      }
      return { direction: direction === "in" ? "in" : "out", level: value.trim() === "1" ? 1 : 0 };
    } catch {
      return undefined;
    }
  };
  const exported = new Set<number>();
  const exportLine = (gpio: number) => {
    if (!Number.isInteger(gpio) || gpio < 0) return;
    // Like the kernel (EBUSY), an exported line is left alone; one write can also raise several change events.
    if (exported.has(gpio)) return;
    exported.add(gpio);
    const d = lineDir(gpio);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "direction"), "in\n");
    writeFileSync(join(d, "value"), `${pendingInputs.get(gpio) ?? 0}\n`);
  };
  const unexportLine = (gpio: number) => {
    exported.delete(gpio);
    rmSync(lineDir(gpio), { recursive: true, force: true });
  };
  const onWrite = (file: string, act: (gpio: number) => void) => {
    let text = "";
    try {
      text = readFileSync(file, "utf8").trim();
    } catch {
      return; // removed by reboot()
    }
    if (text !== "") act(Number(text));
  };
  const watchers: FSWatcher[] = [];
  /** The kernel side of `export`/`unexport`: a write to either creates or removes `gpioN/`. */
  const watchGpioClass = () => {
    writeFileSync(join(gpioDir, "export"), "");
    writeFileSync(join(gpioDir, "unexport"), "");
    watchers.push(
      watch(join(gpioDir, "export"), () => onWrite(join(gpioDir, "export"), exportLine)),
      watch(join(gpioDir, "unexport"), () => onWrite(join(gpioDir, "unexport"), unexportLine)),
    );
  };
  watchGpioClass();

  const findIio = (
    device: string,
  ): [string, { name: string; values: Partial<Record<IioChannel, number>> }] => {
    const byDir = iioDevices.get(device);
    if (byDir) return [device, byDir];
    for (const entry of iioDevices) if (entry[1].name === device) return entry;
    throw new Error(`no virtual IIO device "${device}"`);
  };

  const sys: VirtualSysfs = {
    root: dir,
    addDs18b20(address, celsius = 20) {
      if (!/^28-[0-9a-f]{12}$/.test(address))
        throw new Error(`"${address}" is not a DS18B20 address (28-xxxxxxxxxxxx)`);
      mkdirSync(join(w1, address), { recursive: true });
      temps.set(address, { celsius, crcError: false });
      writeW1(address);
    },
    setTemperature(address, celsius) {
      const t = temps.get(address);
      if (!t) throw new Error(`no virtual DS18B20 "${address}"`);
      t.celsius = celsius;
      writeW1(address);
    },
    setCrcError(address, on) {
      const t = temps.get(address);
      if (!t) throw new Error(`no virtual DS18B20 "${address}"`);
      t.crcError = on;
      writeW1(address);
    },
    addIio(name, values = {}) {
      const devDir = `iio:device${iioDevices.size}`;
      mkdirSync(join(iio, devDir), { recursive: true });
      put(join(iio, devDir, "name"), `${name}\n`);
      iioDevices.set(devDir, { name, values: {} });
      for (const [channel, value] of Object.entries(values)) sys.setIio(devDir, channel as IioChannel, value);
      return devDir;
    },
    setIio(device, channel, value) {
      const [devDir, dev] = findIio(device);
      dev.values[channel] = value;
      const fault = faults.get(`iio:${devDir}:${channel}`) ?? faults.get(`iio:${dev.name}:${channel}`);
      put(join(iio, devDir, `in_${channel}_input`), iioText(channel, fault ? fault(value) : value));
    },
    valueOf(target) {
      if ("w1" in target) {
        const t = temps.get(target.w1);
        if (!t) throw new Error(`no virtual DS18B20 "${target.w1}"`);
        return t.celsius;
      }
      const value = findIio(target.iio)[1].values[target.channel];
      if (value === undefined)
        throw new Error(`virtual IIO device "${target.iio}" has no ${target.channel} channel`);
      return value;
    },
    setValueFault(target, fault) {
      const truth = sys.valueOf(target); // throws for an unknown value
      if (fault === undefined) faults.delete(faultKey(target));
      else faults.set(faultKey(target), fault);
      if ("w1" in target) writeW1(target.w1);
      else sys.setIio(target.iio, target.channel, truth);
    },
    setGpioInput(gpio, level) {
      pendingInputs.set(gpio, level);
      try {
        statSync(lineDir(gpio));
      } catch {
        return; // not exported yet: the level applies at export
      }
      put(join(lineDir(gpio), "value"), `${level}\n`);
    },
    readGpio(gpio) {
      return readLine(gpio)?.level;
    },
    gpioDirection(gpio) {
      return readLine(gpio)?.direction;
    },
    startDrift(periodMs, random = Math.random) {
      const step = (v: number, size: number) => v + (random() - 0.5) * size;
      timers.push(
        setInterval(() => {
          for (const [address, t] of temps) sys.setTemperature(address, step(t.celsius, 0.25));
          for (const [devDir, dev] of iioDevices) {
            const sizes: Record<IioChannel, number> = { temp: 0.1, humidityrelative: 0.5, pressure: 0.2 };
            for (const [ch, v] of Object.entries(dev.values) as [IioChannel, number][]) {
              sys.setIio(devDir, ch, step(v, sizes[ch]));
            }
          }
        }, periodMs),
      );
    },
    reboot() {
      put(join(dir, "proc/sys/kernel/random/boot_id"), `${randomUUID()}\n`);
      for (const w of watchers.splice(0)) w.close();
      exported.clear();
      rmSync(gpioDir, { recursive: true, force: true });
      mkdirSync(gpioDir, { recursive: true });
      watchGpioClass();
    },
    async close() {
      for (const w of watchers.splice(0)) w.close();
      for (const t of timers.splice(0)) clearInterval(t);
    },
  };
  return sys;
}
