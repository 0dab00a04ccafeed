/**
 * Runs a {@link Scenario} against a running hub: injects its faults on time, watches the hub's own record (events,
 * device views, history) for each expectation until its deadline, checks the whole-run expectations from history at
 * the end, and reports a timeline of what happened against what was expected. It only uses the hub's public view,
 * so it judges the hub exactly as a user of the API would.
 */
import type { FaultRequest, FaultView } from "../../hub/faults/contract.ts";
import { getClock } from "../../hub/runtime/index.ts";
import type { EventQuery, HubEvent, StoredReading, TelemetryQuery } from "../../hub/store.ts";
import type { DeviceView } from "../../hub/view.ts";
import type { Expectation, Invariant, Scenario } from "./schema.ts";

/** The part of the hub a scenario drives and observes (a RunningHub is one). */
export interface ScenarioHub {
  devices(): DeviceView[];
  events(query: EventQuery): HubEvent[];
  telemetry(query: TelemetryQuery): StoredReading[];
  injectFault(request: FaultRequest): Promise<FaultView>;
  clearFault(id: string): Promise<void>;
}

/** One line of the report, `atMs` after the timeline's 0 (negative during warm-up). */
export interface TimelineLine {
  atMs: number;
  kind: "fault" | "event" | "pass" | "fail" | "info";
  text: string;
}

/** What a run found. */
export interface ScenarioOutcome {
  name: string;
  ok: boolean;
  /** Every line, in time order. */
  lines: TimelineLine[];
  /** The broken expectations, one line each. */
  broken: string[];
}

/** Options for {@link runScenario}. */
export interface RunOptions {
  /** Called with each line as it happens (progress for a terminal, events for the API). */
  onLine?: (line: TimelineLine) => void;
  /** How often expectations are re-checked (default 100 ms). */
  pollMs?: number;
}

/** Event types worth a line in the timeline. */
const SHOWN_EVENTS = new Set([
  "restarted",
  "gave_up",
  "backoff",
  "online",
  "offline",
  "board_reset",
  "fault_injected",
  "fault_cleared",
]);

/** Sensor kinds that report on change rather than on a period: a quiet button is not a gap. */
const EVENT_DRIVEN_KINDS = new Set(["button", "digital-in", "led", "relay", "servo", "output"]);

interface Pending {
  expect: Expectation;
  label: string;
  from: number;
  deadline: number;
}

/** Splits `device` / `device/sensor`. */
function splitTarget(target: string): { device: string; sensor?: string } {
  const slash = target.indexOf("/");
  return slash < 0 ? { device: target } : { device: target.slice(0, slash), sensor: target.slice(slash + 1) };
}

/** Whether an event's tree path is the target's node or below it. */
function pathMatches(path: string, target: string): boolean {
  const { device, sensor } = splitTarget(target);
  const base = `hub/fleet/${device}`;
  if (sensor === undefined) return path === base || path.startsWith(`${base}/`);
  return path === `${base}/sensors/${sensor}`;
}

