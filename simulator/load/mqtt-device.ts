/**
 * A protocol-level Raspberry Pi for load runs: the pi-agent's MQTT contract (DESIGN.md §2) and nothing else.
 *
 * - CONNECT as `id`/token, clean session, last will `status` = `offline` (QoS 1, retained);
 * - on CONNACK: SUBSCRIBE `cmd/#`, PUBLISH `status` = `online` (retained), a heartbeat;
 * - telemetry `{value, ts, seq}` on `telemetry/<sensor>`, QoS 1, at most `window` awaiting PUBACK; a reading leaves
 *   the buffer only when acknowledged, so after a lost session the unacknowledged ones are resent with the same seq
 *   (the hub drops duplicates), and seqs have no gap;
 * - commands on `cmd/<target>` answered `{id, ok: true}` on `reply`.
 *
 * Readings are taken by the {@link LoadRun}'s scheduler (`takeReading`), not by a timer per device: 10k devices
 * cost 10k small objects and sockets, and no timers.
 */
import { type Socket, connect as tcpConnect } from "node:net";
import {
  CONNACK,
  CONNACK_REASONS,
  DISCONNECT_PACKET,
  decodePublish,
  encodeConnect,
  encodePuback,
  encodePublish,
  encodeSubscribe,
  PacketReader,
  PINGREQ_PACKET,
  PUBACK,
  PUBLISH,
} from "./mqtt-codec.ts";
import type { LoadStats } from "./stats.ts";

/** One reading held until the broker acknowledges it. */
export interface HeldReading {
  seq: number;
  ts: number;
  value: number;
}

/** What every device of a run shares. */
export interface DeviceShared {
  host: string;
  port: number;
  prefix: string;
  sensor: string;
  keepaliveS: number;
  /** Readings awaiting PUBACK at once. */
  window: number;
  /** Readings kept while offline; older ones are dropped (and counted) beyond this. */
  maxBuffered: number;
  /** Stamp readings with sub-millisecond wall time (the bench measures latency from `ts`). */
  preciseTs: boolean;
  /** Flood mode: publish the next reading as soon as the window allows, instead of on the scheduler's beat. */
  flood: boolean;
  stats: LoadStats;
  /** Called with why a session ended or was refused (for logs). */
  onProblem?: (id: string, what: string) => void;
}

const CONNECT_TIMEOUT_MS = 20_000;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;

const wallNow = (precise: boolean) =>
  precise ? Math.round((performance.timeOrigin + performance.now()) * 100) / 100 : Date.now();

/** A load device. `start()` connects (and reconnects with backoff); `stop()` says offline and disconnects. */
export class LoadDevice {
  readonly base: string;
  private socket: Socket | null = null;
  private reader: PacketReader | null = null;
  private up = false;
  private stopped = true;
  private paused = false;
  private seq = 0;
  /** Readings not yet sent on this session, oldest first (a queue with a head index, compacted now and then). */
  private queue: HeldReading[] = [];
  private head = 0;
  private inflight = new Map<number, HeldReading>();
  private nextId = 1;
  private attempt = 0;
  private retry: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private lastSent = 0;
  private startedAt = 0;
  private partitionedUntil = 0;
  private telemetryTopic: string;

  constructor(
    readonly id: string,
    private readonly token: string | undefined,
    private readonly shared: DeviceShared,
    /** Index in the run, for the value model's phase. */
    private readonly index: number,
  ) {
    this.base = `${shared.prefix}/${id}`;
    this.telemetryTopic = `${this.base}/telemetry/${shared.sensor}`;
  }

  /** True while the session is up. */
  get online(): boolean {
    return this.up;
  }

  /** The seq the next reading gets (= readings taken so far). */
  get nextSeq(): number {
    return this.seq;
  }

  /** Readings taken and not yet acknowledged. */
  get backlog(): number {
    return this.queue.length - this.head + this.inflight.size;
  }

  /** Connects; resolves when the first attempt has an answer (up, refused or failed). */
  start(): Promise<void> {
    this.stopped = false;
    this.startedAt = Date.now();
    return new Promise((resolve) => this.open(resolve));
  }

  /** True while the device holds a socket (connecting or up). */
  get hasSocket(): boolean {
    return this.socket !== null;
  }

