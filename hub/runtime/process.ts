/**
 * Processes: spawn, send, receive, exit signals, links and monitors (erlang:spawn/send/receive/link/monitor).
 *
 * Where Node differs from the BEAM:
 * - A process is an async function (or a message handler, for behaviours like GenServer) on the one JS thread.
 *   It cannot be preempted: a process that is killed stops at its next `receive`, which never returns. A process
 *   stuck in a busy loop blocks the thread, so such code must run as an isolated (worker-thread) process.
 * - Messages are passed by reference, not copied. They are values by convention: never mutate a message you sent
 *   or received (across a worker-thread boundary they are structured-cloned, as on the BEAM).
 * - Exit signals are delivered synchronously when they are sent; the messages they turn into (`Exit`, `Down`) go
 *   through the mailbox like any other message.
 */
import { getClock, type TimerHandle } from "./clock.ts";
import { Pid } from "./pid.ts";
import { Queue } from "./queue.ts";
import { type ExitReason, formatReason } from "./reasons.ts";
import { type Runnable, schedule, sliceHasBudget, yieldToScheduler } from "./scheduler.ts";

/** The message a trapping process receives when a linked process exits or someone calls `exit` on it. */
export class Exit {
  constructor(
    /** The process the signal came from, or null when it was sent from outside any process. */
    readonly from: Pid | null,
    readonly reason: ExitReason,
  ) {}
}

/** The message a monitoring process receives when the monitored process exits (`noproc` if it was not alive). */
export class Down {
  constructor(
    readonly ref: number,
    readonly pid: Pid,
    readonly reason: ExitReason,
  ) {}
}

/** What `receive` resolves with when its timeout passes first (Erlang's `after`). */
export const TIMEOUT: unique symbol = Symbol("receive timeout");

/** A message filter for selective receive: return true to take the message. */
export type Match<T> = (msg: unknown) => msg is T;

/** Options for spawn. */
export interface SpawnOptions {
  /** Link the new process to this one before it runs (spawn_link). */
  link?: Pid;
  /** Trap exits from the start. */
  trapExit?: boolean;
  /** A label for logs and introspection, e.g. the supervision path. */
  label?: string;
}

interface Monitor {
  ref: number;
  watcher: Process;
  target: Process;
}

// Process states.
const NEW = 0; // spawned, waiting for its first run
const RUNNING = 1; // its code is executing (async: between awaits)
const WAITING = 2; // async process parked in receive
const IDLE = 3; // handler process with nothing to do
const QUEUED = 4; // on the run queue
const BUSY = 5; // handler process awaiting an async handler
const EXITED = 6;

/** Messages a handler process takes per run before going to the back of the run queue. */
const HANDLER_BATCH = 256;

let nextRef = 0;
/** A unique integer reference (make_ref). */
export function makeRef(): number {
  return ++nextRef;
}

let liveCount = 0;
/** Number of live processes. */
export function processCount(): number {
  return liveCount;
}

/** Hooks run when any process exits (the event bus uses this for crash reports). */
type ExitObserver = (proc: Process, reason: ExitReason) => void;
const exitObservers: ExitObserver[] = [];
/** @internal */
export function observeExits(observer: ExitObserver): void {
  exitObservers.push(observer);
}

/** The handler of a behaviour process: called once per message; a returned promise holds the next message. */
export interface MessageHandler {
  handle(msg: unknown): undefined | Promise<unknown>;
}

/** The rarely used parts of a process. */
class ProcessExt {
  trapExit = false;
  /** Linked processes: most have one link (their supervisor), held as is; a Set only from the second. */
  links: Process | Set<Process> | null = null;
  monitoredBy: Map<number, Monitor> | null = null;
  monitors: Map<number, Monitor> | null = null;
  exitHooks: Array<(reason: ExitReason) => void> | null = null;
  parent: Pid | null = null;
  label: string | undefined = undefined;
  behaviour: unknown = null;
  waiterTimer: TimerHandle | null = null;
  waiterScanned = 0;
}

/**
 * A process. User code sees it as the `self` handed to a spawned function: it receives, links, monitors and
 * traps exits for itself. Behaviours (GenServer, Supervisor) are built on it.
 */
