/**
 * The Hub: builds the default supervision tree of DESIGN.md §2 and exposes it as a {@link HubView}.
 *
 *   hub (one_for_one) ── events · broker · registry · fleet (DynamicSupervisor → one supervisor per device) · api
 *
 * Devices live in the fleet; each is retried with backoff when its own supervisor gives up, so one failing device
 * never uses up the fleet's restart budget. The fleet starts every known device when it (re)starts, so a restarted
 * fleet comes back whole, devices added at run time included.
 */
import pino, { type Logger } from "pino";
import { deviceChild } from "../devices/device.ts";
import { serialportOpener } from "../devices/links/serial-link.ts";
import type { CommandResult } from "../devices/sensors/actuator.ts";
import { startApi } from "./api.ts";
import { type ExternalBrokerSettings, redactBrokerUrl } from "./broker/external.ts";
import { type BrokerHandle, brokerChild, busOver } from "./broker-service.ts";
import { formatPath } from "./config/errors.ts";
import { type DeviceConfig, DeviceSchema, type FleetConfig } from "./config.ts";
import type { HubContext, SerialOpener } from "./context.ts";
import { partName } from "./context.ts";
import { eventsChild, recordEvent, type TreeRoot } from "./events.ts";
import { FaultBook } from "./faults/book.ts";
import { DRIVER_REPAIRED, driverFaultTable, type PhysicalFaults } from "./faults/contract.ts";
import { FleetState } from "./fleet-state.ts";
import {
  type ChildSpec,
  call,
  getClock,
  inspectTree,
  type Pid,
  type Process,
  Registry,
  replyWith,
  restartChild,
  StartError,
  startChild,
  startDynamicSupervisor,
  startServer,
  startSupervisor,
  stopSupervisor,
  type TreeNode,
  terminateChild,
  whichChildren,
} from "./runtime/index.ts";
import {
  type EventQuery,
  HistoryStore,
  type HubEvent,
  type StoredReading,
  type TelemetryQuery,
} from "./store.ts";
import {
  type CommandRequest,
  type DeviceView,
  HubApiError,
  type HubView,
  type LiveUpdate,
  type ScenarioControl,
} from "./view.ts";

/** Options for {@link startHub}; anything left out comes from `config.hub`. */
export interface HubOptions {
  config: FleetConfig;
  httpHost?: string;
  /** 0 picks a free port. */
  httpPort?: number;
  mqttHost?: string;
  /** 0 picks a free port. */
  mqttPort?: number;
  /**
   * Use an external MQTT broker instead of the embedded aedes: this URL, else `config.hub.mqtt.broker`; the
   * login and client id apply to either.
   */
  broker?: Partial<ExternalBrokerSettings>;
  dataDir?: string;
  /** Serve the HTTP API (default true). */
  api?: boolean;
  /**
   * Bearer token for mutating API routes. When set it is required on every host; without one the hub refuses to bind
   * beyond loopback.
   */
  apiToken?: string;
  /** Serve this directory at `/` (the dashboard). */
  staticDir?: string;
  logger?: Logger;
  /** Opens serial devices' ports; default serialport. The simulator and tests pass emulated boards' streams. */
  serialOpener?: SerialOpener;
  /** Physical faults of simulated boards, for `/api/faults` (without it only hub-side faults can be injected). */
  physicalFaults?: PhysicalFaults;
  /**
   * The scenarios `/api/scenarios` runs, built once the hub runs (they drive it through its own view); the
   * simulator passes its shipped ones. Without it the hub lists none.
   */
  scenarios?: (hub: RunningHub) => ScenarioControl;
}

/** A running hub. */
export interface RunningHub extends HubView {
  readonly pid: Pid;
  /** `http://HOST:PORT`, once the API listens. */
  readonly httpUrl: string | undefined;
  /** `mqtt://HOST:PORT` devices connect to: the embedded broker, or the external one (without credentials). */
  readonly mqttUrl: string;
  /** True when the hub is a client of an external broker (which then does device logins and ACLs). */
  readonly externalBroker: boolean;
  readonly context: HubContext;
  /**
   * The hub's own MQTT login (full access), for in-process clients such as the simulator and tests; 409 with an
   * external broker (its accounts are its own), 503 while the embedded broker restarts.
   */
  hubLogin(): { username: string; password: string };
  /** Stops the tree (reverse start order) and closes the history. */
  stop(): Promise<void>;
}

const DEVICE_BACKOFF = { minMs: 1000, maxMs: 30_000, jitter: 0.2, resetAfterMs: 60_000 };

