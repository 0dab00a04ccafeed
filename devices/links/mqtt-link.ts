/**
 * The link of an MQTT device (a Raspberry Pi running the agent): it tracks presence from the device's retained
 * `status`, its last will and its heartbeats, and marks the device offline when it falls silent. It does not own a
 * socket — the device connects to the broker — so going offline alone does not crash anything: the device's actors
 * wait. While the device is not online its parts are `down` (devices/presence.ts). It hands each heartbeat on to
 * the board actor, which tells a new run of the agent (a reset) from it.
 *
 * A device that stays offline for `downAfterMs` (fleet file, default {@link DEFAULT_DOWN_AFTER_MS}) after it was
 * last heard — power lost, agent dead, a long network outage — is `down` (DESIGN.md §3 `power-loss`): the link
 * exits with {@link MqttDeviceDownError}, its supervisor restarts it (and the board and part actors after it,
 * rest_for_one) with {@link MQTT_LINK_BACKOFF}, and a `backoff` event carries the reason.
 *
 * Why a returning device is seen at once although its link backs off: an MQTT link owns nothing that a retry could
 * hammer (the device dials the broker, not the hub), so the hub's "retry" is simply listening. The restarted link
 * listens, the device still `down`, for another whole window before it exits again; the backoff delay between two
 * windows is short (about a second: each window outlasts `resetAfterMs`, so the delay never grows). A device that
 * comes back while its link listens is `online` with its first status or heartbeat; one that comes back in the
 * second in between is too, once the link is up again: the Broker service keeps a status that finds no link for
 * 30 s and hands it over (hub/broker-service.ts `pendingStatus`), and its telemetry is persisted by the Broker
 * service whether or not the link runs, so history has no gap either way. A device never heard since the hub
 * started stays `offline` (waiting for its first connection), not `down`: nothing says it ever ran.
 */
import type { Logger } from "pino";
import type { DeviceConfig } from "../../hub/config.ts";
import { boardName, type HubContext, linkName } from "../../hub/context.ts";
import {
  type BackoffOptions,
  type ChildSpec,
  getClock,
  type Pid,
  type Stop,
  startServer,
  stop,
  type TimerHandle,
} from "../../hub/runtime/index.ts";
import { actuatorsUp, partsDown } from "../presence.ts";

/** A message the broker routes to a device's link. */
export interface LinkMessage {
  t: "status" | "heartbeat";
  payload: string;
}

/** How long an MQTT device may stay offline before it is `down`, unless its `downAfterMs` says otherwise. */
export const DEFAULT_DOWN_AFTER_MS = 60_000;

/**
 * Restart pacing of an MQTT link that gave up on its device (see the module comment): about a second between two
 * listening windows. `resetAfterMs` is below any window, so the delay stays at `minMs` however long the device is
 * away — the window, not the delay, paces the retries.
 */
export const MQTT_LINK_BACKOFF: BackoffOptions = {
  minMs: 1000,
  maxMs: 5000,
  jitter: 0.2,
  resetAfterMs: 1000,
  downAfter: 0,
};

/** The device stayed away for its whole window: the link's exit reason, which the device shows while `down`. */
export class MqttDeviceDownError extends Error {
  override readonly name = "MqttDeviceDownError";
}

interface State {
  lastSeen: number;
  timer: TimerHandle | null;
  downTimer: TimerHandle | null;
  self: Pid;
}

const SILENCE_CHECK = "silence-check";
const DOWN_CHECK = "down-check";

/** The child spec of an MQTT device's link (backoff restarts: see {@link MQTT_LINK_BACKOFF}). */
export function mqttLinkChild(hub: HubContext, config: DeviceConfig): ChildSpec {
  // One per device, made here and not per start: it carries `awaySince` across the link's restarts.
  const link = new MqttLinkServer(hub, config);
  return {
    id: "link",
    backoff: MQTT_LINK_BACKOFF,
    // Method syntax, not `start: (ctx) =>`: tsx (esbuild keepNames) gives each named arrow its own name property.
    start(ctx) {
      return startServer(link, undefined, {
        link: ctx.parent,
        label: ctx.path,
        name: { via: hub.names, key: linkName(config.id) },
      });
    },
  };
}

/**
 * The link's GenServer callbacks, one instance per device serving each run of its link in turn: what must survive a
 * restart (`awaySince`) is a field, what belongs to one run is its {@link State}. A class rather than a spec object
 * of closures: its methods are shared by every link (10k devices would otherwise hold ~10 function objects each,
 * each with a property dictionary under tsx). Its logger is made on first use: most links never log.
 */
class MqttLinkServer {
  private readonly silenceMs: number;
  private readonly downAfterMs: number;
  private logger: Logger | null = null;
  /**
   * When the device was last known to go away (its last will, a shutdown, silence), across restarts of the link;
   * null while it is online and before it was ever heard.
   */
  private awaySince: number | null = null;

