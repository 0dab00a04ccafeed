/**
 * `ganglion watch`: the live supervision tree and an event tail in the terminal, from a hub's `/api/live` (local or
 * remote with `--url`, so it works over SSH). Full-screen on a TTY, redrawn at most every 100 ms; status is colour
 * and text (NO_COLOR turns colour off); q or Ctrl-C quits. Reconnects by itself while the hub is away.
 */
import type { Command } from "commander";
import type WebSocket from "ws";
import type { TreeNode } from "../runtime/index.ts";
import type { HubEvent } from "../store.ts";
import type { DeviceView, LiveUpdate } from "../view.ts";
import { action, defaultHubUrl, parseHubUrl } from "./common.ts";
import { onStopSignal } from "./stop-signal.ts";

/** Options of `ganglion watch`. */
export interface WatchOptions {
  url: string;
}

type LiveMessage = { type: "snapshot"; tree: TreeNode; devices: DeviceView[] } | LiveUpdate;

/** What the screen shows. */
export interface WatchState {
  url: string;
  connected: boolean;
  /** Why the last connection ended (shown while reconnecting). */
  lost?: string;
  tree: TreeNode | null;
  devices: Map<string, DeviceView>;
  events: HubEvent[];
  /** When a node's restart count last went up, by path (highlighted for a while). */
  restartedAt: Map<string, number>;
}

const EVENTS_KEPT = 200;
const HIGHLIGHT_MS = 3000;
const REDRAW_MS = 100;

const ESC = "\x1b[";
const paint = (on: boolean, code: string, text: string) => (on ? `${ESC}${code}m${text}${ESC}0m` : text);
const STATUS_COLOUR: Record<string, string> = {
  running: "32",
  online: "32",
  restarting: "33",
  offline: "33",
  down: "31",
};

function findNode(root: TreeNode | null, path: string): TreeNode | undefined {
  let node: TreeNode | undefined = root ?? undefined;
  const [first, ...rest] = path.split("/");
  if (node?.id !== first) return undefined;
  for (const id of rest) node = node?.children?.find((c) => c.id === id);
  return node;
}

/** Applies one `/api/live` message; returns false when the tree changed shape and must be read again. */
export function applyMessage(state: WatchState, msg: LiveMessage, now: number): boolean {
  switch (msg.type) {
    case "snapshot":
      state.tree = msg.tree;
      state.devices = new Map(msg.devices.map((d) => [d.id, d]));
      state.restartedAt.clear();
      return true;
    case "node": {
      const node = findNode(state.tree, msg.node.path);
      if (node === undefined) return false;
      if (msg.node.restarts > node.restarts) state.restartedAt.set(node.path, now);
      const children = node.children;
      for (const key of Object.keys(node)) delete (node as unknown as Record<string, unknown>)[key];
      Object.assign(node, msg.node, children ? { children } : {});
      return true;
    }
    case "event":
      state.events.push(msg.event);
      if (state.events.length > EVENTS_KEPT) state.events.shift();
      if (msg.event.type === "started" && findNode(state.tree, msg.event.path) === undefined) return false;
      if (msg.event.type === "offline" && msg.event.reason === "removed") {
        state.devices.delete(msg.event.path.split("/")[2] ?? "");
        return false;
      }
      return true;
    case "device":
      state.devices.set(msg.device.id, msg.device);
      return true;
    default:
      return true;
  }
}

function clock(ts: number): string {
  return new Date(ts).toTimeString().slice(0, 8);
}

