/**
 * The board actor of an Arduino (Uno, Nano, Mega): Firmata, through firmata-io, over the stream its device's Link
 * owns. It asks the link for a view of the stream, waits for Firmata's handshake, sets the pins of the device's sensors and
 * actuators, forwards readings (stored first, then sent to the sensor actor) at each sensor's `periodMs`, carries
 * out commands, and reads Ganglion's heartbeat sysex (firmware/arduino/PROTOCOL.md): the first one marks the device
 * online, one after a reboot emits `board_reset` and re-applies pins and every actuator's intended state, and none
 * for 3 heartbeat periods marks the device offline and restarts the link (and, rest_for_one, this actor).
 *
 * Pins, readings by sensor kind and ops: devices/boards/firmata-pins.ts.
 *
 * The hub publishes the board's retained `status` (online/offline) on its behalf (DESIGN.md §2).
 */
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { DeviceConfig } from "../../hub/config.ts";
import { type HubContext, linkName, partName } from "../../hub/context.ts";
import {
  call,
  type From,
  getClock,
  noreply,
  type Pid,
  type Process,
  reply,
  replyWith,
  send,
  type TimerHandle,
} from "../../hub/runtime/index.ts";
import type { ReadingValue } from "../../hub/store.ts";
import { actuatorsUp } from "../presence.ts";
import type { BoardCommand, CommandResult } from "../sensors/actuator.ts";
import {
  closeFirmata,
  type FirmataIo,
  FrameScanner,
  HEARTBEAT_EVENT,
  type Heartbeat,
  heartbeatIntervalCommand,
  openFirmata,
  parseHeartbeat,
  RESET_CAUSES,
} from "./firmata.ts";
import {
  commandValue,
  configurePins,
  convert,
  type Input,
  type Output,
  resolvePins,
  restoreCommand,
  samplingMs,
} from "./firmata-pins.ts";

/** Firmata must be ready (version, firmware, capabilities, analog map) this long after the port opened. */
export const HANDSHAKE_MS = 8000;
/**
 * The heartbeat period the hub asks for unless the device sets `heartbeatMs` (fleet.yaml); the board is silent after
 * 3 of them without one.
 */
export const HEARTBEAT_MS = 1000;
/** A command's write must be confirmed by the board (a pin-state answer) within this long. */
const CONFIRM_MS = 5000;
/** firmata-io asks for the version itself if the board did not announce one within this long. */
const REPORT_VERSION_MS = 2000;
/** Counters of one board actor, for tests and the API (`call(board, {t: "stats"})`). */
export interface BoardStats {
  phase: Phase;
  /** Bytes on the wire that belonged to no Firmata frame. */
  garbage: number;
  frames: number;
  heartbeats: number;
  resets: number;
  firmware: string | undefined;
}

type Phase = "connecting" | "handshaking" | "ready";

interface Pending {
  from: From<CommandResult>;
  timer: TimerHandle;
}

interface State {
  self: Pid;
  phase: Phase;
  stream: Duplex | null;
  io: FirmataIo | null;
  scanner: FrameScanner;
  onData: ((chunk: Buffer) => void) | null;
  handshakeTimer: TimerHandle | null;
  pokeTimer: TimerHandle | null;
  silenceTimer: TimerHandle | null;
  silenceMs: number;
  /** The firmware sends Ganglion's heartbeat; other Firmata firmwares are trusted while the port is open. */
  heartbeats: boolean;
  lastBeat: Heartbeat | null;
  beats: number;
  resets: number;
  inputs: Map<string, Input>;
  outputs: Map<string, Output>;
  pending: Map<string, Pending>;
}

type Info =
  | { t: "stream"; stream: Duplex }
  | { t: "no-stream"; message: string }
  | { t: "ready" }
  | { t: "handshake-timeout" }
  | { t: "handshake-poke" }
  | { t: "heartbeat"; data: number[] }
  | { t: "silence-check" }
  | { t: "input"; sensor: string; value: number }
  | { t: "sample"; sensor: string }
  | { t: "blink"; target: string }
  | { t: "confirmed"; id: string }
  | { t: "confirm-timeout"; id: string }
  | { t: "apply"; intended: [string, ReadingValue | null][] }
  | { t: "board-says"; text: string };

type Request = (BoardCommand & { id: string }) | { t: "stats" };

/**
 * The board actor's GenServer callbacks. A class rather than a spec object of closures: its methods are shared by
 * every board (under tsx, esbuild's keepNames gives each per-board named closure its own property dictionary, ~25
 * of them a board). Its logger is made on first use: most boards never log.
 */
