/**
 * Conformance of firmware/arduino/dist/ganglion-uno.hex: every Firmata feature the firmware claims, driven through
 * firmata-io (what johnny-five uses) against the emulated Uno, plus Ganglion's heartbeat and watchdog extensions.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  dutyCycle,
  type FirmataBoard,
  FirmwareRig,
  type Heartbeat,
  parseHeartbeat,
  RegisterDevice,
} from "./rig.ts";

const HEARTBEAT = 0x0a;
const HANG = [0x0b, 0x48, 0x41, 0x4e, 0x47];
const CYCLES_PER_MS = 16_000;

/** firmata-io keeps sysex handlers in one table for all boards: dispatch heartbeats to the board's listeners. */
const heartbeatListeners = new Map<FirmataBoard, (hb: Heartbeat) => void>();

function nextString(io: FirmataBoard): Promise<string> {
  return new Promise((resolve) => io.once("string", (s: string) => resolve(s)));
}

function queryPinState(io: FirmataBoard, pin: number): Promise<{ mode: number | undefined; state: number }> {
  return new Promise((resolve) =>
    io.queryPinState(pin, () => resolve({ mode: io.pins[pin]!.mode, state: io.pins[pin]!.state ?? -1 })),
  );
}

describe("ganglion-uno.hex through firmata-io on the emulated Uno", () => {
  let rig: FirmwareRig;
  let io: FirmataBoard;
  const heartbeats: { hb: Heartbeat; ms: number }[] = [];
  const sensor = new RegisterDevice(0x48);

  beforeAll(async () => {
    rig = new FirmwareRig("atmega328p", "ganglion-uno.hex");
    rig.addI2cDevice(sensor);
    rig.start();
    io = await rig.connect();
    io.sysexResponse(HEARTBEAT, function (data) {
      heartbeatListeners.get(this)?.(parseHeartbeat(data));
    });
    heartbeatListeners.set(io, (hb) => heartbeats.push({ hb, ms: rig.ms }));
  });

  afterAll(() => {
    io?.clearSysexResponse(HEARTBEAT);
    heartbeatListeners.clear();
    rig?.stop();
  });

  it("talks at 57600 baud (within the 0.8 % a 16 MHz clock allows)", () => {
    expect(Math.abs(rig.board.baudRate - 57600) / 57600).toBeLessThan(0.01);
  });

  it("reports protocol 2.6 and firmware Ganglion 0.1", async () => {
    expect(io.version).toEqual({ major: 2, minor: 6 });
    expect(io.firmware.name).toBe("Ganglion");
    expect(io.firmware.version).toEqual({ major: 0, minor: 1 });
    // Asked again, it answers again.
    await new Promise<void>((resolve) => io.queryFirmware(resolve));
    await new Promise<void>((resolve) => io.reportVersion(resolve));
    expect(io.firmware.name).toBe("Ganglion");
  });

  it("answers the capability and analog mapping queries with the Uno's pins", () => {
    const M = io.MODES;
    expect(io.pins).toHaveLength(20);
    expect(io.pins[0]!.supportedModes).toEqual([]); // RX/TX belong to the serial link
    expect(io.pins[1]!.supportedModes).toEqual([]);
    expect(io.pins[2]!.supportedModes.sort()).toEqual([M.INPUT, M.OUTPUT, M.SERVO, M.PULLUP].sort());
    for (const pwm of [3, 5, 6, 9, 10, 11]) expect(io.pins[pwm]!.supportedModes).toContain(M.PWM);
    for (const plain of [2, 4, 7, 8, 12, 13]) expect(io.pins[plain]!.supportedModes).not.toContain(M.PWM);
    expect(io.pins[18]!.supportedModes).toContain(M.I2C);
    expect(io.pins[19]!.supportedModes).toContain(M.I2C);
    expect(io.pins[17]!.supportedModes).not.toContain(M.I2C);
    expect(io.analogPins).toEqual([14, 15, 16, 17, 18, 19]);
    expect(io.pins.map((p) => p.analogChannel)).toEqual([...Array(14).fill(127), 0, 1, 2, 3, 4, 5]);
    expect(io.RESOLUTION.ADC).toBe(1023);
    expect(io.RESOLUTION.PWM).toBe(255);
  });

  it("drives a digital output and reports it in the pin state", async () => {
    io.pinMode(13, io.MODES.OUTPUT);
    io.digitalWrite(13, 1);
    await rig.waitFor(() => rig.board.pinLevel(13) === "high", "pin 13 high");
    expect(await queryPinState(io, 13)).toEqual({ mode: io.MODES.OUTPUT, state: 1 });
    io.digitalWrite(13, 0);
    await rig.waitFor(() => rig.board.pinLevel(13) === "low", "pin 13 low");
    expect(await queryPinState(io, 13)).toEqual({ mode: io.MODES.OUTPUT, state: 0 });
  });

  it("reports digital inputs (input and pullup) when they change", async () => {
    io.pinMode(4, io.MODES.PULLUP);
    io.pinMode(7, io.MODES.INPUT);
    await rig.waitFor(() => rig.board.pinLevel(4) === "input-pullup", "pin 4 pull-up");
    expect(rig.board.pinLevel(7)).toBe("input");
    expect((await queryPinState(io, 4)).state).toBe(1); // pull-up on
    expect((await queryPinState(io, 7)).state).toBe(0);

    const seen4: number[] = [];
    const seen7: number[] = [];
    io.digitalRead(4, (v) => seen4.push(v));
    io.digitalRead(7, (v) => seen7.push(v));
    rig.board.setDigitalInput(4, true);
    await rig.waitFor(() => seen4.at(-1) === 1, "pin 4 reported high");
    rig.board.setDigitalInput(4, false);
    await rig.waitFor(() => seen4.at(-1) === 0, "pin 4 reported low");
    rig.board.setDigitalInput(7, true);
    await rig.waitFor(() => seen7.at(-1) === 1, "pin 7 reported high");
    rig.board.setDigitalInput(7, false);
    await rig.waitFor(() => seen7.at(-1) === 0, "pin 7 reported low");
    io.reportDigitalPin(4, 0);
  });

  it("writes PWM with the requested duty cycle", async () => {
    io.pinMode(3, io.MODES.PWM);
    io.pwmWrite(3, 64);
    await rig.waitFor(() => rig.pinChanges.some((c) => c.pin === 3), "pin 3 toggling");
    await rig.advance(5);
    const from = rig.board.cycles;
    await rig.advance(20);
    const duty = dutyCycle(rig.pinChanges, 3, from, rig.board.cycles);
    expect(duty).toBeGreaterThan(0.23);
    expect(duty).toBeLessThan(0.27);
    expect(await queryPinState(io, 3)).toEqual({ mode: io.MODES.PWM, state: 64 });
    io.pwmWrite(3, 0);
    await rig.advance(5);
    expect(rig.board.pinLevel(3)).toBe("low");
  });

  it("reads analog inputs at the sampling interval", async () => {
    rig.board.setAnalog(0, 2.5);
    const values: { value: number; ms: number }[] = [];
    io.analogRead(0, (value) => values.push({ value, ms: rig.ms }));
    await rig.waitFor(() => values.length >= 3, "3 analog readings");
    expect(values.at(-1)!.value).toBeGreaterThanOrEqual(510);
    expect(values.at(-1)!.value).toBeLessThanOrEqual(513);

    rig.board.setAnalog(0, 1.0);
    await rig.waitFor(() => Math.abs(values.at(-1)!.value - 205) <= 2, "A0 reading ~205");

    io.setSamplingInterval(50);
    await rig.advance(60);
    const start = values.length;
    await rig.waitFor(() => values.length >= start + 5, "5 readings at 50 ms");
    const gaps = values.slice(start + 1).map((v, i) => v.ms - values[start + i]!.ms);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThan(46);
      expect(gap).toBeLessThan(54);
    }
    io.setSamplingInterval(19);
    io.reportAnalogPin(0, 0);
    await rig.advance(5);
    const after = values.length;
    await rig.advance(100);
    expect(values.length).toBe(after);
  });

  it("sends a string message when a pin mode is not supported", async () => {
    const message = nextString(io);
    io.pinMode(1, io.MODES.OUTPUT);
    expect(await message).toBe("unsupported pin mode for pin 1");
    const pwm = nextString(io);
    io.pinMode(13, io.MODES.PWM);
    expect(await pwm).toBe("unsupported pin mode for pin 13");
  });

  it("writes and reads I2C registers, once and continuously", async () => {
    io.i2cConfig(0);
    await rig.waitFor(() => rig.board.pinLevel(18) === "input-pullup", "SDA pulled up");
    expect(rig.board.pinLevel(19)).toBe("input-pullup");
    io.i2cWrite(0x48, 0x10, [0x12, 0x34, 0xfe]);
    await rig.waitFor(() => sensor.regs[0x12] === 0xfe, "I2C write to land");
    expect([...sensor.regs.subarray(0x10, 0x13)]).toEqual([0x12, 0x34, 0xfe]);

    const once = await new Promise<number[]>((resolve) => io.i2cReadOnce(0x48, 0x10, 3, resolve));
    expect(once).toEqual([0x12, 0x34, 0xfe]);

    const replies: number[][] = [];
    io.i2cRead(0x48, 0x20, 2, (bytes) => replies.push(bytes));
    await rig.waitFor(() => replies.length >= 2, "2 continuous replies");
    sensor.regs[0x20] = 0x55;
    sensor.regs[0x21] = 0xaa;
    await rig.waitFor(
      () => replies.at(-1)?.[0] === 0x55 && replies.at(-1)?.[1] === 0xaa,
      "new register values",
    );
    io.i2cStop(0x48);
    await rig.advance(30);
    const transactions = sensor.transactions;
    await rig.advance(100);
    expect(sensor.transactions).toBe(transactions);

    const missing = nextString(io);
    io.i2cReadOnce(0x50, 0x00, 1, () => {});
    expect(await missing).toBe("I2C: no reply from address 80");
  });

  it("drives a servo with the configured pulse range", async () => {
    io.servoConfig(9, 1000, 2000);
    io.servoWrite(9, 90);
    await rig.waitFor(() => rig.pinChanges.filter((c) => c.pin === 9).length > 6, "servo pulses");
    await rig.advance(60);
    const pulses = rig.pinChanges.filter((c) => c.pin === 9);
    const rises = pulses.filter((c) => c.level === "high");
    const last = rises.at(-2)!;
    const fall = pulses.find((c) => c.cycles > last.cycles && c.level === "low")!;
    const widthUs = (fall.cycles - last.cycles) / 16;
    expect(widthUs).toBeGreaterThan(1490);
    expect(widthUs).toBeLessThan(1510);
    const frameMs = (rises.at(-1)!.cycles - last.cycles) / CYCLES_PER_MS;
    expect(frameMs).toBeGreaterThan(19.5);
    expect(frameMs).toBeLessThan(20.5);
    expect(await queryPinState(io, 9)).toEqual({ mode: io.MODES.SERVO, state: 90 });
    // Pin 10 shares the servo timer: PWM is refused while a servo is attached.
    const refused = nextString(io);
    io.pinMode(10, io.MODES.PWM);
    expect(await refused).toBe("unsupported pin mode for pin 10");
  });

  it("sends heartbeats with uptime, sequence number and the power-on cause", async () => {
    const start = heartbeats.length;
    await rig.waitFor(() => heartbeats.length >= start + 2, "2 heartbeats", 10_000);
    const [a, b] = heartbeats.slice(start);
    expect(a!.hb).toMatchObject({ version: 1, cause: 1, flags: 0x01, source: 0, intervalMs: 1000 });
    expect(b!.hb.seq).toBe(a!.hb.seq + 1);
    expect(b!.hb.uptimeMs - a!.hb.uptimeMs).toBeGreaterThanOrEqual(1000);
    expect(b!.hb.uptimeMs - a!.hb.uptimeMs).toBeLessThanOrEqual(1002);
    expect(Math.abs(b!.hb.uptimeMs - rig.ms)).toBeLessThan(50); // uptime is emulated time since power-on

    // Faster heartbeats on request; the reply carries the new interval.
    io.sysexCommand([HEARTBEAT, 200 & 0x7f, 200 >> 7]);
    await rig.waitFor(() => heartbeats.at(-1)?.hb.intervalMs === 200, "interval 200");
    const from = heartbeats.length;
    await rig.waitFor(() => heartbeats.length >= from + 3, "3 heartbeats at 200 ms");
    const gaps = heartbeats.slice(from).map((h, i) => h.hb.uptimeMs - heartbeats[from + i - 1]!.hb.uptimeMs);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(200);
    for (const gap of gaps) expect(gap).toBeLessThanOrEqual(202);

    // Off: only on request.
    io.sysexCommand([HEARTBEAT, 0, 0]);
    await rig.waitFor(() => heartbeats.at(-1)?.hb.intervalMs === 0, "interval 0");
    const quiet = heartbeats.length;
    await rig.advance(500);
    expect(heartbeats.length).toBe(quiet);
    io.sysexCommand([HEARTBEAT]);
    await rig.waitFor(() => heartbeats.length === quiet + 1, "heartbeat on request");
    io.sysexCommand([HEARTBEAT, 1000 & 0x7f, 1000 >> 7]);
  });

  it("returns to the start-up state on SYSTEM_RESET", async () => {
    io.pinMode(12, io.MODES.OUTPUT);
    io.digitalWrite(12, 1);
    await rig.waitFor(() => rig.board.pinLevel(12) === "high", "pin 12 high");
    io.reset();
    await rig.waitFor(() => rig.board.pinLevel(12) === "low", "pin 12 low after reset");
    expect(await queryPinState(io, 9)).toEqual({ mode: io.MODES.OUTPUT, state: 0 }); // servo detached
    expect(await queryPinState(io, 14)).toEqual({ mode: io.MODES.ANALOG, state: 0 });
    expect(rig.resets).toEqual([]); // a soft reset, not a hardware one
  });

  it("survives garbage, cut frames and oversized sysex, and keeps answering", async () => {
    const received = rig.received.length;
    const oversized = [0xf0, 0x76, ...Array.from({ length: 300 }, (_, i) => i & 0x7f), 0xf7];
    const cut = [0xf0, 0x6b, 0x01, 0x02]; // a capability query cut off by the next command
    rig.board.receive([0x12, 0x7f, 0x00, 0xa5, 0x01, 0xf1, 0xf3, 0x40, ...oversized, ...cut, 0xf4, 13, 1]);
    await rig.advance(100);
    // Nothing in there deserved an answer: the cut query and the oversized I2C request are dropped.
    const answered = rig.received.slice(received).flatMap((r) => [...r.bytes]);
    const frames = answered.flatMap((b, i) => (b === 0xf0 ? [answered[i + 1]] : []));
    expect(frames.filter((id) => id !== 0x0a)).toEqual([]); // heartbeats only
    // The SET_PIN_MODE after the cut frame was still parsed, and the board still answers.
    io.digitalWrite(13, 1);
    await rig.waitFor(() => rig.board.pinLevel(13) === "high", "pin 13 high after garbage");
    await new Promise<void>((resolve) => io.queryFirmware(resolve));
    io.digitalWrite(13, 0);
  });

  it("sleeps when idle", async () => {
    const before = { ...rig.board.stats };
    await rig.advance(500);
    const slept = rig.board.stats.sleepCycles - before.sleepCycles;
    const ran = rig.board.stats.cycles - before.cycles;
    expect(slept / ran).toBeGreaterThan(0.9);
  });

  it("is reset by the watchdog when it hangs, and says so", async () => {
    const start = heartbeats.length;
    io.sysexCommand(HANG);
    await rig.waitFor(() => rig.resets.length === 1, "watchdog reset", 40_000);
    expect(rig.resets).toEqual(["watchdog"]);
    await rig.waitFor(() => heartbeats.length > start, "heartbeat after reboot");
    const hb = heartbeats.at(-1)!.hb;
    expect(hb).toMatchObject({ cause: 4, flags: 0x08, seq: 0, source: 0 });
    expect(hb.uptimeMs).toBeLessThan(5);
    // About 1 s passed between the hang and the reset (the watchdog timeout).
    const hangMs = heartbeats[start - 1]!.ms;
    expect(heartbeats.at(-1)!.ms - hangMs).toBeGreaterThan(900);
  }, 45_000); // 1 s of busy emulated CPU before the watchdog fires: slow on a loaded machine

  it.each([
    ["external", 2, 0x02],
    ["brown-out", 3, 0x04],
    ["power-on", 1, 0x01],
  ] as const)("reports a %s reset with cause %i", async (cause, code, flag) => {
    const start = heartbeats.length;
    rig.board.reset(cause);
    await rig.waitFor(() => heartbeats.length > start, "heartbeat after reset");
    expect(heartbeats.at(-1)!.hb).toMatchObject({ cause: code, seq: 0, source: 0 });
    expect(heartbeats.at(-1)!.hb.flags & flag).toBe(flag);
  });
});
