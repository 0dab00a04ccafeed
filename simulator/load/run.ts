/**
 * A load run: N {@link LoadDevice}s against one broker, each taking readings at `rate` per second.
 *
 * One scheduler beat (every 10 ms) walks the fleet round-robin: device i of N reports at phase i/N of its period,
 * so the load is spread evenly over time (no thundering herd each second) and costs no timer per device.
 * Connections are opened `connectConcurrency` at a time so the broker's listen backlog is never overrun.
 */
import { LoadDevice } from "./mqtt-device.ts";
import { type LoadStats, newStats } from "./stats.ts";

/** A device of the run: its id and clear token (none for a broker that lets anyone in). */
export interface LoadCredential {
  id: string;
  token?: string;
}

/** Options of {@link LoadRun}. */
export interface LoadRunOptions {
  /** `mqtt://host:port`. */
  broker: string;
  devices: readonly LoadCredential[];
  /** Readings per second per device, or `"max"`: each device publishes again as soon as its window allows. */
  rate: number | "max";
  /** Heartbeat period; 0 turns heartbeats off (PINGREQs keep the session). Default 5000, the hub's default. */
  heartbeatMs?: number;
  /** Topic prefix; default `ganglion`. */
  prefix?: string;
  /** The sensor id readings are published for; default `temp`. */
  sensor?: string;
  /** QoS 1 readings awaiting PUBACK per device; default 32 (the agent's), 1 in flood mode. */
  window?: number;
  /** Readings a device buffers while offline; default 10 000. */
  maxBuffered?: number;
  /** Sub-millisecond `ts` (for latency measured from it). */
  preciseTs?: boolean;
  /** Connections opened at once; default 200. */
  connectConcurrency?: number;
  keepaliveS?: number;
  /**
   * Take no readings until every device's first connection attempt is answered (a benchmark's steady state);
   * by default readings start at once, like boards powering on, and a device not yet connected buffers them.
   */
  holdUntilConnected?: boolean;
  /** Called with a device id and what went wrong (refused login, lost session). */
  onProblem?: (id: string, what: string) => void;
}

const BEAT_MS = 10;

/** A running load. */
export class LoadRun {
  readonly stats: LoadStats;
  readonly devices: LoadDevice[];
  private readonly periodMs: number;
  private readonly heartbeatMs: number;
  private readonly concurrency: number;
  private readonly flood: boolean;
  private readonly hold: boolean;
  private beat: NodeJS.Timeout | null = null;
  private stopping = false;
  private t0 = 0;
  private readingsDue = 0;
  private heartbeatsDue = 0;
  private lastKeepalive = 0;

  constructor(options: LoadRunOptions) {
    const url = new URL(options.broker);
    if (url.protocol !== "mqtt:") throw new Error(`load devices speak plain mqtt:// (got ${options.broker})`);
    this.flood = options.rate === "max";
    this.hold = options.holdUntilConnected ?? false;
    if (!this.flood && !((options.rate as number) > 0)) throw new RangeError("rate must be > 0 readings/s");
    this.periodMs = this.flood ? 0 : 1000 / (options.rate as number);
    this.heartbeatMs = options.heartbeatMs ?? 5000;
    this.concurrency = options.connectConcurrency ?? 200;
    this.stats = newStats(options.devices.length);
    const shared = {
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: Number(url.port || 1883),
      prefix: options.prefix ?? "ganglion",
      sensor: options.sensor ?? "temp",
      keepaliveS: options.keepaliveS ?? 60,
      window: options.window ?? (this.flood ? 1 : 32),
      maxBuffered: options.maxBuffered ?? 10_000,
      preciseTs: options.preciseTs ?? false,
      flood: this.flood,
      stats: this.stats,
      ...(options.onProblem ? { onProblem: options.onProblem } : {}),
    };
    this.devices = options.devices.map((d, i) => new LoadDevice(d.id, d.token, shared, i));
  }

  /**
   * Starts the readings and connects every device; resolves when each first attempt has an answer (up, refused
   * or failed; failures keep retrying in the background). `onProgress` is called as connections are answered.
   */
  async start(onProgress?: (stats: LoadStats, answered: number) => void): Promise<void> {
    const go = () => {
      this.t0 = Date.now();
      this.lastKeepalive = this.t0;
      this.beat = setInterval(() => this.onBeat(), BEAT_MS);
    };
    // Readings start now, like boards powering on: a device not yet connected buffers them until it is.
    if (this.hold) for (const d of this.devices) d.pause();
    else go();
    let next = 0;
    let answered = 0;
    const worker = async () => {
      while (!this.stopping) {
        const device = this.devices[next++];
        if (device === undefined) return;
        await device.start();
        answered++;
        onProgress?.(this.stats, answered);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, this.devices.length) }, worker));
    if (this.hold && !this.stopping) {
      go();
      for (const d of this.devices) d.resume();
    }
  }

  /** Resolves once `count` devices (default all) are connected, or rejects after `timeoutMs`. */
  async waitConnected(count = this.devices.length, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.stats.connected < count) {
      if (Date.now() > deadline)
        throw new Error(`only ${this.stats.connected}/${count} devices connected after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Cuts `fraction` of the online devices off the broker for `ms` (they buffer, then replay). Returns how many. */
  partition(fraction: number, ms: number, random: () => number = Math.random): number {
    const online = this.devices.filter((d) => d.online);
    const count = Math.min(online.length, Math.round(this.devices.length * fraction));
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(random() * (online.length - i));
      const pick = online[j] as LoadDevice;
      online[j] = online[i] as LoadDevice;
      pick.partition(ms);
    }
    return count;
  }

  private onBeat(): void {
    const now = Date.now();
    const n = this.devices.length;
    const elapsed = now - this.t0;
    if (!this.flood) {
      const due = Math.floor((elapsed * n) / this.periodMs);
      for (; this.readingsDue < due; this.readingsDue++) this.devices[this.readingsDue % n]?.takeReading();
    }
    if (this.heartbeatMs > 0) {
      const due = Math.floor((elapsed * n) / this.heartbeatMs);
      for (; this.heartbeatsDue < due; this.heartbeatsDue++)
        this.devices[this.heartbeatsDue % n]?.heartbeat();
    }
    if (now - this.lastKeepalive >= 1000) {
      this.lastKeepalive = now;
      for (const d of this.devices) d.keepalive(now);
    }
  }

  /**
   * Stops taking readings and waits until every reading taken is acknowledged (or dropped), so a run can end with
   * nothing in flight. Rejects after `timeoutMs` with how many are still waiting.
   */
  async drain(timeoutMs = 30_000): Promise<void> {
    this.pause();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waiting = this.stats.readings - this.stats.acked - this.stats.dropped;
      if (waiting <= 0) return;
      if (Date.now() > deadline)
        throw new Error(`${waiting} readings still unacknowledged after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops taking readings and heartbeats; sessions stay up. */
  pause(): void {
    if (this.beat !== null) clearInterval(this.beat);
    this.beat = null;
    for (const d of this.devices) d.pause();
  }

  /** Stops the readings, then each device says offline and disconnects. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.pause();
    const all = this.devices;
    for (let i = 0; i < all.length; i += 1000) await Promise.all(all.slice(i, i + 1000).map((d) => d.stop()));
  }
}