export class Process implements Runnable {
  readonly pid: Pid;
  /** @internal */ state = NEW;
  /** @internal */ mailbox: Queue<unknown> | null = null;
  /**
   * @internal What runs: the async body until it first runs (a function), or a behaviour's message handler (an
   * object). One field for both keeps an idle process small.
   */
  code: ((self: Process) => Promise<unknown>) | MessageHandler | null = null;
  // The pending receive of an async process.
  private waiterResolve: ((msg: unknown) => void) | null = null;
  private waiterMatch: ((msg: unknown) => boolean) | null = null;
  /** The reason it exited with, once it has. */
  exitReason: ExitReason = undefined;
  // Everything most processes never use lives here, allocated on first use, to keep an idle process small.
  private ext: ProcessExt | null = null;

  /** @internal use {@link spawn}. */
  constructor() {
    this.pid = new Pid(this);
    liveCount++;
  }

  private extra(): ProcessExt {
    if (this.ext === null) this.ext = new ProcessExt();
    return this.ext;
  }

  /** True while exits arrive as `Exit` messages instead of killing this process. */
  get trapExit(): boolean {
    return this.ext === null ? false : this.ext.trapExit;
  }
  set trapExit(on: boolean) {
    if (on || this.ext !== null) this.extra().trapExit = on;
  }

  /** The process that started it under supervision, if any (a supervisor's parent gets special treatment). */
  get parent(): Pid | null {
    return this.ext === null ? null : this.ext.parent;
  }
  set parent(pid: Pid | null) {
    this.extra().parent = pid;
  }

  /** A label for logs and introspection, e.g. the supervision path `hub/fleet/uno-1`. */
  get label(): string | undefined {
    return this.ext === null ? undefined : this.ext.label;
  }
  set label(label: string | undefined) {
    this.extra().label = label;
  }

  /** @internal behaviour-specific data read by introspection (e.g. a supervisor's state). */
  get behaviour(): unknown {
    return this.ext === null ? null : this.ext.behaviour;
  }
  set behaviour(value: unknown) {
    this.extra().behaviour = value;
  }

  /** True until the process exits. */
  get alive(): boolean {
    return this.state !== EXITED;
  }

  /** Number of messages waiting in the mailbox. */
  get mailboxSize(): number {
    return this.mailbox === null ? 0 : this.mailbox.length;
  }

  /** @internal the scheduler entry point. */
  run(): void {
    if (this.state === EXITED) return;
    const code = this.code;
    if (typeof code === "function") {
      this.code = null;
      this.state = RUNNING;
      let result: Promise<unknown>;
      try {
        result = code(this);
      } catch (err) {
        exitProcess(this, err);
        return;
      }
      result.then(
        () => exitProcess(this, "normal"),
        (err: unknown) => exitProcess(this, err),
      );
      return;
    }
    if (code !== null) this.runHandler(code);
    else this.deliverToWaiter();
  }

  private runHandler(handler: MessageHandler): void {
    const mailbox = this.mailbox as Queue<unknown>;
    this.state = RUNNING;
    for (let n = 0; n < HANDLER_BATCH && mailbox.length > 0; n++) {
      const msg = mailbox.shift();
      let result: undefined | Promise<unknown>;
      try {
        result = handler.handle(msg);
      } catch (err) {
        exitProcess(this, err);
        return;
      }
      if (this.state === EXITED) return;
      if (result !== undefined) {
        this.state = BUSY;
        result.then(
          () => {
            if (this.state !== BUSY) return;
            this.state = IDLE;
            if (mailbox.length > 0) this.enqueue();
          },
          (err: unknown) => exitProcess(this, err),
        );
        return;
      }
    }
    this.state = IDLE;
    if (mailbox.length > 0) this.enqueue();
  }

  /** @internal holds incoming messages in the mailbox (a behaviour still initialising). */
  hold(): void {
    if (this.state !== EXITED) this.state = BUSY;
  }

  /** @internal resumes handling after {@link hold}. */
  release(): void {
    if (this.state !== BUSY) return;
    this.state = IDLE;
    if (this.mailbox !== null && this.mailbox.length > 0) this.enqueue();
  }

  private enqueue(): void {
    this.state = QUEUED;
    schedule(this);
  }

