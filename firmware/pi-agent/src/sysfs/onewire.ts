/**
 * DS18B20 temperature sensors on the Linux 1-Wire bus (`w1-gpio` + `w1-therm`): one directory per slave under
 * `sys/bus/w1/devices/`, whose `w1_slave` file reads, after a ~750 ms conversion, two lines like
 *
 * ```
 * 72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
 * 72 01 4b 46 7f ff 0e 10 57 t=23125
 * ```
 *
 * The first line is the 9-byte scratchpad and the kernel's CRC verdict; the second gives the temperature in
 * millidegrees Celsius. A `NO` verdict means the bytes were corrupted on the wire: the reading is rejected.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Reading, SensorReadError } from "./reading.ts";

/** Path of a slave's `w1_slave` file under `ioRoot`. */
export function w1SlavePath(ioRoot: string, address: string): string {
  return join(ioRoot, "sys/bus/w1/devices", address, "w1_slave");
}

/**
 * Parses the content of a `w1_slave` file into degrees Celsius. Throws {@link SensorReadError} with code `crc` for a
 * `NO` verdict, `power-on` for the 85 °C power-on-reset scratchpad (a conversion that never ran), `parse` otherwise.
 */
export function parseW1Slave(text: string): number {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const crcLine = lines[0]?.match(/crc=([0-9a-f]{2}) (YES|NO)\s*$/i);
  if (!crcLine)
    throw new SensorReadError("parse", `no crc line in w1_slave: ${JSON.stringify(text.slice(0, 80))}`);
  if (crcLine[2]?.toUpperCase() !== "YES")
    throw new SensorReadError("crc", `1-Wire CRC check failed (crc=${crcLine[1]} NO)`);
  const t = lines[1]?.match(/t=(-?\d+)\s*$/);
  if (!t) throw new SensorReadError("parse", "no t= value in w1_slave");
  const milli = Number(t[1]);
  // 0x0550 = 85 °C with the power-on count-remain byte 0x0c: the sensor was read before any conversion finished.
  if (milli === 85000 && /^50 05 (?:[0-9a-f]{2} ){4}0c /i.test(lines[0] ?? "")) {
    throw new SensorReadError("power-on", "DS18B20 returned its power-on value (85 °C): no conversion ran");
  }
  return milli / 1000;
}

/** Reads one DS18B20 under `ioRoot` (°C). */
export async function readDs18b20(ioRoot: string, address: string): Promise<Reading> {
  let text: string;
  try {
    text = await readFile(w1SlavePath(ioRoot, address), "utf8");
  } catch (err) {
    throw new SensorReadError(
      "io",
      `cannot read ${address}/w1_slave: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  return { value: parseW1Slave(text), unit: "°C" };
}
