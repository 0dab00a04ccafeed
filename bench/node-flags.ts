/** The Node flags `ganglion` runs the hub with (bin/node-flags.json), so a bench measures the hub users run. */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export function hubNodeFlags(): string[] {
  const file = join(import.meta.dirname, "..", "bin", "node-flags.json");
  return (JSON.parse(readFileSync(file, "utf8")) as { hub: string[] }).hub;
}
