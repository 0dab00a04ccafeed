/**
 * The board actor of a Raspberry Pi: the agent protocol's command side. It publishes `cmd/<target>` (QoS 1) with
 * an id and answers the waiting caller when the agent's `reply` with that id arrives, or with 504 after 5 s.
 *
 * It also follows the agent's runs through the heartbeats its link hands it (`{"ts", "uptimeS", "resetCause",
 * "run"}`): a new run — another `run` id; from agents without one, the uptime went backwards, the reset cause
 * changed, or the device came back with less uptime than the time since its last heartbeat allows — is a reset,
 * as an Arduino's heartbeat after a reboot is. It emits one
 * `board_reset` with the agent's cause and re-sends every actuator's intended state as commands, because the agent
 * starts with its outputs off. The same run coming back after a partition is not a reset.
 */
import type { Logger } from "pino";
import type { DeviceConfig } from "../../hub/config.ts";
import { type HubContext, partName } from "../../hub/context.ts";
import {
  call,
  type From,
  getClock,
  noreply,
  type Pid,
  reply,
  replyWith,
  type TimerHandle,
} from "../../hub/runtime/index.ts";
import type { ReadingValue } from "../../hub/store.ts";
import { type BoardCommand, type CommandResult, restoreCommand } from "../sensors/actuator.ts";

/** A reply routed from `<prefix>/<device>/reply`. */
export interface ReplyMessage {
  t: "reply";
  payload: string;
}

/** A heartbeat routed from `<prefix>/<device>/heartbeat` by the device's link. */
export interface HeartbeatMessage {
  t: "heartbeat";
  payload: string;
}

/** Counters of a Pi's board actor, for tests and the API (`call(board, {t: "stats"})`). */
export interface PiBoardStats {
  heartbeats: number;
  /** New runs of the agent seen since this actor started (each emitted one `board_reset`). */
  resets: number;
  uptimeS: number | undefined;
  resetCause: string | undefined;
}

/** What a heartbeat says about the agent's run. */
export interface AgentBeat {
  uptimeMs: number;
  cause: string | undefined;
  /** The run's id (agents since the `run` field); undefined from older agents. */
  run: string | undefined;
}

/** One run of the agent as the hub last heard of it. */
export interface Run extends AgentBeat {
  /** When the hub received that heartbeat (hub clock, so a Pi whose wall clock jumps cannot fake a reset). */
  seenAt: number;
}

interface Pending {
  from: From<CommandResult>;
  timer: TimerHandle;
}

interface State {
  /** Commands awaiting the agent's reply, by id; null until the first command (most boards get none). */
  pending: Map<string, Pending> | null;
  self: Pid;
  startedAt: number;
  run: Run | null;
  heartbeats: number;
  resets: number;
}

const CONFIRM_MS = 5000;

/**
 * Slack when comparing the agent's uptime with the hub's clock: `uptimeS` is floored to the second, and a busy hub
 * may take a while to read a heartbeat. A run younger than this that restarts unseen can go unnoticed.
 */
export const RUN_TOLERANCE_MS = 5000;

/** Parses a heartbeat body; null when it carries no usable uptime (an old or foreign agent: no reset detection). */
export function parseAgentHeartbeat(payload: string): AgentBeat | null {
  let body: { uptimeS?: unknown; resetCause?: unknown; run?: unknown };
  try {
    body = JSON.parse(payload) as typeof body;
  } catch {
    return null;
  }
  if (typeof body !== "object" || body === null) return null;
  if (typeof body.uptimeS !== "number" || !Number.isFinite(body.uptimeS) || body.uptimeS < 0) return null;
  return {
    uptimeMs: body.uptimeS * 1000,
    cause: typeof body.resetCause === "string" ? body.resetCause : undefined,
    run: typeof body.run === "string" && body.run !== "" ? body.run : undefined,
  };
}

/**
 * Whether a heartbeat belongs to a new run of the agent, given the last one heard at `last.seenAt`. Agents that
 * send a run id say so exactly. For older ones: within a run the uptime only grows, by about the time that passed,
 * and the reset cause never changes.
 */
export function isNewRun(last: Run, beat: AgentBeat, now: number): boolean {
  if (beat.run !== undefined && last.run !== undefined) return beat.run !== last.run;
  if (beat.uptimeMs < last.uptimeMs) return true;
  if (beat.cause !== undefined && last.cause !== undefined && beat.cause !== last.cause) return true;
  return beat.uptimeMs + RUN_TOLERANCE_MS < last.uptimeMs + (now - last.seenAt);
}