/** The screen as lines (no trailing newline), at most `rows` of them, each cut to `cols` visible characters. */
export function renderScreen(
  state: WatchState,
  cols: number,
  rows: number,
  colour: boolean,
  now: number,
): string[] {
  type Line = { text: string; plain: string };
  /** A line from (text, SGR colour code or null) parts. */
  const line = (parts: [string, string | null][]): Line => ({
    plain: parts.map(([t]) => t).join(""),
    text: parts.map(([t, c]) => (c === null || t === "" ? t : paint(colour, c, t))).join(""),
  });
  const lines: Line[] = [];
  const push = (parts: [string, string | null][]) => lines.push(line(parts));
  const status = state.connected
    ? (["live", "32"] as const)
    : (["disconnected — reconnecting", "1;31"] as const);
  push([
    ["ganglion watch ", "1"],
    [state.url, null],
    ["  ", null],
    [status[0], status[1]],
    [state.connected || !state.lost ? "" : ` (${state.lost})`, null],
    ["   q quits", "2"],
  ]);

  const treeLines: Line[] = [];
  const walk = (node: TreeNode, prefix: string, last: boolean, depth: number) => {
    const device = depth === 2 && node.path.startsWith("hub/fleet/") ? state.devices.get(node.id) : undefined;
    const flashed = now - (state.restartedAt.get(node.path) ?? Number.NEGATIVE_INFINITY) < HIGHLIGHT_MS;
    const parts: [string, string | null][] = [
      [depth === 0 ? "" : `${prefix}${last ? "└─ " : "├─ "}`, "2"],
      [node.id, flashed ? "1;7;33" : "1"],
      [" ", null],
      [node.status, STATUS_COLOUR[node.status] ?? null],
    ];
    if (device)
      parts.push([
        ` ${device.status}${device.reason ? ` (${device.reason})` : ""}`,
        STATUS_COLOUR[device.status] ?? null,
      ]);
    if (node.strategy) parts.push([` ${node.strategy}`, "2"]);
    parts.push([` ↻${node.restarts}`, node.restarts > 0 ? "33" : "2"]);
    if (node.intensity) {
      const i = node.intensity;
      parts.push([` budget ${i.recent}/${i.max} in ${i.periodMs / 1000}s`, i.recent >= i.max ? "31" : "2"]);
    }
    if (node.lastExit)
      parts.push([` last exit: ${node.lastExit.reason} at ${clock(node.lastExit.ts)}`, "31"]);
    treeLines.push(line(parts));
    const children = node.children ?? [];
    const childPrefix = depth === 0 ? "" : `${prefix}${last ? "   " : "│  "}`;
    for (const [i, c] of children.entries()) walk(c, childPrefix, i === children.length - 1, depth + 1);
  };
  if (state.tree) walk(state.tree, "", true, 0);
  else treeLines.push(line([["waiting for the hub…", "2"]]));

  // The event tail gets at least a few rows; the tree takes what is left.
  const eventRows = Math.max(4, rows - 1 - treeLines.length - 2);
  const treeRows = Math.max(1, rows - 1 - 2 - Math.min(eventRows, Math.max(4, state.events.length)));
  if (treeLines.length > treeRows) {
    const hidden = treeLines.length - treeRows + 1;
    treeLines.splice(treeRows - 1);
    treeLines.push(line([[`… ${hidden} more`, "2"]]));
  }
  lines.push(...treeLines);
  push([["", null]]);
  push([["events", "1"]]);
  const room = Math.max(0, rows - lines.length);
  for (const e of state.events.slice(-room)) {
    const colourOf = e.type === "exited" || e.type === "gave_up" ? "31" : e.type === "restarted" ? "33" : "2";
    push([
      [`${clock(e.ts)} `, "2"],
      [e.type.padEnd(10), colourOf],
      [` ${e.path}`, null],
      [e.restarts === undefined ? "" : ` restarts ${e.restarts}`, "33"],
      [e.reason ? ` ${e.reason}` : "", "31"],
    ]);
  }
  // Cut to the width by visible characters; a cut line loses its colours, which is fine at the edge.
  return lines.slice(0, rows).map((l) => (l.plain.length > cols ? l.plain.slice(0, cols) : l.text));
}

