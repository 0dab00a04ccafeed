/**
 * Fault controls (DESIGN.md §3): pick a target (a device, one of its sensors, or the hub) and a kind that makes sense
 * for it, an optional duration, and inject (`POST /api/faults`); the active faults, each with a Clear button
 * (`DELETE /api/faults/:id`), and Clear all. The list is the store's, kept current by `fault_injected` /
 * `fault_cleared` events, so a fault cleared by its duration or by another client leaves it too. Every refusal shows
 * the API's own message next to the control that caused it.
 */
import { useState } from "preact/hooks";
import { ApiError, clearFault, injectFault } from "./api.ts";
import { ago, duration } from "./format.ts";
import { memo } from "./memo.ts";
import { Scenarios } from "./scenarios.tsx";
import {
  ACTUATOR_OPS,
  type DeviceView,
  FAULT_KINDS,
  type FaultKind,
  type FaultLayer,
  type FaultRequest,
  type FaultView,
  type HubEvent,
} from "./types.ts";

/** What each kind does, as DESIGN.md §3 says it, for the option's description. */
const KIND_HELP: Record<FaultKind, string> = {
  stuck: "value frozen; flat-line → faulty",
  noise: "value jitter; faulty while it lasts",
  "out-of-range": "readings outside the range, rejected",
  nan: "readings rejected; driver restarted after N",
  throws: "hub-side driver raises; actor restarts",
  hang: "hub-side driver never answers; worker killed",
  disconnect: "link cut; link restarts, backoff if repeated",
  garbage: "corrupt bytes on the wire",
  slow: "link latency; readings go stale",
  reboot: "board reset; state re-applied",
  "power-loss": "board stopped until cleared",
  partition: "Pi loses the broker; replays on return",
  "broker-restart": "every device reconnects",
};

const HUB = "";
const WHOLE_DEVICE = "";

/** The kinds that apply to a target layer, in the contract's order. */
export const kindsFor = (layer: FaultLayer): FaultKind[] =>
  (Object.keys(FAULT_KINDS) as FaultKind[]).filter((k) => FAULT_KINDS[k] === layer);

/** `tank-pi/door`, `tank-pi`, or `the hub`. */
export function faultTarget(f: Pick<FaultView, "device" | "sensor">): string {
  if (f.device === undefined) return "the hub";
  return f.sensor === undefined ? f.device : `${f.device}/${f.sensor}`;
}

const message = (err: unknown) => (err instanceof ApiError ? err.message : String(err));

interface Props {
  faults: FaultView[];
  devices: DeviceView[];
  /** The same devices' ids: a new array only when one joins or leaves, so the options are not rebuilt per frame. */
  deviceIds: string[];
  scenarioEvents: HubEvent[];
  /** Counts snapshots: the scenario list is read again after a reconnect. */
  epoch: number;
  now: number;
}

export function FaultsPanel({ faults, devices, deviceIds, scenarioEvents, epoch, now }: Props) {
  return (
    <div class="faults" data-role="faults">
      <InjectForm devices={devices} deviceIds={deviceIds} />
      <ActiveFaults faults={faults} now={now} />
      <Scenarios events={scenarioEvents} epoch={epoch} />
    </div>
  );
}

/** One option per device; renders again only when the fleet's membership changes (1,000 options are not free). */
const DeviceOptions = memo(function DeviceOptions({ ids }: { ids: string[] }) {
  return (
    <>
      {ids.map((id) => (
        <option key={id} value={id}>
          {id}
        </option>
      ))}
    </>
  );
});

