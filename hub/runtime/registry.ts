/**
 * Registry: unique names for processes (Elixir's Registry with `keys: :unique`, erlang:register). A name is freed
 * automatically when its process exits. `via(registry, key)` names a GenServer by a key in a registry.
 */
import type { Pid } from "./pid.ts";
import { AlreadyRegisteredError } from "./reasons.ts";

/** A name in a registry, usable wherever a GenServer is addressed. */
export interface Via<K = unknown> {
  via: Registry<K>;
  key: K;
}

/** A set of unique names → pids. */
export class Registry<K = string> {
  private readonly entries = new Map<K, Pid>();

  constructor(readonly name = "registry") {}

  /** Registers `key` for `pid`; throws {@link AlreadyRegisteredError} if a live process holds it. */
  register(key: K, pid: Pid): void {
    const proc = pid.proc;
    if (proc === null) return; // a dead process cannot hold a name; like erlang:register, nothing to keep
    const holder = this.entries.get(key);
    if (holder?.alive) throw new AlreadyRegisteredError(key, holder.toString());
    this.entries.set(key, pid);
    proc.onExit(() => {
      if (this.entries.get(key) === pid) this.entries.delete(key);
    });
  }

  /** Removes `key` if `pid` (or anyone, when omitted) holds it. */
  unregister(key: K, pid?: Pid): void {
    const holder = this.entries.get(key);
    if (holder !== undefined && (pid === undefined || holder === pid)) this.entries.delete(key);
  }

  /** The pid registered under `key`, if alive. */
  whereis(key: K): Pid | undefined {
    const pid = this.entries.get(key);
    return pid?.alive ? pid : undefined;
  }

  /** Keys held by `pid`. */
  keysOf(pid: Pid): K[] {
    const keys: K[] = [];
    for (const [key, holder] of this.entries) if (holder === pid) keys.push(key);
    return keys;
  }

  /** Number of live names. */
  get size(): number {
    return this.entries.size;
  }

  /** All live (key, pid) pairs. */
  entriesList(): Array<[K, Pid]> {
    return [...this.entries].filter(([, pid]) => pid.alive);
  }
}

/** Names a process by `key` in `registry`. */
export function via<K>(registry: Registry<K>, key: K): Via<K> {
  return { via: registry, key };
}

/** The node-wide registry behind plain string names (erlang:register). */
export const names = new Registry<string>("names");

/** How a process can be addressed: a pid, a registered name, or a via-name. */
export type ServerRef = Pid | string | Via<unknown>;

/** Resolves a {@link ServerRef} to a live pid, or undefined. */
export function whereis(ref: ServerRef): Pid | undefined {
  if (typeof ref === "string") return names.whereis(ref);
  if ("via" in ref) return ref.via.whereis(ref.key);
  return ref.alive ? ref : undefined;
}

/** Describes a {@link ServerRef} for error messages. */
export function describeRef(ref: ServerRef): string {
  if (typeof ref === "string") return ref;
  if ("via" in ref) return `${ref.via.name}:${String(ref.key)}`;
  return ref.toString();
}