function describe(e: Expectation): string {
  switch (e.type) {
    case "restarted":
      return `${e.target} restarted`;
    case "healthy":
      return `${e.target} healthy`;
    case "status":
      return `${e.target} ${e.status}`;
    case "gave-up":
      return `${e.target}'s supervisor gave up`;
    case "replayed":
      return `${e.target} replayed at least ${e.atLeast} readings`;
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;

/**
 * Runs `scenario` against `hub` and resolves with the outcome (never rejects for a broken expectation; it rejects
 * only when the hub refuses a fault, e.g. an unknown device in the scenario).
 */
export async function runScenario(
  hub: ScenarioHub,
  scenario: Scenario,
  options: RunOptions = {},
): Promise<ScenarioOutcome> {
  const clock = getClock();
  const pollMs = options.pollMs ?? 100;
  const lines: TimelineLine[] = [];
  const broken: string[] = [];
  let t0 = clock.now();
  const line = (kind: TimelineLine["kind"], text: string, at = clock.now()) => {
    const l = { atMs: at - t0, kind, text };
    lines.push(l);
    options.onLine?.(l);
    if (kind === "fail") broken.push(text);
  };
  const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, Math.max(0, ms)));

  // Warm-up: give the fleet time to come online, so the timeline starts from a settled fleet.
  const warmupEnd = clock.now() + scenario.warmup;
  while (clock.now() < warmupEnd && hub.devices().some((d) => d.status !== "online")) await sleep(pollMs);
  const notOnline = hub.devices().filter((d) => d.status !== "online");
  t0 = clock.now();
  line("info", `scenario ${scenario.name}: ${scenario.description || "(no description)"}`.trim());
  if (notOnline.length > 0) {
    line("info", `not online after warm-up: ${notOnline.map((d) => `${d.id} (${d.status})`).join(", ")}`);
  }

  const injected: { id: string; device?: string; start: number; end?: number; cleared: boolean }[] = [];
  const pending: Pending[] = [];
  const seen = new Set<string>();
  let eventsSince = t0;

  const showEvents = () => {
    const events = hub.events({ since: eventsSince, limit: 10_000 });
    for (const e of events) {
      const key = `${e.ts}|${e.type}|${e.path}|${e.reason ?? ""}`;
      if (seen.has(key)) continue;
      seen.add(key);
      eventsSince = Math.max(eventsSince, e.ts);
      if (!SHOWN_EVENTS.has(e.type) || e.type.startsWith("fault_")) continue;
      const reason = e.reason ? `: ${e.reason}` : "";
      line("event", `${e.type} ${e.path.replace(/^hub\/fleet\//, "")}${reason}`, e.ts);
    }
  };

  const faultWindow = (device: string) => {
    const f = injected.filter((x) => x.device === device).at(-1);
    return f ? { start: f.start, end: f.end ?? clock.now() } : undefined;
  };

  /** Whether `p` holds now; checks the record since `p.from`. */
  const holds = (p: Pending): boolean => {
    const e = p.expect;
    if (e.type === "restarted" || e.type === "gave-up") {
      const type = e.type === "restarted" ? "restarted" : "gave_up";
      return hub
        .events({ since: p.from, type, limit: 10_000 })
        .some((ev) => ev.ts <= p.deadline && pathMatches(ev.path, e.target));
    }
    if (e.type === "healthy") {
      const { device, sensor } = splitTarget(e.target);
      const d = hub.devices().find((x) => x.id === device);
      if (!d) return false;
      const fresh = (s: DeviceView["sensors"][number]) =>
        s.health === "ok" && (EVENT_DRIVEN_KINDS.has(s.kind) || (s.ts !== null && s.ts >= p.from));
      if (sensor !== undefined) {
        const s = d.sensors.find((x) => x.id === sensor);
        return s !== undefined && fresh(s);
      }
      return d.status === "online" && d.sensors.every(fresh);
    }
    if (e.type === "status") return hub.devices().find((x) => x.id === e.target)?.status === e.status;
    const { device, sensor } = splitTarget(e.target);
    const window = faultWindow(device);
    if (!window) return false;
    const readings = hub
      .telemetry({ device, ...(sensor ? { sensor } : {}), since: window.start, limit: 10_000 })
      .filter((r) => r.ts <= window.end);
    return e.type === "replayed" && readings.length >= e.atLeast;
  };

  const checkPending = () => {
    const now = clock.now();
    for (let i = pending.length - 1; i >= 0; i--) {
      const p = pending[i] as Pending;
      if (holds(p)) {
        line("pass", `✓ ${p.label} (${seconds(now - p.from)} after, within ${seconds(p.deadline - p.from)})`);
        pending.splice(i, 1);
      } else if (now > p.deadline) {
        line("fail", `✗ ${p.label}: not within ${seconds(p.deadline - p.from)}`);
        pending.splice(i, 1);
      }
    }
  };

  const steps = [...scenario.timeline].sort((a, b) => a.at - b.at);
  const end = t0 + scenario.duration;
  let next = 0;
  while (clock.now() < end || pending.length > 0) {
    const now = clock.now();
    while (next < steps.length && t0 + (steps[next]?.at ?? 0) <= now) {
      const s = steps[next++];
      if (s === undefined) break;
      if (s.inject !== undefined) {
        const { for: forMs, ...rest } = s.inject;
        const request: FaultRequest = { ...rest, ...(forMs !== undefined ? { durationMs: forMs } : {}) };
        const fault = await hub.injectFault(request);
        const where = [rest.device, rest.sensor].filter(Boolean).join("/") || "hub";
        line(
          "fault",
          `inject ${rest.kind} on ${where}${forMs ? ` for ${seconds(forMs)}` : ""} (${fault.id})`,
        );
        injected.push({
          id: fault.id,
          ...(rest.device ? { device: rest.device } : {}),
          start: clock.now(),
          ...(forMs !== undefined ? { end: clock.now() + forMs } : {}),
          cleared: false,
        });
      } else if (s.clear !== undefined) {
        const which = s.clear;
        for (const f of injected) {
          if (f.cleared || (which !== "all" && f.device !== splitTarget(which).device)) continue;
          await hub.clearFault(f.id).catch(() => undefined); // already cleared by its duration
          f.cleared = true;
          f.end = Math.min(f.end ?? clock.now(), clock.now());
          line("fault", `clear ${f.id}${f.device ? ` on ${f.device}` : ""}`);
        }
      } else if (s.expect !== undefined) {
        pending.push({
          expect: s.expect,
          label: describe(s.expect),
          from: clock.now(),
          deadline: clock.now() + s.expect.within,
        });
      }
    }
    showEvents();
    checkPending();
    if (clock.now() >= end && pending.length === 0) break;
    await sleep(pollMs);
  }
  for (const f of injected) {
    if (f.cleared) continue;
    await hub.clearFault(f.id).catch(() => undefined);
    f.cleared = true;
  }
  showEvents();
  const tEnd = clock.now();
  for (const inv of scenario.throughout) checkInvariant(hub, inv, t0, tEnd, line);
  const ok = broken.length === 0;
  line(
    "info",
    ok ? `scenario ${scenario.name}: passed` : `scenario ${scenario.name}: ${broken.length} broken`,
  );
  lines.sort((a, b) => a.atMs - b.atMs);
  return { name: scenario.name, ok, lines, broken };
}

