/**
 * The fault book: the hub's record of active faults (DESIGN.md §3), behind `/api/faults` and the `/api/live`
 * snapshot. It validates a request, sends it where the fault lives — the hub's own driver switchboard (`throws`,
 * `hang`), the embedded broker (`broker-restart`), or a simulated board ({@link PhysicalFaults}) — and keeps each
 * fault's undo until it is cleared, its duration ends, its device is removed or the hub stops.
 *
 * Every fault is announced as a `fault_injected` hub event and ends with one `fault_cleared` (with the reason), on
 * the sensor's or device's tree path, or `hub` for faults of the hub itself.
 */
import type { Logger } from "pino";
import type { HubContext } from "../context.ts";
import { getClock, type TimerHandle } from "../runtime/index.ts";
import { HubApiError } from "../view.ts";
import {
  type DriverFault,
  FAULT_KINDS,
  type FaultRequest,
  type FaultUndo,
  type FaultView,
  HUB_SIDE_KINDS,
  type PhysicalFaults,
} from "./contract.ts";
import { BadFaultRequest, parseFaultRequest } from "./request.ts";

/** What the book needs from the hub. */
export interface FaultBookOptions {
  /** The driver switchboard, the event sink and the logger. */
  hub: Pick<HubContext, "driverFaults" | "emit" | "log">;
  /** The sensor ids of a device, or `undefined` when the hub has no such device. */
  sensorsOf(device: string): readonly string[] | undefined;
  /** Stops the embedded broker and starts it again; resolves once it is back. */
  restartBroker(): Promise<void>;
  /** Physical faults of simulated boards; without it every physical fault is 409 `not-simulated`. */
  physical?: PhysicalFaults;
}

interface Entry {
  view: FaultView;
  path: string;
  undo: FaultUndo;
  timer: TimerHandle | null;
}

/** The tree path a fault's events carry (DESIGN.md §2 paths). */
export function faultPath(fault: FaultRequest): string {
  if (fault.device === undefined) return "hub";
  const device = `hub/fleet/${fault.device}`;
  return fault.sensor === undefined ? device : `${device}/sensors/${fault.sensor}`;
}

/** One line naming a fault's target: `uno-1/temp`, `uno-1`, or `the hub`. */
export function faultTarget(fault: FaultRequest): string {
  if (fault.device === undefined) return "the hub";
  return fault.sensor === undefined ? fault.device : `${fault.device}/${fault.sensor}`;
}

