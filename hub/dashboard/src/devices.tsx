/**
 * One card per device: board, link, status with the reason, every sensor's value, unit, health and sparkline, and
 * controls for actuators (LED on/off, relay close/open) that post a command and show the hub's answer.
 */
import { useState } from "preact/hooks";
import { ApiError, sendCommand } from "./api.ts";
import { ago, reading } from "./format.ts";
import { Sparkline } from "./sparkline.tsx";
import { type DashboardStore, type Series, seriesKey } from "./state.ts";
import { ACTUATOR_OPS, type DeviceView, type SensorView } from "./types.ts";

interface Props {
  devices: DeviceView[];
  series: Record<string, Series>;
  epoch: number;
  store: DashboardStore;
  now: number;
}

export function DeviceCards({ devices, series, epoch, store, now }: Props) {
  if (devices.length === 0) return <p class="muted">No devices in the fleet.</p>;
  return (
    <div class="cards">
      {devices.map((d) => (
        <DeviceCard key={d.id} device={d} series={series} epoch={epoch} store={store} now={now} />
      ))}
    </div>
  );
}

function DeviceCard({ device, series, epoch, store, now }: { device: DeviceView } & Omit<Props, "devices">) {
  const sensors = device.sensors.filter((p) => ACTUATOR_OPS[p.kind] === undefined);
  const actuators = device.sensors.filter((p) => ACTUATOR_OPS[p.kind] !== undefined);
  return (
    <article
      class={`card device-${device.status}`}
      data-device={device.id}
      aria-labelledby={`dev-${device.id}`}
    >
      <header>
        <h3 id={`dev-${device.id}`}>{device.id}</h3>
        <span class={`badge ${device.status}`} data-role="device-status">
          {device.status}
        </span>
      </header>
      <p class="meta">
        <span>{device.board}</span> · <span>{device.link === "mqtt" ? "MQTT" : "serial"}</span>
        {device.reason && <span class="reason"> · {device.reason}</span>}
      </p>
      <table class="sensors">
        <thead>
          <tr>
            <th scope="col">sensor</th>
            <th scope="col">value</th>
            <th scope="col">health</th>
            <th scope="col">recent</th>
          </tr>
        </thead>
        <tbody>
          {sensors.map((p) => (
            <tr key={p.id} data-sensor={p.id}>
              <th scope="row" title={p.kind}>
                {p.id}
              </th>
              <td class="value" title={p.ts === null ? "no reading yet" : ago(p.ts, now)}>
                <span data-role="value">{reading(p.value, p.kind)}</span>
                {p.unit && p.value !== null && <span class="unit"> {p.unit}</span>}
              </td>
              <td>
                <span class={`badge health-${p.health}`}>{p.health}</span>
              </td>
              <td>
                <Sparkline
                  series={series[seriesKey(device.id, p.id)]}
                  load={() => store.loadHistory(device.id, p.id)}
                  epoch={epoch}
                  label={`${device.id} ${p.id}`}
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {actuators.length > 0 && (
        <ul class="actuators" aria-label={`${device.id} actuators`}>
          {actuators.map((p) => (
            <Actuator key={p.id} device={device} part={p} />
          ))}
        </ul>
      )}
    </article>
  );
}

function Actuator({ device, part }: { device: DeviceView; part: SensorView }) {
  const ops = ACTUATOR_OPS[part.kind]!;
  const [pending, setPending] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const run = async (op: string) => {
    setPending(op);
    setError(null);
    try {
      await sendCommand(device.id, part.id, op);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setPending(null);
    }
  };
  const disabled = pending !== null || device.status !== "online";
  const why = device.status === "online" ? undefined : `${device.id} is ${device.status}`;
  return (
    <li data-actuator={part.id}>
      <span class="act-id">{part.id}</span>
      <span class="act-kind">{part.kind}</span>
      <span class="act-state" data-role="value">
        {reading(part.value, part.kind)}
      </span>
      <span class={`badge health-${part.health}`}>{part.health}</span>
      <span class="act-buttons">
        <button
          type="button"
          disabled={disabled}
          title={why}
          aria-busy={pending === ops.on}
          onClick={() => run(ops.on)}
        >
          {ops.onLabel}
        </button>
        <button
          type="button"
          disabled={disabled}
          aria-busy={pending === ops.off}
          onClick={() => run(ops.off)}
        >
          {ops.offLabel}
        </button>
      </span>
      {error && (
        <p class="error" role="alert">
          {part.id} {error}
        </p>
      )}
    </li>
  );
}
