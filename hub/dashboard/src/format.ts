/** Small text formatters shared by the panels. */

/** `5000` → `5 s`, `250` → `250 ms`, `120000` → `2 min`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Number((ms / 1000).toFixed(1))} s`;
  return `${Number((ms / 60_000).toFixed(1))} min`;
}

/** Wall-clock time with milliseconds, e.g. `14:03:07.215`. */
export function clock(ts: number): string {
  const d = new Date(ts);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** How long ago, coarse: `3 s ago`, `2 min ago`. */
export function ago(ts: number, now: number): string {
  const s = Math.max(0, Math.round((now - ts) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** A reading for display: numbers to at most 2 decimals, booleans as on/off. */
export function reading(value: number | boolean | string | null, kind: string): string {
  if (value === null) return "—";
  if (typeof value === "boolean") {
    if (kind === "relay") return value ? "closed" : "open";
    if (kind === "button") return value ? "pressed" : "released";
    return value ? "on" : "off";
  }
  if (typeof value === "number") return String(Number(value.toFixed(2)));
  return value;
}