  constructor(
    private readonly hub: HubContext,
    private readonly config: DeviceConfig,
  ) {
    this.silenceMs = config.silenceMs ?? hub.heartbeatMs * 3;
    this.downAfterMs = config.downAfterMs ?? DEFAULT_DOWN_AFTER_MS;
  }

  private get log(): Logger {
    this.logger ??= this.hub.log.child({ device: this.config.id, link: "mqtt" });
    return this.logger;
  }

  private setStatus(status: "online" | "offline" | "down", reason?: string): void {
    const { hub, config } = this;
    const device = config.id;
    if (!hub.state.setStatus(device, status, reason)) return;
    // No link, no healthy parts (devices/presence.ts), as the serial link does when its port is lost.
    if (status === "online") actuatorsUp(hub, config);
    else partsDown(hub, config);
    const ts = getClock().now();
    hub.store.appendStatus({ device, status, ts, ...(reason === undefined ? {} : { reason }) });
    // `down` is announced by the supervisor's `backoff` event, which carries the same reason.
    if (status !== "down")
      hub.emit({
        type: status,
        path: `hub/fleet/${device}`,
        ts,
        ...(reason === undefined ? {} : { reason }),
      });
  }

  private arm(state: State): void {
    const clock = getClock();
    if (state.timer !== null) clock.clearTimeout(state.timer);
    const self = state.self;
    state.timer = clock.setTimeout(() => self.proc?.deliver(SILENCE_CHECK), this.silenceMs);
  }

  /** Starts the down window (once): the device went away at `since`, or this link starts while it is away. */
  private armDown(state: State, since: number): void {
    if (state.downTimer !== null) return;
    const self = state.self;
    const left = Math.max(0, since + this.downAfterMs - getClock().now());
    state.downTimer = getClock().setTimeout(() => self.proc?.deliver(DOWN_CHECK), left);
  }

  private disarmDown(state: State): void {
    if (state.downTimer !== null) getClock().clearTimeout(state.downTimer);
    state.downTimer = null;
  }

  private away(state: State, reason: string): void {
    // A device already `down` stays down (a retained last will handed to a restarted link changes nothing).
    if (this.hub.state.status(this.config.id) === "down") return;
    this.setStatus("offline", reason);
    this.awaySince ??= getClock().now();
    this.armDown(state, this.awaySince);
  }

  private back(state: State): void {
    this.awaySince = null;
    this.disarmDown(state);
    this.setStatus("online");
  }

  init(_: undefined, self: { pid: Pid }): State {
    const state: State = { lastSeen: 0, timer: null, downTimer: null, self: self.pid };
    this.arm(state);
    // Restarted while the device is away (or down): a fresh window from now, so a device that stays away
    // costs one restart per window and no more.
    if (this.awaySince !== null) this.armDown(state, getClock().now());
    return state;
  }

  handleInfo(msg: unknown, state: State): State | Stop<State> {
    const { hub, silenceMs, downAfterMs } = this;
    const device = this.config.id;
    if (msg === SILENCE_CHECK) {
      state.timer = null;
      if (hub.state.status(device) === "online") this.away(state, `silent for ${silenceMs} ms`);
      this.arm(state);
      return state;
    }
    if (msg === DOWN_CHECK) {
      state.downTimer = null;
      if (hub.state.status(device) === "online") return state;
      const since = new Date(this.awaySince ?? getClock().now()).toISOString();
      const reason = `${device} has not been heard since ${since} (over ${downAfterMs / 1000} s): check its power, network and agent; the hub keeps listening and shows it online as soon as it reports`;
      this.log.warn({ since, downAfterMs }, `${device}: down: ${reason}`);
      this.setStatus("down", reason);
      return stop(new MqttDeviceDownError(reason), state);
    }
    const m = msg as LinkMessage;
    if (m.t === "status") {
      if (m.payload === "online") this.back(state);
      else if (m.payload === "offline") this.away(state, "device said offline (last will or shutdown)");
      else
        this.log.warn(
          { payload: m.payload.slice(0, 64) },
          "unexpected status payload; expected online/offline",
        );
    } else if (m.t === "heartbeat") {
      state.lastSeen = getClock().now();
      this.back(state);
      this.arm(state);
      // The board actor follows the agent's runs (resets) from the heartbeats; after the status change, so
      // the commands it may send find the device online.
      hub.names.whereis(boardName(device))?.proc?.deliver(m);
    }
    return state;
  }

  terminate(_reason: unknown, state: State): void {
    if (state.timer !== null) getClock().clearTimeout(state.timer);
    this.disarmDown(state);
  }
}
