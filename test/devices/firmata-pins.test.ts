/** How an Arduino device's parts map onto pins: resolution against the board's capabilities, conversions, ops. */
import { describe, expect, it } from "vitest";
import {
  commandValue,
  convert,
  type Output,
  resolvePins,
  restoreCommand,
  samplingMs,
} from "../../devices/boards/firmata-pins.ts";
import { DeviceSchema } from "../../hub/config.ts";

/** An Uno as firmata-io describes it after the handshake: 20 pins, A0..A5 on 14..19. */
const uno = {
  pins: Array.from({ length: 20 }, (_, i) => ({
    supportedModes: [],
    value: 0,
    analogChannel: i >= 14 ? i - 14 : 127,
  })),
  analogPins: [14, 15, 16, 17, 18, 19],
};

const device = (parts: { sensors?: unknown[]; actuators?: unknown[] }) =>
  DeviceSchema.parse({ id: "uno-1", board: "uno", link: { type: "serial", path: "/dev/ttyACM0" }, ...parts });

describe("resolvePins", () => {
  it("maps A-names and numbers to pins and analog channels", () => {
    const { inputs, outputs, problems } = resolvePins(
      device({
        sensors: [
          { id: "pot", kind: "analog", pin: "A2" },
          { id: "temp", kind: "thermometer", pin: 15 },
          { id: "door", kind: "button", pin: "A5" },
        ],
        actuators: [{ id: "led", kind: "led", pin: 13 }],
      }),
      uno,
    );
    expect(problems).toEqual([]);
    expect(inputs.get("pot")).toMatchObject({ pin: 16, channel: 2 });
    expect(inputs.get("temp")).toMatchObject({ pin: 15, channel: 1 });
    expect(inputs.get("door")).toMatchObject({ pin: 19, channel: null });
    expect(outputs.get("led")).toMatchObject({ pin: 13, level: false });
  });

  it("leaves out, with what to fix, pins the board lacks, analog kinds on digital pins and bus parts", () => {
    const { inputs, outputs, problems } = resolvePins(
      device({
        sensors: [
          { id: "a7", kind: "analog", pin: "A7" },
          { id: "temp", kind: "thermometer", pin: 7 },
          { id: "bme", kind: "humidity", address: "0x76" },
        ],
        actuators: [{ id: "far", kind: "relay", pin: 40 }],
      }),
      uno,
    );
    expect(inputs.size + outputs.size).toBe(0);
    expect(problems.map((p) => p.message)).toEqual([
      "uno-1/a7: pin A7 does not exist on this board; fix it in fleet.yaml",
      "uno-1/temp: pin 7 has no analog input; a thermometer needs one of A0..A5: fix its pin in fleet.yaml",
      "uno-1/bme: bus address 0x76 is not supported on an Arduino yet; fix it in fleet.yaml",
      "uno-1/far: pin 40 cannot be driven on this board; fix it in fleet.yaml",
    ]);
  });
});

describe("readings and ops", () => {
  it("converts an LM35's counts to °C and passes other kinds' counts through", () => {
    const [temp, pot] = device({
      sensors: [
        { id: "temp", kind: "thermometer", pin: "A0" },
        { id: "pot", kind: "analog", pin: "A1" },
      ],
    }).sensors;
    expect(convert(temp as never, 51)).toBe(24.93); // 0.249 V
    expect(convert(temp as never, 0)).toBe(0);
    expect(convert(pot as never, 1023)).toBe(1023);
  });

  it("samples analog pins twice per the fastest analog period, within 19 ms .. 16383 ms (Firmata's 14 bits)", () => {
    expect(samplingMs(device({ sensors: [{ id: "a", kind: "analog", pin: "A0", periodMs: 100 }] }))).toBe(50);
    expect(samplingMs(device({ sensors: [{ id: "a", kind: "analog", pin: "A0", periodMs: 10 }] }))).toBe(19);
    expect(samplingMs(device({ sensors: [{ id: "a", kind: "analog", pin: "A0", periodMs: 10_000 }] }))).toBe(
      5000,
    );
    expect(samplingMs(device({ sensors: [{ id: "a", kind: "analog", pin: "A0", periodMs: 60_000 }] }))).toBe(
      16_383,
    );
    const mixed = device({
      sensors: [
        { id: "a", kind: "analog", pin: "A0", periodMs: 60_000 },
        { id: "t", kind: "thermometer", pin: "A1", periodMs: 4000 },
      ],
    });
    expect(samplingMs(mixed)).toBe(2000);
    expect(samplingMs(device({ sensors: [{ id: "b", kind: "button", pin: 2 }] }))).toBe(1000);
  });

  it("turns ops into output values and recorded states back into commands", () => {
    const out = (kind: string, level = false) =>
      ({ config: { id: "x", kind }, pin: 3, level, blink: null, blinkHalfMs: 0 }) as unknown as Output;
    expect(commandValue(out("led"), "on", {})).toBe(true);
    expect(commandValue(out("led", true), "toggle", {})).toBe(false);
    expect(commandValue(out("led"), "blink", { periodMs: 250 })).toBe("blink:250");
    expect(commandValue(out("relay"), "close", {})).toBe(true);
    expect(commandValue(out("relay"), "open", {})).toBe(false);
    expect(commandValue(out("servo"), "to", { deg: 45 })).toBe(45);
    expect(commandValue(out("pwm"), "set", { value: 128 })).toBe(128);
    expect(commandValue(out("digital-out"), "set", { value: 1 })).toBe(true);
    expect(commandValue(out("led"), "dance", {})).toBeUndefined();
    expect(restoreCommand("blink:250")).toEqual({ op: "blink", args: { periodMs: 250 } });
    expect(restoreCommand(90)).toEqual({ op: "set", args: { value: 90 } });
    expect(restoreCommand(true)).toEqual({ op: "set", args: { value: true } });
  });
});
