/**
 * I2C/SPI sensors through the Linux Industrial I/O subsystem, e.g. a BME280 bound by the `bmp280` driver
 * (`dtoverlay=i2c-sensor,bme280` on a Pi). Each device is `sys/bus/iio/devices/iio:deviceN/` with a `name` file and
 * one file per channel.
 *
 * Scaling, from the kernel's IIO ABI (Documentation/ABI/testing/sysfs-bus-iio):
 * - `in_<channel>_input` is already scaled: `in_temp_input` in milli °C, `in_humidityrelative_input` in milli
 *   percent, `in_pressure_input` in kilopascal (the BME280 driver prints a fraction, e.g. `100.812`).
 * - Without `_input`, the processed value is `(in_<channel>_raw + in_<channel>_offset) * in_<channel>_scale` (offset
 *   defaults to 0, scale to 1), in the same units as `_input`.
 *
 * The agent publishes °C, %RH and hPa.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Reading, SensorReadError } from "./reading.ts";

export type IioChannel = "temp" | "humidityrelative" | "pressure";

/** Converts an IIO processed value (ABI units) to the unit the agent publishes. */
const toPublished: Record<IioChannel, { factor: number; unit: string }> = {
  temp: { factor: 1 / 1000, unit: "°C" },
  humidityrelative: { factor: 1 / 1000, unit: "%RH" },
  pressure: { factor: 10, unit: "hPa" },
};

function devicesDir(ioRoot: string): string {
  return join(ioRoot, "sys/bus/iio/devices");
}

async function readNumber(file: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SensorReadError("io", `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const value = Number(text.trim());
  if (text.trim() === "" || !Number.isFinite(value)) {
    throw new SensorReadError("parse", `${file} holds ${JSON.stringify(text.trim())}, not a number`);
  }
  return value;
}

/**
 * Finds the directory of an IIO device given as `iio:deviceN` or by its `name` (first match in numeric order).
 * Device numbers depend on probe order, so names are the stable choice.
 */
export async function resolveIioDevice(ioRoot: string, device: string): Promise<string> {
  const dir = devicesDir(ioRoot);
  if (/^iio:device\d+$/.test(device)) return join(dir, device);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    throw new SensorReadError("io", `no IIO devices (${dir} missing): is the I2C overlay loaded?`);
  }
  const devices = entries
    .filter((e) => /^iio:device\d+$/.test(e))
    .sort((a, b) => Number(a.slice(10)) - Number(b.slice(10)));
  for (const entry of devices) {
    const name = await readFile(join(dir, entry, "name"), "utf8").catch(() => "");
    if (name.trim() === device) return join(dir, entry);
  }
  throw new SensorReadError("io", `no IIO device named "${device}" under ${dir}`);
}

/** Reads one channel of an IIO device directory and converts it (see the module doc for units). */
export async function readIioChannel(deviceDir: string, channel: IioChannel): Promise<Reading> {
  const base = join(deviceDir, `in_${channel}`);
  let processed = await readNumber(`${base}_input`);
  if (processed === undefined) {
    const raw = await readNumber(`${base}_raw`);
    if (raw === undefined) throw new SensorReadError("io", `${deviceDir} has no in_${channel}_input or _raw`);
    const offset = (await readNumber(`${base}_offset`)) ?? 0;
    const scale = (await readNumber(`${base}_scale`)) ?? 1;
    processed = (raw + offset) * scale;
  }
  const { factor, unit } = toPublished[channel];
  // Round away float noise from the unit conversion (1e-6 of the unit is below any of these sensors' resolution).
  return { value: Math.round(processed * factor * 1e6) / 1e6, unit };
}

/** An IIO channel reader that remembers which device directory a name resolved to, re-resolving after a failure. */
export class IioReader {
  private dir: string | undefined;
  constructor(
    private readonly ioRoot: string,
    private readonly device: string,
    private readonly channel: IioChannel,
  ) {}

  async read(): Promise<Reading> {
    this.dir ??= await resolveIioDevice(this.ioRoot, this.device);
    try {
      return await readIioChannel(this.dir, this.channel);
    } catch (err) {
      this.dir = undefined;
      throw err;
    }
  }
}
