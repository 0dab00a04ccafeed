/**
 * Isolated processes: a GenServer that runs in its own worker thread, with its own heap and resource limits.
 *
 * On the main thread it is represented by a proxy process with an ordinary pid, so links, monitors, `call`,
 * `cast`, `send` and supervision work on it exactly as on any process. What isolation adds is the one thing an
 * in-thread actor cannot survive: code stuck in a busy loop. Killing the proxy terminates the worker thread
 * wherever its JS is, and the supervisor starts a fresh one. Messages crossing the boundary are structured-cloned
 * (pids are carried across); a worker costs a V8 isolate (see the runtime benchmark for its start time and memory).
 */
import { type ResourceLimits, Worker } from "node:worker_threads";
import {
  CallRequest,
  CastRequest,
  type From,
  type NoReply,
  type Reply,
  type Stop,
  StopRequest,
} from "./gen-server.ts";
import {
  decodeValue,
  encodeValue,
  type FromWorker,
  type IsolatedWorkerData,
  type PidLike,
  type ToWorker,
} from "./isolated-codec.ts";
import { Pid } from "./pid.ts";
import { exitProcess, type Process, spawnHandler } from "./process.ts";
import { type ExitReason, StartError } from "./reasons.ts";
import { names, type Via } from "./registry.ts";

/** What an isolated server's callbacks get as `self`. */
export interface IsolatedSelf {
  /** The proxy's pid on the main thread. */
  readonly pid: PidLike;
  /** Sends a message to a process on the main thread (a pid received in a message or args). */
  send(to: PidLike, message: unknown): void;
}

type MaybePromise<T> = T | Promise<T>;

/** The callbacks of an isolated GenServer: like {@link GenServerSpec}, with {@link IsolatedSelf} as `self`. */
export interface IsolatedSpec<S, A = unknown, Q = unknown, R = unknown, C = unknown> {
  init(args: A, self: IsolatedSelf): MaybePromise<S>;
  handleCall?(
    request: Q,
    from: From<R>,
    state: S,
    self: IsolatedSelf,
  ): MaybePromise<Reply<S, R> | NoReply<S> | Stop<S, R>>;
  handleCast?(message: C, state: S, self: IsolatedSelf): MaybePromise<S | Stop<S>>;
  handleInfo?(message: unknown, state: S, self: IsolatedSelf): MaybePromise<S | Stop<S>>;
  terminate?(reason: ExitReason, state: S, self: IsolatedSelf): MaybePromise<void>;
}

/** Options for {@link startIsolated}. */
export interface IsolatedStartOptions {
  /** The module's export holding the spec (default `default`). */
  exportName?: string;
  link?: Pid;
  label?: string;
  name?: string | Via<unknown>;
  /** V8 heap limits of the worker (Node's ResourceLimits). */
  resourceLimits?: ResourceLimits;
}

const WORKER_URL = new URL("./isolated-boot.mjs", import.meta.url);
const isPid = (v: unknown): v is Pid => v instanceof Pid;

/**
 * Starts the GenServer spec exported by `moduleUrl` in a new worker thread; resolves with the proxy's pid once its
 * `init` has returned there.
 */
export function startIsolated(
  moduleUrl: string | URL,
  args: unknown,
  options: IsolatedStartOptions = {},
): Promise<Pid> {
  const known = new Map<number, Pid>();
  const encode = (v: unknown) =>
    encodeValue(v, (x): x is Pid => {
      if (!isPid(x)) return false;
      known.set(x.id, x);
      return true;
    });
  const decode = (v: unknown) => decodeValue(v, (id) => known.get(id) ?? new Pid(null, id));

  const pendingReplies = new Map<number, From>();
  let nextCallId = 0;
  let worker: Worker;
  const post = (msg: ToWorker) => worker.postMessage(msg);

  const proxy: Process = spawnHandler({
    handle: (msg) => {
      if (msg instanceof CallRequest) {
        if (msg.from.done) return undefined;
        const id = ++nextCallId;
        pendingReplies.set(id, msg.from);
        post({ t: "call", id, request: encode(msg.request) });
      } else if (msg instanceof CastRequest) {
        post({ t: "cast", message: encode(msg.message) });
      } else if (msg instanceof StopRequest) {
        proxy.onExit(() => msg.from.settle(undefined));
        post({ t: "stop", reason: encode(msg.reason) });
      } else {
        post({ t: "info", message: encode(msg) });
      }
      return undefined;
    },
  });
  proxy.label = options.label;
  known.set(proxy.pid.id, proxy.pid);

  const data: IsolatedWorkerData = {
    moduleUrl: String(moduleUrl),
    exportName: options.exportName ?? "default",
    args: encode(args),
    selfId: proxy.pid.id,
  };
  worker = new Worker(WORKER_URL, {
    workerData: data,
    ...(options.resourceLimits === undefined ? {} : { resourceLimits: options.resourceLimits }),
  });
  // An idle worker must not keep the hub alive on its own; the proxy's lifetime decides.
  worker.unref();
  proxy.onExit(() => {
    pendingReplies.clear();
    void worker.terminate();
  });

  if (options.name !== undefined) {
    if (typeof options.name === "string") names.register(options.name, proxy.pid);
    else options.name.via.register(options.name.key, proxy.pid);
  }
  if (options.link !== undefined) {
    proxy.parent = options.link;
    proxy.link(options.link);
  }
  proxy.hold(); // messages wait until init has run in the worker

  return new Promise<Pid>((resolve, reject) => {
    let ready = false;
    worker.on("message", (msg: FromWorker) => {
      switch (msg.t) {
        case "ready":
          ready = true;
          proxy.release();
          resolve(proxy.pid);
          return;
        case "init_error": {
          const reason = decode(msg.error);
          exitProcess(proxy, reason);
          reject(new StartError(`isolated ${options.label ?? data.moduleUrl} failed in init`, reason));
          return;
        }
        case "reply": {
          const from = pendingReplies.get(msg.id);
          pendingReplies.delete(msg.id);
          from?.settle(decode(msg.value));
          return;
        }
        case "send": {
          const to = known.get(msg.to);
          to?.proc?.deliver(decode(msg.message));
          return;
        }
        case "exit":
          exitProcess(proxy, decode(msg.reason));
          return;
      }
    });
    worker.on("error", (err) => {
      exitProcess(proxy, err);
      if (!ready) reject(new StartError(`isolated ${options.label ?? data.moduleUrl} failed to start`, err));
    });
    worker.on("exit", (code) => {
      exitProcess(proxy, code === 0 ? "normal" : { worker_exit: code });
      if (!ready)
        reject(new StartError(`isolated ${options.label ?? data.moduleUrl} exited during init`, code));
    });
  });
}
