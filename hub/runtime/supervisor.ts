/**
 * Supervisor and DynamicSupervisor (OTP supervisor, Elixir DynamicSupervisor).
 *
 * A supervisor is a process that traps exits, starts its children in order, restarts them by its strategy when
 * they exit, and gives up — exiting with `{shutdown: "reached_max_restart_intensity"}` so its own supervisor
 * decides what to do — when more than `intensity` restarts happen within `periodMs`. Children stop in reverse
 * start order, each honouring its `shutdown` (ms to wait after `shutdown` before `kill`, `brutal_kill`, or
 * `infinity`). A child with `backoff` is restarted after a growing delay instead of counting against intensity.
 *
 * Children are linked to the supervisor after their `start` returns (or before, if `start` links to
 * `ctx.parent` itself, as the helpers do), so a supervisor killed mid-start leaves no orphan when they link early.
 */
import { type BackoffOptions, backoffDelay } from "./backoff.ts";
import { getClock, type TimerHandle } from "./clock.ts";
import { emitRuntimeEvent } from "./events.ts";
import type { Pid } from "./pid.ts";
import { Exit, exit, exitProcess, type Process, spawn, TIMEOUT } from "./process.ts";
import { type ExitReason, formatReason, isCleanExit, StartError } from "./reasons.ts";
import { describeRef, names, type ServerRef, type Via, whereis } from "./registry.ts";

/** When a child is restarted: always, only after an abnormal exit, or never (OTP restart types). */
export type RestartType = "permanent" | "transient" | "temporary";
/** How a child is stopped: ms to wait after `shutdown` before `kill`, `brutal_kill`, or wait forever. */
export type Shutdown = number | "brutal_kill" | "infinity";
/** Which children are restarted when one exits. */
export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one";

/** What a child's `start` is given. */
export interface ChildStartContext {
  id: string;
  /** The child's supervision path, e.g. `hub/fleet/uno-1`. */
  path: string;
  /** The supervisor: link to it to be start_link'ed. */
  parent: Pid;
}

/** A child specification. */
export interface ChildSpec {
  /** Unique among its siblings; a path segment. */
  id: string;
  /** Starts the child and resolves with its pid; throwing is a failed start. */
  start: (ctx: ChildStartContext) => Pid | Promise<Pid>;
  restart?: RestartType;
  /** Default 5000 for workers, `infinity` for supervisors (as in OTP). */
  shutdown?: Shutdown;
  type?: "worker" | "supervisor";
  /** Restart with exponential backoff instead of counting against intensity. */
  backoff?: BackoffOptions;
}

/** Supervisor flags and children. */
export interface SupervisorSpec {
  strategy?: Strategy;
  /** Max restarts within `periodMs` before giving up (default 3). */
  intensity?: number;
  /** Default 5000 ms. */
  periodMs?: number;
  children?: ChildSpec[];
  /** DynamicSupervisor: refuse to start more than this many children. */
  maxChildren?: number;
}

/** Options for starting a supervisor. */
export interface SupervisorStartOptions {
  /** Its supervision path (a root supervisor names itself: `hub`); a child supervisor gets it from `ctx.path`. */
  path?: string;
  name?: string | Via<unknown>;
  link?: Pid;
}

/** Status of a child as shown in the tree. */
export type ChildStatus = "running" | "restarting" | "down";

interface ChildState {
  spec: ChildSpec;
  pid: Pid | null;
  status: ChildStatus;
  restarts: number;
  lastExit: { reason: string; ts: number } | undefined;
  startedAt: number;
  backoffAttempt: number;
  backoffTimer: TimerHandle | null;
  /** Bumped whenever the child is (re)started or stopped, so a stale backoff timer does nothing. */
  generation: number;
}

/** @internal what introspection reads off a supervisor process. */
export interface SupervisorState {
  kind: "supervisor";
  path: string;
  strategy: Strategy;
  intensity: number;
  periodMs: number;
  restartLog: number[];
  children: ChildState[];
  dynamic: boolean;
}

/** One row of {@link whichChildren}. */
export interface ChildInfo {
  id: string;
  pid: Pid | null;
  type: "worker" | "supervisor";
  status: ChildStatus;
  restarts: number;
}

type Op =
  | { op: "start_child"; spec: ChildSpec }
  | { op: "terminate_child"; id: string }
  | { op: "restart_child"; id: string }
  | { op: "delete_child"; id: string }
  | { op: "stop"; reason: ExitReason };

