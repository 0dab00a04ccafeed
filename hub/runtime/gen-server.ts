/**
 * GenServer (gen_server): a process that owns a state and handles calls, casts and other messages one at a time
 * through callbacks. The runtime owns the loop, the mailbox, timeouts and crashes; callbacks are state transitions.
 *
 * Differences from OTP, by design:
 * - `call` works from anywhere (a process or plain code such as an HTTP handler): the caller does not need to be
 *   a process. It rejects with {@link CallTimeoutError}, {@link NoProcError} or {@link ServerExitError}; a late
 *   reply after a timeout is dropped rather than left in a mailbox.
 * - Callbacks may be async; the next message waits until the returned promise settles.
 * - A synchronous `init` runs before `start` returns, in the caller's turn; its errors still only end the server.
 */

import { getClock } from "./clock.ts";
import { unwatchDeadline, watchDeadline } from "./deadlines.ts";
import type { Pid } from "./pid.ts";
import { Exit, exitProcess, type Process, spawnHandler } from "./process.ts";
import { CallTimeoutError, type ExitReason, NoProcError, ServerExitError, StartError } from "./reasons.ts";
import { describeRef, names, type ServerRef, type Via, whereis } from "./registry.ts";

/** Default call timeout, as in OTP. */
export const DEFAULT_CALL_TIMEOUT_MS = 5000;

/** A pending call: the handle `handleCall` gets as `from`, for replying now or later with {@link reply}. */
export class From<R = unknown> {
  /** @internal */ done = false;
  constructor(
    private readonly resolve: (value: R) => void,
    private readonly reject: (err: Error) => void,
    /** @internal */ readonly server: Process,
    readonly deadline: number,
    private readonly timeoutMs: number,
  ) {}

  /** @internal */
  settle(value: R): void {
    if (this.done) return;
    this.done = true;
    unwatchDeadline(this);
    pendingCallsOf(this.server)?.delete(this as From);
    this.resolve(value);
  }

  /** @internal */
  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    unwatchDeadline(this);
    pendingCallsOf(this.server)?.delete(this as From);
    this.reject(err);
  }

  /** @internal called by the deadline tracker. */
  expire(): void {
    this.fail(new CallTimeoutError(this.server.toString(), this.timeoutMs));
  }
}

/** A reply to a call, and the new state. */
export class Reply<S, R = unknown> {
  constructor(
    readonly value: R,
    readonly state: S,
  ) {}
}
/** No reply now (reply later with {@link reply}), and the new state. */
export class NoReply<S> {
  constructor(readonly state: S) {}
}
/** Stop the server with `reason` (after replying `replyValue` to a call, if given). */
export class Stop<S, R = unknown> {
  constructor(
    readonly reason: ExitReason,
    readonly state: S,
    readonly replyValue?: R,
    readonly hasReply = false,
  ) {}
}

/** `{reply, Value, State}` */
export function replyWith<S, R>(value: R, state: S): Reply<S, R> {
  return new Reply(value, state);
}
/** `{noreply, State}` in handleCall. */
export function noreply<S>(state: S): NoReply<S> {
  return new NoReply(state);
}
/** `{stop, Reason, State}` or, with a reply, `{stop, Reason, Reply, State}`. */
export function stop<S, R = unknown>(reason: ExitReason, state: S, ...replyValue: [R] | []): Stop<S, R> {
  return replyValue.length === 1
    ? new Stop<S, R>(reason, state, replyValue[0], true)
    : new Stop<S, R>(reason, state);
}

/** Replies to a call received earlier (gen_server:reply). Replying twice, or after a timeout, does nothing. */
export function reply<R>(from: From<R>, value: R): void {
  from.settle(value);
}

type MaybePromise<T> = T | Promise<T>;

/** The callbacks of a GenServer. `S` state, `A` start argument, `Q` call requests, `R` replies, `C` casts. */
export interface GenServerSpec<S, A = undefined, Q = never, R = unknown, C = never> {
  /** Builds the initial state. Throwing (or rejecting) fails the start. */
  init(args: A, self: Process): MaybePromise<S>;
  handleCall?(
    request: Q,
    from: From<R>,
    state: S,
    self: Process,
  ): MaybePromise<Reply<S, R> | NoReply<S> | Stop<S, R>>;
  /** Returns the new state, or a {@link Stop}. */
  handleCast?(message: C, state: S, self: Process): MaybePromise<S | Stop<S>>;
  /** Any other message: `Exit` (when trapping exits), `Down`, timers, plain sends. Returns the new state or a Stop. */
  handleInfo?(message: unknown, state: S, self: Process): MaybePromise<S | Stop<S>>;
  /** Runs when the server stops (not when it is killed). */
  terminate?(reason: ExitReason, state: S, self: Process): MaybePromise<void>;
}

