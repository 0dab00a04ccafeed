/**
 * The per-device supervisor (DESIGN.md §2): rest_for_one over Link, Board and Sensors, so a lost link restarts
 * the board protocol and the part actors after it, while a failing sensor restarts alone under Sensors.
 */
import type { DeviceConfig } from "../hub/config.ts";
import { boardName, type HubContext } from "../hub/context.ts";
import { type ChildSpec, type GenServerSpec, startServer, startSupervisor } from "../hub/runtime/index.ts";
import { ArduinoBoardServer } from "./boards/arduino.ts";
import { PiBoardServer } from "./boards/pi.ts";
import { mqttLinkChild } from "./links/mqtt-link.ts";
import { serialLinkChild } from "./links/serial-link.ts";
import { actuatorChild } from "./sensors/actuator.ts";
import { sensorChild } from "./sensors/sensor.ts";

/**
 * The child spec of a device under the fleet: an Arduino's serial link and Firmata board actor, or a Pi's MQTT
 * link and agent-protocol board actor, by `config.link.type`.
 */
export function deviceChild(hub: HubContext, config: DeviceConfig): ChildSpec {
  const serial = config.link.type === "serial";
  const parts: ChildSpec[] = [
    ...config.sensors.map((s) => sensorChild(hub, config.id, s)),
    ...config.actuators.map((a) => actuatorChild(hub, config.id, a)),
  ];
  // Method syntax for `start`, not arrows: under tsx (esbuild keepNames) a named arrow gets its own `name`
  // property, a ~250-byte dictionary per function — and these exist once per configured device.
  return {
    id: config.id,
    type: "supervisor",
    start(ctx) {
      return startSupervisor(
        {
          strategy: "rest_for_one",
          children: [
            serial ? serialLinkChild(hub, config) : mqttLinkChild(hub, config),
            serial ? boardChild(hub, config, ArduinoBoardServer) : boardChild(hub, config, PiBoardServer),
            {
              id: "sensors",
              type: "supervisor",
              start(c) {
                return startSupervisor(
                  { strategy: "one_for_one", children: parts },
                  { path: c.path, link: c.parent },
                );
              },
            },
          ],
        },
        { path: ctx.path, link: ctx.parent },
      );
    },
  };
}

/** The child spec of a device's board actor (registered as `board:<id>`): a fresh `Server` on every start. */
function boardChild<S, Q, R, C>(
  hub: HubContext,
  config: DeviceConfig,
  Server: new (hub: HubContext, config: DeviceConfig) => GenServerSpec<S, undefined, Q, R, C>,
): ChildSpec {
  return {
    id: "board",
    // Method syntax, not `start: (ctx) =>`: tsx (esbuild keepNames) gives each named arrow its own name property.
    start(ctx) {
      return startServer(new Server(hub, config), undefined, {
        link: ctx.parent,
        label: ctx.path,
        name: { via: hub.names, key: boardName(config.id) },
      });
    },
  };
}
