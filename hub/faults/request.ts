/**
 * The body of `POST /api/faults` (DESIGN.md §2): its schema and the one-line reasons a bad one is refused with.
 * Shape only: whether the device and sensor exist is the fault book's question (404, not 400).
 */
import { z } from "zod";
import { ID_PATTERN } from "../config/schema.ts";
import { FAULT_KINDS, type FaultKind, type FaultRequest } from "./contract.ts";

/** The longest a fault may last before it clears by itself: 24 h. */
export const MAX_FAULT_MS = 24 * 60 * 60 * 1000;

/** Every kind, in the contract's order, for messages and help texts. */
export const FAULT_KIND_NAMES = Object.keys(FAULT_KINDS) as FaultKind[];

const KIND_LIST = FAULT_KIND_NAMES.join(", ");

const RequestSchema = z.strictObject({
  kind: z.enum(FAULT_KIND_NAMES as [FaultKind, ...FaultKind[]], {
    error: (issue) =>
      issue.input === undefined
        ? `"kind" is required (kinds: ${KIND_LIST})`
        : `unknown fault kind ${JSON.stringify(issue.input)} (kinds: ${KIND_LIST})`,
  }),
  device: z
    .string({ error: "device must be a device id" })
    .regex(ID_PATTERN, { error: "device must be a device id matching [a-z0-9][a-z0-9-]{0,63}" })
    .optional(),
  sensor: z
    .string({ error: "sensor must be a sensor id" })
    .regex(ID_PATTERN, { error: "sensor must be a sensor id matching [a-z0-9][a-z0-9-]{0,63}" })
    .optional(),
  durationMs: z
    .number({ error: `durationMs must be a whole number of milliseconds from 1 to ${MAX_FAULT_MS} (24 h)` })
    .int({ error: `durationMs must be a whole number of milliseconds from 1 to ${MAX_FAULT_MS} (24 h)` })
    .min(1, { error: `durationMs must be positive (1 to ${MAX_FAULT_MS} ms)` })
    .max(MAX_FAULT_MS, { error: `durationMs may be at most ${MAX_FAULT_MS} (24 h)` })
    .optional(),
});

/** Why a fault request was refused (the API's 400 `bad-fault`). */
export class BadFaultRequest extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadFaultRequest";
  }
}

/**
 * Checks a `POST /api/faults` body: a known kind; `device` and `sensor` for sensor kinds; `device` and no `sensor`
 * for device kinds; neither for hub kinds (which also take no duration: they clear by themselves).
 * @throws BadFaultRequest with one line saying what is wrong.
 */
export function parseFaultRequest(body: unknown): FaultRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new BadFaultRequest('expected a JSON object {"kind", "device"?, "sensor"?, "durationMs"?}');
  }
  const parsed = RequestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue?.code === "unrecognized_keys") {
      throw new BadFaultRequest(
        `unknown field ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}; expected {"kind", "device"?, "sensor"?, "durationMs"?}`,
      );
    }
    throw new BadFaultRequest(issue?.message ?? "invalid fault request");
  }
  const { kind, device, sensor, durationMs } = parsed.data;
  const layer = FAULT_KINDS[kind];
  if (layer === "hub") {
    if (device !== undefined || sensor !== undefined) {
      throw new BadFaultRequest(`fault "${kind}" acts on the hub itself; leave out device and sensor`);
    }
    if (durationMs !== undefined) {
      throw new BadFaultRequest(
        `fault "${kind}" is instantaneous (it clears once done); leave out durationMs`,
      );
    }
    return { kind };
  }
  if (device === undefined) {
    throw new BadFaultRequest(
      layer === "sensor"
        ? `fault "${kind}" needs a device and a sensor ({"device", "sensor"})`
        : `fault "${kind}" needs a device ({"device"})`,
    );
  }
  if (layer === "sensor" && sensor === undefined) {
    throw new BadFaultRequest(`fault "${kind}" acts on one sensor; say which with "sensor"`);
  }
  if (layer === "device" && sensor !== undefined) {
    throw new BadFaultRequest(`fault "${kind}" acts on the whole device; leave out sensor`);
  }
  const request: FaultRequest = { kind, device };
  if (sensor !== undefined) request.sensor = sensor;
  if (durationMs !== undefined) request.durationMs = durationMs;
  return request;
}
