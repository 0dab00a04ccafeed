/**
 * `ganglion boards`: the serial ports of this machine, likely Arduinos flagged by USB vendor id.
 */
import type { Command } from "commander";
import { action, formatTable } from "./common.ts";
import type { DetectedPort } from "./serial-ports.ts";

/** Options of `ganglion boards`. */
export interface BoardsOptions {
  json?: boolean;
}

/** The ports as a readable table. */
export function boardsTable(ports: DetectedPort[]): string {
  if (ports.length === 0) return "no serial ports found (is the board plugged in, with a data cable?)";
  return formatTable(
    ["PATH", "USB ID", "MANUFACTURER", "SERIAL", "ARDUINO?"],
    ports.map((p) => [
      p.path,
      p.vendorId ? `${p.vendorId}:${p.productId ?? "????"}` : "-",
      p.manufacturer ?? "-",
      p.serialNumber ?? "-",
      p.likelyArduino ? `likely: ${p.chip}` : "-",
    ]),
  );
}

/** Lists and prints the serial ports. */
export async function runBoards(opts: BoardsOptions): Promise<void> {
  const { detectPorts } = await import("./serial-ports.ts");
  const ports = await detectPorts();
  console.log(opts.json ? JSON.stringify(ports, null, 2) : boardsTable(ports));
}

/** Registers `boards`. */
export function registerBoards(program: Command): void {
  program
    .command("boards")
    .description("list serial ports, flagging likely Arduinos by USB vendor id")
    .option("--json", "print JSON instead of a table")
    .action(action((opts: BoardsOptions) => runBoards(opts)));
}
