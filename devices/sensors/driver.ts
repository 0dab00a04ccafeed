/**
 * Hub-side driver faults (DESIGN.md §3, rows `throws` and `hang`) as a sensor actor honours them.
 *
 * The healthy path is not here: the sensor actor looks its entry up in `ctx.driverFaults` (one Map lookup per
 * reading) and, finding none, converts on the main thread with `convertRaw`. Only with a fault set does a reading
 * come through {@link FaultyDriver}:
 * - `throws`: the driver raises {@link InjectedDriverError}; the actor crashes and its supervisor restarts it alone
 *   (repeated crashes escalate through the device's supervision tree like any other).
 * - `hang`: the conversion runs in an isolated driver (a worker thread), where the injected fault spins in a busy
 *   loop. The call times out and the actor exits with {@link DriverHungError}; the driver is linked to the actor,
 *   so that exit terminates the worker wherever its loop is, and the supervisor restarts the actor.
 */
import type { Logger } from "pino";
import type { SensorConfig } from "../../hub/config.ts";
import type { DriverFault, DriverFaults } from "../../hub/faults/contract.ts";
import {
  CallTimeoutError,
  call,
  getClock,
  type Pid,
  startIsolated,
  stopServer,
} from "../../hub/runtime/index.ts";
import type { ConvertRequest, IsolatedDriverArgs } from "./isolated-driver.ts";

const ISOLATED_DRIVER = new URL("./isolated-driver.ts", import.meta.url);

/**
 * A driver that converts in a few microseconds and has not answered for this long is hung: one reading period,
 * but at least 1 s (a worker on a loaded host can be slow to be scheduled) and at most the default call timeout.
 */
export function driverTimeoutMs(config: SensorConfig): number {
  return Math.min(5000, Math.max(1000, config.periodMs));
}

/** Heap limits of an isolated driver: a conversion needs little, and a runaway one must not take the hub's memory. */
const DRIVER_LIMITS = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 };

/** The exception an injected `throws` fault raises in a sensor's driver. */
export class InjectedDriverError extends Error {
  override readonly name = "InjectedDriverError";
  /** Lets callers tell an injected fault from a real driver bug. */
  readonly injected = true;
  constructor(
    readonly device: string,
    readonly sensor: string,
  ) {
    super(`${device}/${sensor}: sensor driver raised (injected fault "throws")`);
  }
}

/** The reason a sensor actor exits with when its isolated driver did not answer in time. */
export class DriverHungError extends Error {
  override readonly name = "DriverHungError";
  constructor(
    readonly device: string,
    readonly sensor: string,
    readonly timeoutMs: number,
  ) {
    super(
      `driver hung: ${device}/${sensor} did not answer within ${timeoutMs} ms (injected fault "hang"); its worker thread is terminated and the sensor restarted`,
    );
  }
}

/** Who a {@link FaultyDriver} works for. */
export interface FaultyDriverOptions {
  device: string;
  config: SensorConfig;
  /** The sensor actor's tree path; the isolated driver is labelled `<path>/driver`. */
  path: string;
  /** The sensor actor: the isolated driver is linked to it, so it dies (and its thread ends) with the actor. */
  owner: Pid;
  faults: DriverFaults;
  log: Logger;
}

/**
 * A sensor actor's driver while a fault is set on it. Created on the first faulty reading, so a healthy sensor
 * allocates nothing for it.
 *
 * Why the isolated driver is started on demand rather than kept per sensor: a worker costs ~30 MB of RSS and
 * 0.3 s (quiet host) to 1.5 s (loaded 2-core host) to start, a fleet has tens of sensors, and the conversion itself
 * takes microseconds — only a driver that may hang needs a thread of its own. The start is paid when `hang` is
 * first seen, and is not part of the call's timeout.
 */
export class FaultyDriver {
  private isolated: Pid | null = null;
  private readonly timeoutMs: number;

  constructor(private readonly options: FaultyDriverOptions) {
    this.timeoutMs = driverTimeoutMs(options.config);
  }

  /**
   * Converts `raw` under `fault`. Throws at once for `throws`; for `hang`, resolves with the isolated driver's
   * answer, or rejects with {@link DriverHungError} when it gives none in time.
   */
  convert(fault: DriverFault, raw: unknown): Promise<unknown> {
    const { device, config, log } = this.options;
    if (fault === "throws") {
      log.warn({ fault }, `${device}/${config.id}: injected driver fault "throws"; the sensor actor crashes`);
      throw new InjectedDriverError(device, config.id);
    }
    return this.convertIsolated(raw);
  }

  /** Stops an isolated driver left idle by a `hang` cleared before it was called. */
  retire(): void {
    const pid = this.isolated;
    this.isolated = null;
    // A normal stop: the link to the actor stays quiet, and the worker thread ends once its terminate has run.
    if (pid !== null) stopServer(pid).catch(() => undefined); // already gone: nothing to stop
  }

  private async convertIsolated(raw: unknown): Promise<unknown> {
    const { device, config, path, owner, faults, log } = this.options;
    if (this.isolated === null) {
      const startedAt = getClock().now();
      const args: IsolatedDriverArgs = { kind: config.kind };
      this.isolated = await startIsolated(ISOLATED_DRIVER, args, {
        link: owner,
        label: `${path}/driver`,
        resourceLimits: DRIVER_LIMITS,
      });
      log.info(
        { driver: this.isolated.toString(), startMs: getClock().now() - startedAt },
        `${device}/${config.id}: isolated driver started (fault "hang")`,
      );
    }
    // Read the switch again: the start took a while, and a `hang` cleared meanwhile must not spin.
    const request: ConvertRequest = { raw, hang: faults.get(device, config.id) === "hang" };
    try {
      return await call(this.isolated, request, this.timeoutMs);
    } catch (err) {
      if (!(err instanceof CallTimeoutError)) throw err;
      log.error(
        { fault: "hang", timeoutMs: this.timeoutMs },
        `${device}/${config.id}: driver hung (no answer in ${this.timeoutMs} ms); terminating its worker and restarting the sensor`,
      );
      // Exiting with this reason is what kills the driver: the link carries it to the worker's proxy.
      throw new DriverHungError(device, config.id, this.timeoutMs);
    }
  }
}