  /** Stops taking readings (flood mode included); what is buffered is still sent. */
  pause(): void {
    this.paused = true;
  }

  /** Takes readings again (and, in flood mode, starts publishing). */
  resume(): void {
    this.paused = false;
    this.pump();
  }

  /** Takes one reading now and publishes it when the window allows. */
  takeReading(): void {
    if (this.stopped || this.paused) return;
    const s = this.shared;
    const seq = this.seq++;
    // A room that drifts over the day, each device at its own phase: deterministic for a given seq and index.
    const value =
      Math.round((21 + 4 * Math.sin(seq / 20 + this.index) + ((seq * 7919) % 100) / 100) * 100) / 100;
    this.queue.push({ seq, ts: wallNow(s.preciseTs), value });
    s.stats.readings++;
    if (this.queue.length - this.head + this.inflight.size > s.maxBuffered) {
      this.head++; // the oldest unsent reading goes, as the agent's bounded disk buffer would
      s.stats.dropped++;
    }
    this.pump();
  }

  /** Sends a heartbeat (QoS 0), or a PINGREQ when heartbeats are off and the session was idle. */
  heartbeat(): void {
    if (!this.up || this.socket === null) return;
    const body = JSON.stringify({
      ts: Date.now(),
      uptimeS: Math.floor((Date.now() - this.startedAt) / 1000),
      resetCause: "power-on",
    });
    this.write(encodePublish(`${this.base}/heartbeat`, body, 0, false));
  }

  /** Sends a PINGREQ if nothing was sent for half the keepalive. */
  keepalive(now: number): void {
    if (this.up && now - this.lastSent > (this.shared.keepaliveS * 1000) / 2) this.write(PINGREQ_PACKET);
  }

  /**
   * A network partition: the socket is cut without DISCONNECT (so the broker fires the will), readings keep being
   * taken and buffered, and the device reconnects after `ms` and replays them.
   */
  partition(ms: number): void {
    if (this.stopped) return;
    this.partitionedUntil = Date.now() + ms;
    this.shared.stats.faulted++;
    this.socket?.destroy();
    if (this.socket === null && this.retry === null) this.scheduleRetry();
  }

