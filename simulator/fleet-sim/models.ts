/**
 * Default physical models for the sensors of a user's fleet, chosen by sensor kind (the fleet file says what is
 * measured, not how the world behaves): a room's temperature on a compressed day, slow waves for analog and
 * humidity values, daylight for light sensors, random presses for buttons. Each part draws from its own seeded
 * stream (`deriveSeed(seed, "uno-1/temp")`), so a seed replays a run. Values stay inside a sensor's `range` and move
 * slower than its `maxRatePerS`, so a healthy board reads healthy.
 */
import type { SensorConfig } from "../../hub/config.ts";
import { daylight, lm35Volts, type Model, randomPresses, roomTemperature } from "../models.ts";
import { deriveSeed, gaussian, seededRandom } from "../random.ts";

/** One compressed day of the fleet simulation's models: 10 minutes, as in the demo. */
export const SIM_DAY_MS = 10 * 60 * 1000;

/** A value that swings slowly between `low` and `high` (a period of minutes), with a little noise on top. */
export function slowWave(o: {
  seed: number;
  tickMs: number;
  low: number;
  high: number;
  periodMs: number;
  noise: number;
}): Model<number> {
  const random = seededRandom(o.seed);
  const phase = random();
  let tick = 0;
  const mid = (o.low + o.high) / 2;
  const half = (o.high - o.low) / 2;
  const at = () => {
    const wave = mid + half * Math.sin(2 * Math.PI * (phase + (tick * o.tickMs) / o.periodMs));
    return Math.min(o.high, Math.max(o.low, wave + gaussian(random) * o.noise));
  };
  let value = at();
  return {
    step() {
      tick++;
      value = at();
      return value;
    },
    get value() {
      return value;
    },
  };
}

/** A temperature in °C for a thermometer, centred inside its range (room temperature when it allows). */
export function thermometerModel(sensor: SensorConfig, seed: number, tickMs: number): Model<number> {
  const [low, high] = sensor.range ?? [-10, 60];
  // 21 °C when the range allows; otherwise the middle of a range that is about something else (a freezer, an oven).
  const meanC = low + 3 <= 21 && 21 <= high - 3 ? 21 : (low + high) / 2;
  const swingC = Math.min(2, (high - low) / 6);
  // Keep each tick's wander well inside the sensor's believable rate (3 σ of a step ≈ 1.3 × noiseC).
  const rate = sensor.maxRatePerS ?? 5;
  const noiseC = Math.min(0.4, (rate * tickMs) / 1000 / 3);
  return roomTemperature({ seed, tickMs, dayMs: SIM_DAY_MS, meanC, swingC, noiseC });
}

/** A slow wave inside a sensor's range (in its unit), or inside `fallback` when it has none. */
export function waveModel(
  sensor: SensorConfig,
  seed: number,
  tickMs: number,
  fallback: [number, number],
): Model<number> {
  const [low, high] = sensor.range ?? fallback;
  // Within the middle half of the range, far from both ends, so noise never reads out of range.
  const span = high - low;
  const rate = sensor.maxRatePerS ?? span;
  const periodMs = SIM_DAY_MS / 4;
  // The wave's steepest slope (2π × half / period) stays under half the believable rate.
  const half = Math.min(span / 4, (rate * periodMs) / 1000 / (4 * Math.PI));
  const mid = (low + high) / 2;
  return slowWave({
    seed,
    tickMs,
    low: mid - half,
    high: mid + half,
    periodMs,
    noise: Math.min(span / 200, (rate * tickMs) / 1000 / 8),
  });
}

/** A light sensor's reading in ADC counts: daylight through a window (LDR divider), clipped into its range. */
export function lightModel(sensor: SensorConfig, seed: number, tickMs: number): Model<number> {
  const sun = daylight({ seed, tickMs, dayMs: SIM_DAY_MS });
  const [low, high] = sensor.range ?? [0, 1023];
  // An LDR divider on 5 V: 0.15 V in the dark, 4.75 V in full sun (the demo's ldrVolts), in counts.
  const counts = (light: number) => Math.min(high - 1, Math.max(low + 1, ((0.15 + 4.6 * light) / 5) * 1024));
  return {
    step: () => counts(sun.step()),
    get value() {
      return counts(sun.value);
    },
  };
}

/** Someone pressing a button now and then (or a switch changing, for a digital input). */
export function pressModel(sensor: SensorConfig, seed: number, tickMs: number): Model<boolean> {
  const perSecond = sensor.kind === "button" ? 0.04 : 0.01;
  return randomPresses({
    seed,
    pressChancePerTick: (perSecond * tickMs) / 1000,
    // A press lasts about half a second; a switch stays flipped for a few seconds.
    holdTicks: Math.max(1, Math.round((sensor.kind === "button" ? 500 : 4000) / tickMs)),
  });
}

/** Volts on an Arduino pin for a reading: an LM35 for thermometers, raw ADC counts otherwise (5 V reference). */
export function unoVolts(sensor: SensorConfig): (value: number) => number {
  if (sensor.kind === "thermometer") return lm35Volts;
  return (counts) => ((counts + 0.5) / 1024) * 5;
}

/** Each part's own seed. */
export const partSeed = (seed: number, device: string, part: string) => deriveSeed(seed, `${device}/${part}`);
