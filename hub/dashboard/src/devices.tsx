/**
 * One card per device: board, link, status with the reason, every sensor's value, unit, health and sparkline, and
 * controls for actuators (LED on/off, relay close/open) that post a command and show the hub's answer.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, sendCommand } from "./api.ts";
import { clock, reading } from "./format.ts";
import { memo } from "./memo.ts";
import { Sparkline } from "./sparkline.tsx";
import { type DashboardStore, type Series, seriesKey } from "./state.ts";
import { ACTUATOR_OPS, type DeviceView, type SensorView } from "./types.ts";
import { Windowed } from "./windowed.tsx";

interface Props {
  devices: DeviceView[];
  series: Record<string, Series>;
  epoch: number;
  store: DashboardStore;
}

/** Past this many devices only the cards in view are rendered. */
export const CARDS_WINDOW_FROM = 24;
const CARD_MIN_PX = 360;
const GAP_PX = 10;

/** A card's height before it was measured: header, meta, table head, a row per sensor and per actuator. */
function estimateCard(d: DeviceView): number {
  const actuators = d.sensors.filter((p) => ACTUATOR_OPS[p.kind] !== undefined).length;
  return 100 + (d.sensors.length - actuators) * 40 + actuators * 30 + GAP_PX;
}

/** The width of an element, kept current. */
function useWidth(ref: { current: HTMLElement | null }): number {
  const [width, setWidth] = useState(0);
  useEffect(() => {
    const el = ref.current;
    if (el === null) return;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    setWidth(el.clientWidth);
    return () => ro.disconnect();
  }, []);
  return width;
}

export function DeviceCards({ devices, series, epoch, store }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const width = useWidth(box);
  const windowed = devices.length > CARDS_WINDOW_FROM;
  // Windowed, the cards are laid out in rows of as many columns as fit, and a row is the unit of the window.
  const cols = Math.max(1, Math.floor((width + GAP_PX) / (CARD_MIN_PX + GAP_PX)));
  const rows = useMemo(() => {
    if (!windowed) return [];
    const out: DeviceView[][] = [];
    for (let i = 0; i < devices.length; i += cols) out.push(devices.slice(i, i + cols));
    return out;
  }, [devices, cols, windowed]);

  if (devices.length === 0) return <p class="muted">No devices in the fleet.</p>;
  const card = (d: DeviceView) => (
    <DeviceCard key={d.id} device={d} series={series} epoch={epoch} store={store} />
  );
  if (!windowed) {
    return (
      <div class="cards" ref={box}>
        {devices.map(card)}
      </div>
    );
  }
  return (
    <div ref={box}>
      <Windowed
        items={rows}
        windowed
        keyOf={(row) => `${cols}:${row[0]!.id}`}
        estimate={(row) => Math.max(...row.map(estimateCard))}
        container={{ class: "cards-window", "aria-label": `${devices.length} devices` }}
        renderRow={(row) => (
          <div class="cards cards-row" style={{ gridTemplateColumns: `repeat(${cols}, minmax(0, 1fr))` }}>
            {row.map(card)}
          </div>
        )}
      />
    </div>
  );
}

type CardProps = { device: DeviceView } & Omit<Props, "devices">;

/** A card renders again when its device, one of its own sensors' series or the epoch moved (never for the clock). */
function sameCard(a: CardProps, b: CardProps): boolean {
  if (a.device !== b.device || a.epoch !== b.epoch || a.store !== b.store) return false;
  if (a.series === b.series) return true;
  for (const p of b.device.sensors) {
    const key = seriesKey(b.device.id, p.id);
    if (a.series[key] !== b.series[key]) return false;
  }
  return true;
}

const DeviceCard = memo(function DeviceCard({ device, series, epoch, store }: CardProps) {
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
              <td class="value" title={p.ts === null ? "no reading yet" : `read at ${clock(p.ts)}`}>
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
}, sameCard);

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
