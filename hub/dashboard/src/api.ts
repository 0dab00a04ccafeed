/**
 * The HTTP routes of DESIGN.md §2 the page calls, with the API's JSON errors turned into messages. Mutating routes
 * (POST, DELETE) carry the tab's API token when it holds one; a 401 asks for the token (auth.ts) and retries.
 */
import { auth, TokenCancelled } from "./auth.ts";
import type {
  DeviceView,
  FaultRequest,
  FaultView,
  HubEvent,
  ScenarioListing,
  StoredReading,
  TreeNode,
} from "./types.ts";

/** An error answer of the API (`{"error": {"code", "message"}}`) or a failed request. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "unreachable", `the hub did not answer (${(err as Error).message})`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(
      res.status,
      error?.code ?? "http_error",
      error?.message ?? `${res.status} ${res.statusText}`,
    );
  }
  return body as T;
}

/**
 * A POST or DELETE: sent with the tab's token, if any; answered 401, it asks for the token (one prompt for every
 * request refused meanwhile) and sends again, until the hub accepts it or the user cancels. `action` names what it
 * does, for the prompt (`send "on" to tank-pi/status-led`).
 */
async function mutate<T>(path: string, init: RequestInit, action: string): Promise<T> {
  for (;;) {
    const token = auth.current();
    const headers = new Headers(init.headers);
    if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
    try {
      return await request<T>(path, { ...init, headers });
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      try {
        await auth.refused(token, action);
      } catch (cancelled) {
        if (cancelled instanceof TokenCancelled) throw new ApiError(401, "unauthorized", cancelled.message);
        throw cancelled;
      }
    }
  }
}

const json = (method: string, body?: unknown): RequestInit =>
  body === undefined
    ? { method }
    : { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };

export const fetchTree = () => request<TreeNode>("/api/tree");
export const fetchDevices = () => request<DeviceView[]>("/api/devices");
export const fetchEvents = (limit: number) => request<HubEvent[]>(`/api/events?limit=${limit}`);

export const fetchTelemetry = (device: string, sensor: string, limit: number) =>
  request<StoredReading[]>(
    `/api/devices/${encodeURIComponent(device)}/telemetry?sensor=${encodeURIComponent(sensor)}&limit=${limit}`,
  );

/** Resolves once the board confirmed the command; rejects with the API's reason (400/404/503/504). */
export const sendCommand = (device: string, target: string, op: string, args?: Record<string, unknown>) =>
  mutate<{ id: string; ok: true }>(
    `/api/devices/${encodeURIComponent(device)}/commands`,
    json("POST", args === undefined ? { target, op } : { target, op, args }),
    `send "${op}" to ${device}/${target}`,
  );

export const fetchFaults = () => request<FaultView[]>("/api/faults");

/** 202 with the fault as booked; rejects with the API's reason (400 bad-fault, 404, 409 not-simulated/fault_active). */
export const injectFault = (body: FaultRequest) =>
  mutate<FaultView>(
    "/api/faults",
    json("POST", body),
    `inject ${body.kind}${body.device === undefined ? "" : ` on ${body.device}${body.sensor === undefined ? "" : `/${body.sensor}`}`}`,
  );

/** Resolves once the fault's undo ran (204); 404 when it is no longer active. */
export const clearFault = (id: string) =>
  mutate<void>(`/api/faults/${encodeURIComponent(id)}`, json("DELETE"), `clear fault ${id}`);

export const fetchScenarios = () => request<ScenarioListing[]>("/api/scenarios");

/** 202 once the run started; its progress arrives as `scenario` events on `/api/live`. */
export const runScenario = (name: string) =>
  mutate<unknown>(`/api/scenarios/${encodeURIComponent(name)}/run`, json("POST"), `run scenario ${name}`);
