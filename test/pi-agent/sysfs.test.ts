import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { systemClock } from "../../firmware/pi-agent/src/clock.ts";
import { SysfsGpio } from "../../firmware/pi-agent/src/gpio.ts";
import { IioReader, readIioChannel } from "../../firmware/pi-agent/src/sysfs/iio.ts";
import { parseW1Slave, readDs18b20 } from "../../firmware/pi-agent/src/sysfs/onewire.ts";
import { SensorReadError } from "../../firmware/pi-agent/src/sysfs/reading.ts";
import { crc8, createVirtualSysfs, w1SlaveText } from "../../simulator/pi/virtual-sysfs.ts";
import { tempDir, W1_ADDRESS, waitFor } from "./helpers.ts";

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function rejection(fn: () => unknown): SensorReadError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SensorReadError) return err;
    throw err;
  }
  throw new Error("did not throw");
}

describe("DS18B20 w1_slave parsing", () => {
  // A capture from a real DS18B20 (the kernel's w1-therm output).
  const real = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n";

  it("reads millidegrees from a YES line", () => {
    expect(parseW1Slave(real)).toBe(23.125);
    expect(parseW1Slave(real.replace("t=23125", "t=-10062"))).toBe(-10.062);
  });

  it("rejects a NO CRC verdict", () => {
    const err = rejection(() => parseW1Slave(real.replace("YES", "NO")));
    expect(err.code).toBe("crc");
  });

  it("rejects the 85 °C power-on scratchpad but accepts a real 85 °C", () => {
    const powerOn = "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n";
    expect(rejection(() => parseW1Slave(powerOn)).code).toBe("power-on");
    expect(parseW1Slave(w1SlaveText(85))).toBe(85);
  });

  it("rejects truncated content", () => {
    expect(rejection(() => parseW1Slave("")).code).toBe("parse");
    expect(rejection(() => parseW1Slave(real.split("\n")[0] as string)).code).toBe("parse");
  });

  it("the virtual sensor's CRC matches the kernel's on a real capture", () => {
    expect(crc8([0x72, 0x01, 0x4b, 0x46, 0x7f, 0xff, 0x0e, 0x10])).toBe(0x57);
    const text = w1SlaveText(23.125);
    expect(text).toMatch(/^72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n$/);
    expect(parseW1Slave(w1SlaveText(-0.5))).toBe(-0.5);
    const bad = w1SlaveText(21, true);
    expect(bad).toContain(" NO\n");
    expect(rejection(() => parseW1Slave(bad)).code).toBe("crc");
  });

  it("reads through the virtual tree, and reports a missing sensor as an io error", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(t.dir);
    cleanups.push(() => sys.close());
    sys.addDs18b20(W1_ADDRESS, 19.5);
    expect(await readDs18b20(t.dir, W1_ADDRESS)).toEqual({ value: 19.5, unit: "°C" });
    sys.setCrcError(W1_ADDRESS, true);
    await expect(readDs18b20(t.dir, W1_ADDRESS)).rejects.toMatchObject({ code: "crc" });
    await expect(readDs18b20(t.dir, "28-000000000000")).rejects.toMatchObject({ code: "io" });
  });
});

