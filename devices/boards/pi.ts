/**
 * The board actor of a Raspberry Pi: the agent protocol's command side. It publishes `cmd/<target>` (QoS 1) with
 * an id and answers the waiting caller when the agent's `reply` with that id arrives, or with 504 after 5 s.
 */
import type { DeviceConfig } from "../../hub/config.ts";
import { boardName, type HubContext } from "../../hub/context.ts";
import {
  type ChildSpec,
  type From,
  getClock,
  noreply,
  type Pid,
  reply,
  replyWith,
  startServer,
  type TimerHandle,
} from "../../hub/runtime/index.ts";
import type { BoardCommand, CommandResult } from "../sensors/actuator.ts";

/** A reply routed from `<prefix>/<device>/reply`. */
export interface ReplyMessage {
  t: "reply";
  payload: string;
}

interface Pending {
  from: From<CommandResult>;
  timer: TimerHandle;
}

interface State {
  pending: Map<string, Pending>;
  self: Pid;
}

const CONFIRM_MS = 5000;

/** The child spec of a Pi's board actor. */
export function piBoardChild(hub: HubContext, config: DeviceConfig): ChildSpec {
  const device = config.id;
  const log = hub.log.child({ device });
  return {
    id: "board",
    start: (ctx) =>
      startServer(
        {
          init: (_: undefined, self: { pid: Pid }): State => ({ pending: new Map(), self: self.pid }),
          handleCall: (req: BoardCommand & { id: string }, from: From<CommandResult>, state: State) => {
            if (hub.state.status(device) !== "online") {
              return replyWith<State, CommandResult>(
                {
                  ok: false,
                  status: 503,
                  code: "device_offline",
                  message: `${device} is offline; the command was not sent`,
                },
                state,
              );
            }
            const payload = JSON.stringify({
              id: req.id,
              op: req.op,
              ...(req.args ? { args: req.args } : {}),
            });
            hub.bus.publish(`${hub.prefix}/${device}/cmd/${req.target}`, payload, { qos: 1 });
            const self = state.self;
            const timer = getClock().setTimeout(
              () => self.proc?.deliver({ t: "confirm-timeout", id: req.id }),
              CONFIRM_MS,
            );
            state.pending.set(req.id, { from, timer });
            return noreply(state);
          },
          handleInfo: (msg: unknown, state: State): State => {
            const m = msg as ReplyMessage | { t: "confirm-timeout"; id: string };
            if (m.t === "confirm-timeout") {
              const p = state.pending.get(m.id);
              if (p !== undefined) {
                state.pending.delete(m.id);
                reply(p.from, {
                  ok: false,
                  status: 504,
                  code: "no_confirmation",
                  message: `${device} did not confirm command ${m.id} within ${CONFIRM_MS} ms`,
                });
              }
              return state;
            }
            if (m.t !== "reply") return state;
            let body: { id?: unknown; ok?: unknown; error?: unknown };
            try {
              body = JSON.parse(m.payload) as typeof body;
            } catch {
              log.warn("malformed reply payload (not JSON); ignored");
              return state;
            }
            const p = typeof body.id === "string" ? state.pending.get(body.id) : undefined;
            if (p === undefined) return state;
            state.pending.delete(body.id as string);
            getClock().clearTimeout(p.timer);
            reply(
              p.from,
              body.ok === true
                ? { ok: true, id: body.id as string }
                : {
                    ok: false,
                    status: 400,
                    code: "device_refused",
                    message: `${device}: ${String(body.error ?? "refused")}`,
                  },
            );
            return state;
          },
          terminate: (_reason: unknown, state: State) => {
            for (const p of state.pending.values()) getClock().clearTimeout(p.timer);
          },
        },
        undefined,
        { link: ctx.parent, label: ctx.path, name: { via: hub.names, key: boardName(device) } },
      ),
  };
}