const describeError = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The hub's active faults; see the module comment. */
export class FaultBook {
  private readonly active = new Map<string, Entry>();
  private readonly log: Logger;
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: FaultBookOptions) {
    this.log = options.hub.log.child({ service: "faults" });
  }

  /** Active faults, oldest first. */
  list(): FaultView[] {
    return [...this.active.values()].map((e) => ({ ...e.view }));
  }

  /**
   * Validates and injects a fault. Rejects with {@link HubApiError}: 400 `bad-fault` (bad body, or the simulator
   * refused it), 404 unknown device/sensor, 409 `not-simulated` (a physical fault on a real board) or
   * `fault_active` (the same switch is already thrown), 503 while the hub stops.
   */
  async inject(body: unknown): Promise<FaultView> {
    if (this.closed) throw new HubApiError(503, "hub_stopping", "the hub is stopping");
    let request: FaultRequest;
    try {
      request = parseFaultRequest(body);
    } catch (err) {
      if (err instanceof BadFaultRequest) throw new HubApiError(400, "bad-fault", err.message);
      throw err;
    }
    this.checkTarget(request);
    this.checkConflicts(request);
    const physical = this.options.physical;
    if (!HUB_SIDE_KINDS.has(request.kind) && !physical?.simulates(request.device as string)) {
      throw new HubApiError(
        409,
        "not-simulated",
        `fault "${request.kind}" needs a simulated board; "${request.device}" is real hardware (run \`ganglion start --simulate\`)`,
      );
    }

    const now = getClock().now();
    const view: FaultView = { id: `f${this.nextId++}`, ...request, startedAt: now };
    if (request.durationMs !== undefined) view.until = now + request.durationMs;
    const entry: Entry = { view, path: faultPath(request), undo: async () => {}, timer: null };

    if (request.kind === "throws" || request.kind === "hang") {
      const { device, sensor } = request as Required<FaultRequest>;
      this.options.hub.driverFaults.set(device, sensor, request.kind as DriverFault);
      entry.undo = async () => this.options.hub.driverFaults.clear(device, sensor);
    } else if (request.kind === "broker-restart") {
      entry.undo = this.restartBroker(entry);
    } else {
      try {
        entry.undo = await (physical as PhysicalFaults).inject({ ...view });
      } catch (err) {
        throw new HubApiError(400, "bad-fault", describeError(err));
      }
      const gone = this.closed || this.options.sensorsOf(view.device as string) === undefined;
      if (gone) {
        // The hub began stopping, or the device was removed, while the board took the fault: undo it at once
        // rather than book a fault nothing will ever clear.
        await entry.undo().catch((err) => this.log.error({ err, fault: view.id }, "undo failed"));
        if (this.closed) throw new HubApiError(503, "hub_stopping", "the hub is stopping");
        throw new HubApiError(404, "unknown_device", `no device "${view.device}" (it was just removed)`);
      }
    }

    this.active.set(view.id, entry);
    if (request.durationMs !== undefined) {
      entry.timer = getClock().setTimeout(() => {
        entry.timer = null;
        void this.finish(entry, "expired").catch(() => undefined);
      }, request.durationMs);
    }
    this.log.info(
      {
        fault: view.id,
        kind: view.kind,
        device: view.device,
        sensor: view.sensor,
        durationMs: view.durationMs,
      },
      `fault ${view.id}: ${view.kind} on ${faultTarget(view)}`,
    );
    this.options.hub.emit({ type: "fault_injected", path: entry.path, ts: now, fault: { ...view } });
    return { ...view };
  }

  /**
   * Clears a fault now (its undo runs first). 404 `unknown_fault` for an id that is not active; 503
   * `fault_undo_failed` when the undo fails, and the fault stays listed so it can be cleared again.
   */
  async clear(id: string): Promise<void> {
    const entry = this.active.get(id);
    if (entry === undefined) {
      const known = [...this.active.keys()].join(", ") || "none";
      throw new HubApiError(404, "unknown_fault", `no active fault "${id}" (active: ${known})`);
    }
    await this.finish(entry, "cleared", { keepOnFailure: true });
  }

  /** Clears every fault of a device (it is being removed); undo failures are logged. */
  async clearDevice(device: string, reason = "device removed"): Promise<void> {
    const entries = [...this.active.values()].filter((e) => e.view.device === device);
    await Promise.all(entries.map((e) => this.finish(e, reason).catch(() => undefined)));
  }

  /** Refuses new faults and clears every active one (the hub is stopping); undo failures are logged. */
  async close(): Promise<void> {
    this.closed = true;
    const entries = [...this.active.values()];
    await Promise.all(entries.map((e) => this.finish(e, "hub stopping").catch(() => undefined)));
  }

  private checkTarget(request: FaultRequest): void {
    if (request.device === undefined) return;
    const sensors = this.options.sensorsOf(request.device);
    if (sensors === undefined) {
      throw new HubApiError(404, "unknown_device", `no device "${request.device}"`);
    }
    if (request.sensor !== undefined && !sensors.includes(request.sensor)) {
      throw new HubApiError(
        404,
        "unknown_sensor",
        `${request.device} has no sensor "${request.sensor}" (sensors: ${sensors.join(", ") || "none"})`,
      );
    }
  }

  /** One driver fault per sensor (they share one switch), one broker restart at a time. */
  private checkConflicts(request: FaultRequest): void {
    if (!HUB_SIDE_KINDS.has(request.kind)) return;
    for (const { view } of this.active.values()) {
      if (!HUB_SIDE_KINDS.has(view.kind) || FAULT_KINDS[view.kind] !== FAULT_KINDS[request.kind]) continue;
      if (view.device !== request.device || view.sensor !== request.sensor) continue;
      const what =
        request.kind === "broker-restart"
          ? "the broker is already restarting"
          : `${faultTarget(view)} already has`;
      throw new HubApiError(
        409,
        "fault_active",
        `${what} fault ${view.id} (${view.kind}); clear it first with \`ganglion fault clear ${view.id}\``,
      );
    }
  }

  /** Starts the broker restart; the fault clears itself once the broker is back. The undo awaits the restart. */
  private restartBroker(entry: Entry): FaultUndo {
    const done = Promise.resolve()
      .then(() => this.options.restartBroker())
      .then(
        () => "broker back",
        (err: unknown) => {
          this.log.error({ err, fault: entry.view.id }, "broker restart failed");
          return `broker restart failed: ${describeError(err)}`;
        },
      );
    void done.then((reason) => this.finish(entry, reason).catch(() => undefined));
    return async () => void (await done);
  }

  private async finish(entry: Entry, reason: string, opts: { keepOnFailure?: boolean } = {}): Promise<void> {
    const { view } = entry;
    if (this.active.get(view.id) !== entry) return; // already cleared by another path
    this.active.delete(view.id);
    if (entry.timer !== null) getClock().clearTimeout(entry.timer);
    entry.timer = null;
    const fields = { fault: view.id, kind: view.kind, device: view.device, sensor: view.sensor };
    try {
      await entry.undo();
    } catch (err) {
      this.log.error({ ...fields, err }, `fault ${view.id}: undo failed: ${describeError(err)}`);
      if (opts.keepOnFailure && !this.closed) {
        this.active.set(view.id, entry);
        throw new HubApiError(
          503,
          "fault_undo_failed",
          `could not clear ${view.id} (${view.kind} on ${faultTarget(view)}): ${describeError(err)}; it is still active`,
        );
      }
      reason = `${reason}; undo failed: ${describeError(err)}`;
    }
    this.log.info({ ...fields, reason }, `fault ${view.id} cleared: ${reason}`);
    this.options.hub.emit({
      type: "fault_cleared",
      path: entry.path,
      ts: getClock().now(),
      reason,
      fault: { ...view },
    });
  }
}
