/**
 * A virtual Raspberry Pi: the real pi-agent ({@link Agent}, the code the bundle runs) against a
 * {@link createVirtualSysfs} tree, reaching the broker through a small TCP relay the simulator can cut. It gives the
 * Pi-side physical faults of DESIGN.md §3 a place to happen:
 *
 * | fault | call |
 * |---|---|
 * | `nan` | `pi.sys.setCrcError(address, true)` |
 * | `partition` / `disconnect` | `pi.partition(true)` … `pi.partition(false)` |
 * | `reboot` | `await pi.reboot()` (new boot id → `resetCause: "power-on"`) |
 * | `power-loss` | `await pi.powerOff()` … `await pi.powerOn()` |
 * | agent crash | `await pi.crash()` (restarts at once → `resetCause: "agent-crash"`) |
 *
 * ```ts
 * const pi = await startVirtualPi({ dir, device: "pi-1", token, broker: "mqtt://127.0.0.1:1883" });
 * pi.sys.setTemperature(pi.w1Addresses[0], 30);
 * await pi.stop();
 * ```
 */
import { mkdirSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { join } from "node:path";
import type { Logger } from "pino";
import { Agent } from "../../firmware/pi-agent/src/agent.ts";
import { type AgentConfigInput, parseConfig } from "../../firmware/pi-agent/src/config.ts";
import { createVirtualSysfs, type VirtualSysfs } from "./virtual-sysfs.ts";

export interface VirtualPiOptions {
  /** The Pi's own directory: its sysfs tree goes to `<dir>/root`, its state and buffer to `<dir>/state`. */
  dir: string;
  device: string;
  token: string;
  /** The hub's broker, `mqtt://host:port`. */
  broker: string;
  prefix?: string;
  heartbeatMs?: number;
  /** Sensors and outputs as in the agent's config; defaults to {@link DEFAULT_SENSORS} and {@link DEFAULT_OUTPUTS}. */
  sensors?: AgentConfigInput["sensors"];
  outputs?: AgentConfigInput["outputs"];
  bufferMaxBytes?: number;
  /** Called once the sysfs tree is laid out, before the agent starts (to set the first values it reads). */
  prepare?: (sys: VirtualSysfs, w1Addresses: readonly string[]) => void;
  logger?: Logger;
}

/** A DS18B20 in a water tank, a BME280 and a door switch. */
export const DEFAULT_SENSORS: NonNullable<AgentConfigInput["sensors"]> = [
  { id: "water-temp", kind: "ds18b20", address: "28-0000075c2f2a", periodMs: 2000 },
  { id: "air-temp", kind: "iio", device: "bme280", channel: "temp", periodMs: 5000 },
  { id: "air-humidity", kind: "iio", device: "bme280", channel: "humidityrelative", periodMs: 5000 },
  { id: "air-pressure", kind: "iio", device: "bme280", channel: "pressure", periodMs: 10000 },
  { id: "door", kind: "gpio-input", gpio: 17, activeLow: true, periodMs: 1000 },
];

/** A status LED and an active-low pump relay. */
export const DEFAULT_OUTPUTS: NonNullable<AgentConfigInput["outputs"]> = [
  { id: "status-led", kind: "led", gpio: 27 },
  { id: "pump", kind: "relay", gpio: 22, activeLow: true },
];

const IIO_DEFAULTS = { temp: 21, humidityrelative: 45, pressure: 1013.25 };

export interface VirtualPi {
  readonly sys: VirtualSysfs;
  /** The running agent (a new instance after each reboot, crash or power cycle); undefined while powered off. */
  readonly agent: Agent | undefined;
  /** Addresses of the DS18B20s laid out for the configured sensors. */
  readonly w1Addresses: string[];
  /** The agent's sensors, as configured (which bus and address each reads). */
  readonly sensors: NonNullable<AgentConfigInput["sensors"]>;
  /** Cuts the Pi off the broker (open connections are dropped, new ones refused) or restores the link. */
  partition(on: boolean): void;
  /** The agent dies and systemd restarts it at once. */
  crash(): Promise<void>;
  /** The Pi reboots: the agent dies, the kernel gets a new boot id and forgets exported GPIO lines. */
  reboot(): Promise<void>;
  /** Power is cut: the agent dies and stays down until {@link powerOn}. */
  powerOff(): Promise<void>;
  /** Power is back: boots like {@link reboot}. */
  powerOn(): Promise<void>;
  /** Stops the agent cleanly (it publishes `offline`) and the relay. */
  stop(): Promise<void>;
}

/** A TCP relay to `host:port` that can refuse and drop connections (a network partition). */
class Relay {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private cut = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.server = createServer((inbound) => {
      if (this.cut) {
        inbound.destroy();
        return;
      }
      const outbound = tcpConnect(this.port, this.host);
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.setNoDelay(true);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound).pipe(inbound);
      inbound.on("close", () => outbound.destroy());
      outbound.on("close", () => inbound.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", () => resolve()));
    return (this.server.address() as { port: number }).port;
  }

  partition(on: boolean): void {
    this.cut = on;
    if (on) for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Lays out the Pi's sysfs for its sensors and starts the agent. */
export async function startVirtualPi(opts: VirtualPiOptions): Promise<VirtualPi> {
  const url = new URL(opts.broker);
  if (url.protocol !== "mqtt:") throw new Error(`virtual Pis speak plain mqtt://, not ${url.protocol}`);
  mkdirSync(opts.dir, { recursive: true });
  const sys = await createVirtualSysfs(join(opts.dir, "root"));
  const sensors = opts.sensors ?? DEFAULT_SENSORS;
  const w1Addresses: string[] = [];
  const iioNames = new Set<string>();
  for (const s of sensors) {
    if (s.kind === "ds18b20") {
      sys.addDs18b20(s.address, 20);
      w1Addresses.push(s.address);
    } else if (s.kind === "iio" && !iioNames.has(s.device)) {
      iioNames.add(s.device);
      sys.addIio(s.device, IIO_DEFAULTS);
    } else if (s.kind === "gpio-input") {
      sys.setGpioInput(s.gpio, s.activeLow ? 1 : 0); // released
    }
  }
  opts.prepare?.(sys, w1Addresses);
  const relay = new Relay(url.hostname, Number(url.port || 1883));
  const relayPort = await relay.listen();
  const config = parseConfig(
    {
      device: opts.device,
      token: opts.token,
      broker: `mqtt://127.0.0.1:${relayPort}`,
      ...(opts.prefix ? { prefix: opts.prefix } : {}),
      ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
      ioRoot: "root",
      stateDir: "state",
      ...(opts.bufferMaxBytes ? { buffer: { maxBytes: opts.bufferMaxBytes } } : {}),
      reconnect: { minMs: 200, maxMs: 5000 },
      sensors,
      outputs: opts.outputs ?? DEFAULT_OUTPUTS,
    },
    opts.dir,
    `virtual Pi ${opts.device}`,
  );
  let agent: Agent | undefined;
  let stopped = false;
  const boot = async () => {
    if (stopped) return; // an undo arriving after stop (the hub clears its faults last) boots nothing
    agent = new Agent({ config, ...(opts.logger ? { logger: opts.logger } : {}) });
    await agent.start();
  };
  const kill = async () => {
    await agent?.abort();
    agent = undefined;
  };
  await boot();
  return {
    sys,
    get agent() {
      return agent;
    },
    w1Addresses,
    sensors,
    partition: (on) => relay.partition(on),
    async crash() {
      await kill();
      await boot();
    },
    async reboot() {
      await kill();
      sys.reboot();
      await boot();
    },
    powerOff: kill,
    async powerOn() {
      if (agent) return;
      sys.reboot();
      await boot();
    },
    async stop() {
      stopped = true;
      await agent?.stop();
      agent = undefined;
      await relay.close();
      await sys.close();
    },
  };
}