function InjectForm({ devices, deviceIds }: { devices: DeviceView[]; deviceIds: string[] }) {
  const [device, setDevice] = useState<string>(HUB);
  const [sensor, setSensor] = useState<string>(WHOLE_DEVICE);
  const [kind, setKind] = useState<FaultKind | "">("");
  const [seconds, setSeconds] = useState("");
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);

  const picked = devices.find((d) => d.id === device);
  // A device that left the fleet falls back to the hub; a sensor the device no longer has, to the whole device.
  const target = picked === undefined ? HUB : device;
  const sensors = picked?.sensors.filter((p) => ACTUATOR_OPS[p.kind] === undefined) ?? [];
  const part = sensors.some((p) => p.id === sensor) ? sensor : WHOLE_DEVICE;
  const layer: FaultLayer = target === HUB ? "hub" : part === WHOLE_DEVICE ? "device" : "sensor";
  const kinds = kindsFor(layer);
  const chosen = kind !== "" && kinds.includes(kind) ? kind : kinds[0]!;
  const takesDuration = layer !== "hub";

  const submit = async (e: Event) => {
    e.preventDefault();
    const body: FaultRequest = { kind: chosen };
    if (target !== HUB) body.device = target;
    if (part !== WHOLE_DEVICE) body.sensor = part;
    if (takesDuration && seconds.trim() !== "") {
      // The API judges the number (whole ms from 1 to 24 h); the page only converts seconds.
      body.durationMs = Math.round(Number(seconds) * 1000);
    }
    setPending(true);
    setError(null);
    setDone(null);
    try {
      const fault = await injectFault(body);
      setDone(`Injected ${fault.id}: ${fault.kind} on ${faultTarget(fault)}`);
    } catch (err) {
      setError(message(err));
    } finally {
      setPending(false);
    }
  };

  return (
    <form class="inject" onSubmit={submit} aria-label="Inject a fault" data-role="inject">
      <div class="field">
        <label for="fault-device">Device</label>
        <select
          value={target}
          id="fault-device"
          data-role="fault-device"
          onChange={(e) => {
            setDevice(e.currentTarget.value);
            setSensor(WHOLE_DEVICE);
          }}
        >
          <option value={HUB}>the hub (broker)</option>
          <DeviceOptions ids={deviceIds} />
        </select>
      </div>
      <div class="field">
        <label for="fault-sensor">Sensor</label>
        <select
          value={part}
          id="fault-sensor"
          data-role="fault-sensor"
          disabled={target === HUB}
          onChange={(e) => setSensor(e.currentTarget.value)}
        >
          <option value={WHOLE_DEVICE}>{target === HUB ? "—" : "whole device"}</option>
          {sensors.map((p) => (
            <option key={p.id} value={p.id}>
              {p.id}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="fault-kind">Fault</label>
        <select
          value={chosen}
          id="fault-kind"
          data-role="fault-kind"
          onChange={(e) => setKind(e.currentTarget.value as FaultKind)}
        >
          {kinds.map((k) => (
            <option key={k} value={k}>
              {k} — {KIND_HELP[k]}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="fault-duration">For (s)</label>
        <input
          type="number"
          inputMode="decimal"
          min="0"
          step="any"
          placeholder={takesDuration ? "until cleared" : "n/a"}
          disabled={!takesDuration}
          value={takesDuration ? seconds : ""}
          id="fault-duration"
          data-role="fault-duration"
          onInput={(e) => setSeconds(e.currentTarget.value)}
        />
      </div>
      <button type="submit" disabled={pending} aria-busy={pending} data-role="inject-button">
        Inject
      </button>
      {error && (
        <p class="error" role="alert" data-role="inject-error">
          ✕ {error}
        </p>
      )}
      {done && !error && (
        <p class="ok-note" role="status" data-role="inject-done">
          ✓ {done}
        </p>
      )}
    </form>
  );
}

const ActiveFaults = memo(function ActiveFaults({ faults, now }: { faults: FaultView[]; now: number }) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [pending, setPending] = useState<ReadonlySet<string>>(new Set());
  const [allError, setAllError] = useState<string | null>(null);

  const clear = async (ids: string[]): Promise<string[]> => {
    setPending((p) => new Set([...p, ...ids]));
    const failed: string[] = [];
    await Promise.all(
      ids.map(async (id) => {
        try {
          await clearFault(id);
          setErrors(({ [id]: _, ...rest }) => rest);
        } catch (err) {
          failed.push(`${id}: ${message(err)}`);
          setErrors((e) => ({ ...e, [id]: message(err) }));
        }
      }),
    );
    setPending((p) => new Set([...p].filter((id) => !ids.includes(id))));
    return failed;
  };
  const clearAll = async () => {
    setAllError(null);
    const failed = await clear(faults.map((f) => f.id));
    if (failed.length > 0) setAllError(`${failed.length} not cleared: ${failed.join("; ")}`);
  };

  return (
    <div class="active-faults">
      <div class="faults-head">
        <h3 id="active-faults-h">
          Active faults <span class="muted">({faults.length})</span>
        </h3>
        <button
          type="button"
          data-role="clear-all"
          disabled={faults.length === 0 || pending.size > 0}
          onClick={clearAll}
        >
          Clear all
        </button>
      </div>
      {allError && (
        <p class="error" role="alert">
          ✕ {allError}
        </p>
      )}
      {faults.length === 0 ? (
        <p class="muted" data-role="no-faults">
          No active faults.
        </p>
      ) : (
        <ul class="fault-list" aria-labelledby="active-faults-h">
          {faults.map((f) => (
            <li key={f.id} data-fault={f.id} data-kind={f.kind}>
              <span class="fault-id">{f.id}</span>
              <span class="badge fault-kind">⚡ {f.kind}</span>
              <span class="fault-target">{faultTarget(f)}</span>
              <span class="muted">
                since {ago(f.startedAt, now)}
                {f.until === undefined
                  ? " · until cleared"
                  : ` · clears in ${duration(Math.max(0, Math.ceil((f.until - now) / 1000) * 1000))}`}
              </span>
              <button
                type="button"
                disabled={pending.has(f.id)}
                aria-busy={pending.has(f.id)}
                aria-label={`Clear ${f.id} (${f.kind} on ${faultTarget(f)})`}
                onClick={() => void clear([f.id])}
              >
                Clear
              </button>
              {errors[f.id] && (
                <p class="error" role="alert">
                  ✕ {errors[f.id]}
                </p>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
});
