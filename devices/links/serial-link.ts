/**
 * The link of a serial device (an Arduino): the process that owns the open serial stream. It opens the port through
 * the hub's injected {@link SerialOpener} right after it starts (so a missing board never fails the device's start),
 * hands the Board actor a view of the stream on request (`call(link, {t: "stream"})`), and exits with a reason that
 * says what to do when the port is missing, closes or errors — or when the Board reports a dead wire (`{t: "fail"}`:
 * failed handshake, silent board). The device supervisor restarts the link with backoff, and with it
 * (rest_for_one) the board and the part actors. While it is lost, the device is `offline` with the reason; failing
 * again before it came back (an unplugged board) makes it `down`.
 */
import { Duplex } from "node:stream";
import type { SerialPortStream } from "@serialport/stream";
import type { DeviceConfig, SerialLinkConfig } from "../../hub/config.ts";
import { type HubContext, linkName, type SerialOpener } from "../../hub/context.ts";
import {
  type BackoffOptions,
  type ChildSpec,
  type From,
  getClock,
  noreply,
  type Pid,
  type Process,
  reply,
  replyWith,
  send,
  startServer,
  stop,
  type TimerHandle,
} from "../../hub/runtime/index.ts";

/** A serialport binding (the native one, or `MockBinding`). */
export type SerialBinding = ConstructorParameters<typeof SerialPortStream>[0]["binding"];

/** Why a serial port could not be opened or was lost; `disconnected` is true when it was open before. */
export class SerialLinkError extends Error {
  override readonly name = "SerialLinkError";
  constructor(
    message: string,
    readonly disconnected: boolean,
  ) {
    super(message);
  }
}

/** What a board (or a test) may ask the link. */
export type LinkRequest =
  /** The open stream; answered once the port is open. */
  | { t: "stream" }
  /** The board found the wire dead (failed handshake, silent board): the link exits with `reason`. */
  | { t: "fail"; reason: string };

/**
 * Restart pacing of a serial link under its device supervisor: a lost port is retried after about a second, an
 * unplugged board ever more slowly, up to 30 s, without using the device's restart budget.
 */
export const SERIAL_LINK_BACKOFF: BackoffOptions = {
  minMs: 500,
  maxMs: 30_000,
  jitter: 0.2,
  resetAfterMs: 30_000,
  downAfter: 1,
};

/** A port that neither opens nor fails within this long is treated as missing. */
const OPEN_TIMEOUT_MS = 10_000;

interface State {
  self: Pid;
  stream: Duplex | null;
  share: PortShare | null;
  waiting: From<Duplex | true>[];
  openTimer: TimerHandle | null;
}

type Info =
  | { t: "opened"; stream: Duplex }
  | { t: "open-failed"; message: string }
  | { t: "open-timeout" }
  | { t: "lost"; stream: Duplex; message: string };

/** Where the port is, for messages: its path or its USB id. */
export function describePort(link: SerialLinkConfig): string {
  return link.path ?? `with USB id ${link.vendorId}:${link.productId}`;
}

