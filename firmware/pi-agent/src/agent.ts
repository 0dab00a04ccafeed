/**
 * The agent's MQTT session: the device side of the contract in DESIGN.md §2.
 *
 * Every reading is first appended to the disk buffer and then published from it, QoS 1, in order; a reading leaves
 * the buffer only when the broker has acknowledged it (PUBACK). While the broker is unreachable the buffer just grows
 * (up to its bound), and on reconnection the pump resumes from the oldest unacknowledged reading, with its original
 * `ts` and `seq`. Each connection is a fresh mqtt.js client with its own reconnection turned off: the agent owns the
 * backoff (exponential, with jitter) and never lets a stale client resend behind its back.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { connect, type MqttClient } from "mqtt";
import pino, { type Logger } from "pino";
import { z } from "zod";
import { DiskQueue } from "./buffer.ts";
import { type Clock, every, systemClock, type TimerHandle } from "./clock.ts";
import type { AgentConfig, SensorConfig } from "./config.ts";
import { SysfsGpio } from "./gpio.ts";
import { CommandError, Outputs } from "./outputs.ts";
import { openSensor, type SensorReader } from "./sensors.ts";
import { AgentState, readBootId, SeqCounters } from "./state.ts";
import { SensorReadError } from "./sysfs/reading.ts";

/** One buffered reading, as stored on disk (short keys: the buffer holds many of them). */
export interface BufferedReading {
  s: string;
  v: number | boolean | string;
  ts: number;
  seq: number;
}

export interface AgentOptions {
  config: AgentConfig;
  clock?: Clock;
  logger?: Logger;
  /** Source of jitter for the reconnection backoff, in [0, 1). */
  random?: () => number;
  /** How many QoS 1 readings may await their PUBACK at once. */
  window?: number;
}

/** Events an {@link Agent} emits (for the CLI's logs, the simulator and tests). */
export interface AgentEvents {
  /** Connected, subscribed to `cmd/#` and `online` published. */
  online: [];
  /** The connection was lost or refused; `delayMs` is the wait before the next attempt. */
  offline: [{ reason: string; delayMs: number }];
  /** A reading was taken and buffered. */
  reading: [BufferedReading];
  /** A reading was rejected (CRC error, missing file...): counted, logged, reported (not as a value). */
  rejected: [{ sensor: string; code: string; message: string }];
  /** A command was executed or refused. */
  command: [{ target: string; id: string; op: string; ok: boolean; error?: string }];
}

const commandSchema = z.object({
  id: z.string().min(1),
  op: z.string().min(1),
  args: z.record(z.string(), z.unknown()).optional(),
});

interface Reply {
  id: string;
  ok: boolean;
  error?: string;
}

/** While a sensor keeps failing the same way, one warning per this many rejected readings. */
const REJECTION_LOG_EVERY = 100;

/** Replies are remembered by command id so a QoS 1 redelivery is answered again without acting twice. */
const REMEMBERED_REPLIES = 128;

/** A running agent. `start()` it, `stop()` it; everything else follows from the config. */
export class Agent extends EventEmitter<AgentEvents> {
  readonly config: AgentConfig;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly window: number;
  private readonly gpio: SysfsGpio;
  private readonly outputs: Outputs;
  private readonly topicBase: string;
  private queue: DiskQueue<BufferedReading> | undefined;
  private state: AgentState | undefined;
  private seqs: SeqCounters | undefined;
  private client: MqttClient | undefined;
  /** Bumped whenever a connection ends, so callbacks of a dead client are ignored. */
  private generation = 0;
  private isOnline = false;
  private stopping = false;
  private attempt = 0;
  private inflight = 0;
  private reconnectTimer: TimerHandle | undefined;
  private stoppers: (() => void)[] = [];
  private startedAt = 0;
  /** This run's id, new at every start: the hub tells a new run (a reset) from the same one reconnecting by it. */
  private runId = "";
  private readonly rejectedCounts: Record<string, number> = {};
  private readonly replies = new Map<string, Promise<Reply>>();

  constructor(opts: AgentOptions) {
    super();
    this.config = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.log = (opts.logger ?? pino({ level: "silent" })).child({ device: opts.config.device });
    this.random = opts.random ?? Math.random;
    this.window = opts.window ?? 32;
    this.gpio = new SysfsGpio(this.config.ioRoot, { clock: this.clock });
    this.outputs = new Outputs(this.gpio, this.config.outputs, this.config.gpioBase, this.clock, this.log);
    this.topicBase = `${this.config.prefix}/${this.config.device}`;
  }

