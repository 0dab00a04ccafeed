/**
 * The link of an MQTT device (a Raspberry Pi running the agent): it tracks presence from the device's retained
 * `status`, its last will and its heartbeats, and marks the device offline when it falls silent. It does not own a
 * socket — the device connects to the broker — so going offline does not crash anything: the device's actors wait.
 * While the device is offline its parts are `down` (devices/presence.ts). It hands each heartbeat on to the board actor, which tells a new run of the agent (a reset) from it.
 */
import type { DeviceConfig } from "../../hub/config.ts";
import { boardName, type HubContext, linkName } from "../../hub/context.ts";
import {
  type ChildSpec,
  getClock,
  type Pid,
  startServer,
  type TimerHandle,
} from "../../hub/runtime/index.ts";
import { actuatorsUp, partsDown } from "../presence.ts";

/** A message the broker routes to a device's link. */
export interface LinkMessage {
  t: "status" | "heartbeat";
  payload: string;
}

interface State {
  lastSeen: number;
  timer: TimerHandle | null;
  self: Pid;
}

const SILENCE_CHECK = "silence-check";

/** The child spec of an MQTT device's link. */
export function mqttLinkChild(hub: HubContext, config: DeviceConfig): ChildSpec {
  const device = config.id;
  const silenceMs = config.silenceMs ?? hub.heartbeatMs * 3;
  const path = `hub/fleet/${device}`;

  const setStatus = (status: "online" | "offline", reason?: string) => {
    if (!hub.state.setStatus(device, status, reason)) return;
    // No link, no healthy parts (devices/presence.ts), as the serial link does when its port is lost.
    if (status === "offline") partsDown(hub, config);
    else actuatorsUp(hub, config);
    hub.store.appendStatus({
      device,
      status,
      ts: getClock().now(),
      ...(reason === undefined ? {} : { reason }),
    });
    hub.emit({ type: status, path, ts: getClock().now(), ...(reason === undefined ? {} : { reason }) });
  };

  const arm = (state: State) => {
    const clock = getClock();
    if (state.timer !== null) clock.clearTimeout(state.timer);
    const self = state.self;
    state.timer = clock.setTimeout(() => self.proc?.deliver(SILENCE_CHECK), silenceMs);
  };

  return {
    id: "link",
    start: (ctx) =>
      startServer(
        {
          init: (_: undefined, self: { pid: Pid }): State => {
            const state: State = { lastSeen: 0, timer: null, self: self.pid };
            arm(state);
            return state;
          },
          handleInfo: (msg: unknown, state: State): State => {
            if (msg === SILENCE_CHECK) {
              state.timer = null;
              if (hub.state.status(device) === "online") setStatus("offline", `silent for ${silenceMs} ms`);
              arm(state);
              return state;
            }
            const m = msg as LinkMessage;
            if (m.t === "status") {
              if (m.payload === "online") setStatus("online");
              else if (m.payload === "offline")
                setStatus("offline", "device said offline (last will or shutdown)");
              else
                hub.log.warn(
                  { device, payload: m.payload.slice(0, 64) },
                  "unexpected status payload; expected online/offline",
                );
            } else if (m.t === "heartbeat") {
              state.lastSeen = getClock().now();
              setStatus("online");
              arm(state);
              // The board actor follows the agent's runs (resets) from the heartbeats; after the status change, so
              // the commands it may send find the device online.
              hub.names.whereis(boardName(device))?.proc?.deliver(m);
            }
            return state;
          },
          terminate: (_reason: unknown, state: State) => {
            if (state.timer !== null) getClock().clearTimeout(state.timer);
          },
        },
        undefined,
        { link: ctx.parent, label: ctx.path, name: { via: hub.names, key: linkName(device) } },
      ),
  };
}