/** Checks one whole-run expectation over `[t0, tEnd]` from history. */
function checkInvariant(
  hub: ScenarioHub,
  inv: Invariant,
  t0: number,
  tEnd: number,
  line: (kind: TimelineLine["kind"], text: string, at?: number) => void,
): void {
  const excluded = (device: string, sensor: string) =>
    inv.except.some((t) => {
      const x = splitTarget(t);
      return x.device === device && (x.sensor === undefined || x.sensor === sensor);
    });
  const failures: string[] = [];
  for (const d of hub.devices()) {
    for (const s of d.sensors) {
      if (EVENT_DRIVEN_KINDS.has(s.kind) || excluded(d.id, s.id)) continue;
      const readings = hub.telemetry({ device: d.id, sensor: s.id, since: t0, limit: 10_000 });
      if (inv.type === "no-gap") {
        const limit = inv.maxGapMs;
        const times = [t0, ...readings.map((r) => r.ts).filter((ts) => ts <= tEnd), tEnd];
        let worst = 0;
        let at = t0;
        for (let i = 1; i < times.length; i++) {
          const gap = (times[i] as number) - (times[i - 1] as number);
          if (gap > worst) {
            worst = gap;
            at = times[i - 1] as number;
          }
        }
        if (worst > limit)
          failures.push(`${d.id}/${s.id}: ${seconds(worst)} without a reading from ${seconds(at - t0)}`);
      } else {
        const seqs = readings.map((r) => r.seq).filter((q): q is number => q !== null);
        let lost = 0;
        for (let i = 1; i < seqs.length; i++) {
          const step = (seqs[i] as number) - (seqs[i - 1] as number);
          if (step > 1) lost += step - 1; // a smaller seq is a board that restarted counting, not a loss
        }
        if (lost > 0) failures.push(`${d.id}/${s.id}: ${lost} readings missing from the seq`);
      }
    }
  }
  const what = inv.type === "no-gap" ? `no gap longer than ${seconds(inv.maxGapMs)}` : "readings lost = 0";
  if (failures.length === 0) line("pass", `✓ throughout: ${what}`, tEnd);
  else line("fail", `✗ throughout: ${what}: ${failures.join("; ")}`, tEnd);
}

/** The report as text, one line per entry (`  3.02 s  ✓ uno-1/temp restarted …`). */
export function formatOutcome(outcome: ScenarioOutcome): string {
  return outcome.lines.map(formatLine).join("\n");
}

/** One report line as text. */
export function formatLine(l: TimelineLine): string {
  const at = `${(l.atMs / 1000).toFixed(2).padStart(7)} s`;
  const mark = l.kind === "fault" ? "⚡" : l.kind === "event" ? "·" : " ";
  return `${at}  ${mark} ${l.text}`;
}