  private deliverToWaiter(): void {
    // Queued because a message arrived while parked in receive.
    this.state = WAITING;
    const found = this.takeMatching();
    if (found !== NOTHING) this.wake(found);
  }

  /** Finds and removes the first message the current receive accepts; scans only messages not seen before. */
  private takeMatching(): unknown {
    const mailbox = this.mailbox;
    if (mailbox === null) return NOTHING;
    const match = this.waiterMatch;
    if (match === null) return mailbox.length > 0 ? mailbox.shift() : NOTHING;
    const ext = this.extra();
    for (let i = ext.waiterScanned; i < mailbox.length; i++) {
      let ok: boolean;
      try {
        ok = match(mailbox.at(i));
      } catch (err) {
        exitProcess(this, err);
        return NOTHING;
      }
      if (ok) return mailbox.removeAt(i);
    }
    ext.waiterScanned = mailbox.length;
    return NOTHING;
  }

  private wake(msg: unknown): void {
    const resolve = this.waiterResolve as (msg: unknown) => void;
    this.clearWaiterTimer();
    this.waiterResolve = null;
    this.waiterMatch = null;
    this.state = RUNNING;
    resolve(msg);
  }

  private clearWaiterTimer(): void {
    const ext = this.ext;
    if (ext !== null && ext.waiterTimer !== null) {
      getClock().clearTimeout(ext.waiterTimer);
      ext.waiterTimer = null;
    }
  }

  /** @internal delivers a message (see {@link send}). */
  deliver(msg: unknown): void {
    const state = this.state;
    if (state === EXITED) return;
    // Fast path: an async process parked in a plain receive takes the message directly, within the slice budget.
    if (state === WAITING && this.waiterMatch === null && sliceHasBudget()) {
      this.wake(msg);
      return;
    }
    if (this.mailbox === null) this.mailbox = new Queue();
    this.mailbox.push(msg);
    if (state === WAITING || state === IDLE) this.enqueue();
  }