/** The child spec of a serial device's link (backoff restarts: see {@link SERIAL_LINK_BACKOFF}). */
export function serialLinkChild(hub: HubContext, config: DeviceConfig): ChildSpec {
  const device = config.id;
  if (config.link.type !== "serial") throw new TypeError(`${device}: serialLinkChild needs a serial link`);
  const link = config.link;
  const port = describePort(link);
  const log = hub.log.child({ device, port });
  const path = `hub/fleet/${device}`;

  const parts = [...config.sensors, ...config.actuators].map((p) => p.id);
  /**
   * The link is lost: the device, and its parts (whose actors stop with the link), are `offline` with `reason`
   * when it was online until now, and `down` when it fails again before coming back (an unplugged or dead board).
   */
  const lose = (reason: string) => {
    const status = hub.state.status(device) === "online" ? "offline" : "down";
    for (const part of parts) hub.state.setHealth(device, part, status === "down" ? "down" : "restarting");
    if (!hub.state.setStatus(device, status, reason)) return;
    const ts = getClock().now();
    hub.store.appendStatus({ device, status, ts, reason });
    if (status === "offline") hub.emit({ type: "offline", path, ts, reason });
    hub.bus.publish(`${hub.prefix}/${device}/status`, "offline", { retain: true, qos: 1 });
  };

  return {
    id: "link",
    backoff: SERIAL_LINK_BACKOFF,
    start: (ctx) =>
      startServer(
        {
          init: (_: undefined, self: Process): State => {
            self.setTrapExit(true); // so a shutdown runs terminate, which closes the port
            const pid = self.pid;
            const clock = getClock();
            const state: State = { self: pid, stream: null, share: null, waiting: [], openTimer: null };
            state.openTimer = clock.setTimeout(() => send(pid, { t: "open-timeout" }), OPEN_TIMEOUT_MS);
            // Through a promise even if the opener throws synchronously: a bad opener must not fail the start.
            Promise.resolve()
              .then(() => hub.serialOpener(link, device))
              .then(
                (stream) => {
                  // Opened after this link gave up on it (timeout, shutdown): nobody else will close it.
                  if (pid.proc === null) void closePort(stream);
                  else send(pid, { t: "opened", stream } satisfies Info);
                },
                (err: unknown) =>
                  send(pid, {
                    t: "open-failed",
                    message: err instanceof Error ? err.message : String(err),
                  } satisfies Info),
              );
            return state;
          },
          handleCall: (req: LinkRequest, from: From<Duplex | true>, state: State) => {
            if (req.t === "fail") {
              log.debug(
                { reason: req.reason },
                `${device}: the board reports a dead serial link; restarting it`,
              );
              lose(req.reason);
              return stop<State, Duplex | true>(new SerialLinkError(req.reason, true), state, true);
            }
            if (state.share !== null) return replyWith(state.share.view(), state);
            state.waiting.push(from);
            return noreply(state);
          },
          handleInfo: (msg: unknown, state: State) => {
            const m = msg as Info;
            switch (m?.t) {
              case "opened": {
                if (state.openTimer !== null) getClock().clearTimeout(state.openTimer);
                state.openTimer = null;
                if (state.stream !== null || m.stream.destroyed) {
                  void closePort(m.stream);
                  return state;
                }
                state.stream = m.stream;
                state.share = new PortShare(m.stream);
                watch(m.stream, state.self);
                log.info(`${device}: serial port ${port} open`);
                for (const from of state.waiting) reply(from, state.share.view());
                state.waiting = [];
                return state;
              }
              case "open-failed": {
                // The default opener's messages name the port and the fix; an injected one's may not.
                const reason = m.message.includes(port) ? m.message : `serial port ${port}: ${m.message}`;
                log.error({ reason }, `${device}: ${reason}`);
                lose(reason);
                return stop(new SerialLinkError(reason, false), state);
              }
              case "open-timeout": {
                state.openTimer = null;
                if (state.stream !== null) return state;
                const reason = `serial port ${port} did not open within ${OPEN_TIMEOUT_MS} ms: check the board's USB cable and that no other program holds the port`;
                log.error(`${device}: ${reason}`);
                lose(reason);
                return stop(new SerialLinkError(reason, false), state);
              }
              case "lost": {
                if (m.stream !== state.stream) return state;
                const reason = `serial port ${port} ${m.message}: check the USB cable; the hub reconnects by itself`;
                log.error(`${device}: ${reason}`);
                lose(reason);
                return stop(new SerialLinkError(reason, true), state);
              }
              default:
                return state; // Exit messages of linked processes (we trap exits only to run terminate)
            }
          },
          terminate: async (_reason: unknown, state: State) => {
            if (state.openTimer !== null) getClock().clearTimeout(state.openTimer);
            state.share?.close();
            const stream = state.stream;
            state.stream = null;
            if (stream !== null) await closePort(stream);
          },
        },
        undefined,
        { link: ctx.parent, label: ctx.path, name: { via: hub.names, key: linkName(device) } },
      ),
  };
}

/**
 * One board's handle on the port: what it writes goes to the port; what the port receives reaches it while it is
 * the current view. Destroying it never touches the port.
 */
class PortView extends Duplex {
  constructor(private readonly port: Duplex) {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.port.destroyed) callback(new Error("serial port closed"));
    else this.port.write(chunk, callback);
  }
}