class Request {
  constructor(
    readonly op: Op,
    readonly resolve: (value: unknown) => void,
    readonly reject: (err: Error) => void,
  ) {}
}
class BackoffDue {
  constructor(
    readonly id: string,
    readonly generation: number,
  ) {}
}
class RetryRestart {
  constructor(readonly id: string) {}
}

/** Error for supervisor requests that cannot be done (unknown child, running child, max children...). */
export class SupervisorError extends Error {
  constructor(
    message: string,
    readonly code:
      | "not_found"
      | "running"
      | "restarting"
      | "already_present"
      | "max_children"
      | "not_running",
  ) {
    super(message);
    this.name = "SupervisorError";
  }
}

const DEFAULT_INTENSITY = 3;
const DEFAULT_PERIOD_MS = 5000;

function shutdownOf(spec: ChildSpec): Shutdown {
  return spec.shutdown ?? (spec.type === "supervisor" ? "infinity" : 5000);
}

/**
 * Starts a supervisor; resolves with its pid once every child has started. If a child fails to start, the ones
 * already started are stopped and the promise rejects with {@link StartError}.
 */
export function startSupervisor(spec: SupervisorSpec, options: SupervisorStartOptions = {}): Promise<Pid> {
  return startSupervisorProcess(spec, options, false);
}

/** Starts a DynamicSupervisor: one_for_one, children added with {@link startChild}, optional `maxChildren`. */
export function startDynamicSupervisor(
  spec: Omit<SupervisorSpec, "strategy" | "children">,
  options: SupervisorStartOptions = {},
): Promise<Pid> {
  return startSupervisorProcess({ ...spec, strategy: "one_for_one", children: [] }, options, true);
}

function startSupervisorProcess(
  spec: SupervisorSpec,
  options: SupervisorStartOptions,
  dynamic: boolean,
): Promise<Pid> {
  for (const child of spec.children ?? []) validateSpec(child);
  const ids = new Set<string>();
  for (const child of spec.children ?? []) {
    if (ids.has(child.id))
      return Promise.reject(new StartError(`duplicate child id "${child.id}"`, "bad_spec"));
    ids.add(child.id);
  }
  const state: SupervisorState = {
    kind: "supervisor",
    path: options.path ?? "supervisor",
    strategy: spec.strategy ?? "one_for_one",
    intensity: spec.intensity ?? DEFAULT_INTENSITY,
    periodMs: spec.periodMs ?? DEFAULT_PERIOD_MS,
    restartLog: [],
    children: (spec.children ?? []).map(newChild),
    dynamic,
  };

  return new Promise<Pid>((resolveStart, rejectStart) => {
    const run = new SupervisorRun(state, spec.maxChildren, resolveStart, rejectStart);
    const pid = spawn((self) => run.run(self), { trapExit: true, label: options.path ?? "supervisor" });
    const proc = pid.proc as Process;
    if (options.name !== undefined) {
      try {
        if (typeof options.name === "string") names.register(options.name, pid);
        else options.name.via.register(options.name.key, pid);
      } catch (err) {
        exitProcess(proc, "normal");
        run.failStart(new StartError((err as Error).message, { already_started: describeRef(options.name) }));
        return;
      }
    }
    if (options.link !== undefined) {
      proc.parent = options.link;
      proc.link(options.link);
    }
    proc.onExit(failStartOnExit(run));
  });
}

/**
 * The exit hook that fails a start still in progress. Made here, not inline, so it holds only `run`: an inline
 * arrow would keep the whole start scope (spec, options, the start promise's resolvers) for the supervisor's life.
 */
function failStartOnExit(run: SupervisorRun): (reason: ExitReason) => void {
  return (reason) => run.failStart(new StartError(`supervisor ${run.path} exited during start`, reason));
}

/** Children a supervisor finds by scanning its list; beyond this it keeps maps by id and by pid. */
const SCAN_LIMIT = 8;

interface ChildIndex {
  byId: Map<string, ChildState>;
  /** Running children only: an entry exists exactly while `child.pid` is that pid. */
  byPid: Map<Pid, ChildState>;
}

/** A selective-receive filter for the `Exit` of `pid`. */
function isExitFrom(pid: Pid): (m: unknown) => boolean {
  return (m) => m instanceof Exit && m.from === pid;
}

/**
 * The body of one supervisor process. A class rather than closures inside the spawned function: its methods are
 * shared by every supervisor, where closures cost each supervisor (two per device) a function object per helper —
 * and under tsx (esbuild keepNames) each named closure also gets its own property dictionary (~300 bytes).
 */