  /**
   * Waits for the next message (or the first one `match` accepts, leaving others in order in the mailbox).
   * With `timeoutMs`, resolves with {@link TIMEOUT} if nothing arrives in time; `0` only checks the mailbox.
   */
  receive<T = unknown>(
    match?: Match<T> | ((msg: unknown) => boolean),
    timeoutMs?: number,
  ): Promise<T | typeof TIMEOUT>;
  receive<T = unknown>(match?: Match<T> | ((msg: unknown) => boolean)): Promise<T>;
  receive(match?: (msg: unknown) => boolean, timeoutMs?: number): Promise<unknown> {
    if (this.state === EXITED) return NEVER;
    if (this.waiterResolve !== null) {
      return Promise.reject(new Error(`${this.pid} is already waiting in receive`));
    }
    if (!sliceHasBudget()) {
      // The slice is used up: wait for the scheduler's next (macrotask) batch even if a message is waiting, so a
      // process that keeps finding mail cannot chain microtasks forever and starve the event loop.
      return yieldToScheduler().then(() => this.receive(match, timeoutMs));
    }
    this.waiterMatch = match ?? null;
    if (match !== undefined) this.extra().waiterScanned = 0;
    const found = this.takeMatching();
    if (found !== NOTHING) {
      this.waiterMatch = null;
      return Promise.resolve(found);
    }
    if (this.state === EXITED) return NEVER;
    if (timeoutMs !== undefined && timeoutMs <= 0) {
      this.waiterMatch = null;
      return Promise.resolve(TIMEOUT);
    }
    return new Promise((resolve) => {
      this.waiterResolve = resolve;
      this.state = WAITING;
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        this.extra().waiterTimer = getClock().setTimeout(() => {
          if (this.waiterResolve !== resolve) return;
          this.extra().waiterTimer = null;
          this.wake(TIMEOUT);
        }, timeoutMs);
      }
    });
  }

  /** Turns exit signals into `Exit` messages (true) or lets them kill this process (false). */
  setTrapExit(on: boolean): void {
    this.trapExit = on;
  }

  /** Links this process with `pid` both ways. Linking to a dead process sends this one an exit signal `noproc`. */
  link(pid: Pid): void {
    const other = pid.proc;
    if (other === this) return;
    if (other === null || other.state === EXITED) {
      exitSignal(this, pid, "noproc");
      return;
    }
    addLink(this.extra(), other);
    addLink(other.extra(), this);
  }

  /** Removes a link both ways. */
  unlink(pid: Pid): void {
    const other = pid.proc;
    if (other === null) return;
    if (this.ext !== null) removeLink(this.ext, other);
    if (other.ext !== null) removeLink(other.ext, this);
  }

  /** Monitors `pid`: a `Down` message arrives when it exits (at once, with `noproc`, if it is already gone). */
  monitor(pid: Pid): number {
    const ref = makeRef();
    const target = pid.proc;
    if (target === null || target.state === EXITED) {
      this.deliver(new Down(ref, pid, "noproc"));
      return ref;
    }
    const m: Monitor = { ref, watcher: this, target };
    const mine = this.extra();
    const theirs = target.extra();
    if (mine.monitors === null) mine.monitors = new Map();
    if (theirs.monitoredBy === null) theirs.monitoredBy = new Map();
    mine.monitors.set(ref, m);
    theirs.monitoredBy.set(ref, m);
    return ref;
  }

  /** Removes a monitor; with `flush`, also drops a `Down` for it already in the mailbox. */
  demonitor(ref: number, flush = false): void {
    const m = this.ext?.monitors?.get(ref);
    if (m !== undefined) {
      this.ext?.monitors?.delete(ref);
      m.target.ext?.monitoredBy?.delete(ref);
    }
    if (flush && this.mailbox !== null) {
      for (let i = 0; i < this.mailbox.length; i++) {
        const msg = this.mailbox.at(i);
        if (msg instanceof Down && msg.ref === ref) {
          this.mailbox.removeAt(i);
          break;
        }
      }
    }
  }

  /** Spawns a process linked to this one. */
  spawnLink(body: (self: Process) => Promise<unknown>, options: Omit<SpawnOptions, "link"> = {}): Pid {
    return spawn(body, { ...options, link: this.pid });
  }

  /** Runs `hook` when this process exits (used for resources it owns: registry names, tables). */
  onExit(hook: (reason: ExitReason) => void): void {
    if (this.state === EXITED) {
      hook(this.exitReason);
      return;
    }
    const ext = this.extra();
    // `[hook]`, not `[]` then push: a pushed-to empty array reserves 17 slots, and most processes have one hook.
    if (ext.exitHooks === null) ext.exitHooks = [hook];
    else ext.exitHooks.push(hook);
  }

  /** @internal ends the process; see {@link exitProcess}. */
  die(reason: ExitReason): void {
    if (this.state === EXITED) return;
    this.state = EXITED;
    this.exitReason = reason;
    this.pid.proc = null;
    liveCount--;
    this.clearWaiterTimer();
    this.waiterResolve = null;
    this.waiterMatch = null;
    if (typeof this.code === "function") this.code = null; // a body that never ran
    this.mailbox = null;
    const ext = this.ext;
    if (ext !== null) {
      const hooks = ext.exitHooks;
      ext.exitHooks = null;
      if (hooks !== null) {
        for (const hook of hooks) {
          try {
            hook(reason);
          } catch {
            // A cleanup hook must not stop the exit from reaching links and monitors.
          }
        }
      }
    }
    for (const observer of exitObservers) observer(this, reason);
    if (ext === null) return;
    const monitors = ext.monitors;
    ext.monitors = null;
    if (monitors !== null) for (const m of monitors.values()) m.target.ext?.monitoredBy?.delete(m.ref);
    const watchers = ext.monitoredBy;
    ext.monitoredBy = null;
    if (watchers !== null) {
      for (const m of watchers.values()) {
        m.watcher.ext?.monitors?.delete(m.ref);
        m.watcher.deliver(new Down(m.ref, this.pid, reason));
      }
    }
    const links = ext.links;
    ext.links = null;
    if (links instanceof Process) {
      if (links.ext !== null) removeLink(links.ext, this);
      pendingSignals.push({ target: links, from: this.pid, reason });
    } else if (links !== null) {
      for (const other of links) {
        if (other.ext !== null) removeLink(other.ext, this);
        pendingSignals.push({ target: other, from: this.pid, reason });
      }
    }
  }

  toString(): string {
    return this.label === undefined ? this.pid.toString() : `${this.pid} (${this.label})`;
  }
}