/**
 * Hands the port to one board actor at a time. Each (re)started board gets a fresh view and the previous one is cut
 * off, so the Firmata instance of a board that was killed (its terminate never ran) hears nothing more. Until the
 * first view is taken the port is not read, so the board's start-up messages wait for it.
 */
class PortShare {
  private current: PortView | null = null;
  private reading = false;
  constructor(private readonly port: Duplex) {}

  view(): Duplex {
    this.current?.destroy();
    const view = new PortView(this.port);
    this.current = view;
    if (!this.reading) {
      this.reading = true;
      this.port.on("data", (chunk: Buffer) => {
        if (this.current !== null && !this.current.destroyed) this.current.push(chunk);
      });
    }
    return view;
  }

  close(): void {
    this.current?.destroy();
    this.current = null;
  }
}

/** Turns the stream's end, close and errors into one `lost` message to the link. */
function watch(stream: Duplex, link: Pid): void {
  let told = false;
  const lost = (message: string) => {
    if (told) return;
    told = true;
    send(link, { t: "lost", stream, message } satisfies Info);
  };
  stream.once("close", () => lost("closed"));
  stream.once("end", () => lost("ended"));
  stream.on("error", (err: Error) => lost(`failed: ${err.message}`));
}

/**
 * Closes a port and releases it (serialport's `destroy()` alone leaves the device open, and a reopen then finds it
 * busy). Bounded: a port that does not confirm the close within a second is destroyed anyway.
 */
async function closePort(stream: Duplex): Promise<void> {
  stream.removeAllListeners("close");
  stream.on("error", () => undefined); // a close racing an unplug must not become an uncaught error
  const port = stream as Duplex & { isOpen?: boolean; close?: (cb: (err?: Error | null) => void) => void };
  if (port.isOpen === true && typeof port.close === "function") {
    const close = port.close.bind(port);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  if (!stream.destroyed) stream.destroy();
}

/**
 * The hub's default {@link SerialOpener}: serialport@13 over `binding` (the platform's native binding unless one is
 * given, e.g. `MockBinding` in tests). Finds the port by USB id when the link has no path; errors name the port and
 * the fix.
 */
export function serialportOpener(binding?: SerialBinding): SerialOpener {
  return async (link, device) => {
    const { SerialPortStream } = await import("@serialport/stream");
    const bindings = binding ?? ((await import("serialport")).SerialPort.binding as unknown as SerialBinding);
    let path = link.path;
    if (path === undefined) {
      const ports = await bindings.list();
      const found = ports.find(
        (p: { vendorId?: string | undefined; productId?: string | undefined }) =>
          p.vendorId?.toLowerCase() === link.vendorId && p.productId?.toLowerCase() === link.productId,
      );
      if (found === undefined) {
        throw new SerialLinkError(
          `no serial port with USB id ${link.vendorId}:${link.productId} found (${ports.length} ports listed): plug ${device} in or fix link.vendorId/productId in fleet.yaml (\`ganglion boards\` lists the ports)`,
          false,
        );
      }
      path = found.path;
    }
    const port = new SerialPortStream({ binding: bindings, path, baudRate: link.baudRate, autoOpen: false });
    await new Promise<void>((resolve, reject) => {
      port.open((err) => {
        if (err == null) resolve();
        else reject(openError(err, path as string, device));
      });
    });
    return port as unknown as Duplex;
  };
}

function openError(err: Error, path: string, device: string): SerialLinkError {
  const text = err.message;
  if (/ENOENT|No such file|not found|does not exist/i.test(text)) {
    return new SerialLinkError(
      `serial port ${path} not found: plug ${device} in or fix link.path in fleet.yaml`,
      false,
    );
  }
  if (/EACCES|permission/i.test(text)) {
    return new SerialLinkError(
      `no permission to open serial port ${path}: add the hub's user to the dialout group`,
      false,
    );
  }
  if (/EBUSY|lock|in use/i.test(text)) {
    return new SerialLinkError(
      `serial port ${path} is busy: another program (a serial monitor, avrdude) holds it`,
      false,
    );
  }
  return new SerialLinkError(`cannot open serial port ${path}: ${text}`, false);
}
