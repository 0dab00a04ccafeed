/**
 * `ganglion fault`: injects faults into a running hub and clears them, through its `/api/faults` (DESIGN.md §3).
 *
 *   ganglion fault <device> <kind> [--sensor S] [--for 10s]   inject (`hub broker-restart`, or just `broker-restart`)
 *   ganglion fault list                                        the active faults, as a table
 *   ganglion fault clear <id>                                  clear one now
 *
 * The hub validates the request; its refusal is printed as one line.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { FAULT_KINDS, type FaultKind, type FaultRequest, type FaultView } from "../faults/contract.ts";
import { formatApprox, formatDuration, parseDuration } from "../faults/duration.ts";
import {
  action,
  apiErrorMessage,
  CliError,
  defaultHubUrl,
  formatTable,
  type HubAnswer,
  hubRequest,
  parseHubUrl,
} from "./common.ts";

/** Options every `fault` command takes. */
export interface FaultClientOptions {
  url: string;
  apiToken?: string;
}

/** Options of `ganglion fault <device> <kind>`. */
export interface FaultInjectOptions extends FaultClientOptions {
  sensor?: string;
  /** Milliseconds, parsed from `--for`. */
  for?: number;
}

const KINDS = Object.keys(FAULT_KINDS) as FaultKind[];
const isHubKind = (kind: string) => FAULT_KINDS[kind as FaultKind] === "hub";

/** The hub's refusal as a one-line error (401 says how to pass the token). */
function refused(opts: FaultClientOptions, answer: HubAnswer): CliError {
  if (answer.status === 401) {
    return new CliError(
      `the hub at ${opts.url} needs its API token: pass --api-token (or GANGLION_API_TOKEN)`,
    );
  }
  return new CliError(apiErrorMessage(answer));
}

function target(fault: FaultRequest): string {
  if (fault.device === undefined) return "the hub";
  return fault.sensor === undefined ? fault.device : `${fault.device}/${fault.sensor}`;
}

/** The line printed for an injected fault: `injected f3: throws on uno-1/temp for 10s`. */
export function injectedLine(fault: FaultView): string {
  const head = `injected ${fault.id}: ${fault.kind} on ${target(fault)}`;
  if (isHubKind(fault.kind)) return `${head} (clears itself once done)`;
  if (fault.durationMs !== undefined) return `${head} for ${formatDuration(fault.durationMs)}`;
  return `${head} until cleared (ganglion fault clear ${fault.id})`;
}

/** The active faults as a table (one row per fault), or a line saying there are none. */
export function faultsTable(faults: FaultView[], now = Date.now()): string {
  if (faults.length === 0) return "no active faults";
  return formatTable(
    ["ID", "KIND", "TARGET", "AGE", "CLEARS"],
    faults.map((f) => [
      f.id,
      f.kind,
      target(f),
      formatApprox(now - f.startedAt),
      f.until !== undefined
        ? `in ${formatApprox(f.until - now)}`
        : isHubKind(f.kind)
          ? "when done"
          : "when cleared",
    ]),
  );
}

/** `ganglion fault <device> <kind>`: builds the request (`hub` or no device for hub kinds) and posts it. */
export async function runFaultInject(
  device: string | undefined,
  kind: string | undefined,
  opts: FaultInjectOptions,
): Promise<void> {
  if (device === undefined) {
    throw new CliError("expected `ganglion fault <device> <kind>`, `fault list` or `fault clear <id>`");
  }
  if (kind === undefined) {
    if (!isHubKind(device)) {
      throw new CliError(
        `which fault for ${device}? \`ganglion fault ${device} <kind>\` (kinds: ${KINDS.join(", ")})`,
      );
    }
    [device, kind] = ["hub", device];
  }
  const request: Record<string, unknown> = { kind };
  if (device !== "hub") request.device = device;
  if (opts.sensor !== undefined) request.sensor = opts.sensor;
  if (opts.for !== undefined) request.durationMs = opts.for;
  const answer = await hubRequest(opts.url, "POST", "/api/faults", {
    body: request,
    ...(opts.apiToken ? { token: opts.apiToken } : {}),
    // A simulated board may take a moment to apply a fault on a busy host.
    timeoutMs: 15_000,
  });
  if (answer.status !== 202) throw refused(opts, answer);
  console.log(injectedLine(answer.body as FaultView));
}

/** `ganglion fault list`. */
export async function runFaultList(opts: FaultClientOptions & { json?: boolean }): Promise<void> {
  const answer = await hubRequest(opts.url, "GET", "/api/faults");
  if (answer.status !== 200 || !Array.isArray(answer.body)) throw refused(opts, answer);
  const faults = answer.body as FaultView[];
  console.log(opts.json ? JSON.stringify(faults, null, 2) : faultsTable(faults));
}

/** `ganglion fault clear <id>`. */
export async function runFaultClear(id: string, opts: FaultClientOptions): Promise<void> {
  const answer = await hubRequest(opts.url, "DELETE", `/api/faults/${encodeURIComponent(id)}`, {
    ...(opts.apiToken ? { token: opts.apiToken } : {}),
    timeoutMs: 15_000,
  });
  if (answer.status !== 204) throw refused(opts, answer);
  console.log(`cleared ${id}`);
}

function durationArg(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

const urlOption = () =>
  new Option("--url <url>", "the hub's HTTP address (env GANGLION_URL)")
    .argParser(parseHubUrl)
    .default(defaultHubUrl());
const apiTokenOption = () =>
  new Option("--api-token <token>", "the hub's API token, if it needs one (env GANGLION_API_TOKEN)").default(
    process.env.GANGLION_API_TOKEN,
  );

/** Registers `fault`, `fault list` and `fault clear`. */
export function registerFault(program: Command): void {
  const fault = program
    .command("fault")
    .description("inject a fault into a running hub (list and clear them too)")
    // `fault list --url X`: options after a subcommand are the subcommand's, not this command's.
    .enablePositionalOptions()
    .argument("[device]", "the device to fault; `hub` (or nothing) for broker-restart")
    .argument("[kind]", `the fault: ${KINDS.join(", ")}`)
    .option("--sensor <id>", "the sensor, for sensor faults (stuck, noise, out-of-range, nan, throws, hang)")
    .option(
      "--for <duration>",
      "clear by itself after this long: 500ms, 10s, 2m, 1h (at most 24h)",
      durationArg,
    )
    .addOption(urlOption())
    .addOption(apiTokenOption())
    .addHelpText(
      "after",
      "\nExamples:\n  ganglion fault uno-1 throws --sensor temp --for 10s\n  ganglion fault pi-1 partition --for 30s\n  ganglion fault hub broker-restart\n  ganglion fault list\n  ganglion fault clear f3",
    )
    .action(
      action((device: string | undefined, kind: string | undefined, opts: FaultInjectOptions) =>
        runFaultInject(device, kind, opts),
      ),
    );
  fault
    .command("list")
    .description("list the active faults of a running hub")
    .option("--json", "print JSON instead of a table")
    .addOption(urlOption())
    .action(action((opts: FaultClientOptions & { json?: boolean }) => runFaultList(opts)));
  fault
    .command("clear")
    .description("clear an active fault now")
    .argument("<id>", "the fault's id, e.g. f3 (see `ganglion fault list`)")
    .addOption(urlOption())
    .addOption(apiTokenOption())
    .action(action((id: string, opts: FaultClientOptions) => runFaultClear(id, opts)));
}
