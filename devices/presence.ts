/**
 * How a device's presence shows in its parts' health (DESIGN.md §2, `Health`). A part of a device that is not
 * online has no link to read or drive anything through, so it is `down`, not `ok`: every part when the device goes
 * offline, and any part actor that starts meanwhile (a link restart restarts them all). Coming back is earned: a
 * sensor is `ok` again with its next accepted reading (sensors/sensor.ts), an actuator as soon as the device is
 * online again (its link or board says so). Both link kinds follow this rule.
 */
import type { DeviceConfig } from "../hub/config.ts";
import type { HubContext } from "../hub/context.ts";
import type { Health } from "../hub/view.ts";

/** The health a part actor starts with: `ok` while its device is online, `down` otherwise. */
export function healthAtStart(hub: HubContext, device: string): Health {
  return hub.state.status(device) === "online" ? "ok" : "down";
}

/** The device lost its link: every part is `down` until it is back. */
export function partsDown(hub: HubContext, config: DeviceConfig): void {
  for (const part of [...config.sensors, ...config.actuators])
    hub.state.setHealth(config.id, part.id, "down");
}

/** The device is online again: its actuators can be driven (sensors wait for a reading). */
export function actuatorsUp(hub: HubContext, config: DeviceConfig): void {
  for (const a of config.actuators) {
    if (hub.state.health(config.id, a.id) === "down") hub.state.setHealth(config.id, a.id, "ok");
  }
}
