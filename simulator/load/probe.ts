/**
 * A subscriber that measures latency from the `ts` in each payload it receives (telemetry `{value, ts, seq}` or the
 * hub's `state/` `{value, ts, health}`) to its arrival: publish→delivery through a bare broker, publish→state through
 * the hub. Stamps must come from the same wall clock (same machine), at sub-millisecond precision
 * (`preciseTs` on the load run).
 */
import { type Socket, connect as tcpConnect } from "node:net";
import {
  CONNACK,
  CONNACK_REASONS,
  DISCONNECT_PACKET,
  decodePublish,
  encodeConnect,
  encodePuback,
  encodeSubscribe,
  PacketReader,
  PUBLISH,
  SUBACK,
} from "./mqtt-codec.ts";

/** Latency figures of a measuring window. */
export interface ProbeReport {
  /** Messages received in the window. */
  count: number;
  perS: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const wallNow = () => performance.timeOrigin + performance.now();
const TS = /"ts":(-?[\d.]+)/;

/** The `p`-quantile (0..1) of sorted values. */
export function quantile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

/** A latency-measuring subscriber. */
export class LatencyProbe {
  private socket: Socket | null = null;
  private samples = new Float64Array(1 << 16);
  private n = 0;
  private recording = false;
  private windowStart = 0;
  /** Every non-retained message received, recording or not. */
  received = 0;
  /** When the last of them arrived (`performance.now()`), 0 before the first. */
  lastAt = 0;

  /** `qos`: the subscription's maximum QoS (default 1). */
  constructor(
    private readonly options: {
      broker: string;
      filter: string;
      username?: string;
      password?: string;
      qos?: 0 | 1;
    },
  ) {}

  /** Connects and subscribes; resolves on SUBACK. */
  start(): Promise<void> {
    const url = new URL(this.options.broker);
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host: url.hostname, port: Number(url.port) });
      socket.setNoDelay(true);
      this.socket = socket;
      const reader = new PacketReader((type, flags, body) => {
        if (type === CONNACK) {
          const code = body[1] ?? 255;
          if (code !== 0) {
            reject(new Error(`probe login refused: ${CONNACK_REASONS[code] ?? code}`));
            socket.destroy();
            return;
          }
          socket.write(encodeSubscribe(1, this.options.filter, this.options.qos ?? 1));
        } else if (type === SUBACK) resolve();
        else if (type === PUBLISH) {
          const p = decodePublish(flags, body);
          if (p.qos > 0) socket.write(encodePuback(p.messageId));
          if (p.retain) return; // a retained message from before the subscription
          this.received++;
          this.lastAt = performance.now();
          if (!this.recording) return;
          const m = TS.exec(p.payload.toString("latin1"));
          if (m === null) return;
          if (this.n === this.samples.length) {
            const bigger = new Float64Array(this.samples.length * 2);
            bigger.set(this.samples);
            this.samples = bigger;
          }
          this.samples[this.n++] = wallNow() - Number(m[1]);
        }
      }, 1 << 20);
      socket.on("connect", () =>
        socket.write(
          encodeConnect({
            clientId: `probe-${process.pid}-${Date.now()}`,
            keepaliveS: 60,
            clean: true,
            ...(this.options.username === undefined ? {} : { username: this.options.username }),
            ...(this.options.password === undefined ? {} : { password: this.options.password }),
          }),
        ),
      );
      // The PUBACKs for one chunk's messages leave in one write: the probe is measuring apparatus, and on a 2-core
      // host a syscall per acknowledgement is CPU taken from the broker it measures.
      socket.on("data", (chunk: Buffer) => {
        socket.cork();
        reader.push(chunk);
        socket.uncork();
      });
      socket.on("error", reject);
    });
  }

  /** Starts recording latencies. */
  startWindow(): void {
    this.n = 0;
    this.recording = true;
    this.windowStart = performance.now();
  }

  /** Stops recording and reports the window. */
  stopWindow(): ProbeReport {
    this.recording = false;
    const seconds = (performance.now() - this.windowStart) / 1000;
    const sorted = this.samples.slice(0, this.n).sort();
    return {
      count: this.n,
      perS: this.n / seconds,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      maxMs: this.n ? (sorted[this.n - 1] as number) : Number.NaN,
    };
  }

  /** Disconnects. */
  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    if (socket === null || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.end(DISCONNECT_PACKET);
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }
}
