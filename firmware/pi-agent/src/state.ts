/**
 * What the agent remembers across restarts (`<stateDir>/state.json`): the per-sensor `seq` counters, the kernel boot
 * id of its last run, and whether that run stopped cleanly, from which it tells why it (re)started.
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
  seqs: Record<string, number>;
}

/** The kernel's boot id under `ioRoot` (changes at every boot), or undefined where there is none. */
export function readBootId(ioRoot: string): string | undefined {
  try {
    return readFileSync(join(ioRoot, "proc/sys/kernel/random/boot_id"), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The persisted agent state. */
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
    const seqs: Record<string, number> = {};
    for (const [k, v] of Object.entries(previous?.seqs ?? {})) if (Number.isSafeInteger(v)) seqs[k] = v;
    this.state = { ...(bootId ? { bootId } : {}), clean: false, seqs };
    this.save();
  }

  /** Opens the state in `stateDir`, marking this run as not (yet) cleanly stopped. */
  static open(stateDir: string, bootId: string | undefined): AgentState {
    return new AgentState(stateDir, bootId);
  }

  /** The seq the next reading of `sensor` gets (1 for its first reading ever). Not persisted: see {@link commitSeq}. */
  peekSeq(sensor: string): number {
    return (this.state.seqs[sensor] ?? 0) + 1;
  }

  /**
   * Persists that `seq` of `sensor` was used. Called after the reading is in the disk buffer: if the agent dies in
   * between, {@link observeSeq} recovers it from the buffer at the next start, so a seq is never reused or skipped.
   */
  commitSeq(sensor: string, seq: number): void {
    if (seq <= (this.state.seqs[sensor] ?? 0)) return;
    this.state.seqs[sensor] = seq;
    this.save();
  }

  /** Raises the counter of `sensor` to at least `seq` in memory (recovery from the disk buffer). */
  observeSeq(sensor: string, seq: number): void {
    if (seq > (this.state.seqs[sensor] ?? 0)) this.state.seqs[sensor] = seq;
  }

  /** The last seq handed out for `sensor` (0 if none). */
  lastSeq(sensor: string): number {
    return this.state.seqs[sensor] ?? 0;
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
