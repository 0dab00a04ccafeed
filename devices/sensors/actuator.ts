/**
 * An actuator actor: one GenServer per LED, relay, servo or output. It checks a command's op and args for its
 * kind, asks the device's board to carry it out, and remembers the intended state so it can be re-applied after
 * the board resets or the link comes back.
 */
import type { ActuatorConfig } from "../../hub/config.ts";
import { boardName, type HubContext, partName } from "../../hub/context.ts";
import { type ChildSpec, call, getClock, replyWith, startServer } from "../../hub/runtime/index.ts";
import type { ReadingValue } from "../../hub/store.ts";
import { healthAtStart } from "../presence.ts";

/** A command for this actuator. */
export interface ActuatorCommand {
  op: string;
  args?: Record<string, unknown>;
}

/** What the board is asked to do. */
export interface BoardCommand {
  t: "command";
  target: string;
  op: string;
  args?: Record<string, unknown>;
}

/** The outcome of a command, as the API reports it. */
export type CommandResult =
  | { ok: true; id: string }
  | { ok: false; status: 400 | 404 | 503 | 504; code: string; message: string };

/** Ops each actuator kind accepts (DESIGN.md §2), with an argument check. */
const OPS: Record<string, Record<string, (args: Record<string, unknown>) => string | null>> = {
  led: {
    on: () => null,
    off: () => null,
    toggle: () => null,
    blink: (a) =>
      typeof a.periodMs === "number" && a.periodMs >= 20 && a.periodMs <= 60_000
        ? null
        : "blink needs {periodMs: 20..60000}",
    set: (a) =>
      typeof a.value === "boolean" || a.value === 0 || a.value === 1 ? null : "set needs {value: true|false}",
  },
  relay: {
    open: () => null,
    close: () => null,
    set: (a) => (typeof a.value === "boolean" ? null : "set needs {value: true|false}"),
  },
  servo: {
    to: (a) => (typeof a.deg === "number" && a.deg >= 0 && a.deg <= 180 ? null : "to needs {deg: 0..180}"),
    set: (a) =>
      typeof a.value === "number" && a.value >= 0 && a.value <= 180 ? null : "set needs {value: 0..180}",
  },
  "digital-out": {
    on: () => null,
    off: () => null,
    set: (a) =>
      typeof a.value === "boolean" || a.value === 0 || a.value === 1 ? null : "set needs {value: true|false}",
  },
  pwm: {
    set: (a) =>
      typeof a.value === "number" && a.value >= 0 && a.value <= 255 ? null : "set needs {value: 0..255}",
  },
};

/** The state an op leaves the actuator in (what is re-applied after a reset). */
function intendedState(
  kind: string,
  op: string,
  args: Record<string, unknown>,
  previous: ReadingValue | null,
): ReadingValue | null {
  switch (op) {
    case "on":
    case "close":
      return true;
    case "off":
    case "open":
      return false;
    case "toggle":
      return !(previous === true);
    case "blink":
      return `blink:${String(args.periodMs)}`;
    case "to":
      return args.deg as number;
    case "set":
      return kind === "servo" || kind === "pwm"
        ? (args.value as number)
        : args.value === true || args.value === 1;
    default:
      return previous;
  }
}

interface State {
  intended: ReadingValue | null;
}

let commandSerial = 0;

/** The child spec of an actuator actor. */
export function actuatorChild(hub: HubContext, device: string, config: ActuatorConfig): ChildSpec {
  const ops = OPS[config.kind] ?? {};
  const log = hub.log.child({ device, actuator: config.id });
  return {
    id: config.id,
    start: (ctx) =>
      startServer(
        {
          init: (): State => {
            // A restarted actuator keeps what the user last asked for; `initial` is only for the very first start.
            const last = hub.state.view(device)?.sensors.find((p) => p.id === config.id)?.value ?? null;
            const initial = last ?? config.initial ?? null;
            // Not `ok` while the device has no link (devices/presence.ts).
            const health = healthAtStart(hub, device);
            hub.state.setHealth(device, config.id, health);
            if (initial !== null) {
              hub.state.setReading(device, config.id, initial, getClock().now(), health);
              // After a link restart (rest_for_one) a Firmata handshake can complete before this actuator is back,
              // and the board's re-apply then finds nobody to ask: offer the intended state to the board too. A
              // board that is not ready, or drives pins itself (a Pi's agent), ignores it.
              hub.names
                .whereis(boardName(device))
                ?.proc?.deliver({ t: "apply", intended: [[config.id, initial]] });
            }
            return { intended: initial };
          },
          handleCall: async (req: ActuatorCommand | { t: "intended" }, _from, state: State) => {
            if ("t" in req) return replyWith<State, unknown>(state.intended, state);
            const args = req.args ?? {};
            const check = ops[req.op];
            if (check === undefined) {
              const known = Object.keys(ops).join(", ");
              return replyWith<State, CommandResult>(
                {
                  ok: false,
                  status: 400,
                  code: "bad_op",
                  message: `${config.kind} ${device}/${config.id} has no op "${req.op}" (ops: ${known})`,
                },
                state,
              );
            }
            const problem = check(args);
            if (problem !== null) {
              return replyWith<State, CommandResult>(
                { ok: false, status: 400, code: "bad_args", message: problem },
                state,
              );
            }
            const id = `c${Date.now().toString(36)}-${++commandSerial}`;
            let result: CommandResult;
            try {
              result = await call<CommandResult>(
                { via: hub.names, key: boardName(device) },
                { t: "command", target: config.id, op: req.op, args, id } satisfies BoardCommand & {
                  id: string;
                },
                6000,
              );
            } catch (err) {
              result = {
                ok: false,
                status: 503,
                code: "board_unavailable",
                message: `${device}'s board is not running: ${(err as Error).message}`,
              };
            }
            if (!result.ok) {
              log.warn({ op: req.op, code: result.code }, result.message);
              return replyWith<State, CommandResult>(result, state);
            }
            const intended = intendedState(config.kind, req.op, args, state.intended);
            if (intended !== null) hub.state.setReading(device, config.id, intended, getClock().now(), "ok");
            return replyWith<State, CommandResult>(result, { intended });
          },
        },
        undefined,
        { link: ctx.parent, label: ctx.path, name: { via: hub.names, key: partName(device, config.id) } },
      ),
  };
}

/** The actuator command that brings an output back to a recorded state (after a board reset or a lost link). */
export function restoreCommand(value: ReadingValue): { op: string; args: Record<string, unknown> } {
  if (typeof value === "string" && value.startsWith("blink:")) {
    return { op: "blink", args: { periodMs: Number(value.slice("blink:".length)) } };
  }
  return { op: "set", args: { value } };
}
