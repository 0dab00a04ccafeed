/**
 * `ganglion devices`: the devices of a running hub (`GET /api/devices`), as a table or `--json`.
 */
import type { Command } from "commander";
import type { DeviceView, SensorView } from "../view.ts";
import {
  action,
  apiErrorMessage,
  CliError,
  defaultHubUrl,
  formatTable,
  hubRequest,
  parseHubUrl,
} from "./common.ts";

/** Options of `ganglion devices`. */
export interface DevicesOptions {
  url: string;
  json?: boolean;
}

function sensorSummary(sensor: SensorView): string {
  const value = sensor.value === null ? "-" : `${String(sensor.value)}${sensor.unit ?? ""}`;
  return sensor.health === "ok" ? `${sensor.id}=${value}` : `${sensor.id}=${value} (${sensor.health})`;
}

/** The devices as a readable table (one row per device). */
export function devicesTable(devices: DeviceView[]): string {
  if (devices.length === 0) return "no devices (add one with `ganglion device add <id> --board <kind>`)";
  return formatTable(
    ["ID", "BOARD", "LINK", "STATUS", "SENSORS"],
    devices.map((d) => [
      d.id,
      d.board,
      d.link,
      d.reason ? `${d.status} (${d.reason})` : d.status,
      d.sensors.map(sensorSummary).join(", ") || "-",
    ]),
  );
}

/** Fetches and prints the devices of the hub at `opts.url`. */
export async function runDevices(opts: DevicesOptions): Promise<void> {
  const answer = await hubRequest(opts.url, "GET", "/api/devices");
  if (answer.status !== 200 || !Array.isArray(answer.body)) {
    throw new CliError(`the hub at ${opts.url} answered: ${apiErrorMessage(answer)}`);
  }
  const devices = answer.body as DeviceView[];
  console.log(opts.json ? JSON.stringify(devices, null, 2) : devicesTable(devices));
}

/** Registers `devices`. */
export function registerDevices(program: Command): void {
  program
    .command("devices")
    .description("list the devices of a running hub")
    .option("--url <url>", "the hub's HTTP address (env GANGLION_URL)", parseHubUrl, defaultHubUrl())
    .option("--json", "print JSON instead of a table")
    .action(action((opts: DevicesOptions) => runDevices(opts)));
}
