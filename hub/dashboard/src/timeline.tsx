/** The event timeline: recent history, then live events, newest first, filtered by device and by type. */
import { useMemo, useState } from "preact/hooks";
import { clock } from "./format.ts";
import { memo } from "./memo.ts";
import { EVENT_TYPES, type HubEvent } from "./types.ts";

const SHOWN = 300;

/** The device an event is about (`hub/fleet/<device>/...`), if any. */
function deviceOf(path: string): string | undefined {
  const parts = path.split("/");
  return parts[0] === "hub" && parts[1] === "fleet" ? parts[2] : undefined;
}

export const Timeline = memo(function Timeline({
  events,
  deviceIds,
}: {
  events: HubEvent[];
  deviceIds: string[];
}) {
  const [device, setDevice] = useState("");
  const [type, setType] = useState("");
  const types = useMemo(() => {
    const set = new Set<string>(EVENT_TYPES);
    for (const e of events) set.add(e.type);
    return [...set];
  }, [events]);
  const devices = useMemo(() => {
    const set = new Set(deviceIds);
    for (const e of events) {
      const d = deviceOf(e.path);
      if (d !== undefined) set.add(d);
    }
    return [...set].sort();
  }, [events, deviceIds]);
  const shown = useMemo(() => {
    const out: HubEvent[] = [];
    for (let i = events.length - 1; i >= 0 && out.length < SHOWN; i--) {
      const e = events[i]!;
      if (type !== "" && e.type !== type) continue;
      if (device === "hub" ? deviceOf(e.path) !== undefined : device !== "" && deviceOf(e.path) !== device) {
        continue;
      }
      out.push(e);
    }
    return out;
  }, [events, device, type]);

  return (
    <div class="timeline">
      <div class="filters">
        <label>
          device{" "}
          <select value={device} onChange={(e) => setDevice(e.currentTarget.value)} data-role="filter-device">
            <option value="">all</option>
            <option value="hub">hub only</option>
            {devices.map((d) => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
        </label>
        <label>
          type{" "}
          <select value={type} onChange={(e) => setType(e.currentTarget.value)} data-role="filter-type">
            <option value="">all</option>
            {types.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <span class="muted">
          {shown.length} of {events.length} shown
        </span>
      </div>
      <ol class="events" aria-label="Events, newest first">
        {shown.map((e) => (
          <li
            key={`${e.ts}|${e.type}|${e.path}|${e.reason ?? ""}`}
            class={`event ev-${e.type}`}
            data-type={e.type}
          >
            <time dateTime={new Date(e.ts).toISOString()}>{clock(e.ts)}</time>
            <span class={`badge ev ev-${e.type}`}>{e.type}</span>
            <span class="path">{e.path}</span>
            {e.restarts !== undefined && <span class="restarts">restarts {e.restarts}</span>}
            {e.reason && <span class="reason">{e.reason}</span>}
          </li>
        ))}
      </ol>
    </div>
  );
});