/** Starts a hub; rejects with {@link StartError} (e.g. a taken port) before anything is left running. */
export async function startHub(options: HubOptions): Promise<RunningHub> {
  const settings = options.config.hub;
  const log = options.logger ?? pino({ level: "info" });
  const store = HistoryStore.open({
    dataDir: options.dataDir ?? settings.dataDir,
    retention: settings.retention,
  });
  const state = new FleetState();
  const names = new Registry<string>("hub-names");
  const brokerUrl = options.broker?.url ?? settings.mqtt.broker;
  const external: ExternalBrokerSettings | undefined =
    brokerUrl === undefined ? undefined : { ...options.broker, url: brokerUrl };
  const handle: BrokerHandle = {
    current: null,
    port: options.mqttPort ?? settings.mqtt.port,
    dropped: 0,
    badTelemetry: 0,
  };
  const devices = new Map<string, DeviceConfig>();
  const root: TreeRoot = { pid: null };
  const startedAt = getClock().now();
  let httpUrl: string | undefined;
  let httpPort = options.httpPort ?? settings.http.port;
  const httpHost = options.httpHost ?? settings.http.host;

  const hub: HubContext = {
    prefix: settings.mqtt.topicPrefix,
    store,
    state,
    names,
    bus: busOver(handle),
    log,
    heartbeatMs: settings.heartbeatMs,
    serialOpener: options.serialOpener ?? serialportOpener(),
    // A sensor whose driver fault is cleared re-reads its newest reading at once (its restart left it waiting).
    driverFaults: driverFaultTable((device, sensor) =>
      names.whereis(partName(device, sensor))?.proc?.deliver(DRIVER_REPAIRED),
    ),
    emit: (event: HubEvent) => recordEvent(hub, event),
  };

  const fleetChild: ChildSpec = {
    id: "fleet",
    type: "supervisor",
    start: async (ctx) => {
      const fleet = await startDynamicSupervisor(
        { intensity: 10, periodMs: 10_000 },
        { path: ctx.path, link: ctx.parent },
      );
      for (const config of devices.values()) await startChild(fleet, withBackoff(deviceChild(hub, config)));
      return fleet;
    },
  };

  const registryChild: ChildSpec = {
    id: "registry",
    start: (ctx) =>
      startServer(
        {
          init: () => names,
          handleCall: (_req: "names", _from, registry: Registry<string>) =>
            replyWith(
              registry.entriesList().map(([key, pid]) => ({ key, pid: pid.toString() })),
              registry,
            ),
        },
        undefined,
        { link: ctx.parent, label: ctx.path },
      ),
  };

  const apiChild: ChildSpec = {
    id: "api",
    start: (ctx) =>
      startServer(
        {
          init: async (_: undefined, self: Process) => {
            // Trap exits so a shutdown from the hub runs terminate and closes the server and /api/live.
            self.setTrapExit(true);
            const api = await startApi({
              host: httpHost,
              port: httpPort,
              view: running,
              logger: log,
              // A token in force is required on every host: one given on loopback guards a shared machine too.
              ...(options.apiToken === undefined ? {} : { token: options.apiToken, requireToken: true }),
              ...(options.staticDir === undefined ? {} : { staticDir: options.staticDir }),
            });
            httpPort = (api.server.address() as { port: number }).port;
            httpUrl = api.url;
            return api;
          },
          terminate: async (_reason: unknown, api: { close(): Promise<void> }) => {
            await api.close();
          },
        },
        undefined,
        { link: ctx.parent, label: ctx.path },
      ),
  };

  for (const config of options.config.devices) {
    devices.set(config.id, config);
    state.addDevice(config);
  }

  const children: ChildSpec[] = [
    eventsChild(hub, root),
    brokerChild(hub, handle, {
      ...(external === undefined ? {} : { external }),
      host: options.mqttHost ?? settings.mqtt.host,
      port: handle.port,
      ...(settings.tls === undefined ? {} : { tls: settings.tls }),
      anonymousRead: settings.mqtt.anonymousRead,
      maxPacketSize: settings.mqtt.maxPacketSize,
      devices: () => [...devices.values()],
    }),
    registryChild,
    fleetChild,
  ];
  if (options.api !== false) children.push(apiChild);

  const rootPid = (): Pid => {
    if (root.pid === null) throw new HubApiError(503, "hub_starting", "the hub is still starting");
    return root.pid;
  };
  const faults = new FaultBook({
    hub,
    sensorsOf: (id) => devices.get(id)?.sensors.map((s) => s.id),
    // Stop and start the broker child: every device reconnects, and its init re-publishes retained state.
    restartBroker: async () => {
      const old = handle.current;
      await terminateChild(rootPid(), "broker");
      // The stopped broker frees its port asynchronously; the new one binds the same port.
      await old?.close();
      await restartChild(rootPid(), "broker");
    },
    ...(options.physicalFaults === undefined ? {} : { physical: options.physicalFaults }),
  });
  const fleetPid = (): Pid => {
    const fleet = whichChildren(rootPid()).find((c) => c.id === "fleet")?.pid;
    if (fleet == null) {
      throw new HubApiError(503, "fleet_restarting", "the fleet is restarting; try again in a moment");
    }
    return fleet;
  };

  let scenarioControl: ScenarioControl | undefined;
  const running: RunningHub = {
    get pid() {
      return rootPid();
    },
    startedAt,
    context: hub,
    get httpUrl() {
      return httpUrl;
    },
    externalBroker: external !== undefined,
    get mqttUrl() {
      if (external !== undefined) return redactBrokerUrl(external.url);
      return handle.current?.url ?? `mqtt://${options.mqttHost ?? settings.mqtt.host}:${handle.port}`;
    },
    tree(): TreeNode {
      const tree = inspectTree(rootPid());
      if (tree === undefined) throw new HubApiError(503, "hub_stopped", "the hub is not running");
      return tree;
    },
    devices: () => state.views(),
    device: (id) => state.view(id),
    telemetry(query: TelemetryQuery): StoredReading[] {
      if (!state.has(query.device))
        throw new HubApiError(404, "unknown_device", `no device "${query.device}"`);
      return store.telemetry(query);
    },
    events: (query: EventQuery) => store.events(query),
    async command(deviceId: string, command: CommandRequest) {
      const config = devices.get(deviceId);
      if (config === undefined) throw new HubApiError(404, "unknown_device", `no device "${deviceId}"`);
      if (!config.actuators.some((a) => a.id === command.target)) {
        const known = config.actuators.map((a) => a.id).join(", ") || "none";
        throw new HubApiError(
          404,
          "unknown_target",
          `${deviceId} has no actuator "${command.target}" (actuators: ${known})`,
        );
      }
      const actuator = names.whereis(partName(deviceId, command.target));
      if (actuator === undefined) {
        throw new HubApiError(
          503,
          "actuator_restarting",
          `${deviceId}/${command.target} is restarting; try again`,
        );
      }
      const result = await call<CommandResult>(actuator, { op: command.op, args: command.args }, 8000).catch(
        (err: Error): CommandResult => ({
          ok: false,
          status: 503,
          code: "actuator_failed",
          message: err.message,
        }),
      );
      if (!result.ok) throw new HubApiError(result.status, result.code, result.message);
      return { id: result.id, ok: true as const };
    },
    async addDevice(input: unknown): Promise<DeviceView> {
      const parsed = DeviceSchema.safeParse(input);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue === undefined ? "" : `${formatPath(issue.path) || "device"}: `;
        throw new HubApiError(400, "invalid_device", `${where}${issue?.message ?? "invalid device"}`);
      }
      const config = parsed.data;
      if (devices.has(config.id))
        throw new HubApiError(409, "device_exists", `device "${config.id}" already exists`);
      devices.set(config.id, config);
      state.addDevice(config);
      if (config.link.type === "mqtt") {
        handle.current?.addDevice({ id: config.id, tokenHash: config.link.tokenHash });
      }
      try {
        await startChild(fleetPid(), withBackoff(deviceChild(hub, config)));
      } catch (err) {
        devices.delete(config.id);
        state.removeDevice(config.id);
        handle.current?.removeDevice(config.id);
        if (err instanceof HubApiError) throw err;
        throw new HubApiError(
          400,
          "device_failed",
          `${config.id} failed to start: ${(err as Error).message}`,
        );
      }
      return state.view(config.id) as DeviceView;
    },
    async removeDevice(id: string): Promise<void> {
      if (!devices.has(id)) throw new HubApiError(404, "unknown_device", `no device "${id}"`);
      devices.delete(id);
      await faults.clearDevice(id);
      handle.current?.removeDevice(id);
      await terminateChild(fleetPid(), id).catch(() => undefined);
      state.removeDevice(id);
      hub.emit({ type: "offline", path: `hub/fleet/${id}`, ts: getClock().now(), reason: "removed" });
    },
    faults: () => faults.list(),
    scenarios: () => scenarioControl?.list() ?? [],
    runScenario(name: string) {
      if (scenarioControl === undefined) {
        throw new HubApiError(
          404,
          "unknown-scenario",
          `no scenario "${name}": scenarios run against the simulated fleet (ganglion start --simulate)`,
        );
      }
      return scenarioControl.start(name);
    },
    injectFault: (request: unknown) => faults.inject(request),
    clearFault: (id: string) => faults.clear(id),
    subscribe: (listener: (update: LiveUpdate) => void) => state.subscribe(listener),
    hubLogin() {
      if (external !== undefined) {
        // The external broker's accounts are its own business; the hub has no login there to hand out.
        throw new HubApiError(
          409,
          "external_broker",
          `the hub uses the external broker ${external.url}: log in there with an account of that broker`,
        );
      }
      const login = handle.current?.hubCredentials;
      if (login === undefined) throw new HubApiError(503, "broker_restarting", "the broker is restarting");
      return { ...login };
    },
    async stop() {
      await faults.close();
      if (root.pid !== null) await stopSupervisor(root.pid);
      store.close();
    },
  };

  try {
    root.pid = await startSupervisor(
      { strategy: "one_for_one", intensity: 5, periodMs: 10_000, children },
      { path: "hub" },
    );
  } catch (err) {
    store.close();
    throw err;
  }
  scenarioControl = options.scenarios?.(running);
  return running;
}

function withBackoff(spec: ChildSpec): ChildSpec {
  return { ...spec, backoff: DEVICE_BACKOFF };
}

export { StartError };