class SupervisorRun {
  /** Children by id and by running pid; null while there are few enough to scan (most supervisors: 1–3). */
  private index: ChildIndex | null = null;
  /** Requests being handled, failed if the supervisor exits meanwhile; allocated with the first request. */
  private pending: Set<Request> | null = null;

  private self!: Process;
  /** The start promise's resolvers until the children have started (or failed to); then dropped. */
  private starting: { resolve: (pid: Pid) => void; reject: (err: Error) => void } | null;

  constructor(
    private readonly state: SupervisorState,
    private readonly maxChildren: number | undefined,
    resolve: (pid: Pid) => void,
    reject: (err: Error) => void,
  ) {
    this.starting = { resolve, reject };
  }

  get path(): string {
    return this.state.path;
  }

  /** Rejects the start promise, if the start is still in progress. */
  failStart(err: Error): void {
    const starting = this.starting;
    this.starting = null;
    starting?.reject(err);
  }

  /** The index, built once the supervisor has more than {@link SCAN_LIMIT} children (and kept from then on). */
  private indexed(): ChildIndex | null {
    const children = this.state.children;
    if (this.index === null && children.length > SCAN_LIMIT) {
      const index: ChildIndex = { byId: new Map(), byPid: new Map() };
      for (const c of children) {
        index.byId.set(c.spec.id, c);
        if (c.pid !== null) index.byPid.set(c.pid, c);
      }
      this.index = index;
    }
    return this.index;
  }

  private childById(id: string): ChildState | undefined {
    const index = this.indexed();
    if (index !== null) return index.byId.get(id);
    for (const c of this.state.children) if (c.spec.id === id) return c;
    return undefined;
  }

  /** The child running as `pid` (a child's pid is set while it runs and null otherwise). */
  private childByPid(pid: Pid): ChildState | undefined {
    const index = this.indexed();
    if (index !== null) return index.byPid.get(pid);
    for (const c of this.state.children) if (c.pid === pid) return c;
    return undefined;
  }

  private childPath(child: ChildState): string {
    return `${this.state.path}/${child.spec.id}`;
  }

  /** Starts one child; returns the failure reason or null. */
  private async startOne(child: ChildState, isRestart: boolean): Promise<{ reason: unknown } | null> {
    const self = this.self;
    let childPid: Pid;
    try {
      childPid = await child.spec.start({
        id: child.spec.id,
        path: this.childPath(child),
        parent: self.pid,
      });
    } catch (err) {
      const reason = err instanceof StartError ? err.reason : err;
      child.pid = null;
      return { reason };
    }
    self.link(childPid);
    const proc = childPid.proc;
    if (proc === null) return { reason: "noproc" }; // died at once: its Exit is in the mailbox
    if (proc.parent === null) proc.parent = self.pid;
    if (proc.label === undefined) proc.label = this.childPath(child);
    child.pid = childPid;
    child.status = "running";
    child.startedAt = getClock().now();
    child.generation++;
    this.index?.byPid.set(childPid, child);
    emitRuntimeEvent(
      isRestart
        ? {
            type: "restarted",
            path: this.childPath(child),
            pid: childPid.toString(),
            restarts: child.restarts,
          }
        : { type: "started", path: this.childPath(child), pid: childPid.toString() },
    );
    return null;
  }

  /** Stops one child by its shutdown spec and waits for it to be gone. */
  private async stopOne(child: ChildState, reason: ExitReason = "shutdown"): Promise<void> {
    const self = this.self;
    this.clearBackoff(child);
    const childPid = child.pid;
    child.pid = null;
    child.generation++;
    if (childPid === null) return;
    this.index?.byPid.delete(childPid);
    if (childPid.proc === null) {
      // Already dead: its Exit is (or will be) in our mailbox; take it so it is not mistaken for a crash.
      await self.receive(isExitFrom(childPid), 0);
      return;
    }
    const shutdown = shutdownOf(child.spec);
    if (shutdown === "brutal_kill") {
      exit(childPid, "kill", self.pid);
      await self.receive(isExitFrom(childPid));
      return;
    }
    exit(childPid, reason, self.pid);
    const got = await self.receive(isExitFrom(childPid), shutdown === "infinity" ? undefined : shutdown);
    if (got === TIMEOUT) {
      exit(childPid, "kill", self.pid);
      await self.receive(isExitFrom(childPid));
    }
  }

