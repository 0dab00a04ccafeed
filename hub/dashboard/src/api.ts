/** The HTTP routes of DESIGN.md §2 the page calls, with the API's JSON errors turned into messages. */
import type {
  DeviceView,
  FaultRequestBody,
  FaultView,
  HubEvent,
  ScenarioSummary,
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

export const fetchTree = () => request<TreeNode>("/api/tree");
export const fetchDevices = () => request<DeviceView[]>("/api/devices");
export const fetchEvents = (limit: number) => request<HubEvent[]>(`/api/events?limit=${limit}`);

export const fetchTelemetry = (device: string, sensor: string, limit: number) =>
  request<StoredReading[]>(
    `/api/devices/${encodeURIComponent(device)}/telemetry?sensor=${encodeURIComponent(sensor)}&limit=${limit}`,
  );

/** Resolves once the board confirmed the command; rejects with the API's reason (400/404/503/504). */
export const sendCommand = (device: string, target: string, op: string, args?: Record<string, unknown>) =>
  request<{ id: string; ok: true }>(`/api/devices/${encodeURIComponent(device)}/commands`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(args === undefined ? { target, op } : { target, op, args }),
  });

const json = (method: string, body?: unknown): RequestInit =>
  body === undefined
    ? { method }
    : { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };

export const fetchFaults = () => request<FaultView[]>("/api/faults");

/** 202 with the fault as booked; rejects with the API's reason (400 bad-fault, 404, 409 not-simulated/fault_active). */
export const injectFault = (body: FaultRequestBody) => request<FaultView>("/api/faults", json("POST", body));

/** Resolves once the fault's undo ran (204); 404 when it is no longer active. */
export const clearFault = (id: string) =>
  request<void>(`/api/faults/${encodeURIComponent(id)}`, json("DELETE"));

export const fetchScenarios = () => request<ScenarioSummary[]>("/api/scenarios");

/** 202 once the run started; its progress arrives as `scenario` events on `/api/live`. */
export const runScenario = (name: string) =>
  request<unknown>(`/api/scenarios/${encodeURIComponent(name)}/run`, json("POST"));