  /** Says `offline` (retained), disconnects cleanly (no will) and stops reconnecting. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimers();
    if (this.partitionedUntil > 0) {
      this.partitionedUntil = 0;
      this.shared.stats.faulted--;
    }
    const socket = this.socket;
    if (socket === null) return;
    await new Promise<void>((resolve) => {
      const done = setTimeout(() => socket.destroy(), 2000);
      socket.once("close", () => {
        clearTimeout(done);
        resolve();
      });
      if (this.up) {
        socket.write(encodePublish(`${this.base}/status`, "offline", 0, true));
        socket.end(DISCONNECT_PACKET);
      } else socket.destroy();
    });
  }

  private clearTimers(): void {
    if (this.retry !== null) clearTimeout(this.retry);
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.retry = null;
    this.connectTimer = null;
  }

  private write(buf: Buffer): void {
    this.lastSent = Date.now();
    this.socket?.write(buf);
  }

  private open(firstAnswer?: () => void): void {
    const s = this.shared;
    let answered = false;
    const answer = () => {
      if (answered) return;
      answered = true;
      firstAnswer?.();
    };
    const socket = tcpConnect({ host: s.host, port: s.port });
    socket.setNoDelay(true);
    this.socket = socket;
    let reason: string | undefined;
    this.reader = new PacketReader((type, flags, body) => {
      if (type === CONNACK) {
        const code = body[1] ?? 255;
        if (this.connectTimer !== null) clearTimeout(this.connectTimer);
        this.connectTimer = null;
        if (code !== 0) {
          s.stats.refused++;
          reason = `login refused: ${CONNACK_REASONS[code] ?? `code ${code}`}`;
          answer();
          socket.destroy();
          return;
        }
        this.onUp();
        answer();
      } else if (type === PUBACK) {
        this.onPuback(body.readUInt16BE(0));
      } else if (type === PUBLISH) {
        this.onCommand(flags, body);
      }
    });
    socket.on("connect", () => {
      socket.write(
        encodeConnect({
          clientId: this.id,
          username: this.id,
          ...(this.token === undefined ? {} : { password: this.token }),
          keepaliveS: s.keepaliveS,
          clean: true,
          will: { topic: `${this.base}/status`, payload: "offline", qos: 1, retain: true },
        }),
      );
    });
    this.connectTimer = setTimeout(() => {
      reason = `no CONNACK within ${CONNECT_TIMEOUT_MS} ms`;
      socket.destroy();
    }, CONNECT_TIMEOUT_MS);
    socket.on("data", (chunk: Buffer) => {
      try {
        this.reader?.push(chunk);
      } catch (err) {
        reason = (err as Error).message;
        socket.destroy();
      }
    });
    socket.on("error", (err) => {
      reason ??= err.message;
    });
    socket.on("close", () => {
      if (this.socket === socket) this.socket = null;
      if (this.connectTimer !== null) clearTimeout(this.connectTimer);
      this.connectTimer = null;
      const wasUp = this.up;
      this.up = false;
      if (wasUp) s.stats.connected--;
      // Unacknowledged readings go back in front of the queue, in seq order, to be resent on the next session.
      if (this.inflight.size > 0) {
        const back = [...this.inflight.values()].sort((a, b) => a.seq - b.seq);
        this.inflight.clear();
        this.queue = [...back, ...this.queue.slice(this.head)];
        this.head = 0;
        s.stats.resent += back.length;
      }
      if (!this.stopped && this.partitionedUntil === 0) {
        if (wasUp) s.stats.lost++;
        else if (reason === undefined || !reason.startsWith("login refused")) s.stats.failed++;
        s.onProblem?.(this.id, reason ?? (wasUp ? "connection lost" : "connection failed"));
      }
      answer();
      if (!this.stopped) this.scheduleRetry();
    });
  }

  private scheduleRetry(): void {
    const now = Date.now();
    let delay: number;
    if (this.partitionedUntil > now) delay = this.partitionedUntil - now;
    else {
      const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(this.attempt, 10));
      this.attempt++;
      delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    }
    this.retry = setTimeout(() => {
      this.retry = null;
      if (this.partitionedUntil > 0 && Date.now() >= this.partitionedUntil) {
        this.partitionedUntil = 0;
        this.shared.stats.faulted--;
      }
      if (!this.stopped) this.open();
    }, delay);
  }

  private onUp(): void {
    const s = this.shared;
    this.up = true;
    this.attempt = 0;
    s.stats.connected++;
    this.write(encodeSubscribe(this.takeId(), `${this.base}/cmd/#`, 1));
    this.write(encodePublish(`${this.base}/status`, "online", 1, true, this.takeId()));
    this.heartbeat();
    this.pump();
  }

  private takeId(): number {
    let id = this.nextId;
    while (this.inflight.has(id)) id = (id % 65535) + 1;
    this.nextId = (id % 65535) + 1;
    return id;
  }

  private pump(): void {
    if (!this.up || this.socket === null) return;
    const s = this.shared;
    while (this.inflight.size < s.window) {
      const r = this.queue[this.head];
      if (r === undefined) {
        if (!s.flood || this.paused) break;
        this.takeReading();
        return; // takeReading pumps again
      }
      this.head++;
      if (this.head > 64 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      const id = this.takeId();
      this.inflight.set(id, r);
      s.stats.sent++;
      this.write(
        encodePublish(this.telemetryTopic, `{"value":${r.value},"ts":${r.ts},"seq":${r.seq}}`, 1, false, id),
      );
    }
  }

  private onPuback(id: number): void {
    if (this.inflight.delete(id)) {
      this.shared.stats.acked++;
      this.pump();
    }
  }

  private onCommand(flags: number, body: Buffer): void {
    const p = decodePublish(flags, body);
    if (p.qos > 0) this.write(encodePuback(p.messageId));
    if (!p.topic.startsWith(`${this.base}/cmd/`)) return;
    let id = "";
    try {
      const cmd = JSON.parse(p.payload.toString("utf8")) as { id?: unknown };
      if (typeof cmd.id === "string") id = cmd.id;
    } catch {
      // answered below with ok: false
    }
    this.shared.stats.commands++;
    const reply = id ? { id, ok: true } : { id, ok: false, error: "bad command: expected JSON with an id" };
    this.write(encodePublish(`${this.base}/reply`, JSON.stringify(reply), 1, false, this.takeId()));
  }
}
