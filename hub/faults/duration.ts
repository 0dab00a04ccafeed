/**
 * Fault durations as people write them (`500ms`, `10s`, `1.5s`, `2m`, `1h`) and back, for `ganglion fault --for`
 * and the lines it prints.
 */
import { MAX_FAULT_MS } from "./request.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration into whole milliseconds, from 1 ms to 24 h.
 * @throws Error saying what is expected, for a bare number, an unknown unit, or a value out of range.
 */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (match === null) {
    throw new Error(`"${text}" is not a duration (e.g. 500ms, 10s, 2m, 1h)`);
  }
  const ms = Number(match[1]) * (UNITS[match[2] as string] as number);
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_FAULT_MS) {
    throw new Error(`"${text}" must be a whole number of milliseconds from 1ms to 24h`);
  }
  return ms;
}

/** The shortest exact spelling of a duration: 500 → `500ms`, 10000 → `10s`, 1500 → `1.5s`, 120000 → `2m`. */
export function formatDuration(ms: number): string {
  if (ms >= UNITS.h! && ms % UNITS.h! === 0) return `${ms / UNITS.h!}h`;
  if (ms >= UNITS.m! && ms % UNITS.m! === 0) return `${ms / UNITS.m!}m`;
  if (ms >= UNITS.s!) return `${ms / UNITS.s!}s`;
  return `${ms}ms`;
}

/** A rough age or time left for tables: `800ms`, `42s`, `3m`, `2h`. */
export function formatApprox(ms: number): string {
  const value = Math.max(0, ms);
  if (value < 1000) return `${Math.round(value)}ms`;
  if (value < 120_000) return `${Math.round(value / 1000)}s`;
  if (value < 7_200_000) return `${Math.round(value / 60_000)}m`;
  return `${Math.round(value / 3_600_000)}h`;
}