export class ArduinoBoardServer {
  private logger: Logger | null = null;
  private readonly sampling: number;
  private readonly heartbeatMs: number;

  constructor(
    private readonly hub: HubContext,
    private readonly config: DeviceConfig,
  ) {
    this.sampling = samplingMs(config);
    this.heartbeatMs = config.heartbeatMs ?? HEARTBEAT_MS;
  }

  private get log(): Logger {
    this.logger ??= this.hub.log.child({ device: this.config.id });
    return this.logger;
  }

  private get path(): string {
    return `hub/fleet/${this.config.id}`;
  }

  private setOnline() {
    const hub = this.hub;
    const config = this.config;
    const device = this.config.id;
    if (!hub.state.setStatus(device, "online")) return;
    actuatorsUp(hub, config); // down while the link was lost (devices/presence.ts); sensors wait for a reading
    const ts = getClock().now();
    hub.store.appendStatus({ device, status: "online", ts });
    hub.emit({ type: "online", path: this.path, ts });
    hub.bus.publish(`${hub.prefix}/${device}/status`, "online", { retain: true, qos: 1 });
  }

  /** Tells the link the wire is dead; it exits, and the device supervisor restarts it and this actor. */

  private failLink(reason: string) {
    const hub = this.hub;
    const device = this.config.id;
    call({ via: hub.names, key: linkName(device) }, { t: "fail", reason }).catch(() => undefined);
  }

  private arm(state: State, which: "handshakeTimer" | "silenceTimer", msg: Info, ms: number) {
    const timer = state[which];
    if (timer !== null) getClock().clearTimeout(timer);
    const self = state.self;
    state[which] = getClock().setTimeout(() => send(self, msg), ms);
  }

  /** Stores a reading, then hands it to the sensor actor (as the broker does for MQTT telemetry). */

  private forward(input: Input) {
    const hub = this.hub;
    const device = this.config.id;
    if (input.latest === null) return;
    const value = convert(input.config, input.latest);
    const ts = getClock().now();
    const seq = ++input.seq;
    const sensor = input.config.id;
    hub.store.persistTelemetry({ device, sensor, ts, value, seq }).then(
      (stored) => {
        if (!stored) return;
        const part = hub.names.whereis(partName(device, sensor));
        if (part !== undefined) send(part, { t: "reading", value, ts, seq });
      },
      (err: Error) =>
        this.log.error(
          { sensor, err: err.message },
          `${device}/${sensor}: reading not stored (${err.message}); check the data directory's disk space`,
        ),
    );
    input.fresh = false;
  }

  /**
   * Routes firmata-io's events for our pins (once per Firmata instance). An analog pin reports at every sampling
   * interval and only its latest value matters, read at the sensor's next `sample`: the listener latches it in the
   * input, as a port driver's buffer would, instead of a mailbox message per report (two a period per sensor,
   * most of a load board's messages). A digital change is news and goes through the mailbox.
   */
  private listen(state: State, io: FirmataIo) {
    const self = state.self;
    for (const input of state.inputs.values()) {
      if (input.channel !== null) {
        io.on(`analog-read-${input.channel}`, (value: number) => {
          input.latest = value;
          input.fresh = true;
        });
        continue;
      }
      const sensor = input.config.id;
      io.on(`digital-read-${input.pin}`, (value: number) =>
        send(self, { t: "input", sensor, value } satisfies Info),
      );
    }
  }

  private stopBlink(out: Output) {
    if (out.blink !== null) getClock().clearTimeout(out.blink);
    out.blink = null;
  }

  /** Drives an output to a state: a level, a servo angle or PWM duty, or `blink:<periodMs>`. */

  private drive(state: State, io: FirmataIo, out: Output, value: ReadingValue) {
    this.stopBlink(out);
    if (typeof value === "string") {
      const period = Number(value.replace(/^blink:/, ""));
      out.blinkHalfMs = Math.max(10, Math.round(period / 2));
      out.level = !out.level;
      io.digitalWrite(out.pin, out.level ? 1 : 0);
      const self = state.self;
      const target = out.config.id;
      out.blink = getClock().setTimeout(() => send(self, { t: "blink", target }), out.blinkHalfMs);
      return;
    }
    const kind = out.config.kind;
    if (kind === "servo") io.servoWrite(out.pin, Number(value));
    else if (kind === "pwm") io.pwmWrite(out.pin, Number(value));
    else {
      out.level = value === true || value === 1;
      io.digitalWrite(out.pin, out.level ? 1 : 0);
    }
  }