  private async stopAll(children: ChildState[]): Promise<void> {
    for (let i = children.length - 1; i >= 0; i--) await this.stopOne(children[i] as ChildState);
  }

  private async giveUp(reason: ExitReason): Promise<void> {
    const state = this.state;
    emitRuntimeEvent({ type: "gave_up", path: state.path, reason: formatReason(reason) });
    await this.stopAll(state.children);
    for (const c of state.children) c.status = "down";
    exitProcess(this.self, { shutdown: "reached_max_restart_intensity" });
  }

  private removeChild(child: ChildState): void {
    const i = this.state.children.indexOf(child);
    if (i >= 0) this.state.children.splice(i, 1);
    this.index?.byId.delete(child.spec.id);
  }

  /** The children the strategy restarts along with `child`, in start order. */
  private group(child: ChildState): ChildState[] {
    const state = this.state;
    if (state.strategy === "one_for_one") return [child];
    if (state.strategy === "one_for_all") return [...state.children];
    return state.children.slice(state.children.indexOf(child));
  }

  /** Counts a restart against intensity; false when the budget is exhausted. */
  private withinIntensity(): boolean {
    const state = this.state;
    const now = getClock().now();
    state.restartLog.push(now);
    while (state.restartLog.length > 0 && (state.restartLog[0] as number) <= now - state.periodMs) {
      state.restartLog.shift();
    }
    return state.restartLog.length <= state.intensity;
  }

  /** (Re)starts `children` in order; a failure goes round the restart logic again. */
  private async restartGroup(children: ChildState[]): Promise<void> {
    for (const c of children) {
      if (this.childById(c.spec.id) === undefined || c.pid !== null) continue;
      c.restarts++;
      const failed = await this.startOne(c, true);
      if (failed !== null) {
        c.lastExit = { reason: formatReason(failed.reason), ts: getClock().now() };
        emitRuntimeEvent({ type: "exited", path: this.childPath(c), reason: c.lastExit.reason });
        this.self.deliver(new RetryRestart(c.spec.id));
        return;
      }
    }
  }

  private scheduleBackoff(child: ChildState, reason: ExitReason): void {
    const opts = child.spec.backoff as BackoffOptions;
    const clock = getClock();
    const now = clock.now();
    if (child.startedAt > 0 && now - child.startedAt >= (opts.resetAfterMs ?? 10_000))
      child.backoffAttempt = 0;
    child.backoffAttempt++;
    const delayMs = backoffDelay(opts, child.backoffAttempt);
    child.status = child.backoffAttempt > (opts.downAfter ?? 3) ? "down" : "restarting";
    emitRuntimeEvent({
      type: "backoff",
      path: this.childPath(child),
      reason: formatReason(reason),
      delayMs,
      attempt: child.backoffAttempt,
      restarts: child.restarts,
    });
    const self = this.self;
    const due = new BackoffDue(child.spec.id, child.generation);
    child.backoffTimer = clock.setTimeout(() => self.deliver(due), delayMs);
  }

  private clearBackoff(child: ChildState): void {
    if (child.backoffTimer !== null) getClock().clearTimeout(child.backoffTimer);
    child.backoffTimer = null;
  }

  /** A child exited or failed to restart: decide, by restart type, strategy and intensity. */
  private async onChildDown(child: ChildState, reason: ExitReason): Promise<void> {
    const restart = child.spec.restart ?? "permanent";
    if (restart === "temporary" || (restart === "transient" && isCleanExit(reason))) {
      if (restart === "temporary") this.removeChild(child);
      else child.status = "down";
      return;
    }
    const others = this.group(child).filter((c) => c !== child);
    if (child.spec.backoff !== undefined) {
      await this.stopAll(others);
      for (const c of others) c.status = "restarting";
      this.scheduleBackoff(child, reason);
      return;
    }
    if (!this.withinIntensity()) {
      child.status = "down";
      await this.giveUp(reason);
      return;
    }
    child.status = "restarting";
    await this.stopAll(others);
    await this.restartGroup(this.group(child));
  }

  /** The child `id`, which must exist and not be running (restart_child, delete_child). */
  private stoppedChild(id: string): ChildState {
    const child = this.childById(id);
    if (child === undefined) throw new SupervisorError(`${this.state.path}: no child "${id}"`, "not_found");
    if (child.pid !== null) throw new SupervisorError(`${this.state.path}: "${id}" is running`, "running");
    return child;
  }

