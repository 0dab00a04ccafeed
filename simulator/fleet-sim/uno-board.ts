/**
 * One serial Arduino of a user's fleet (Uno, Nano or Mega) as an emulated board running firmware/arduino/dist's hex,
 * its sensors driven by the default models (models.ts), and its USB cable exposed on a pseudo-terminal (socat), so a
 * hub in another process opens it like /dev/ttyACM0.
 *
 * The pty sits in front of the virtual board's cable (simulator/uno/serial-cable.ts), so the cable's faults happen on
 * it: line noise and a slow link reach the hub through the pty, and a pulled cable (or a power cut) removes the pty
 * altogether — the hub's port closes under it and opening the path fails until the cable is back, as with a real
 * board's /dev/ttyACM0.
 */
import { realpathSync } from "node:fs";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { BoardKind, DeviceConfig, SensorConfig } from "../../hub/config.ts";
import { PtyBridge } from "../boards/pty.ts";
import { startVirtualUno, type UnoInput, type VirtualUno } from "../uno/virtual-uno.ts";
import { lightModel, partSeed, pressModel, thermometerModel, unoVolts, waveModel } from "./models.ts";

/** Wall time per model step of an Arduino's sensors (as the demo's Unos). */
export const UNO_TICK_MS = 250;

/** The firmware each serial board kind runs (`make -C firmware/arduino` builds them). */
export const FIRMWARE_HEX: Readonly<Record<Exclude<BoardKind, "raspberry-pi">, string>> = {
  "arduino-uno": fileURLToPath(new URL("../../firmware/arduino/dist/ganglion-uno.hex", import.meta.url)),
  "arduino-nano": fileURLToPath(new URL("../../firmware/arduino/dist/ganglion-nano.hex", import.meta.url)),
  "arduino-mega": fileURLToPath(new URL("../../firmware/arduino/dist/ganglion-mega.hex", import.meta.url)),
};

/** Analog inputs of each board: the first analog pin's digital number and how many channels there are. */
const ANALOG: Readonly<Record<Exclude<BoardKind, "raspberry-pi">, { base: number; channels: number }>> = {
  "arduino-uno": { base: 14, channels: 6 },
  "arduino-nano": { base: 14, channels: 8 },
  "arduino-mega": { base: 54, channels: 16 },
};

/** A sensor of the device the emulator cannot drive, and why. */
export interface SkippedSensor {
  sensor: string;
  kind: string;
  reason: string;
}

/** The models on a board's pins, one per sensor, and the sensors left out (on a bus the emulator lacks). */
export function unoInputsFor(
  device: DeviceConfig,
  seed: number,
): { inputs: UnoInput[]; skipped: SkippedSensor[] } {
  const board = device.board as Exclude<BoardKind, "raspberry-pi">;
  const analog = ANALOG[board];
  const inputs: UnoInput[] = [];
  const skipped: SkippedSensor[] = [];
  const skip = (s: SensorConfig, reason: string) => skipped.push({ sensor: s.id, kind: s.kind, reason });
  for (const sensor of device.sensors) {
    const s = partSeed(seed, device.id, sensor.id);
    if (sensor.pin === undefined) {
      skip(sensor, `it is on bus address ${sensor.address}; the emulated board has only its pins`);
      continue;
    }
    if (sensor.kind === "button" || sensor.kind === "digital-in") {
      if (typeof sensor.pin !== "number") {
        skip(sensor, `a ${sensor.kind} needs a digital pin number, not ${sensor.pin}`);
        continue;
      }
      inputs.push({
        sensor: sensor.id,
        kind: "button",
        pin: sensor.pin,
        model: pressModel(sensor, s, UNO_TICK_MS),
      });
      continue;
    }
    const channel = typeof sensor.pin === "string" ? Number(sensor.pin.slice(1)) : sensor.pin - analog.base;
    if (!(channel >= 0 && channel < analog.channels)) {
      // The hub refuses this pin too, with its own message; the board simply has nothing wired there.
      skip(sensor, `pin ${sensor.pin} is not an analog input of an ${board}`);
      continue;
    }
    const model =
      sensor.kind === "thermometer"
        ? thermometerModel(sensor, s, UNO_TICK_MS)
        : sensor.kind === "light"
          ? lightModel(sensor, s, UNO_TICK_MS)
          : waveModel(sensor, s, UNO_TICK_MS, [0, 1023]);
    inputs.push({ sensor: sensor.id, kind: "analog", channel, model, volts: unoVolts(sensor) });
  }
  return { inputs, skipped };
}

/** Options of {@link startFleetUno}. */
export interface FleetUnoOptions {
  device: DeviceConfig;
  /** Where the pty's symlink goes (a stable path: the fleet file's link.path can name it). */
  linkPath: string;
  seed: number;
  /** Firmware to run (default: {@link FIRMWARE_HEX} for the board kind). */
  hex?: string;
  logger?: Logger;
}