  /**
   * Re-applies every actuator's intended state, without blocking this actor (the actuators may be calling it).
   * An actuator that kept its state (a board reset) answers it and the pin is driven directly. One restarted with
   * the link knows only its `initial`; without one, the fleet state still holds what it last confirmed, and that
   * is restored through the actuator as an ordinary command, so the actor's state and the pin agree again.
   */

  private reapplyIntended(state: State) {
    const hub = this.hub;
    const device = this.config.id;
    const self = state.self;
    void Promise.all(
      [...state.outputs.keys()].map(async (target): Promise<[string, ReadingValue | null]> => {
        const part = { via: hub.names, key: partName(device, target) };
        const intended = await call<ReadingValue | null>(part, { t: "intended" }, 2000).catch(() => null);
        if (intended !== null) return [target, intended];
        const last = lastConfirmed(hub, device, target);
        if (last === null) return [target, null];
        const result = await call<CommandResult>(part, restoreCommand(last), 8000).catch(
          (err: Error): CommandResult => ({
            ok: false,
            status: 503,
            code: "actuator_down",
            message: err.message,
          }),
        );
        if (!result.ok) {
          this.log
            .child({ actuator: target })
            .warn(
              { code: result.code },
              `${device}/${target}: could not restore its last state (${result.message}); send the command again`,
            );
        }
        return [target, null];
      }),
    ).then((intended) => send(self, { t: "apply", intended } satisfies Info));
  }

  private onHeartbeat(state: State, beat: Heartbeat) {
    const hub = this.hub;
    const device = this.config.id;
    state.beats++;
    const last = state.lastBeat;
    state.lastBeat = beat;
    state.silenceMs = 3 * (beat.intervalMs || this.heartbeatMs);
    this.arm(state, "silenceTimer", { t: "silence-check" }, state.silenceMs);
    const rebooted = last === null ? beat.seq === 0 : beat.seq === 0 || beat.uptimeMs < last.uptimeMs;
    if (rebooted) {
      state.resets++;
      const cause = RESET_CAUSES[beat.cause] ?? "unknown";
      this.log.warn(
        { cause, uptimeMs: beat.uptimeMs },
        `${device} reset (cause: ${cause}); re-applying its pins`,
      );
      hub.emit({
        type: "board_reset",
        path: this.path,
        ts: getClock().now(),
        reason: `board reset (cause: ${cause})`,
        cause,
        uptimeMs: beat.uptimeMs,
      });
      if (state.phase === "ready" && state.io !== null) {
        configurePins(state.io, state.inputs.values(), state.outputs.values(), this.sampling);
        this.reapplyIntended(state);
      }
    }
    if (beat.intervalMs !== this.heartbeatMs && state.io !== null && state.phase === "ready") {
      state.io.sysexCommand(heartbeatIntervalCommand(this.heartbeatMs));
    }
    if (state.phase === "ready") this.setOnline();
  }

  private offline(reason: string) {
    const device = this.config.id;
    return {
      ok: false as const,
      status: 503 as const,
      code: "device_offline",
      message: `${device} is offline (${reason}); the command was not sent`,
    };
  }

  init(_: undefined, self: Process): State {
    const hub = this.hub;
    const device = this.config.id;
    self.setTrapExit(true); // so a shutdown runs terminate, which detaches Firmata from the stream
    const pid = self.pid;
    call<Duplex>({ via: hub.names, key: linkName(device) }, { t: "stream" }, 15_000).then(
      (stream) => send(pid, { t: "stream", stream } satisfies Info),
      (err: Error) => send(pid, { t: "no-stream", message: err.message } satisfies Info),
    );
    return {
      self: pid,
      phase: "connecting",
      stream: null,
      io: null,
      scanner: new FrameScanner(),
      onData: null,
      handshakeTimer: null,
      pokeTimer: null,
      silenceTimer: null,
      silenceMs: 3 * this.heartbeatMs,
      heartbeats: false,
      lastBeat: null,
      beats: 0,
      resets: 0,
      inputs: new Map(),
      outputs: new Map(),
      pending: new Map(),
    };
  }