describe("IIO channels", () => {
  it("converts _input files from the kernel ABI units to °C, %RH and hPa", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    writeFileSync(join(t.dir, "in_temp_input"), "23450\n");
    writeFileSync(join(t.dir, "in_humidityrelative_input"), "45123\n");
    writeFileSync(join(t.dir, "in_pressure_input"), "100.812345678\n");
    expect(await readIioChannel(t.dir, "temp")).toEqual({ value: 23.45, unit: "°C" });
    expect(await readIioChannel(t.dir, "humidityrelative")).toEqual({ value: 45.123, unit: "%RH" });
    expect(await readIioChannel(t.dir, "pressure")).toEqual({ value: 1008.123457, unit: "hPa" });
  });

  it("falls back to (raw + offset) * scale", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    writeFileSync(join(t.dir, "in_temp_raw"), "1000\n");
    writeFileSync(join(t.dir, "in_temp_offset"), "-500\n");
    writeFileSync(join(t.dir, "in_temp_scale"), "10\n");
    expect((await readIioChannel(t.dir, "temp")).value).toBe(5);
    writeFileSync(join(t.dir, "in_temp_raw"), "garbage\n");
    await expect(readIioChannel(t.dir, "temp")).rejects.toMatchObject({ code: "parse" });
    await expect(readIioChannel(t.dir, "pressure")).rejects.toMatchObject({ code: "io" });
  });

  it("finds a device by name and follows it when it is renumbered", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(t.dir);
    cleanups.push(() => sys.close());
    sys.addIio("ads1015");
    const dev = sys.addIio("bme280", { temp: 21.5, humidityrelative: 40, pressure: 1013.25 });
    expect(dev).toBe("iio:device1");
    const reader = new IioReader(t.dir, "bme280", "pressure");
    expect((await reader.read()).value).toBe(1013.25);
    const base = join(t.dir, "sys/bus/iio/devices");
    // Renumbered after a reboot: device1 vanishes, bme280 is now device5.
    renameSync(join(base, "iio:device1"), join(base, "iio:device5"));
    await expect(reader.read()).rejects.toBeInstanceOf(SensorReadError);
    expect((await reader.read()).value).toBe(1013.25);
    await expect(new IioReader(t.dir, "bmp180", "temp").read()).rejects.toThrow(
      /no IIO device named "bmp180"/,
    );
  });
});

describe("sysfs GPIO", () => {
  it("exports through the virtual kernel, reads inputs and drives outputs", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(t.dir);
    cleanups.push(() => sys.close());
    const gpio = new SysfsGpio(t.dir, { clock: systemClock });
    sys.setGpioInput(17, 1);
    await gpio.input(17);
    expect(sys.gpioDirection(17)).toBe("in");
    expect(await gpio.read(17)).toBe(1);
    sys.setGpioInput(17, 0);
    expect(await gpio.read(17)).toBe(0);

    await gpio.output(27, 1);
    expect(sys.gpioDirection(27)).toBe("out");
    expect(sys.readGpio(27)).toBe(1);
    await gpio.write(27, 0);
    expect(sys.readGpio(27)).toBe(0);
    await gpio.write(27, 1);
    expect(sys.readGpio(27)).toBe(1);
    // Regression: a second export of a live line (or a second change event of one write) reset it to an input.
    writeFileSync(join(t.dir, "sys/class/gpio/export"), "27");
    await new Promise((r) => setTimeout(r, 100));
    expect(sys.gpioDirection(27)).toBe("out");
    expect(sys.readGpio(27)).toBe(1);
  });

  it("times out with a clear error when export creates nothing", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    mkdirSync(join(t.dir, "sys/class/gpio"), { recursive: true });
    const gpio = new SysfsGpio(t.dir, { clock: systemClock, exportTimeoutMs: 100 });
    await expect(gpio.input(4)).rejects.toThrow(/gpio 4: gpio4\/ did not appear within 100 ms/);
  });

  it("virtual tree: reboot changes the boot id and unexports lines; drift moves values", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(t.dir);
    cleanups.push(() => sys.close());
    const bootId = () => readFileSync(join(t.dir, "proc/sys/kernel/random/boot_id"), "utf8");
    const before = bootId();
    const gpio = new SysfsGpio(t.dir, { clock: systemClock });
    await gpio.output(6, 1);
    sys.reboot();
    expect(bootId()).not.toBe(before);
    expect(sys.readGpio(6)).toBeUndefined();
    await gpio.output(6, 0); // the export watcher works again after the reboot
    expect(sys.readGpio(6)).toBe(0);

    sys.addDs18b20(W1_ADDRESS, 20);
    sys.startDrift(10);
    await waitFor(
      () =>
        parseW1Slave(readFileSync(join(t.dir, "sys/bus/w1/devices", W1_ADDRESS, "w1_slave"), "utf8")) !== 20,
      2000,
      "drift",
    );
  });
});