/** A running serial board of the fleet simulation. */
export interface FleetUno {
  /** The board, with its cable's plug and power wired to the pty (hand this one to the fault injector). */
  readonly uno: VirtualUno;
  /** The stable symlink to the pty. */
  readonly linkPath: string;
  /** The pty the symlink points at now (`/dev/pts/N`); a new one after each close. */
  ptyPath(): string | undefined;
  stop(): Promise<void>;
}

/** Starts the emulated board and puts its cable on a pty. Rejects with a PtyError when socat is missing. */
export async function startFleetUno(o: FleetUnoOptions): Promise<FleetUno> {
  const { device, linkPath } = o;
  const log = o.logger?.child({ device: device.id, port: linkPath });
  const { inputs, skipped } = unoInputsFor(device, o.seed);
  for (const s of skipped) {
    log?.warn(
      { sensor: s.sensor, kind: s.kind },
      `${device.id}/${s.sensor} (${s.kind}) is not simulated: ${s.reason}; the hub will show it stale`,
    );
  }
  const board = device.board as Exclude<BoardKind, "raspberry-pi">;
  const inner = await startVirtualUno({
    device: device.id,
    hex: o.hex ?? FIRMWARE_HEX[board],
    mcu: board,
    inputs,
    tickMs: UNO_TICK_MS,
    path: linkPath,
    ...(o.logger === undefined ? {} : { logger: o.logger }),
  });

  let bridge: PtyBridge | undefined;
  let cable: Duplex | undefined;
  /** What the program wrote while its open was still reaching the board (sent once the cable is attached). */
  let early: Uint8Array[] = [];
  let stopped = false;
  /** Serialises making and removing the pty (a plug right after an unplug must wait for socat to exit). */
  let pending: Promise<void> = Promise.resolve();
  const serially = (job: () => Promise<void>) => {
    pending = pending
      .then(job)
      .catch((err: Error) => log?.error({ err }, `${device.id}: pty: ${err.message}`));
    return pending;
  };

  const attach = async (current: PtyBridge) => {
    // A program opened the pty: open the board's cable, which resets the board (a Uno's DTR line).
    cable?.destroy();
    cable = undefined;
    early = [];
    let opened: Duplex;
    try {
      opened = await inner.open();
    } catch (err) {
      log?.warn({ err }, `${device.id}: opened while absent: ${(err as Error).message}`);
      return;
    }
    if (bridge !== current) {
      opened.destroy();
      return;
    }
    cable = opened;
    opened.on("data", (bytes: Buffer) => current.write(bytes));
    for (const bytes of early) opened.write(bytes);
    early = [];
    opened.on("error", () => undefined);
    // The cable closed under the program (pulled, power cut): the pty goes too.
    opened.once("close", () => {
      if (cable === opened && !inner.present) void serially(removePty);
    });
  };

  const makePty = async () => {
    if (stopped || bridge !== undefined || !inner.present) return;
    const next: PtyBridge = new PtyBridge(linkPath, {
      onOpen: () => void attach(next),
      onData: (bytes) => {
        if (cable === undefined) early.push(bytes);
        else if (!cable.destroyed) cable.write(bytes);
      },
      onClose: () => {
        // The program closed the port: so does the board's cable (and the next open resets the board again).
        cable?.destroy();
        cable = undefined;
        early = [];
      },
      onError: (err) => log?.error({ err }, `${device.id}: pty lost: ${err.message}`),
    });
    bridge = next;
    try {
      await next.start();
    } catch (err) {
      bridge = undefined;
      await next.stop().catch(() => undefined);
      throw err;
    }
  };

  const removePty = async () => {
    const current = bridge;
    bridge = undefined;
    cable?.destroy();
    cable = undefined;
    await current?.stop();
  };

  await makePty();

  // The fault injector pulls the plug and cuts the power through this board: the pty follows.
  const uno: VirtualUno = Object.create(inner, {
    unplug: {
      value: () => {
        inner.unplug();
        void serially(removePty);
      },
    },
    plug: {
      value: () => {
        inner.plug();
        void serially(makePty);
      },
    },
    powerOff: {
      value: () => {
        inner.powerOff();
        void serially(removePty);
      },
    },
    powerOn: {
      value: () => {
        inner.powerOn();
        void serially(makePty);
      },
    },
    stop: {
      value: async () => {
        stopped = true;
        await serially(removePty);
        await inner.stop();
      },
    },
  }) as VirtualUno;

  return {
    uno,
    linkPath,
    ptyPath: () => (bridge === undefined ? undefined : ptyTarget(linkPath)),
    stop: () => uno.stop(),
  };
}

/** Where the symlink points (`/dev/pts/N`), or undefined when it is gone. */
function ptyTarget(linkPath: string): string | undefined {
  try {
    return realpathSync(linkPath);
  } catch {
    return undefined;
  }
}