/** Options for {@link start}. */
export interface StartOptions {
  /** Register under a name (a string in the node-wide registry, or a via-name). */
  name?: string | Via<unknown>;
  /** Link to this process before init runs (start_link). */
  link?: Pid;
  /** A label for logs and introspection. */
  label?: string;
}

/** @internal */
export class CallRequest {
  constructor(
    readonly request: unknown,
    readonly from: From,
  ) {}
}
/** @internal */
export class CastRequest {
  constructor(readonly message: unknown) {}
}
/** @internal */
export class StopRequest {
  constructor(
    readonly reason: ExitReason,
    readonly from: From,
  ) {}
}

const pendingCalls = new WeakMap<Process, Set<From>>();
function pendingCallsOf(proc: Process): Set<From> | undefined {
  return pendingCalls.get(proc);
}
function trackCall(proc: Process, from: From): void {
  let set = pendingCalls.get(proc);
  if (set === undefined) {
    set = new Set();
    pendingCalls.set(proc, set);
    // Calls still pending when the server exits fail with its exit reason.
    proc.onExit((reason) => {
      for (const f of [...(set as Set<From>)]) f.fail(new ServerExitError(proc.toString(), reason));
    });
  }
  set.add(from);
}

function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return value instanceof Promise;
}

/**
 * The loop of one server: dispatches each message to the spec's callbacks and applies what they return. A class
 * rather than closures, so a server costs one small object.
 */
class ServerLoop<S, A, Q, R, C> {
  state!: S;
  stopping = false;
  readonly self: Process;

  constructor(readonly spec: GenServerSpec<S, A, Q, R, C>) {
    this.self = spawnHandler(this);
  }

  handle(msg: unknown): undefined | Promise<unknown> {
    if (this.stopping) return undefined;
    let result: MaybePromise<void>;
    try {
      result = this.dispatch(msg);
    } catch (err) {
      result = this.finish(err);
    }
    if (isPromise(result)) return result.catch((err: unknown) => this.finish(err)) as Promise<unknown>;
    return undefined;
  }

  private dispatch(msg: unknown): MaybePromise<void> {
    const { spec, self } = this;
    if (msg instanceof CallRequest) {
      const from = msg.from as From<R>;
      if (from.done) return; // timed out while queued
      if (spec.handleCall === undefined) return this.finish(new Error(`${self} has no handleCall`));
      const result = spec.handleCall(msg.request as Q, from, this.state, self);
      return isPromise(result) ? result.then((r) => this.afterCall(r, from)) : this.afterCall(result, from);
    }
    if (msg instanceof CastRequest) {
      if (spec.handleCast === undefined) return this.finish(new Error(`${self} has no handleCast`));
      const result = spec.handleCast(msg.message as C, this.state, self);
      return isPromise(result) ? result.then((r) => this.afterState(r)) : this.afterState(result);
    }
    if (msg instanceof StopRequest) {
      const done = this.finish(msg.reason);
      return isPromise(done) ? done.then(() => msg.from.settle(undefined)) : msg.from.settle(undefined);
    }
    if (msg instanceof Exit && self.parent !== null && msg.from === self.parent) {
      // OTP: a trapping server whose parent exits terminates with the same reason.
      return this.finish(msg.reason);
    }
    if (spec.handleInfo === undefined) return; // OTP logs and drops unexpected messages
    const result = spec.handleInfo(msg, this.state, self);
    return isPromise(result) ? result.then((r) => this.afterState(r)) : this.afterState(result);
  }

  private afterCall(result: Reply<S, R> | NoReply<S> | Stop<S, R>, from: From<R>): MaybePromise<void> {
    if (result instanceof Reply) {
      this.state = result.state;
      from.settle(result.value);
      return;
    }
    if (result instanceof NoReply) {
      this.state = result.state;
      return;
    }
    if (result instanceof Stop) {
      this.state = result.state;
      if (result.hasReply) from.settle(result.replyValue as R);
      return this.finish(result.reason);
    }
    return this.finish(
      new TypeError(`${this.self} handleCall returned ${String(result)}; use replyWith/noreply/stop`),
    );
  }