  private async handleRequest(req: Request): Promise<unknown> {
    const { op } = req;
    const state = this.state;
    switch (op.op) {
      case "start_child": {
        validateSpec(op.spec);
        const existing = this.childById(op.spec.id);
        if (existing !== undefined) {
          throw new SupervisorError(
            `${state.path}: child "${op.spec.id}" ${existing.pid ? "is already running" : "already exists"}`,
            existing.pid ? "running" : "already_present",
          );
        }
        if (this.maxChildren !== undefined && state.children.length >= this.maxChildren) {
          throw new SupervisorError(
            `${state.path}: at its limit of ${this.maxChildren} children`,
            "max_children",
          );
        }
        const child = newChild(op.spec);
        state.children.push(child);
        this.index?.byId.set(child.spec.id, child);
        const failed = await this.startOne(child, false);
        if (failed !== null) {
          this.removeChild(child);
          throw new StartError(
            `${this.childPath(child)} failed to start: ${formatReason(failed.reason)}`,
            failed.reason,
          );
        }
        return child.pid;
      }
      case "terminate_child": {
        const child = this.childById(op.id);
        if (child === undefined) throw new SupervisorError(`${state.path}: no child "${op.id}"`, "not_found");
        await this.stopOne(child);
        child.status = "down";
        child.lastExit = { reason: "shutdown", ts: getClock().now() };
        // Dynamic and temporary children are forgotten once stopped (DynamicSupervisor.terminate_child).
        if (state.dynamic || child.spec.restart === "temporary") this.removeChild(child);
        return undefined;
      }
      case "restart_child": {
        const child = this.stoppedChild(op.id);
        this.clearBackoff(child);
        const failed = await this.startOne(child, true);
        if (failed !== null)
          throw new StartError(`${this.childPath(child)} failed to restart`, failed.reason);
        return child.pid;
      }
      case "delete_child": {
        const child = this.stoppedChild(op.id);
        this.clearBackoff(child);
        this.removeChild(child);
        return undefined;
      }
      case "stop":
        await this.stopAll(state.children);
        exitProcess(this.self, op.reason);
        return undefined;
    }
  }

  /** Starts the children in order, then handles exits, requests and backoff timers until the supervisor exits. */
  async run(self: Process): Promise<void> {
    this.self = self;
    self.behaviour = this.state;
    const state = this.state;
    for (const child of state.children) {
      const failed = await this.startOne(child, false);
      if (failed !== null) {
        await this.stopAll(state.children);
        const reason = {
          shutdown: { failed_to_start_child: child.spec.id, reason: formatReason(failed.reason) },
        };
        this.failStart(
          new StartError(
            `${this.childPath(child)} failed to start: ${formatReason(failed.reason)}`,
            failed.reason,
          ),
        );
        exitProcess(self, reason);
        return;
      }
    }
    const starting = this.starting;
    this.starting = null;
    starting?.resolve(self.pid);

    for (;;) {
      const msg = await self.receive();
      if (msg instanceof Exit) {
        if (msg.from !== null && self.parent !== null && msg.from === self.parent) {
          await this.stopAll(state.children);
          exitProcess(self, msg.reason);
          return;
        }
        const child = msg.from === null ? undefined : this.childByPid(msg.from);
        if (child === undefined) continue; // an exit from a process we no longer supervise
        this.index?.byPid.delete(msg.from as Pid);
        child.pid = null;
        child.lastExit = { reason: formatReason(msg.reason), ts: getClock().now() };
        emitRuntimeEvent({ type: "exited", path: this.childPath(child), reason: child.lastExit.reason });
        await this.onChildDown(child, msg.reason);
      } else if (msg instanceof Request) {
        this.track(msg);
        try {
          msg.resolve(await this.handleRequest(msg));
        } catch (err) {
          msg.reject(err as Error);
        } finally {
          this.pending?.delete(msg);
        }
      } else if (msg instanceof BackoffDue) {
        const child = this.childById(msg.id);
        if (child === undefined || child.generation !== msg.generation || child.pid !== null) continue;
        child.backoffTimer = null;
        await this.restartGroup(this.group(child));
      } else if (msg instanceof RetryRestart) {
        const child = this.childById(msg.id);
        if (child === undefined || child.pid !== null) continue;
        await this.onChildDown(child, child.lastExit?.reason ?? "start_failed");
      }
    }
  }

  /** Notes a request being handled; the first one also arranges for pending ones to fail if we exit. */
  private track(req: Request): void {
    if (this.pending === null) {
      const pending = new Set<Request>();
      this.pending = pending;
      const path = this.state.path;
      this.self.onExit((reason) => {
        for (const r of pending) r.reject(new StartError(`supervisor ${path} exited`, reason));
      });
    }
    this.pending.add(req);
  }
}

