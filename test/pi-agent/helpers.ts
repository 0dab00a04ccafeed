/** Shared fixtures of the pi-agent suites: a real aedes broker on 127.0.0.1, a hub-side mqtt.js client, configs. */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Aedes, type Client } from "aedes";
import { connect, type MqttClient } from "mqtt";
import type { Clock, TimerHandle } from "../../firmware/pi-agent/src/clock.ts";
import type { AgentConfig, AgentConfigInput } from "../../firmware/pi-agent/src/config.ts";
import { parseConfig } from "../../firmware/pi-agent/src/config.ts";

export interface TestBroker {
  port: number;
  aedes: Aedes;
  /** CONNECT credentials seen, in order. */
  logins: { clientId: string; username: string | undefined; password: string | undefined }[];
  /** Subscriptions made, by client id. */
  subscriptions: Map<string, string[]>;
  /** Destroys one client's socket without a DISCONNECT (the broker then fires its will). */
  cut(clientId: string): void;
  close(): Promise<void>;
}

/**
 * Starts an aedes broker on 127.0.0.1 (port 0 = a free one). Devices must log in with `tokens[username]`; the hub
 * side logs in as `hub`. `pubackDelayMs` slows every publish down (to catch the agent in the middle of a replay).
 */
export async function startBroker(
  port = 0,
  tokens: Record<string, string> = {},
  opts: { pubackDelayMs?: number } = {},
): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  const delay = opts.pubackDelayMs;
  if (delay) {
    // A slow broker: every PUBLISH is held before it is routed and acknowledged.
    aedes.authorizePublish = (_client, _packet, done) => {
      setTimeout(() => done(null), delay);
    };
  }
  const logins: TestBroker["logins"] = [];
  const subscriptions = new Map<string, string[]>();
  aedes.authenticate = (client: Client, username, password, done) => {
    const pass = password?.toString();
    logins.push({ clientId: client.id, username, password: pass });
    const ok = username === "hub" || (username !== undefined && tokens[username] === pass);
    if (ok) done(null, true);
    else done(Object.assign(new Error("bad credentials"), { returnCode: 5 }) as never, false);
  };
  aedes.on("subscribe", (subs, client) => {
    if (!client) return;
    const list = subscriptions.get(client.id) ?? [];
    list.push(...subs.map((s) => s.topic));
    subscriptions.set(client.id, list);
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    aedes,
    logins,
    subscriptions,
    cut(clientId) {
      const client = (aedes as unknown as { clients: Record<string, { conn: Socket }> }).clients[clientId];
      if (!client) throw new Error(`no client ${clientId} connected`);
      client.conn.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => aedes.close(() => r()));
    },
  };
}

export interface Received {
  topic: string;
  text: string;
  retain: boolean;
  at: number;
}

/** A hub-side client subscribed to `topics`, collecting every message. */
export interface HubClient {
  client: MqttClient;
  messages: Received[];
  /** Parsed JSON payloads of one topic. */
  json<T = Record<string, unknown>>(topic: string): T[];
  /** Resolves when `predicate` holds over the messages (polled), or rejects after `timeoutMs`. */
  until(predicate: (messages: Received[]) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  close(): Promise<void>;
}

export async function hubClient(port: number, topics: string[]): Promise<HubClient> {
  const client = connect(`mqtt://127.0.0.1:${port}`, {
    clientId: `hub-test-${Math.random().toString(16).slice(2)}`,
    username: "hub",
    password: "x",
    reconnectPeriod: 100,
    protocolVersion: 4,
  });
  const messages: Received[] = [];
  client.on("message", (topic, payload, packet) => {
    messages.push({ topic, text: payload.toString(), retain: packet.retain, at: Date.now() });
  });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  await client.subscribeAsync(topics, { qos: 1 });
  return {
    client,
    messages,
    json: <T>(topic: string) => messages.filter((m) => m.topic === topic).map((m) => JSON.parse(m.text) as T),
    until: (predicate, timeoutMs = 8000, what = "condition") =>
      waitFor(() => predicate(messages), timeoutMs, what),
    close: () => client.endAsync(true),
  };
}

/** Polls `check` every 10 ms until it is true; rejects naming `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs = 8000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A temp directory removed by the returned function. */
export function tempDir(prefix = "ganglion-pi-"): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const W1_ADDRESS = "28-0000075c2f2a";

/** A test config: one DS18B20, two BME280 channels, a button, a LED, a relay and a plain output. */
export function testConfigInput(
  port: number,
  ioRoot: string,
  stateDir: string,
  overrides: Partial<AgentConfigInput> = {},
): AgentConfigInput {
  return {
    device: "pi-1",
    token: "secret-pi-1",
    broker: `mqtt://127.0.0.1:${port}`,
    heartbeatMs: 200,
    ioRoot,
    stateDir,
    reconnect: { minMs: 50, maxMs: 400 },
    sensors: [
      { id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 50 },
      { id: "air", kind: "iio", device: "bme280", channel: "temp", periodMs: 50 },
      { id: "pressure", kind: "iio", device: "bme280", channel: "pressure", periodMs: 50 },
      { id: "button", kind: "gpio-input", gpio: 17, activeLow: true, periodMs: 50 },
    ],
    outputs: [
      { id: "led", kind: "led", gpio: 27 },
      { id: "pump", kind: "relay", gpio: 22, activeLow: true },
      { id: "fan", kind: "output", gpio: 5 },
    ],
    ...overrides,
  };
}

export function testConfig(
  port: number,
  ioRoot: string,
  stateDir: string,
  overrides: Partial<AgentConfigInput> = {},
): AgentConfig {
  return parseConfig(testConfigInput(port, ioRoot, stateDir, overrides), stateDir, "test");
}

/** A port that refuses connections (bound then released). */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** A clock that moves only when told to: timers fire inside {@link ManualClock.advance}, in time order. */
export class ManualClock implements Clock {
  private wall: number;
  private mono = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(startEpochMs = 1_700_000_000_000) {
    this.wall = startEpochMs;
  }

  now(): number {
    return this.wall;
  }

  monotonic(): number {
    return this.mono;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: this.mono + Math.max(0, ms), fn });
    return id as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as unknown as number);
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    const end = this.mono + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers)
        if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.wall += next[1].at - this.mono;
      this.mono = next[1].at;
      next[1].fn();
    }
    this.wall += end - this.mono;
    this.mono = end;
  }
}
