/**
 * Adding and removing devices in a fleet file without disturbing what the user wrote: comments, order and layout
 * are kept (yaml's Document API); a JSON fleet file stays JSON. Used by `ganglion device add|remove` and by
 * `POST/DELETE /api/devices`.
 */
import { appendFile, rename, writeFile } from "node:fs/promises";
import { type Document, isSeq, YAMLSeq } from "yaml";
import { allowedKeys, FleetConfigError, formatPath, unknownKeyMessage } from "./errors.ts";
import { parseFleet, readFleetText } from "./parse.ts";
import { type DeviceConfig, type DeviceInput, DeviceSchema, normaliseBoardKind } from "./schema.ts";
import { spliceAdd, spliceRemove } from "./splice.ts";
import { generateToken, hashToken } from "./tokens.ts";

/**
 * How edited YAML is printed when the device's lines cannot simply be spliced in or out (see splice.ts, the usual
 * path, which leaves every other byte as written). yaml keeps comments, key order, quoting and block/flow style; what it cannot keep is
 * per-collection spacing inside flow brackets, so all flow collections are printed unpadded (`[-20, 60]`,
 * `{type: serial}`), the spelling the starter file uses.
 */
const YAML_OUTPUT = { lineWidth: 0, flowCollectionPadding: false } as const;

/** A device to add. The link may be left out for a Raspberry Pi, and its `tokenHash` is generated when absent. */
export type NewDevice = Omit<DeviceInput, "link"> & {
  link?: DeviceInput["link"] | { type: "mqtt"; tokenHash?: string };
};

/** Why an edit was refused; `code` maps to HTTP statuses (409, 404, 400). */
export class FleetEditError extends Error {
  constructor(
    readonly code: "duplicate" | "not_found" | "invalid",
    message: string,
    /** For `invalid`: each problem with its path inside the device (`sensors[0].range`). */
    readonly issues: readonly { path: string; message: string }[] = [],
  ) {
    super(message);
    this.name = "FleetEditError";
  }
}

/**
 * Validates one device as `POST /api/devices` receives it (the fleet file's schema; aliases normalised, defaults
 * filled). The error's message is one line per problem, `device.sensors[0].range: expected ...`.
 * @throws {FleetEditError} `invalid`.
 */
export function parseDeviceInput(input: unknown): DeviceConfig {
  const checked = DeviceSchema.safeParse(input);
  if (checked.success) return checked.data;
  const issues = checked.error.issues.flatMap((i) =>
    i.code === "unrecognized_keys"
      ? i.keys.map((k) => ({
          path: formatPath([...i.path, k]),
          message: unknownKeyMessage(k, allowedKeys(DeviceSchema, i.path)),
        }))
      : [{ path: formatPath(i.path), message: i.message }],
  );
  const lines = issues.map((i) => (i.path ? `device.${i.path}: ${i.message}` : `device: ${i.message}`));
  throw new FleetEditError("invalid", lines.join("\n"), issues);
}

/** Result of an add: the validated device and, for an MQTT device whose token was generated, the clear token. */
export interface AddedDevice {
  text: string;
  device: DeviceConfig;
  /** Shown once; only its hash is in the file. */
  token?: string;
}

