/**
 * Shipped scenarios (`GET /api/scenarios`), each with a Run button (`POST /api/scenarios/:name/run`) and the
 * progress lines its run reports as `scenario` hub events. A hub that does not serve the routes gets a disabled
 * button with the API's own answer, not a list that pretends.
 */
import { useEffect, useState } from "preact/hooks";
import { ApiError, fetchScenarios, runScenario } from "./api.ts";
import { clock, duration } from "./format.ts";
import type { HubEvent, ScenarioSummary } from "./types.ts";

type Listing =
  | { state: "loading" }
  | { state: "ok"; scenarios: ScenarioSummary[] }
  | { state: "unavailable"; message: string };

/** One progress line of a `scenario` event, whatever fields the hub names it by. */
export interface ScenarioLine {
  name: string | undefined;
  text: string;
  kind: string | undefined;
  ts: number;
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

export function scenarioLine(e: HubEvent): ScenarioLine {
  const line = (typeof e.line === "object" && e.line !== null ? e.line : {}) as Record<string, unknown>;
  const name = str(e.scenario) ?? str(e.name) ?? str(line.scenario);
  const text =
    str(e.text) ?? str(line.text) ?? str(e.message) ?? str(e.reason) ?? str(e.status) ?? JSON.stringify(e);
  return { name, text, kind: str(e.kind) ?? str(line.kind) ?? str(e.status), ts: e.ts };
}

const MARK: Record<string, string> = { pass: "✓", fail: "✕", fault: "⚡", event: "·", info: "›" };

export function Scenarios({ events, epoch }: { events: HubEvent[]; epoch: number }) {
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
  }, [epoch]);

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
            const mine = lines.filter((l) => l.name === s.name).slice(-12);
            return (
              <li key={s.name} data-scenario={s.name}>
                <div class="scenario-head">
                  <span class="scenario-name">{s.name}</span>
                  <span class="muted">{duration(s.durationMs)}</span>
                  <button
                    type="button"
                    disabled={running.has(s.name)}
                    aria-busy={running.has(s.name)}
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
                      <li key={`${l.ts}-${i}`} class={`sl-${l.kind ?? "info"}`}>
                        <time>{clock(l.ts)}</time> {MARK[l.kind ?? "info"] ?? "›"} {l.text}
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
}
