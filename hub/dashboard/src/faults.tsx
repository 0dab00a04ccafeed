/**
 * The place for fault controls (issue 6, next increment): pick a device, sensor and fault kind, inject, clear, run
 * a scenario. `/api/faults` is not served yet, so this panel only lists the active faults the snapshot carries.
 */
export function FaultsPanel({ faults }: { faults: unknown[] }) {
  return (
    <div class="faults" data-role="faults">
      <p class="muted">
        Fault injection (stuck, noise, disconnect, power-loss, …) and scenarios will be driven from here once
        the hub serves <code>/api/faults</code>. Active faults: {faults.length}.
      </p>
    </div>
  );
}