  /** True while connected to the broker. */
  get online(): boolean {
    return this.isOnline;
  }

  /** Readings buffered on disk and not yet acknowledged by the broker. */
  get buffered(): number {
    return this.queue?.pending ?? 0;
  }

  /** Readings dropped because the disk buffer was full (since the buffer was created). */
  get dropped(): number {
    return this.queue?.dropped ?? 0;
  }

  /** Why this run started (`power-on`, `agent-restart`, `agent-crash`); sent in every heartbeat. */
  get resetCause(): string | undefined {
    return this.state?.resetCause;
  }

  /** The logical state of every output. */
  outputStates(): Record<string, boolean | "blink"> {
    return this.outputs.snapshot();
  }

  /** Opens the state and buffer, sets up GPIO lines, starts sampling and connects. */
  async start(): Promise<void> {
    const cfg = this.config;
    this.startedAt = this.clock.monotonic();
    this.runId = randomUUID();
    this.state = AgentState.open(cfg.stateDir, readBootId(cfg.ioRoot));
    this.queue = DiskQueue.open<BufferedReading>({ dir: cfg.buffer.dir, maxBytes: cfg.buffer.maxBytes });
    // Seqs: the last mark's counters, raised by the readings still buffered (which may be newer than the mark).
    const seqs = new SeqCounters(this.queue.meta.seqs);
    this.queue.forEachPending((r) => seqs.observe(r.s, r.seq));
    this.queue.setMetaSource(() => ({ seqs: seqs.snapshot() }));
    this.seqs = seqs;
    this.log.info(
      { resetCause: this.state.resetCause, buffered: this.queue.pending, dropped: this.queue.dropped },
      "agent starting",
    );
    await this.outputs.init();
    const io = { ioRoot: cfg.ioRoot, gpio: this.gpio, gpioBase: cfg.gpioBase };
    for (const sensor of cfg.sensors) this.startSampling(sensor, openSensor(sensor, io));
    this.stoppers.push(every(this.clock, cfg.heartbeatMs, () => this.heartbeat()));
    this.connect();
  }

  /**
   * Stops sampling, publishes `offline` (retained) and disconnects cleanly (so the broker does not fire the will),
   * and closes the buffer. Buffered readings stay on disk for the next start.
   */
  async stop(): Promise<void> {
    await this.shutdown(true);
  }

  /**
   * Stops the way a power cut or a crash would: the socket is dropped without DISCONNECT (so the broker fires the
   * last will) and the run is not marked as cleanly stopped (the next start reports `agent-crash`). For the simulator.
   */
  async abort(): Promise<void> {
    await this.shutdown(false);
  }

