/** What a sysfs reader returns, and how it fails. */

/** A successful reading: the value published as telemetry and its unit (for logs and docs). */
export interface Reading {
  value: number | boolean;
  unit?: string;
}

/**
 * Why a reading was rejected: `crc` (1-Wire CRC `NO`), `power-on` (DS18B20 never converted), `io` (file missing or
 * unreadable: sensor unplugged, driver not loaded), `parse` (unexpected content).
 */
export type ReadErrorCode = "crc" | "power-on" | "io" | "parse";

/** A rejected reading. It is counted and logged, never published as a value. */
export class SensorReadError extends Error {
  override readonly name = "SensorReadError";
  constructor(
    readonly code: ReadErrorCode,
    message: string,
  ) {
    super(message);
  }
}
