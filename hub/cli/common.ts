/**
 * What every `ganglion` command shares: one-line failures ({@link CliError}, {@link action}), argument parsers that
 * refuse bad input with a clear reason, a small client for a running hub's API, and plain-text tables.
 */
import { InvalidArgumentError } from "commander";

/** A failure to show as one line (`ganglion: <message>`) before exiting with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** The first line of an error's message; a fleet file with several problems says how many more there are. */
export function oneLine(err: unknown): string {
  // Duck-typed so this module does not load the config schema (zod, yaml) for commands that never need it.
  const issues = (err as { issues?: unknown } | null)?.issues;
  if (err instanceof Error && err.name === "FleetConfigError" && Array.isArray(issues) && issues.length > 1) {
    return `${err.message.split("\n")[0]} (and ${issues.length - 1} more problems)`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return message.split("\n")[0] ?? message;
}

/** Prints one line for a failure and exits non-zero. */
export function exitWith(err: unknown): never {
  console.error(`ganglion: ${oneLine(err)}`);
  process.exit(err instanceof CliError ? err.exitCode : 1);
}

/** Wraps a command's action so that any failure becomes one line on stderr and a non-zero exit. */
export function action<A extends unknown[]>(
  run: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (err) {
      exitWith(err);
    }
  };
}

/** Parses a `--*-port` value (0-65535; 0 picks a free port). */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`"${value}" is not a port number (0-65535; 0 picks a free port)`);
  }
  return port;
}

/** Parses a hub URL (`http://host:port`). */
export function parseHubUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`"${value}" is not a URL (expected e.g. http://127.0.0.1:8080)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidArgumentError(`"${value}" is not an http(s) URL`);
  }
  return url.origin;
}

/** The hub URL commands talk to unless `--url` says otherwise: `GANGLION_URL`, or 127.0.0.1 on the HTTP port. */
export function defaultHubUrl(): string {
  return process.env.GANGLION_URL ?? `http://127.0.0.1:${process.env.GANGLION_HTTP_PORT ?? "8080"}`;
}

/** The fleet file commands read unless `--config` says otherwise. */
export function defaultConfigPath(): string {
  return process.env.GANGLION_CONFIG ?? "fleet.yaml";
}

/** No hub answered at the URL (connection refused, unreachable, timeout). */
export class HubUnreachableError extends CliError {
  constructor(readonly url: string) {
    super(`no hub answers at ${url} (start one with \`ganglion start\`, or pass --url)`);
    this.name = "HubUnreachableError";
  }
}

/** A hub's answer: status and parsed JSON body (undefined when empty). */
export interface HubAnswer {
  status: number;
  body: unknown;
}

/** Options of {@link hubRequest}. */
export interface HubRequestOptions {
  body?: unknown;
  /** Bearer token for mutating routes. */
  token?: string;
  timeoutMs?: number;
}

/**
 * Calls a running hub's API. Resolves with any HTTP answer (callers decide what a status means); rejects with
 * {@link HubUnreachableError} when nothing answers.
 */
export async function hubRequest(
  url: string,
  method: string,
  path: string,
  options: HubRequestOptions = {},
): Promise<HubAnswer> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let res: Response;
  try {
    res = await fetch(`${url}${path}`, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
    });
  } catch (err) {
    if ((err as Error).name === "TimeoutError") {
      throw new CliError(`the hub at ${url} did not answer within ${(options.timeoutMs ?? 5000) / 1000} s`);
    }
    throw new HubUnreachableError(url);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

/** The `message` of an API error body, or the status when the body is not one. */
export function apiErrorMessage(answer: HubAnswer): string {
  const error = (answer.body as { error?: { message?: unknown } } | undefined)?.error;
  return typeof error?.message === "string" ? error.message : `HTTP ${answer.status}`;
}

/** Formats rows as a left-aligned plain-text table with a header row. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}
