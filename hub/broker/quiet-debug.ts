/**
 * Makes the `debug` package free when it is off, for the MQTT packet parser and writer (mqtt-packet, under aedes and
 * mqtt.js). `debug`'s logger takes its arguments as a rest parameter, so every call allocates an array even when
 * the namespace is disabled, and mqtt-packet calls it several times per packet: in a flood of 13k readings/s that
 * was 9 % of everything the hub allocated. With `DEBUG` unset when the hub starts, loggers made afterwards are one
 * shared no-op; with `DEBUG` set (`DEBUG=mqtt-packet:* ganglion start`), `debug` is left as it is.
 *
 * Import it before anything that loads aedes or mqtt: a module that has already made its loggers keeps them.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** Resolves `debug` as mqtt-packet (reached through aedes) resolves it: that is the copy whose calls matter. */
function debugPath(): string {
  const packet = createRequire(require.resolve("aedes")).resolve("mqtt-packet");
  return createRequire(packet).resolve("debug");
}

type DebugLogger = ((...args: unknown[]) => void) & { enabled: boolean };

/** The logger every `debug(namespace)` returns while debug output is off: no arguments kept, nothing allocated. */
export const quietLogger: DebugLogger = Object.assign(function quiet() {}, {
  enabled: false,
  namespace: "",
  extend: () => quietLogger,
  destroy: () => false,
  log: () => {},
});

/** Whether `debug` was replaced (false when `DEBUG` asks for output). */
export const debugQuieted = quietDebug();

function quietDebug(): boolean {
  if (process.env.DEBUG) return false;
  const path = debugPath();
  const real = require(path) as object;
  // Same properties as `debug` itself (enable, disable, formatters…), but every logger is the quiet one.
  const quiet = Object.assign((_namespace: string) => quietLogger, real) as { default?: unknown };
  quiet.default = quiet;
  const cached = require.cache[path];
  if (cached === undefined) return false;
  cached.exports = quiet;
  return true;
}
