/**
 * Who may publish and subscribe where (DESIGN.md §2, MQTT contract). Pure functions over topic strings, so the
 * rules can be read and tested without a broker.
 */

/** Who a connection is, as authentication decided. */
export type Identity = { kind: "device"; id: string } | { kind: "hub" } | { kind: "anonymous" };

/** Device-to-hub topic levels a device may not publish under its own prefix: only the hub writes them. */
const HUB_ONLY_LEVELS: ReadonlySet<string> = new Set(["cmd", "state"]);

/** Does every topic matched by `filter` also match `pattern`? (MQTT filter containment, `+` and `#` aware.) */
export function filterWithin(filter: string, pattern: string): boolean {
  const f = filter.split("/");
  const p = pattern.split("/");
  for (let i = 0; i < f.length; i++) {
    const pl = p[i];
    const fl = f[i];
    if (pl === "#") return true;
    if (pl === undefined || fl === undefined) return false;
    if (fl === "#") return false;
    if (pl === "+") continue;
    if (fl === "+" || fl !== pl) return false;
  }
  return f.length === p.length;
}

/** Topic filters an anonymous client may subscribe to (within), when anonymous read is allowed. */
export function anonymousReadPatterns(prefix: string): string[] {
  return [`${prefix}/+/state/#`, `${prefix}/+/status`, `${prefix}/hub/events`];
}

/** Why a publish or subscribe was refused, or `null` when it is allowed. */
export function checkPublish(who: Identity, topic: string, prefix: string): string | null {
  if (topic.startsWith("$")) return "topics starting with $ are reserved";
  if (who.kind === "hub") return null;
  if (who.kind === "anonymous") return "anonymous clients may not publish";
  // Every reading passes here: compared in place, without building `<prefix>/<id>/` or splitting the topic.
  const at = ownTopicStart(topic, prefix, who.id);
  if (at < 0) return `device ${who.id} may publish only under ${prefix}/${who.id}/`;
  const end = topic.indexOf("/", at);
  const level = topic.slice(at, end === -1 ? undefined : end);
  if (level === "" || HUB_ONLY_LEVELS.has(level))
    return `device ${who.id} may not publish to ${prefix}/${who.id}/${level}`;
  return null;
}

/** Where the part after `<prefix>/<device>/` starts in `topic`, or -1 when the topic is not under it. */
function ownTopicStart(topic: string, prefix: string, device: string): number {
  const slash = prefix.length;
  const end = slash + 1 + device.length;
  const under =
    topic.startsWith(prefix) &&
    topic.charCodeAt(slash) === 47 &&
    topic.startsWith(device, slash + 1) &&
    topic.charCodeAt(end) === 47;
  return under ? end + 1 : -1;
}

/**
 * The sensor of a device's `<prefix>/<device>/telemetry/<sensor>` topic (one level, not empty), or `null` for
 * any other topic.
 */
export function telemetrySensorOf(topic: string, prefix: string, device: string): string | null {
  const at = ownTopicStart(topic, prefix, device);
  if (at < 0 || !topic.startsWith("telemetry/", at)) return null;
  const sensorAt = at + "telemetry/".length;
  if (sensorAt === topic.length || topic.indexOf("/", sensorAt) !== -1) return null;
  return topic.slice(sensorAt);
}

/** Why a subscription was refused, or `null` when it is allowed. */
export function checkSubscribe(
  who: Identity,
  filter: string,
  prefix: string,
  anonymousRead: boolean,
): string | null {
  if (who.kind === "hub") return null;
  if (who.kind === "device") {
    return filterWithin(filter, `${prefix}/${who.id}/cmd/#`)
      ? null
      : `device ${who.id} may subscribe only to ${prefix}/${who.id}/cmd/#`;
  }
  if (!anonymousRead) return "anonymous read is not allowed by the fleet config";
  return anonymousReadPatterns(prefix).some((p) => filterWithin(filter, p))
    ? null
    : `anonymous clients may subscribe only to ${anonymousReadPatterns(prefix).join(", ")}`;
}

/** A device-to-hub topic taken apart: `<prefix>/<device>/<kind>[/<rest>]`. */
export interface DeviceTopic {
  device: string;
  kind: string;
  /** What follows the kind, e.g. the sensor id of `telemetry/<sensor>`. */
  rest: string;
}

/** Splits `<prefix>/<device>/<kind>/...`; `null` when the topic is not under the prefix. */
export function parseDeviceTopic(topic: string, prefix: string): DeviceTopic | null {
  if (!topic.startsWith(`${prefix}/`)) return null;
  const parts = topic.slice(prefix.length + 1).split("/");
  const [device, kind] = parts;
  if (!device || !kind) return null;
  return { device, kind, rest: parts.slice(2).join("/") };
}
