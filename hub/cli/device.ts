/**
 * `ganglion device add|remove`: edits the fleet file (keeping the user's comments), and when a hub answers at
 * `--url`, adds or removes the device there too, so a running fleet changes without a restart.
 *
 * A new Raspberry Pi gets a fresh token: printed once, only its scrypt hash written to the fleet file, and with
 * `--tokens FILE` appended there as `id=token` (for the device's own config or `ganglion simulate`).
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { type Command, Option } from "commander";
import type { BoardKind, NewDevice } from "../config.ts";
import {
  action,
  apiErrorMessage,
  CliError,
  defaultConfigPath,
  defaultHubUrl,
  HubUnreachableError,
  hubRequest,
  parseHubUrl,
} from "./common.ts";

/** The fleet-file module, loaded when a device command runs (it brings zod and yaml). */
const loadConfig = () => import("../config.ts");

/** Checks a device id: `[a-z0-9][a-z0-9-]{0,63}`, and not the reserved `hub`. */
async function checkDeviceId(value: string): Promise<string> {
  const { ID_PATTERN, RESERVED_IDS } = await loadConfig();
  if (RESERVED_IDS.has(value)) throw new CliError(`"${value}" is reserved; pick another device id`);
  if (!ID_PATTERN.test(value)) {
    throw new CliError(
      `"${value}" is not a device id (lowercase letters, digits and dashes, starting with a letter or digit, at most 64)`,
    );
  }
  return value;
}

/** Checks a board kind or alias (`uno`, `arduino-uno`, `raspberry-pi`, ...) and returns its canonical kind. */
async function checkBoardKind(value: string): Promise<BoardKind> {
  const { BOARD_KINDS, normaliseBoardKind } = await loadConfig();
  const kind = normaliseBoardKind(value);
  if (!kind) {
    throw new CliError(
      `unknown board kind "${value}" (expected ${BOARD_KINDS.join(", ")}, or uno, nano, mega)`,
    );
  }
  return kind;
}

/** Options of `ganglion device add`. */
export interface DeviceAddOptions {
  /** A board kind or alias; checked when the command runs. */
  board: string;
  config: string;
  tokens?: string;
  serialPort?: string;
  /** `VID:PID`: find the Arduino by USB id instead of by path. */
  usb?: string;
  url: string;
  apiToken?: string;
}

/** Options of `ganglion device remove`. */
export interface DeviceRemoveOptions {
  config: string;
  tokens?: string;
  url: string;
  apiToken?: string;
}

/** What happened on the running hub, as one line; `failed` lines make the command exit non-zero. */
type HubOutcome = { line: string; failed: boolean };

async function tellHub(
  url: string,
  method: "POST" | "DELETE",
  path: string,
  token: string | undefined,
  body: unknown,
  describe: (status: number) => string | undefined,
): Promise<HubOutcome> {
  let answer: Awaited<ReturnType<typeof hubRequest>>;
  try {
    answer = await hubRequest(url, method, path, {
      // Starting or stopping a device's supervisor can take a moment on a busy hub.
      timeoutMs: 15_000,
      ...(body === undefined ? {} : { body }),
      ...(token ? { token } : {}),
    });
  } catch (err) {
    if (err instanceof HubUnreachableError) {
      return {
        line: `no hub answers at ${url}; a hub started with this fleet file picks the change up`,
        failed: false,
      };
    }
    throw err;
  }
  const known = describe(answer.status);
  if (known) return { line: known, failed: false };
  if (answer.status === 401) {
    return {
      line: `the hub at ${url} needs its API token: pass --api-token (or GANGLION_API_TOKEN)`,
      failed: true,
    };
  }
  return { line: `the hub at ${url} refused it: ${apiErrorMessage(answer)}`, failed: true };
}

