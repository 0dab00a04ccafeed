/**
 * Physical models behind the demo's sensors: what the world does to a thermometer, a light sensor, a knob and a
 * button. Each model advances in fixed ticks from its own seeded random stream, so the same seed gives the same
 * sequence of values whatever the host's timing (a late timer runs the missed ticks, it does not skip them).
 *
 * Values are in the sensor's physical unit (°C, fraction of daylight, knob position, pressed or not); the board
 * that carries the sensor turns them into volts or levels (see {@link lm35Volts}).
 */
import { gaussian, seededRandom } from "./random.ts";

/** A model of one physical quantity, advanced one tick at a time. */
export interface Model<T> {
  /** Advances one tick and returns the value at the new tick. */
  step(): T;
  /** The value at the current tick. */
  readonly value: T;
}

/** Options of {@link roomTemperature}. */
export interface RoomTemperatureOptions {
  seed: number;
  tickMs: number;
  /** Daily mean (°C). */
  meanC: number;
  /** Half the day's swing (°C): warmest in the afternoon, coolest before dawn. */
  swingC: number;
  /** A compressed day: one full cycle in this long (ms). */
  dayMs: number;
  /** Where in the day the model starts, 0..1 (0 = midnight). */
  startOfDay?: number;
  /** Standard deviation of the short-term wander (draughts, sun through a window), °C. */
  noiseC: number;
}

/**
 * A room's air temperature: a sine over a compressed day, plus an AR(1) wander (draughts, someone opening a
 * window) that keeps the value alive between the day's slow changes.
 */
export function roomTemperature(o: RoomTemperatureOptions): Model<number> {
  const random = seededRandom(o.seed);
  const rho = 0.9; // wander correlation per tick: slow drifts, not white noise
  const innovation = o.noiseC * Math.sqrt(1 - rho * rho);
  let tick = 0;
  let wander = 0;
  const at = () => {
    const day = (o.startOfDay ?? 0.35) + (tick * o.tickMs) / o.dayMs;
    // Coldest at 05:00, warmest at 17:00.
    return o.meanC + o.swingC * Math.sin(2 * Math.PI * (day - 11 / 24)) + wander;
  };
  let value = at();
  return {
    step() {
      tick++;
      wander = rho * wander + innovation * gaussian(random);
      value = at();
      return value;
    },
    get value() {
      return value;
    },
  };
}

/**
 * Daylight on a light sensor by a window, 0 (night) .. 1 (full sun), with clouds passing and a little sensor noise
 * (so a dark night does not read as a flat line).
 */
export function daylight(o: {
  seed: number;
  tickMs: number;
  dayMs: number;
  startOfDay?: number;
}): Model<number> {
  const random = seededRandom(o.seed);
  let tick = 0;
  let cloud = 1;
  const at = () => {
    const day = (o.startOfDay ?? 0.35) + (tick * o.tickMs) / o.dayMs;
    const sun = Math.max(0, Math.sin(2 * Math.PI * (day - 6 / 24))); // sunrise 06:00, sunset 18:00
    return Math.min(1, sun * cloud) + gaussian(random) * 0.002;
  };
  let value = at();
  return {
    step() {
      tick++;
      // Clouds drift in and out: a bounded random walk between overcast (0.3) and clear (1).
      cloud = Math.min(1, Math.max(0.3, cloud + (random() - 0.5) * 0.08));
      value = at();
      return value;
    },
    get value() {
      return value;
    },
  };
}

/**
 * A knob (potentiometer) that someone turns now and then: position 0..1, moved towards a new setting over a few
 * ticks, with a little wiper noise.
 */
export function knob(o: { seed: number; turnChancePerTick: number }): Model<number> {
  const random = seededRandom(o.seed);
  let target = random();
  let position = target;
  let value = position;
  return {
    step() {
      if (random() < o.turnChancePerTick) target = random();
      position += (target - position) * 0.3;
      value = Math.min(1, Math.max(0, position + gaussian(random) * 0.001));
      return value;
    },
    get value() {
      return value;
    },
  };
}

/** A push button someone presses at random: pressed for `holdTicks`, then released. */
export function randomPresses(o: {
  seed: number;
  pressChancePerTick: number;
  holdTicks: number;
}): Model<boolean> {
  const random = seededRandom(o.seed);
  let held = 0;
  return {
    step() {
      if (held > 0) held--;
      else if (random() < o.pressChancePerTick) held = o.holdTicks;
      return held > 0;
    },
    get value() {
      return held > 0;
    },
  };
}

/** An LM35's output: 10 mV per °C (0 V at 0 °C; this wiring cannot show negative temperatures). */
export const lm35Volts = (celsius: number) => Math.max(0, celsius / 100);

/** A light-dependent resistor in a divider on 5 V: brighter is a higher voltage. */
export const ldrVolts = (light: number) => 0.15 + 4.6 * light;
