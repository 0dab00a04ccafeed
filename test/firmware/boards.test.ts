/**
 * The Nano and Mega builds on their emulated MCUs: what differs from the Uno (pin tables, ADC channels 6-15, the
 * 2560's extra timers for PWM and servo, EXTENDED_ANALOG for pins above 15), through firmata-io.
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dutyCycle, type FirmataBoard, FirmwareRig, parseHeartbeat, RegisterDevice } from "./rig.ts";

const OPTIBOOT = "/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot_atmega328.hex";
const hasOptiboot = existsSync(OPTIBOOT);
if (!hasOptiboot) {
  console.warn(
    `test/firmware/boards: Optiboot case SKIPPED, ${OPTIBOOT} missing: apt-get install arduino-core-avr`,
  );
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("ganglion-nano.hex on the emulated ATmega328P", () => {
  let rig: FirmwareRig;
  let io: FirmataBoard;

  beforeAll(async () => {
    rig = new FirmwareRig("atmega328p", "ganglion-nano.hex");
    rig.start();
    io = await rig.connect();
  });
  afterAll(() => rig?.stop());

  it("has 22 pins, A6 and A7 analog-only", () => {
    expect(io.pins).toHaveLength(22);
    expect(io.analogPins).toEqual(range(14, 21));
    expect(io.pins[20]!.supportedModes).toEqual([io.MODES.ANALOG]);
    expect(io.pins[21]!.supportedModes).toEqual([io.MODES.ANALOG]);
  });

  it("reads A7", async () => {
    rig.board.setAnalog(7, 3.3);
    const values: number[] = [];
    io.analogRead(7, (v) => values.push(v));
    await rig.waitFor(() => values.length >= 2, "A7 readings");
    expect(Math.abs(values.at(-1)! - Math.round((3.3 / 5) * 1023))).toBeLessThanOrEqual(2);
  });
});

describe("ganglion-mega.hex on the emulated ATmega2560", () => {
  let rig: FirmwareRig;
  let io: FirmataBoard;
  const heartbeats: number[][] = [];
  const device = new RegisterDevice(0x3c);

  beforeAll(async () => {
    rig = new FirmwareRig("atmega2560", "ganglion-mega.hex");
    rig.addI2cDevice(device);
    rig.start();
    io = await rig.connect();
    io.sysexResponse(0x0a, (data) => heartbeats.push(data));
  });
  afterAll(() => {
    io?.clearSysexResponse(0x0a);
    rig?.stop();
  });

  it("describes the Mega's 70 pins", () => {
    const M = io.MODES;
    expect(io.firmware.name).toBe("Ganglion");
    expect(io.pins).toHaveLength(70);
    expect(io.analogPins).toEqual(range(54, 69));
    const pwm = io.pins.flatMap((p, i) => (p.supportedModes.includes(M.PWM) ? [i] : []));
    expect(pwm).toEqual([...range(2, 13), 44, 45, 46]);
    const i2c = io.pins.flatMap((p, i) => (p.supportedModes.includes(M.I2C) ? [i] : []));
    expect(i2c).toEqual([20, 21]);
    expect(io.pins[0]!.supportedModes).toEqual([]);
  });

  it("drives the LED on pin 13 and reads a pulled-up input on pin 40", async () => {
    io.pinMode(13, io.MODES.OUTPUT);
    io.digitalWrite(13, 1);
    await rig.waitFor(() => rig.board.pinLevel(13) === "high", "pin 13 high");
    io.pinMode(40, io.MODES.PULLUP);
    const seen: number[] = [];
    io.digitalRead(40, (v) => seen.push(v));
    rig.board.setDigitalInput(40, true);
    await rig.waitFor(() => seen.at(-1) === 1, "pin 40 high");
    rig.board.setDigitalInput(40, false);
    await rig.waitFor(() => seen.at(-1) === 0, "pin 40 low");
  });

  it("reads A0 and A8 (the second ADC bank)", async () => {
    rig.board.setAnalog(0, 1.0);
    rig.board.setAnalog(8, 4.0);
    const a0: number[] = [];
    const a8: number[] = [];
    io.analogRead(0, (v) => a0.push(v));
    io.analogRead(8, (v) => a8.push(v));
    await rig.waitFor(() => a0.length >= 2 && a8.length >= 2, "A0 and A8 readings");
    expect(Math.abs(a0.at(-1)! - 205)).toBeLessThanOrEqual(2);
    expect(Math.abs(a8.at(-1)! - 818)).toBeLessThanOrEqual(2);
    io.reportAnalogPin(0, 0);
    io.reportAnalogPin(8, 0);
  });

  it("writes PWM on pin 45 (timer 5) through EXTENDED_ANALOG", async () => {
    io.pinMode(45, io.MODES.PWM);
    io.pwmWrite(45, 192);
    await rig.waitFor(() => rig.pinChanges.some((c) => c.pin === 45), "pin 45 toggling");
    await rig.advance(5);
    const from = rig.board.cycles;
    await rig.advance(20);
    const duty = dutyCycle(rig.pinChanges, 45, from, rig.board.cycles);
    expect(duty).toBeGreaterThan(0.73);
    expect(duty).toBeLessThan(0.77);
  });

  it("drives a servo on pin 22 once timer 5 is free of PWM", async () => {
    // Pin 45 still does PWM on timer 5, which servos need: refused.
    const refused = new Promise<string>((resolve) => io.once("string", (s: string) => resolve(s)));
    io.servoConfig(22, 600, 2400);
    expect(await refused).toBe("unsupported pin mode for pin 22");
    io.pinMode(45, io.MODES.OUTPUT);
    io.servoConfig(22, 600, 2400);
    io.servoWrite(22, 180);
    await rig.waitFor(() => rig.pinChanges.filter((c) => c.pin === 22).length > 4, "servo pulses");
    const pulses = rig.pinChanges.filter((c) => c.pin === 22);
    const rise = pulses.filter((c) => c.level === "high").at(-1)!;
    await rig.waitFor(() => rig.pinChanges.some((c) => c.pin === 22 && c.cycles > rise.cycles), "pulse end");
    const fall = rig.pinChanges.find((c) => c.pin === 22 && c.cycles > rise.cycles)!;
    const widthUs = (fall.cycles - rise.cycles) / 16;
    expect(widthUs).toBeGreaterThan(2390);
    expect(widthUs).toBeLessThan(2410);
  });

  it("talks I2C on pins 20/21", async () => {
    io.i2cConfig(0);
    io.i2cWrite(0x3c, 0x00, [0xaf]);
    const reply = await new Promise<number[]>((resolve) => io.i2cReadOnce(0x3c, 0x00, 1, resolve));
    expect(reply).toEqual([0xaf]);
  });

  it("sends heartbeats with the power-on cause", async () => {
    await rig.waitFor(() => heartbeats.length >= 1, "a heartbeat", 10_000);
    expect(parseHeartbeat(heartbeats[0]!)).toMatchObject({
      version: 1,
      cause: 1,
      flags: 1,
      intervalMs: 1000,
    });
  });
});

describe.skipIf(!hasOptiboot)("ganglion-uno.hex behind Debian's Optiboot on the emulated Uno", () => {
  let rig: FirmwareRig;
  let io: FirmataBoard;
  const heartbeats: number[][] = [];

  beforeAll(async () => {
    rig = new FirmwareRig("atmega328p", "ganglion-uno.hex", OPTIBOOT);
    rig.start();
    io = await rig.connect();
    io.sysexResponse(0x0a, (data) => heartbeats.push(data));
  });
  afterAll(() => {
    io?.clearSysexResponse(0x0a);
    rig?.stop();
  });

  it("boots through the bootloader and still reports a power-on", async () => {
    // Optiboot 4.4 clears MCUSR and does not hand it over in r2: the firmware falls back to its SRAM marker.
    expect(io.firmware.name).toBe("Ganglion");
    io.sysexCommand([0x0a]);
    await rig.waitFor(() => heartbeats.length >= 1, "a heartbeat");
    expect(parseHeartbeat(heartbeats.at(-1)!)).toMatchObject({ cause: 1, flags: 0x01, source: 2 });
  });

  it("starts again after the bootloader's wait on an external reset", async () => {
    const before = heartbeats.length;
    rig.board.reset("external");
    await rig.waitFor(() => heartbeats.length > before, "heartbeat after the bootloader", 40_000);
    const hb = parseHeartbeat(heartbeats.at(-1)!);
    expect(hb).toMatchObject({ seq: 0, source: 2 });
    expect(hb.uptimeMs).toBeLessThan(5);
    // Optiboot waited about a second for avrdude before starting the firmware.
    expect(rig.resets).toEqual(["external", "watchdog"]);
  }, 45_000); // ~1.5 s of busy emulated CPU in the bootloader: slow on a loaded machine
});