/** Adds a device to the fleet file and, if one answers, to the running hub. */
export async function runDeviceAdd(rawId: string, opts: DeviceAddOptions): Promise<void> {
  const id = await checkDeviceId(rawId);
  const board = await checkBoardKind(opts.board);
  const { addDeviceToFleetFile } = await loadConfig();
  let device: NewDevice;
  if (board === "raspberry-pi") {
    if (opts.serialPort || opts.usb) {
      throw new CliError("a raspberry-pi talks MQTT; --serial-port and --usb are for Arduinos");
    }
    device = { id, board, link: { type: "mqtt" } };
  } else if (opts.serialPort && opts.usb) {
    throw new CliError("pass --serial-port or --usb, not both");
  } else if (opts.usb) {
    const match = /^([0-9a-f]{4}):([0-9a-f]{4})$/i.exec(opts.usb);
    if (!match) throw new CliError(`--usb expects VID:PID in hex, e.g. 2341:0043; got "${opts.usb}"`);
    const [vendorId, productId] = [match[1]!.toLowerCase(), match[2]!.toLowerCase()];
    device = { id, board, link: { type: "serial", vendorId, productId } };
  } else if (opts.serialPort) {
    device = { id, board, link: { type: "serial", path: opts.serialPort } };
  } else {
    throw new CliError(
      `an ${board} needs --serial-port PATH or --usb VID:PID (\`ganglion boards\` lists serial ports)`,
    );
  }
  const added = await addDeviceToFleetFile(
    opts.config,
    device,
    opts.tokens ? { tokensFile: opts.tokens } : {},
  );
  console.log(`ganglion: added ${id} (${added.device.board}) to ${opts.config}`);
  if (added.token) {
    console.log(`ganglion: device token (shown once; only its hash is in ${opts.config}): ${added.token}`);
    if (opts.tokens) console.log(`ganglion: appended ${id}=<token> to ${opts.tokens}`);
  }
  const outcome = await tellHub(opts.url, "POST", "/api/devices", opts.apiToken, added.device, (status) => {
    if (status === 201 || status === 200) return `the hub at ${opts.url} now runs ${id}`;
    if (status === 409) return `the hub at ${opts.url} already runs ${id}`;
    return undefined;
  });
  if (outcome.failed) throw new CliError(`${id} is in ${opts.config}, but ${outcome.line}`);
  console.log(`ganglion: ${outcome.line}`);
}

/** Drops `id=...` lines from a tokens file, keeping the rest (and its 0600 mode). Returns whether any was there. */
async function removeFromTokensFile(path: string, id: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  const lines = text.split("\n");
  const kept = lines.filter((line) => !line.trim().startsWith(`${id}=`));
  if (kept.length === lines.length) return false;
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, kept.join("\n"), { encoding: "utf8", mode: 0o600 });
  await rename(tmp, path);
  return true;
}

/** Removes a device from the fleet file (and tokens file) and, if one answers, from the running hub. */
export async function runDeviceRemove(rawId: string, opts: DeviceRemoveOptions): Promise<void> {
  const id = await checkDeviceId(rawId);
  const { removeDeviceFromFleetFile } = await loadConfig();
  await removeDeviceFromFleetFile(opts.config, id);
  console.log(`ganglion: removed ${id} from ${opts.config}`);
  if (opts.tokens && (await removeFromTokensFile(opts.tokens, id))) {
    console.log(`ganglion: removed ${id}'s token from ${opts.tokens}`);
  }
  const outcome = await tellHub(
    opts.url,
    "DELETE",
    `/api/devices/${id}`,
    opts.apiToken,
    undefined,
    (status) => {
      if (status === 204 || status === 200) return `the hub at ${opts.url} stopped ${id}`;
      if (status === 404) return `the hub at ${opts.url} was not running ${id}`;
      return undefined;
    },
  );
  if (outcome.failed) throw new CliError(`${id} is out of ${opts.config}, but ${outcome.line}`);
  console.log(`ganglion: ${outcome.line}`);
}

const configOption = () =>
  new Option("--config <file>", "fleet file (env GANGLION_CONFIG)").default(defaultConfigPath());
const urlOption = () =>
  new Option("--url <url>", "a running hub to update too (env GANGLION_URL)")
    .argParser(parseHubUrl)
    .default(defaultHubUrl());
const apiTokenOption = () =>
  new Option("--api-token <token>", "the hub's API token, if it needs one (env GANGLION_API_TOKEN)").default(
    process.env.GANGLION_API_TOKEN,
  );

/** Registers `device add` and `device remove`. */
export function registerDevice(program: Command): void {
  const device = program.command("device").description("add or remove a device (fleet file and running hub)");
  device
    .command("add")
    .description("add a device; a Pi gets a new token, printed once")
    .argument("<id>", "device id ([a-z0-9][a-z0-9-]{0,63}, not hub)")
    .requiredOption(
      "--board <kind>",
      "arduino-uno, arduino-nano, arduino-mega, raspberry-pi (or uno, nano, mega)",
    )
    .option("--serial-port <path>", "an Arduino's serial port, e.g. /dev/ttyACM0")
    .option("--usb <vid:pid>", "or find the Arduino by USB id, e.g. 2341:0043 (see `ganglion boards`)")
    .option("--tokens <file>", "append id=token for the new device to this file")
    .addOption(configOption())
    .addOption(urlOption())
    .addOption(apiTokenOption())
    .action(action((id: string, opts: DeviceAddOptions) => runDeviceAdd(id, opts)));
  device
    .command("remove")
    .description("remove a device")
    .argument("<id>", "device id")
    .option("--tokens <file>", "also drop the device's line from this tokens file")
    .addOption(configOption())
    .addOption(urlOption())
    .addOption(apiTokenOption())
    .action(action((id: string, opts: DeviceRemoveOptions) => runDeviceRemove(id, opts)));
}
