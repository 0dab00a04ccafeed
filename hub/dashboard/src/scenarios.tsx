/**
 * Shipped scenarios (`GET /api/scenarios`), each with a Run button (`POST /api/scenarios/:name/run`) and the
 * progress lines its run reports as `scenario` hub events. A hub that does not serve the routes gets a disabled
 * button with the API's own answer, not a list that pretends.
 */
import { useEffect, useState } from "preact/hooks";
import { ApiError, fetchScenarios, runScenario } from "./api.ts";
import { clock, duration } from "./format.ts";
import { memo } from "./memo.ts";
import type { HubEvent, ScenarioListing } from "./types.ts";

type Listing =
  | { state: "loading" }
  | { state: "ok"; scenarios: ScenarioListing[] }
  | { state: "unavailable"; message: string };

/** One progress line of a run: a `scenario` hub event (`path` `hub/scenarios/<name>`, the line's text as `reason`). */
export interface ScenarioLine {
  name: string | undefined;
  text: string;
  /** `fault`, `event`, `pass`, `fail` or `info`. */
  kind: string;
  /** Time since the scenario's 0, when the event carries it. */
  atMs: number | undefined;
  ts: number;
}

const PREFIX = "hub/scenarios/";

export function scenarioLine(e: HubEvent): ScenarioLine {
  return {
    name: e.path.startsWith(PREFIX) ? e.path.slice(PREFIX.length) : undefined,
    text: e.reason ?? "",
    kind: typeof e.line === "string" ? e.line : "info",
    atMs: typeof e.atMs === "number" ? e.atMs : undefined,
    ts: e.ts,
  };
}

const MARK: Record<string, string> = { pass: "✓", fail: "✕", fault: "⚡", event: "·", info: "›" };

export const Scenarios = memo(function Scenarios({ events, epoch }: { events: HubEvent[]; epoch: number }) {
  const [listing, setListing] = useState<Listing>({ state: "loading" });
  const [running, setRunning] = useState<ReadonlySet<string>>(new Set());
  const [errors, setErrors] = useState<Record<string, string>>({});

  useEffect(() => {
    let live = true;
    fetchScenarios()
      .then((scenarios) => live && setListing({ state: "ok", scenarios }))
      .catch(
        (err: unknown) =>
          live &&
          setListing({
            state: "unavailable",
            message: err instanceof ApiError ? `${err.status} ${err.message}` : String(err),
          }),
      );
    return () => {
      live = false;
    };
    // Read again after a reconnect, and as a run reports (its `running` and last outcome change).
  }, [epoch, events.length]);

  const run = async (name: string) => {
    setRunning((r) => new Set([...r, name]));
    setErrors(({ [name]: _, ...rest }) => rest);
    try {
      await runScenario(name);
    } catch (err) {
      setErrors((e) => ({ ...e, [name]: err instanceof ApiError ? err.message : String(err) }));
    } finally {
      setRunning((r) => new Set([...r].filter((n) => n !== name)));
    }
  };

  const lines = events.map(scenarioLine);
  return (
    <div class="scenarios" data-role="scenarios">
      <h3>Scenarios</h3>
      {listing.state === "loading" && <p class="muted">Reading the shipped scenarios…</p>}
      {listing.state === "unavailable" && (
        <p class="unavailable" data-role="scenarios-unavailable">
          <button type="button" disabled aria-describedby="scenarios-why">
            Run
          </button>{" "}
          <span id="scenarios-why">
            Scenarios are not available from this hub: <code>GET /api/scenarios</code> answered{" "}
            {listing.message}
          </span>
        </p>
      )}
      {listing.state === "ok" && listing.scenarios.length === 0 && (
        <p class="muted">This hub ships no scenarios.</p>
      )}
      {listing.state === "ok" && listing.scenarios.length > 0 && (
        <ul class="scenario-list">
          {listing.scenarios.map((s) => {
            const mine = lines.filter((l) => l.name === s.name).slice(-20);
            return (
              <li key={s.name} data-scenario={s.name}>
                <div class="scenario-head">
                  <span class="scenario-name">{s.name}</span>
                  <span class="muted">{duration(s.durationMs)}</span>
                  {s.running && (
                    <span class="badge running" data-role="scenario-state">
                      running
                    </span>
                  )}
                  {!s.running && s.last && (
                    <span
                      class={`badge ${s.last.ok ? "health-ok" : "down"}`}
                      data-role="scenario-state"
                      title={s.last.broken.join("; ")}
                    >
                      {s.last.ok ? "✓ passed" : `✕ failed (${s.last.broken.length})`}
                    </span>
                  )}
                  <button
                    type="button"
                    disabled={running.has(s.name) || s.running}
                    aria-busy={running.has(s.name) || s.running}
                    aria-label={`Run ${s.name}`}
                    onClick={() => void run(s.name)}
                  >
                    Run
                  </button>
                </div>
                <p class="scenario-desc">{s.description}</p>
                {errors[s.name] && (
                  <p class="error" role="alert">
                    ✕ {errors[s.name]}
                  </p>
                )}
                {mine.length > 0 && (
                  <ol class="scenario-lines" aria-label={`${s.name} progress`} aria-live="polite">
                    {mine.map((l, i) => (
                      <li key={`${l.ts}-${i}`} class={`sl-${l.kind}`}>
                        <time>{l.atMs === undefined ? clock(l.ts) : `${(l.atMs / 1000).toFixed(2)} s`}</time>{" "}
                        {l.text.startsWith("✓") || l.text.startsWith("✗") ? "" : `${MARK[l.kind] ?? "›"} `}
                        {l.text}
                      </li>
                    ))}
                  </ol>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
});