/** Follows the hub at `opts.url` until q, Ctrl-C or SIGTERM. */
export async function runWatch(opts: WatchOptions): Promise<void> {
  const { WebSocket } = await import("ws");
  const out = process.stdout;
  const tty = out.isTTY === true;
  const colour = tty && process.env.NO_COLOR === undefined;
  const state: WatchState = {
    url: opts.url,
    connected: false,
    tree: null,
    devices: new Map(),
    events: [],
    restartedAt: new Map(),
  };
  let socket: WebSocket | undefined;
  let retry: NodeJS.Timeout | undefined;
  let redraw: NodeJS.Timeout | undefined;
  let attempt = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => {
    done = r;
  });

  const draw = () => {
    redraw = undefined;
    if (!tty) return;
    const lines = renderScreen(state, out.columns || 80, out.rows || 24, colour, Date.now());
    out.write(`${ESC}H${lines.map((l) => `${l}${ESC}K`).join("\r\n")}${ESC}J`);
    // Draw again when a restart highlight ends.
    const left = [...state.restartedAt.values()]
      .map((t) => t + HIGHLIGHT_MS - Date.now())
      .filter((ms) => ms > 0);
    if (left.length > 0) redraw = setTimeout(draw, Math.min(...left) + 10);
  };
  const schedule = () => {
    redraw ??= setTimeout(draw, REDRAW_MS);
  };
  const reloadTree = async () => {
    try {
      const res = await fetch(`${opts.url}/api/tree`);
      if (res.ok) state.tree = (await res.json()) as TreeNode;
    } catch {
      // The socket's close will say the hub is gone.
    }
    schedule();
  };

  const connect = () => {
    const ws = new WebSocket(`${opts.url.replace(/^http/, "ws")}/api/live`);
    socket = ws;
    ws.on("open", () => {
      attempt = 0;
      state.connected = true;
      delete state.lost;
      if (state.events.length === 0) {
        fetch(`${opts.url}/api/events?limit=50`)
          .then((r) => (r.ok ? (r.json() as Promise<HubEvent[]>) : []))
          .then((events) => {
            if (state.events.length === 0) state.events.push(...events);
            schedule();
          })
          .catch(() => undefined);
      }
      schedule();
    });
    ws.on("message", (data) => {
      let msg: LiveMessage;
      try {
        msg = JSON.parse(String(data)) as LiveMessage;
      } catch {
        return;
      }
      if (!applyMessage(state, msg, Date.now())) void reloadTree();
      if (tty && msg.type !== "reading") schedule();
      else if (msg.type === "snapshot")
        out.write(`${renderScreen(state, 200, 1000, false, Date.now()).join("\n")}\n`);
      else if (msg.type === "event") {
        // Piped: the tree once per snapshot, then one line per event.
        const e = msg.event;
        out.write(`${clock(e.ts)} ${e.type} ${e.path}${e.reason ? ` ${e.reason}` : ""}\n`);
      }
    });
    ws.on("error", () => undefined);
    ws.on("close", (code, reason) => {
      if (socket !== ws) return;
      state.connected = false;
      state.lost = reason.toString() || (code === 1006 ? "connection lost" : `closed ${code}`);
      const delay = Math.min(5000, 250 * 2 ** attempt++);
      retry = setTimeout(connect, delay);
      schedule();
    });
  };

  const quit = () => {
    const ws = socket;
    socket = undefined;
    ws?.terminate();
    if (retry) clearTimeout(retry);
    if (redraw) clearTimeout(redraw);
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdin.pause();
    if (tty) out.write(`${ESC}?25h${ESC}?1049l`);
    done();
  };
  if (tty) out.write(`${ESC}?1049h${ESC}?25l`);
  if (process.stdin.isTTY) process.stdin.setRawMode(true);
  process.stdin.on("data", (key: Buffer) => {
    const k = key.toString();
    if (k === "q" || k === "Q" || k === "\x03") quit();
  });
  onStopSignal(quit);
  out.on("resize", schedule);
  connect();
  await finished;
  // stdin and the signal handlers would keep a quitting watcher alive.
  process.exit(0);
}

/** Registers `watch`. */
export function registerWatch(program: Command): void {
  program
    .command("watch")
    .description("follow a hub's supervision tree and events live in the terminal (q quits)")
    .option("--url <url>", "the hub's HTTP address (env GANGLION_URL)", parseHubUrl, defaultHubUrl())
    .action(action((opts: WatchOptions) => runWatch(opts)));
}