/**
 * The board actor's GenServer callbacks. A class rather than a spec object of closures: its methods are shared by
 * every Pi (10k boards would otherwise hold ~7 function objects each, each with a property dictionary under tsx).
 * Its logger is made on first use: most boards never log.
 */
export class PiBoardServer {
  private logger: Logger | null = null;

  constructor(
    private readonly hub: HubContext,
    private readonly config: DeviceConfig,
  ) {}

  private get log(): Logger {
    this.logger ??= this.hub.log.child({ device: this.config.id });
    return this.logger;
  }

  /**
   * Re-sends every actuator's intended state through the actuator, as an ordinary command (so its checks and
   * its confirmation apply), without blocking this actor: the actuators call it to carry the commands out.
   */
  private reapplyIntended(): void {
    const { hub, config } = this;
    const device = config.id;
    for (const actuator of config.actuators) {
      const part = { via: hub.names, key: partName(device, actuator.id) };
      void (async () => {
        const intended = await call<ReadingValue | null>(part, { t: "intended" }, 2000).catch(() => null);
        if (intended === null) return;
        const result = await call<CommandResult>(part, restoreCommand(intended), 8000).catch(
          (err: Error): CommandResult => ({
            ok: false,
            status: 503,
            code: "actuator_down",
            message: err.message,
          }),
        );
        const alog = this.log.child({ actuator: actuator.id });
        if (result.ok)
          alog.info({ intended }, `${device}/${actuator.id}: state re-applied after the agent restarted`);
        else
          alog.warn(
            { code: result.code, intended },
            `${device}/${actuator.id}: could not re-apply its state (${result.message}); send the command again`,
          );
      })();
    }
  }

  private onHeartbeat(state: State, payload: string): void {
    const beat = parseAgentHeartbeat(payload);
    if (beat === null) return;
    state.heartbeats++;
    const now = getClock().now();
    const last = state.run;
    state.run = { ...beat, seenAt: now };
    if (last === null) {
      // First contact. A run that began after this actor started has its outputs off: give them their intended
      // state. An older run may hold what a previous hub commanded: leave it alone.
      if (beat.uptimeMs + 1000 < now - state.startedAt) this.reapplyIntended();
      return;
    }
    if (!isNewRun(last, beat, now)) return;
    state.resets++;
    const device = this.config.id;
    const cause = beat.cause ?? "unknown";
    this.log.warn(
      { cause, uptimeS: beat.uptimeMs / 1000, previousUptimeS: last.uptimeMs / 1000 },
      `${device} reset (cause: ${cause}); re-applying its actuators' state`,
    );
    this.hub.emit({
      type: "board_reset",
      path: `hub/fleet/${device}`,
      ts: now,
      reason: `board reset (cause: ${cause})`,
      cause,
      uptimeMs: beat.uptimeMs,
    });
    this.reapplyIntended();
  }

  init(_: undefined, self: { pid: Pid }): State {
    return {
      pending: null,
      self: self.pid,
      startedAt: getClock().now(),
      run: null,
      heartbeats: 0,
      resets: 0,
    };
  }

  handleCall(req: (BoardCommand & { id: string }) | { t: "stats" }, from: From<CommandResult>, state: State) {
    const { hub } = this;
    const device = this.config.id;
    if (req.t === "stats") {
      return replyWith<State, PiBoardStats>(
        {
          heartbeats: state.heartbeats,
          resets: state.resets,
          uptimeS: state.run === null ? undefined : state.run.uptimeMs / 1000,
          resetCause: state.run?.cause,
        },
        state,
      );
    }
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
    state.pending ??= new Map();
    state.pending.set(req.id, { from, timer });
    return noreply(state);
  }

  handleInfo(msg: unknown, state: State): State {
    const device = this.config.id;
    const m = msg as ReplyMessage | HeartbeatMessage | { t: "confirm-timeout"; id: string };
    if (m.t === "heartbeat") {
      this.onHeartbeat(state, m.payload);
      return state;
    }
    if (m.t === "confirm-timeout") {
      const p = state.pending?.get(m.id);
      if (p !== undefined) {
        state.pending?.delete(m.id);
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
      this.log.warn("malformed reply payload (not JSON); ignored");
      return state;
    }
    const p = typeof body.id === "string" ? state.pending?.get(body.id) : undefined;
    if (p === undefined) return state;
    state.pending?.delete(body.id as string);
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
  }

  terminate(_reason: unknown, state: State): void {
    if (state.pending === null) return;
    for (const p of state.pending.values()) getClock().clearTimeout(p.timer);
  }
}