function newChild(spec: ChildSpec): ChildState {
  return {
    spec,
    pid: null,
    status: "down",
    restarts: 0,
    lastExit: undefined,
    startedAt: 0,
    backoffAttempt: 0,
    backoffTimer: null,
    generation: 0,
  };
}

const ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
function validateSpec(spec: ChildSpec): void {
  if (typeof spec.id !== "string" || !ID_PATTERN.test(spec.id)) {
    throw new StartError(
      `bad child id ${JSON.stringify(spec.id)}: letters, digits, _ . - (max 64)`,
      "bad_spec",
    );
  }
  if (typeof spec.start !== "function")
    throw new StartError(`child "${spec.id}" has no start function`, "bad_spec");
}

function request(sup: ServerRef, op: Op): Promise<unknown> {
  const pid = whereis(sup);
  if (pid === undefined)
    return Promise.reject(new SupervisorError(`no supervisor ${describeRef(sup)}`, "not_running"));
  return new Promise((resolve, reject) => (pid.proc as Process).deliver(new Request(op, resolve, reject)));
}

/** Adds and starts a child (supervisor:start_child / DynamicSupervisor.start_child). */
export function startChild(sup: ServerRef, spec: ChildSpec): Promise<Pid> {
  return request(sup, { op: "start_child", spec }) as Promise<Pid>;
}
/** Stops a child; a dynamic supervisor also forgets it. */
export function terminateChild(sup: ServerRef, id: string): Promise<void> {
  return request(sup, { op: "terminate_child", id }) as Promise<void>;
}
/** Starts a stopped child again. */
export function restartChild(sup: ServerRef, id: string): Promise<Pid> {
  return request(sup, { op: "restart_child", id }) as Promise<Pid>;
}
/** Removes a stopped child's spec. */
export function deleteChild(sup: ServerRef, id: string): Promise<void> {
  return request(sup, { op: "delete_child", id }) as Promise<void>;
}
/** Stops the supervisor and all its children (reverse start order), then resolves. */
export async function stopSupervisor(sup: ServerRef, reason: ExitReason = "shutdown"): Promise<void> {
  const pid = whereis(sup);
  if (pid === undefined) return;
  const gone = new Promise<void>((resolve) => (pid.proc as Process).onExit(() => resolve()));
  await request(sup, { op: "stop", reason }).catch(() => undefined);
  await gone;
}

function stateOf(sup: ServerRef): SupervisorState {
  const proc = whereis(sup)?.proc;
  const state = proc?.behaviour as SupervisorState | undefined;
  if (state?.kind !== "supervisor")
    throw new SupervisorError(`no supervisor ${describeRef(sup)}`, "not_running");
  return state;
}

/** The children, in start order (supervisor:which_children). */
export function whichChildren(sup: ServerRef): ChildInfo[] {
  return stateOf(sup).children.map((c) => ({
    id: c.spec.id,
    pid: c.pid,
    type: c.spec.type ?? "worker",
    status: c.status,
    restarts: c.restarts,
  }));
}

/** Counts of children (supervisor:count_children). */
export function countChildren(sup: ServerRef): {
  specs: number;
  active: number;
  supervisors: number;
  workers: number;
} {
  const children = stateOf(sup).children;
  return {
    specs: children.length,
    active: children.filter((c) => c.pid !== null).length,
    supervisors: children.filter((c) => c.spec.type === "supervisor").length,
    workers: children.filter((c) => c.spec.type !== "supervisor").length,
  };
}

/** A child spec for a supervisor under a supervisor. */
export function supervisorChild(id: string, spec: SupervisorSpec, extra: Partial<ChildSpec> = {}): ChildSpec {
  return {
    id,
    type: "supervisor",
    start: (ctx) => startSupervisor(spec, { path: ctx.path, link: ctx.parent }),
    ...extra,
  };
}

/** A child spec for a dynamic supervisor under a supervisor. */
export function dynamicSupervisorChild(
  id: string,
  spec: Omit<SupervisorSpec, "strategy" | "children"> = {},
  extra: Partial<ChildSpec> = {},
): ChildSpec {
  return {
    id,
    type: "supervisor",
    start: (ctx) => startDynamicSupervisor(spec, { path: ctx.path, link: ctx.parent }),
    ...extra,
  };
}
