/** Builds one reader per configured sensor, whatever its bus. */
import type { SensorConfig } from "./config.ts";
import type { SysfsGpio } from "./gpio.ts";
import { IioReader } from "./sysfs/iio.ts";
import { readDs18b20 } from "./sysfs/onewire.ts";
import type { Reading } from "./sysfs/reading.ts";

/** Reads a sensor once; rejects with a {@link SensorReadError} when the reading must not be published. */
export type SensorReader = () => Promise<Reading>;

/** What a sensor needs from the world: the IO root and the GPIO class (with its number base). */
export interface SensorIo {
  ioRoot: string;
  gpio: SysfsGpio;
  gpioBase: number;
}

/** Prepares the sensor's hardware (exports input lines) and returns its reader. */
export async function openSensor(sensor: SensorConfig, io: SensorIo): Promise<SensorReader> {
  switch (sensor.kind) {
    case "ds18b20":
      return () => readDs18b20(io.ioRoot, sensor.address);
    case "iio": {
      const reader = new IioReader(io.ioRoot, sensor.device, sensor.channel);
      return () => reader.read();
    }
    case "gpio-input": {
      const line = io.gpioBase + sensor.gpio;
      await io.gpio.input(line);
      return async () => {
        const level = await io.gpio.read(line);
        return { value: (level === 1) !== sensor.activeLow };
      };
    }
  }
}