function addLink(ext: ProcessExt, other: Process): void {
  const links = ext.links;
  if (links === null) ext.links = other;
  else if (links instanceof Process) {
    if (links !== other) ext.links = new Set([links, other]);
  } else links.add(other);
}

function removeLink(ext: ProcessExt, other: Process): void {
  const links = ext.links;
  if (links === other) ext.links = null;
  else if (links instanceof Set) links.delete(other);
}

const NOTHING: unique symbol = Symbol("nothing");
const NEVER: Promise<never> = new Promise<never>(() => {});

interface PendingSignal {
  target: Process;
  from: Pid | null;
  reason: ExitReason;
}
// Exit signals from links are propagated iteratively, so a long chain of linked processes cannot overflow the stack.
const pendingSignals: PendingSignal[] = [];
let propagating = false;

function drainSignals(): void {
  if (propagating) return;
  propagating = true;
  try {
    for (let s = pendingSignals.pop(); s !== undefined; s = pendingSignals.pop()) {
      exitSignal(s.target, s.from, s.reason);
    }
  } finally {
    propagating = false;
  }
}

/** Delivers an exit signal to `target` following OTP: `kill` is untrappable, `normal` is ignored unless trapped. */
function exitSignal(target: Process, from: Pid | null, reason: ExitReason): void {
  if (target.state === EXITED) return;
  // exit/2 with `kill` is handled in exit(); a `kill` reason arriving over a link is the trappable `killed`.
  if (reason === "kill") reason = "killed";
  if (target.trapExit) {
    target.deliver(new Exit(from, reason));
    return;
  } else if (reason === "normal" && from !== target.pid) {
    return;
  } else {
    target.die(reason);
  }
  drainSignals();
}

/** Ends `proc` with `reason` and propagates the exit to its links and monitors. */
export function exitProcess(proc: Process, reason: ExitReason): void {
  if (!proc.alive) return;
  proc.die(reason);
  drainSignals();
}

/**
 * Sends an exit signal to `pid` (erlang:exit/2). `kill` always kills (the process exits with `killed`); other
 * reasons become an `Exit` message if it traps exits, are ignored if `normal`, and otherwise end it.
 */
export function exit(pid: Pid, reason: ExitReason, from: Pid | null = null): void {
  const target = pid.proc;
  if (target === null) return;
  if (reason === "kill") {
    target.die("killed");
    drainSignals();
    return;
  }
  exitSignal(target, from, reason);
}

/** Sends `msg` to `pid`. Never blocks; sending to a dead process does nothing. Order per sender is kept. */
export function send(pid: Pid, msg: unknown): void {
  const proc = pid.proc;
  if (proc !== null) proc.deliver(msg);
}

/** Starts an async function as a new process; it runs from the next scheduler batch. */
export function spawn(body: (self: Process) => Promise<unknown>, options: SpawnOptions = {}): Pid {
  const proc = new Process();
  proc.code = body;
  if (options.trapExit) proc.trapExit = true;
  if (options.label !== undefined) proc.label = options.label;
  if (options.link !== undefined) {
    proc.parent = options.link;
    proc.link(options.link);
  }
  proc.state = QUEUED;
  schedule(proc);
  return proc.pid;
}

/**
 * @internal Starts a handler-driven process (the basis of behaviours): `handler` runs once per message, in order;
 * if it returns a promise, the next message waits for it.
 */
export function spawnHandler(handler: MessageHandler): Process {
  const proc = new Process();
  proc.code = handler;
  proc.state = IDLE;
  return proc;
}

/** True if `msg` is an `Exit` message. */
export function isExit(msg: unknown): msg is Exit {
  return msg instanceof Exit;
}

/** True if `msg` is a `Down` message. */
export function isDown(msg: unknown): msg is Down {
  return msg instanceof Down;
}

/** Describes a process for logs: pid, label and exit reason if it is gone. */
export function describeProcess(proc: Process): string {
  return proc.alive ? proc.toString() : `${proc} (exited: ${formatReason(proc.exitReason)})`;
}