  handleCall(req: Request, from: From<unknown>, state: State) {
    const device = this.config.id;
    if (req.t === "stats") {
      return replyWith<State, BoardStats>(
        {
          phase: state.phase,
          garbage: state.scanner.garbage,
          frames: state.scanner.frames,
          heartbeats: state.beats,
          resets: state.resets,
          firmware: state.io?.firmware.name,
        },
        state,
      );
    }
    const io = state.io;
    if (state.phase !== "ready" || io === null) {
      return replyWith<State, CommandResult>(this.offline(`serial link ${state.phase}`), state);
    }
    const out = state.outputs.get(req.target);
    if (out === undefined) {
      return replyWith<State, CommandResult>(
        {
          ok: false,
          status: 404,
          code: "unknown_target",
          message: `${device} drives no actuator "${req.target}" (its pin could not be set up; see the log)`,
        },
        state,
      );
    }
    const value = commandValue(out, req.op, req.args ?? {});
    if (value === undefined) {
      return replyWith<State, CommandResult>(
        {
          ok: false,
          status: 400,
          code: "bad_op",
          message: `${device}/${req.target}: the Arduino board cannot do "${req.op}" on a ${out.config.kind}`,
        },
        state,
      );
    }
    this.drive(state, io, out, value);
    // The pin-state answer comes after the write in the board's serial order: the write is done.
    const self = state.self;
    const id = req.id;
    io.queryPinState(out.pin, () => send(self, { t: "confirmed", id } satisfies Info));
    const timer = getClock().setTimeout(
      () => send(self, { t: "confirm-timeout", id } satisfies Info),
      CONFIRM_MS,
    );
    state.pending.set(id, { from: from as From<CommandResult>, timer });
    return noreply(state);
  }