  private async shutdown(clean: boolean): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const stop of this.stoppers.splice(0)) stop();
    this.outputs.stop();
    if (this.reconnectTimer) this.clock.clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    this.generation++;
    if (client) {
      if (clean && this.isOnline) {
        await new Promise<void>((resolve) => {
          const timer = this.clock.setTimeout(resolve, 2000);
          client.publish(`${this.topicBase}/status`, "offline", { qos: 1, retain: true }, () => {
            this.clock.clearTimeout(timer);
            resolve();
          });
        });
      }
      // A clean end waits for every QoS 1 message in flight to be acknowledged, forever if the broker is gone:
      // bound it, then drop the socket. Nothing is lost: unacknowledged readings stay in the on-disk buffer.
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(() => {
          client.stream?.destroy();
          resolve();
        }, 2000);
        client.end(!(clean && this.isOnline), {}, () => {
          this.clock.clearTimeout(timer);
          resolve();
        });
      });
    }
    this.isOnline = false;
    this.queue?.close();
    if (clean) this.state?.markCleanStop();
    this.log.info({ clean }, "agent stopped");
  }

  private startSampling(sensor: SensorConfig, reader: SensorReader): void {
    let busy = false;
    /** Rejections in a row, and the code of the last one: a dead sensor logs once per streak, not every period. */
    let streak = 0;
    let lastCode = "";
    const log = this.log.child({ sensor: sensor.id });
    const sample = async () => {
      if (busy || this.stopping) return; // a slow bus (1-Wire conversions take ~750 ms): skip, do not pile up
      busy = true;
      const ts = this.clock.now(); // when the reading was asked for (a DS18B20 converts during the read)
      try {
        const reading = await reader();
        if (this.stopping) return;
        if (streak > 0) log.info({ rejectedInARow: streak }, "sensor reads again");
        streak = 0;
        lastCode = "";
        this.record(sensor.id, reading.value, ts);
      } catch (err) {
        if (err instanceof SensorReadError) {
          this.rejectedCounts[sensor.id] = (this.rejectedCounts[sensor.id] ?? 0) + 1;
          streak++;
          if (err.code !== lastCode || streak % REJECTION_LOG_EVERY === 0) {
            log.warn({ code: err.code, err: err.message, rejectedInARow: streak }, "reading rejected");
          }
          lastCode = err.code;
          this.reportRejected(sensor.id, err, ts);
          this.emit("rejected", { sensor: sensor.id, code: err.code, message: err.message });
        } else {
          log.error({ err }, "cannot record reading");
        }
      } finally {
        busy = false;
      }
    };
    void sample();
    this.stoppers.push(every(this.clock, sensor.periodMs, () => void sample()));
  }

  /**
   * Tells the hub a reading failed, so its sensor actor can count failures in a row and restart its driver:
   * `{"error": code, "ts", "message"}` on `telemetry/<sensor>`, QoS 0, with no value and no seq (a seq would look like
   * a lost reading). Only while connected and not buffered: a failure is news now, not history to replay.
   */
  private reportRejected(sensor: string, err: SensorReadError, ts: number): void {
    if (!this.isOnline || !this.client) return;
    const payload = JSON.stringify({ error: err.code, ts, message: err.message });
    this.client.publish(`${this.topicBase}/telemetry/${sensor}`, payload, { qos: 0 }, this.publishFailed);
  }

  /** Buffers one reading with the next seq of its sensor, then lets the pump publish it. */
  private record(sensor: string, value: number | boolean | string, ts: number): void {
    const seqs = this.seqs as SeqCounters;
    const reading: BufferedReading = {
      s: sensor,
      v: value,
      ts,
      seq: seqs.peek(sensor),
    };
    (this.queue as DiskQueue<BufferedReading>).append(reading);
    seqs.observe(sensor, reading.seq);
    this.emit("reading", reading);
    this.pump();
  }

  private pump(): void {
    const client = this.client;
    const queue = this.queue;
    if (!this.isOnline || !client || !queue) return;
    const gen = this.generation;
    while (this.inflight < this.window) {
      const rec = queue.next();
      if (!rec) return;
      this.inflight++;
      const { s, v, ts, seq } = rec.data;
      const payload = JSON.stringify({ value: v, ts, seq });
      client.publish(`${this.topicBase}/telemetry/${s}`, payload, { qos: 1 }, (err) => {
        if (gen !== this.generation) return; // that connection is gone; the reading will be resent
        this.inflight--;
        if (err) {
          // The reading stays in the buffer, but the pump has gone past it: reconnect to rewind and resend it.
          this.log.warn({ sensor: s, seq, err: err.message }, "publish failed; reconnecting to resend");
          client.end(true);
          return;
        }
        queue.ack(rec.index);
        this.pump();
      });
    }
  }

  private heartbeat(): void {
    if (!this.isOnline || !this.client) return;
    const body = {
      ts: this.clock.now(),
      uptimeS: Math.floor((this.clock.monotonic() - this.startedAt) / 1000),
      resetCause: this.state?.resetCause,
      run: this.runId,
      buffered: this.buffered,
      dropped: this.dropped,
      rejected: { ...this.rejectedCounts },
    };
    this.client.publish(`${this.topicBase}/heartbeat`, JSON.stringify(body), { qos: 0 }, this.publishFailed);
  }

  private connect(): void {
    if (this.stopping) return;
    const cfg = this.config;
    const gen = this.generation;
    const client = connect(cfg.broker, {
      protocolVersion: 4,
      clientId: cfg.device,
      username: cfg.device,
      password: cfg.token,
      clean: true,
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: 0,
      // mqtt-packet otherwise pre-allocates 65,536 two-byte Buffers (~8 MB of RSS) to write message ids faster.
      writeCache: false,
      will: { topic: `${this.topicBase}/status`, payload: Buffer.from("offline"), qos: 1, retain: true },
      ...(cfg.ca ? { ca: cfg.ca } : {}),
    });
    this.client = client;
    let refused: string | undefined;
    client.on("connect", () => {
      if (gen !== this.generation) return;
      this.onConnect(client, gen);
    });
    client.on("message", (topic, payload) => {
      if (gen === this.generation) void this.onCommand(client, topic, payload);
    });
    client.on("error", (err) => {
      refused = err.message;
      if (gen === this.generation) this.log.warn({ err: err.message, broker: cfg.broker }, "mqtt error");
    });
    client.on("close", () => {
      if (gen !== this.generation || this.stopping) return;
      this.generation++;
      client.removeAllListeners("message");
      client.end(true);
      const wasOnline = this.isOnline;
      this.isOnline = false;
      this.inflight = 0;
      this.queue?.rewind();
      const delayMs = this.backoff();
      const reason = refused ?? (wasOnline ? "connection lost" : "connection failed");
      this.log.warn(
        { reason, delayMs, buffered: this.buffered },
        wasOnline ? "disconnected" : "cannot connect",
      );
      this.emit("offline", { reason, delayMs });
      this.reconnectTimer = this.clock.setTimeout(() => {
        this.reconnectTimer = undefined;
        this.connect();
      }, delayMs);
    });
  }

  /** Exponential backoff with "equal jitter": half the delay fixed, half random, capped at reconnect.maxMs. */
  private backoff(): number {
    const { minMs, maxMs } = this.config.reconnect;
    const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  private onConnect(client: MqttClient, gen: number): void {
    this.attempt = 0;
    client.subscribe(`${this.topicBase}/cmd/#`, { qos: 1 }, (err) => {
      if (err && gen === this.generation) this.log.error({ err: err.message }, "cannot subscribe to cmd/#");
    });
    client.publish(`${this.topicBase}/status`, "online", { qos: 1, retain: true }, this.publishFailed);
    this.isOnline = true;
    this.log.info({ broker: this.config.broker, buffered: this.buffered }, "connected");
    this.emit("online");
    this.heartbeat();
    this.pump();
  }

  private async onCommand(client: MqttClient, topic: string, payload: Buffer): Promise<void> {
    const prefix = `${this.topicBase}/cmd/`;
    if (!topic.startsWith(prefix)) return;
    const target = topic.slice(prefix.length);
    let body: unknown;
    try {
      body = JSON.parse(payload.toString("utf8"));
    } catch {
      body = undefined;
    }
    const parsed = commandSchema.safeParse(body);
    if (!parsed.success) {
      const id = typeof (body as { id?: unknown })?.id === "string" ? (body as { id: string }).id : "";
      const error = `bad command on cmd/${target}: expected JSON {"id": string, "op": string, "args"?: object}`;
      this.sendReply(client, { id, ok: false, error });
      this.emit("command", { target, id, op: "", ok: false, error });
      return;
    }
    const { id, op, args } = parsed.data;
    const known = this.replies.get(id);
    if (known) {
      this.sendReply(client, await known); // redelivered: answer again, do not act twice
      return;
    }
    const pending = this.execute(target, id, op, args);
    // Remembered before it settles, so a redelivery arriving meanwhile waits for this one instead of acting.
    this.replies.set(id, pending);
    if (this.replies.size > REMEMBERED_REPLIES)
      this.replies.delete(this.replies.keys().next().value as string);
    const reply = await pending;
    this.sendReply(client, reply);
    this.emit("command", { target, id, op, ok: reply.ok, ...(reply.error ? { error: reply.error } : {}) });
  }

  private async execute(
    target: string,
    id: string,
    op: string,
    args?: Record<string, unknown>,
  ): Promise<Reply> {
    try {
      await this.outputs.execute(target, op, args);
      this.log.info({ output: target, op, id }, "command done");
      return { id, ok: true };
    } catch (err) {
      const error = err instanceof CommandError ? err.message : `internal error: ${(err as Error).message}`;
      this.log.warn({ output: target, op, id, error }, "command refused");
      return { id, ok: false, error };
    }
  }

  private sendReply(client: MqttClient, reply: Reply): void {
    // A reply lost to a dropped connection is not lost for good: the hub redelivers the command (QoS 1) and the
    // remembered reply is sent again. A connection ended while the command ran (a partition, a stop) is skipped:
    // mqtt.js throws on a publish after end(), and it surfaced as an unhandled rejection of onCommand.
    if (client.disconnecting || client.disconnected) return;
    client.publish(`${this.topicBase}/reply`, JSON.stringify(reply), { qos: 1 }, this.publishFailed);
  }

  /**
   * The callback of every fire-and-forget publish. Without one, mqtt.js reports a publish on a closing client (a
   * command finishing as the connection drops) as an 'error' event, which after shutdown has no listener and
   * crashes the process; the reconnect logic already handles the connection itself.
   */
  private readonly publishFailed = (err?: Error) => {
    if (err && !this.stopping) this.log.debug({ err: err.message }, "publish not sent (connection closing)");
  };
}