  private afterState(result: S | Stop<S>): MaybePromise<void> {
    if (result instanceof Stop) {
      this.state = result.state;
      return this.finish(result.reason);
    }
    this.state = result;
  }

  /** Runs terminate (OTP calls it on stops and on crashes, not on kills), then exits. */
  finish(reason: ExitReason): MaybePromise<void> {
    this.stopping = true;
    const spec = this.spec;
    if (spec.terminate === undefined) return exitProcess(this.self, reason);
    let result: MaybePromise<void>;
    try {
      // Called as a method, like the other callbacks, so a spec may be a class instance.
      result = spec.terminate(reason, this.state, this.self);
    } catch {
      return exitProcess(this.self, reason);
    }
    const done = () => exitProcess(this.self, reason);
    return isPromise(result) ? result.then(done, done) : done();
  }
}

/**
 * Starts a GenServer; resolves with its pid once `init` has returned. Rejects with {@link StartError} if init
 * throws (the process exits with that error) or if the name is taken.
 */
export function start<S, A, Q, R, C>(
  spec: GenServerSpec<S, A, Q, R, C>,
  args: A,
  options: StartOptions = {},
): Promise<Pid> {
  const loop = new ServerLoop(spec);
  const self = loop.self;
  if (options.label !== undefined) self.label = options.label;
  if (options.name !== undefined) {
    try {
      if (typeof options.name === "string") names.register(options.name, self.pid);
      else options.name.via.register(options.name.key, self.pid);
    } catch (err) {
      exitProcess(self, "normal");
      return Promise.reject(
        new StartError((err as Error).message, { already_started: describeRef(options.name) }),
      );
    }
  }
  if (options.link !== undefined) {
    self.parent = options.link;
    self.link(options.link);
    if (!self.alive) return Promise.reject(new StartError(`${self}: parent is gone`, "noproc"));
  }
  let initial: MaybePromise<S>;
  try {
    initial = spec.init(args, self);
  } catch (err) {
    return initFailed(self, options, err);
  }
  if (isPromise(initial)) {
    self.hold();
    return initial.then(
      (s) => {
        loop.state = s;
        if (!self.alive) throw new StartError(`${self} exited during init`, self.exitReason);
        self.release();
        return self.pid;
      },
      (err: unknown) => initFailed(self, options, err),
    );
  }
  loop.state = initial;
  return Promise.resolve(self.pid);
}

function initFailed(self: Process, options: StartOptions, err: unknown): Promise<Pid> {
  exitProcess(self, err);
  const message = err instanceof Error ? err.message : String(err);
  return Promise.reject(new StartError(`${options.label ?? self.pid} failed in init: ${message}`, err));
}

/**
 * Calls a server and waits for its reply (gen_server:call). No timer is armed per call: deadlines are tracked
 * by one shared timer.
 */
export function call<R = unknown>(
  server: ServerRef,
  request: unknown,
  timeoutMs = DEFAULT_CALL_TIMEOUT_MS,
): Promise<R> {
  const pid = whereis(server);
  const proc = pid?.proc;
  if (proc == null) return Promise.reject(new NoProcError(describeRef(server)));
  return new Promise<R>((resolve, reject) => {
    const from = new From<R>(resolve, reject, proc, getClock().now() + timeoutMs, timeoutMs);
    trackCall(proc, from as From);
    if (Number.isFinite(timeoutMs)) watchDeadline(from);
    proc.deliver(new CallRequest(request, from as From));
  });
}

/** Sends a request without waiting (gen_server:cast). Does nothing if the server is gone. */
export function cast(server: ServerRef, message: unknown): void {
  whereis(server)?.proc?.deliver(new CastRequest(message));
}

/** Stops a server with `reason` (running its terminate) and waits until it has exited (gen_server:stop). */
export function stopServer(
  server: ServerRef,
  reason: ExitReason = "normal",
  timeoutMs = Infinity,
): Promise<void> {
  const pid = whereis(server);
  const proc = pid?.proc;
  if (proc == null) return Promise.reject(new NoProcError(describeRef(server)));
  return new Promise<void>((resolve, reject) => {
    const from = new From<void>(resolve, reject, proc, getClock().now() + timeoutMs, timeoutMs);
    if (Number.isFinite(timeoutMs)) watchDeadline(from);
    proc.deliver(new StopRequest(reason, from as From));
    // If it was killed before handling the request, it is stopped all the same.
    proc.onExit(() => from.settle(undefined));
  });
}