  handleInfo(msg: unknown, state: State): State {
    const config = this.config;
    const device = this.config.id;
    const m = msg as Info;
    switch (m?.t) {
      case "stream": {
        state.stream = m.stream;
        state.onData = (chunk: Buffer) => state.scanner.scan(chunk);
        m.stream.on("data", state.onData);
        const io = openFirmata(m.stream, { reportVersionTimeoutMs: REPORT_VERSION_MS });
        state.io = io;
        state.phase = "handshaking";
        const self = state.self;
        io.on("ready", () => send(self, { t: "ready" } satisfies Info));
        io.on(HEARTBEAT_EVENT, (data: number[]) => send(self, { t: "heartbeat", data } satisfies Info));
        io.on("string", (text: string) => send(self, { t: "board-says", text } satisfies Info));
        io.on("error", () => undefined); // the link watches the stream and reports its errors
        this.arm(state, "handshakeTimer", { t: "handshake-timeout" }, HANDSHAKE_MS);
        state.pokeTimer = getClock().setTimeout(
          () => send(self, { t: "handshake-poke" }),
          2 * REPORT_VERSION_MS,
        );
        return state;
      }
      case "no-stream": {
        // The link is gone or never opened: it has reported why, and our supervisor is restarting us.
        this.log.debug({ reason: m.message }, `${device}: no serial stream from the link`);
        return state;
      }
      case "ready": {
        const io = state.io;
        if (io === null || state.phase === "ready") return state;
        if (state.handshakeTimer !== null) getClock().clearTimeout(state.handshakeTimer);
        state.handshakeTimer = null;
        state.phase = "ready";
        state.heartbeats = /ganglion/i.test(io.firmware.name ?? "");
        this.log.info(
          { firmware: io.firmware.name, pins: io.pins.length },
          `${device}: Firmata ready (${io.firmware.name ?? "unknown firmware"})`,
        );
        const pins = resolvePins(config, io);
        state.inputs = pins.inputs;
        state.outputs = pins.outputs;
        for (const p of pins.problems) {
          this.log.child(p.actuator ? { actuator: p.part } : { sensor: p.part }).error(p.message);
        }
        this.listen(state, io);
        configurePins(io, state.inputs.values(), state.outputs.values(), this.sampling);
        for (const input of state.inputs.values()) {
          const self = state.self;
          const sensor = input.config.id;
          input.timer = getClock().setTimeout(
            () => send(self, { t: "sample", sensor } satisfies Info),
            input.config.periodMs,
          );
        }
        this.reapplyIntended(state);
        if (state.heartbeats) {
          io.sysexCommand(heartbeatIntervalCommand(this.heartbeatMs)); // also asks for one now
          this.arm(state, "silenceTimer", { t: "silence-check" }, state.silenceMs);
        } else {
          this.log.warn(
            `${device} runs ${io.firmware.name ?? "a firmware"} without Ganglion's heartbeat: resets and hangs go unnoticed; flash the Ganglion firmware (\`ganglion flash\`)`,
          );
          this.setOnline();
        }
        return state;
      }
      case "handshake-poke": {
        // firmata-io asks for the version once; a board that was already running when the port opened
        // announced it long ago, and one lost byte would stall the handshake until its timeout.
        state.pokeTimer = null;
        const io = state.io;
        if (io === null || state.phase !== "handshaking" || io.versionReceived) return state;
        io.reportVersion(() => undefined);
        io.queryFirmware(() => undefined);
        const self = state.self;
        state.pokeTimer = getClock().setTimeout(() => send(self, { t: "handshake-poke" }), REPORT_VERSION_MS);
        return state;
      }
      case "handshake-timeout": {
        state.handshakeTimer = null;
        if (state.phase === "ready") return state;
        const { garbage, frames } = state.scanner;
        const reason = `no Firmata handshake within ${HANDSHAKE_MS} ms (${frames} frames, ${garbage} garbage bytes): is the Ganglion firmware flashed (\`ganglion flash\`) and link.baudRate 57600?`;
        this.log.error({ garbage, frames }, `${device}: ${reason}`);
        this.failLink(reason);
        return state;
      }
      case "heartbeat": {
        const beat = parseHeartbeat(m.data);
        if (beat !== null) this.onHeartbeat(state, beat);
        return state;
      }
      case "silence-check": {
        state.silenceTimer = null;
        const reason = `no heartbeat for ${state.silenceMs} ms: the board hangs, lost power or its cable is loose`;
        this.log.error(`${device}: ${reason}`);
        this.failLink(reason);
        return state;
      }
      case "input": {
        const input = state.inputs.get(m.sensor);
        if (input === undefined) return state;
        const changed = input.latest !== m.value;
        input.latest = m.value;
        input.fresh = true;
        if (changed) this.forward(input); // a button press is news now
        return state;
      }
      case "sample": {
        const input = state.inputs.get(m.sensor);
        if (input === undefined) return state;
        // Analog pins report continuously, so a stale value means the board stopped reporting; a digital
        // pin reports only changes, so its last level stands while the board is alive.
        if (input.fresh || (input.channel === null && state.lastBeat !== null)) this.forward(input);
        const self = state.self;
        input.timer = getClock().setTimeout(
          () => send(self, { t: "sample", sensor: m.sensor } satisfies Info),
          input.config.periodMs,
        );
        return state;
      }
      case "blink": {
        const out = state.outputs.get(m.target);
        if (out === undefined || out.blink === null || state.io === null) return state;
        out.level = !out.level;
        state.io.digitalWrite(out.pin, out.level ? 1 : 0);
        const self = state.self;
        out.blink = getClock().setTimeout(
          () => send(self, { t: "blink", target: m.target } satisfies Info),
          out.blinkHalfMs,
        );
        return state;
      }
      case "confirmed":
      case "confirm-timeout": {
        const p = state.pending.get(m.id);
        if (p === undefined) return state;
        state.pending.delete(m.id);
        getClock().clearTimeout(p.timer);
        reply(
          p.from,
          m.t === "confirmed"
            ? { ok: true, id: m.id }
            : {
                ok: false,
                status: 504,
                code: "no_confirmation",
                message: `${device} did not confirm command ${m.id} within ${CONFIRM_MS} ms`,
              },
        );
        return state;
      }
      case "apply": {
        const io = state.io;
        if (io === null || state.phase !== "ready") return state;
        for (const [target, value] of m.intended) {
          const out = state.outputs.get(target);
          if (out !== undefined && value !== null) this.drive(state, io, out, value);
        }
        return state;
      }
      case "board-says": {
        this.log.warn({ said: m.text }, `${device} says: ${m.text}; check the pins in fleet.yaml`);
        return state;
      }
      default:
        return state; // Exit messages of linked processes (we trap exits only to run terminate)
    }
  }

  terminate(_reason: unknown, state: State) {
    const c = getClock();
    for (const t of [state.handshakeTimer, state.pokeTimer, state.silenceTimer]) {
      if (t !== null) c.clearTimeout(t);
    }
    for (const input of state.inputs.values()) if (input.timer !== null) c.clearTimeout(input.timer);
    for (const out of state.outputs.values()) this.stopBlink(out);
    for (const p of state.pending.values()) {
      c.clearTimeout(p.timer);
      reply(p.from, this.offline("the board actor stopped"));
    }
    if (state.io !== null) closeFirmata(state.io);
    if (state.stream !== null && state.onData !== null) state.stream.off("data", state.onData);
    state.stream?.destroy(); // our view of the port; the port itself is the link's
  }
}

/** The last state an actuator confirmed, as the fleet state recorded it. */
function lastConfirmed(hub: HubContext, device: string, target: string): ReadingValue | null {
  return hub.state.view(device)?.sensors.find((s) => s.id === target)?.value ?? null;
}
