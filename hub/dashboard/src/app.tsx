/**
 * The dashboard page: connection banner, API token state, supervision tree, device cards, event timeline, fault
 * controls, and the token prompt.
 */
import { useEffect, useState } from "preact/hooks";
import { DeviceCards } from "./devices.tsx";
import { FaultsPanel } from "./faults.tsx";
import { ago } from "./format.ts";
import type { ConnectionState } from "./live.ts";
import type { DashboardStore } from "./state.ts";
import { Timeline } from "./timeline.tsx";
import { TokenDialog, TokenStatus } from "./token.tsx";
import { SupervisionTree } from "./tree.tsx";

/** Re-renders on every store change, and once a second so "3 s ago" texts move. */
function useStore(store: DashboardStore) {
  const [, setTick] = useState(0);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const off = store.subscribe(() => setTick((n) => n + 1));
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      off();
      clearInterval(timer);
    };
  }, [store]);
  return { state: store.get(), now };
}

function ConnectionBanner({ connection, now }: { connection: ConnectionState; now: number }) {
  if (connection.state === "open") {
    return (
      <span class="conn live" role="status" data-connection="live">
        ● live
      </span>
    );
  }
  if (connection.state === "connecting" && connection.attempt === 0) {
    return (
      <span class="conn connecting" role="status" data-connection="connecting">
        connecting…
      </span>
    );
  }
  const wait = connection.state === "reconnecting" ? Math.max(0, connection.retryAt - now) : 0;
  return (
    <span class="conn down" role="status" data-connection="disconnected">
      ✕ disconnected — reconnecting
      {connection.state === "reconnecting" &&
        ` (${connection.reason}; attempt ${connection.attempt}${wait > 0 ? `, next in ${Math.ceil(wait / 1000)} s` : ""})`}
    </span>
  );
}

export function App({ store }: { store: DashboardStore }) {
  const { state, now } = useStore(store);
  const online = state.devices.filter((d) => d.status === "online").length;
  const stale = state.connection.state !== "open";
  return (
    <>
      <header class="top">
        <h1>Ganglion</h1>
        <span class="muted">
          {state.devices.length} devices, {online} online
          {state.connection.state === "open" && ` · connected ${ago(state.connection.since, now)}`}
        </span>
        <TokenStatus />
        <ConnectionBanner connection={state.connection} now={now} />
      </header>
      <main class={stale ? "stale" : ""}>
        <section class="panel tree-panel" aria-labelledby="tree-h">
          <h2 id="tree-h">Supervision tree</h2>
          <SupervisionTree tree={state.tree} flashes={state.flashes} now={now} />
        </section>
        <section class="panel devices-panel" aria-labelledby="devices-h">
          <h2 id="devices-h">Devices</h2>
          <DeviceCards devices={state.devices} series={state.series} epoch={state.epoch} store={store} />
        </section>
        <section class="panel faults-panel" aria-labelledby="faults-h">
          <h2 id="faults-h">Faults</h2>
          <FaultsPanel
            faults={state.faults}
            devices={state.devices}
            deviceIds={state.deviceIds}
            scenarioEvents={state.scenarioEvents}
            epoch={state.epoch}
            now={now}
          />
        </section>
        <section class="panel events-panel" aria-labelledby="events-h">
          <h2 id="events-h">Events</h2>
          <Timeline events={state.events} deviceIds={state.deviceIds} />
        </section>
      </main>
      <TokenDialog />
    </>
  );
}
