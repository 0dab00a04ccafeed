/** Builds one reader per configured sensor, whatever its bus. */
import type { SensorConfig } from "./config.ts";
import type { SysfsGpio } from "./gpio.ts";
import { IioReader } from "./sysfs/iio.ts";
import { readDs18b20 } from "./sysfs/onewire.ts";
import { type Reading, SensorReadError } from "./sysfs/reading.ts";

/** Reads a sensor once; rejects with a {@link SensorReadError} when the reading must not be published. */
export type SensorReader = () => Promise<Reading>;

/** What a sensor needs from the world: the IO root and the GPIO class (with its number base). */
export interface SensorIo {
  ioRoot: string;
  gpio: SysfsGpio;
  gpioBase: number;
}

/**
 * Prepares the sensor's hardware (exports input lines) and returns its reader. Never fails: when the preparation
 * fails (a line another program holds, a wrong `gpioBase`), the reader retries it at every sample and reports the
 * failure as a rejected reading, so one bad sensor does not keep the agent, or its other sensors, down.
 */
export function openSensor(sensor: SensorConfig, io: SensorIo): SensorReader {
  switch (sensor.kind) {
    case "ds18b20":
      return () => readDs18b20(io.ioRoot, sensor.address);
    case "iio": {
      const reader = new IioReader(io.ioRoot, sensor.device, sensor.channel);
      return () => reader.read();
    }
    case "gpio-input": {
      const line = io.gpioBase + sensor.gpio;
      let ready = false;
      return async () => {
        if (!ready) {
          try {
            await io.gpio.input(line);
          } catch (err) {
            throw new SensorReadError("io", (err as Error).message);
          }
          ready = true;
        }
        const level = await io.gpio.read(line);
        return { value: (level === 1) !== sensor.activeLow };
      };
    }
  }
}
