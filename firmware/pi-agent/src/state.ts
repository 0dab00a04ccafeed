/**
 * What the agent remembers across restarts.
 *
 * - {@link AgentState} (`<stateDir>/state.json`, written at start and at a clean stop): the kernel boot id of the last
 *   run and whether it stopped cleanly, from which the agent tells why it (re)started.
 * - {@link SeqCounters}: the per-sensor `seq` counters. They are not written per reading: they ride in the disk
 *   buffer's mark (see buffer.ts), which is written before any reading leaves the buffer, and every reading still in
 *   the buffer carries its own seq. Recovery takes the larger of the two, so a seq is never reused or skipped.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Why the agent is starting: `power-on` (first run, or the kernel booted since the last run), `agent-restart` (same
 * boot, the last run stopped cleanly: systemd restart, upgrade) or `agent-crash` (same boot, the last run died).
 */
export type ResetCause = "power-on" | "agent-restart" | "agent-crash";

interface StateFile {
  bootId?: string;
  clean?: boolean;
}

/** The kernel's boot id under `ioRoot` (changes at every boot), or undefined where there is none. */
export function readBootId(ioRoot: string): string | undefined {
  try {
    return readFileSync(join(ioRoot, "proc/sys/kernel/random/boot_id"), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The run's identity on disk: boot id and clean-stop flag. */
export class AgentState {
  private readonly file: string;
  private readonly state: StateFile;
  /** Why this run started (computed once, at open). */
  readonly resetCause: ResetCause;

  private constructor(stateDir: string, bootId: string | undefined) {
    mkdirSync(stateDir, { recursive: true });
    this.file = join(stateDir, "state.json");
    let previous: StateFile | undefined;
    try {
      previous = JSON.parse(readFileSync(this.file, "utf8")) as StateFile;
    } catch {
      previous = undefined;
    }
    if (!previous) this.resetCause = "power-on";
    else if (bootId !== undefined && previous.bootId !== undefined && previous.bootId !== bootId)
      this.resetCause = "power-on";
    else this.resetCause = previous.clean ? "agent-restart" : "agent-crash";
    this.state = { ...(bootId ? { bootId } : {}), clean: false };
    this.save();
  }

  /** Opens the state in `stateDir`, marking this run as not (yet) cleanly stopped. */
  static open(stateDir: string, bootId: string | undefined): AgentState {
    return new AgentState(stateDir, bootId);
  }

  /** Records a clean stop, so the next run reports `agent-restart` rather than `agent-crash`. */
  markCleanStop(): void {
    this.state.clean = true;
    this.save();
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state));
    renameSync(tmp, this.file);
  }
}

/** Per-sensor seq counters, in memory; persisted by the disk buffer's mark (see the module doc). */
export class SeqCounters {
  private readonly seqs: Record<string, number> = {};

  /** Starts from saved counters (anything that is not a safe integer is ignored). */
  constructor(saved: unknown = {}) {
    if (typeof saved === "object" && saved !== null) {
      for (const [k, v] of Object.entries(saved)) if (Number.isSafeInteger(v)) this.seqs[k] = v as number;
    }
  }

  /** The seq the next reading of `sensor` gets (1 for its first reading ever). */
  peek(sensor: string): number {
    return (this.seqs[sensor] ?? 0) + 1;
  }

  /** Raises the counter of `sensor` to at least `seq` (a reading was buffered with it). */
  observe(sensor: string, seq: number): void {
    if (seq > (this.seqs[sensor] ?? 0)) this.seqs[sensor] = seq;
  }

  /** The last seq used for `sensor` (0 if none). */
  last(sensor: string): number {
    return this.seqs[sensor] ?? 0;
  }

  /** The counters, for the buffer's mark (live object, serialised when the mark is written). */
  snapshot(): Readonly<Record<string, number>> {
    return this.seqs;
  }
}