function isJson(fileName: string, text: string): boolean {
  return fileName.endsWith(".json") || /^\s*\{/.test(text);
}

async function prepare(device: NewDevice): Promise<{ entry: Record<string, unknown>; token?: string }> {
  const board =
    typeof device.board === "string" ? (normaliseBoardKind(device.board) ?? device.board) : device.board;
  const entry: Record<string, unknown> = { ...device, board };
  let token: string | undefined;
  let link = device.link;
  if (link === undefined && board === "raspberry-pi") link = { type: "mqtt" };
  if (link?.type === "mqtt" && !link.tokenHash) {
    token = generateToken();
    link = { type: "mqtt", tokenHash: await hashToken(token) };
  }
  if (link === undefined) delete entry.link;
  else entry.link = link;
  // Keep the written entry short: no empty lists the user did not ask for.
  for (const key of ["sensors", "actuators"] as const) {
    if (Array.isArray(entry[key]) && (entry[key] as unknown[]).length === 0) delete entry[key];
  }
  parseDeviceInput(entry);
  return token === undefined ? { entry } : { entry, token };
}

/** Device ids of fleet text, comma-joined; empty when the text does not validate. */
function idsOf(text: string, fileName: string): string {
  try {
    return parseFleet(text, fileName)
      .config.devices.map((d) => d.id)
      .join();
  } catch {
    return "";
  }
}

/** Fallback add: append through the Document API and re-print (comments kept, flow spacing normalised). */
function reprintAdd(doc: Document, entry: Record<string, unknown>): string {
  const devices = doc.get("devices", true);
  if (isSeq(devices) && devices.items.length > 0) {
    devices.items.push(doc.createNode(entry));
  } else {
    // Flow or missing/null: replace with a block list, keeping the key's comments.
    const seq = new YAMLSeq();
    seq.items.push(doc.createNode(entry));
    if (isSeq(devices)) {
      seq.comment = devices.comment;
      seq.commentBefore = devices.commentBefore;
    }
    doc.set("devices", seq);
  }
  return doc.toString(YAML_OUTPUT);
}

/**
 * Appends a device to fleet text. Validates the existing text first (a broken file is never edited), refuses a
 * duplicate id, generates a token for an MQTT device without a `tokenHash`, and re-validates the result.
 * @throws {FleetConfigError} when the existing text is invalid; {@link FleetEditError} when the device is.
 */
export async function addDeviceToFleetText(
  text: string,
  fileName: string,
  device: NewDevice,
): Promise<AddedDevice> {
  const { config, doc } = parseFleet(text, fileName);
  if (config.devices.some((d) => d.id === device.id)) {
    throw new FleetEditError("duplicate", `device "${device.id}" already exists in ${fileName}`);
  }
  const { entry, token } = await prepare(device);
  let out: string;
  if (isJson(fileName, text)) {
    const data = (JSON.parse(text) ?? {}) as { devices?: unknown[] | null };
    data.devices = [...(data.devices ?? []), entry];
    out = `${JSON.stringify(data, null, 2)}\n`;
  } else {
    const expected = [...config.devices.map((d) => d.id), device.id];
    const spliced = spliceAdd(text, doc, entry);
    out =
      spliced !== undefined && idsOf(spliced, fileName) === expected.join()
        ? spliced
        : reprintAdd(doc, entry);
  }
  const parsed = parseFleet(out, fileName);
  const added = parsed.config.devices.find((d) => d.id === device.id);
  if (!added) throw new Error(`internal: device "${device.id}" missing after add`);
  return token === undefined ? { text: out, device: added } : { text: out, device: added, token };
}

/**
 * Removes a device from fleet text, keeping everything else as written.
 * @throws {FleetEditError} `not_found` when no device has that id.
 */
export function removeDeviceFromFleetText(
  text: string,
  fileName: string,
  id: string,
): { text: string; device: DeviceConfig } {
  const { config, doc } = parseFleet(text, fileName);
  const index = config.devices.findIndex((d) => d.id === id);
  const device = config.devices[index];
  if (index < 0 || !device) throw new FleetEditError("not_found", `no device "${id}" in ${fileName}`);
  let out: string;
  if (isJson(fileName, text)) {
    const data = JSON.parse(text) as { devices: unknown[] };
    data.devices.splice(index, 1);
    out = `${JSON.stringify(data, null, 2)}\n`;
  } else {
    const expected = config.devices.filter((d) => d.id !== id).map((d) => d.id);
    const spliced = spliceRemove(text, doc, index);
    if (spliced !== undefined && idsOf(spliced, fileName) === expected.join()) out = spliced;
    else {
      doc.deleteIn(["devices", index]);
      out = doc.toString(YAML_OUTPUT);
    }
  }
  parseFleet(out, fileName);
  return { text: out, device };
}

/** Writes a file by rename, so a crash leaves the old or the new file, never half of one. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, "utf8");
  await rename(tmp, path);
}

/**
 * Adds a device to a fleet file (see {@link addDeviceToFleetText}). With `tokensFile`, a generated token is
 * appended there as `id=token` (file mode 0600), after the fleet file is written.
 */
export async function addDeviceToFleetFile(
  path: string,
  device: NewDevice,
  options: { tokensFile?: string } = {},
): Promise<Omit<AddedDevice, "text">> {
  const result = await addDeviceToFleetText(await readFleetText(path), path, device);
  await writeAtomically(path, result.text);
  if (options.tokensFile && result.token) {
    await appendFile(options.tokensFile, `${result.device.id}=${result.token}\n`, { mode: 0o600 });
  }
  return result.token === undefined
    ? { device: result.device }
    : { device: result.device, token: result.token };
}

/** Removes a device from a fleet file (see {@link removeDeviceFromFleetText}); returns the removed device. */
export async function removeDeviceFromFleetFile(path: string, id: string): Promise<DeviceConfig> {
  const result = removeDeviceFromFleetText(await readFleetText(path), path, id);
  await writeAtomically(path, result.text);
  return result.device;
}

/** Reads an `id=token` file (blank lines and `#` comments ignored) into a map. */
export function parseTokensFile(text: string, fileName = "tokens"): Map<string, string> {
  const tokens = new Map<string, string>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    if (eq <= 0) {
      throw new FleetConfigError([{ file: fileName, line: i + 1, path: "", message: "expected id=token" }]);
    }
    tokens.set(line.slice(0, eq), line.slice(eq + 1));
  });
  return tokens;
}
