/**
 * Table (ets): an in-memory table owned by a process and freed when the owner exits. Types: `set` (one object per
 * key), `ordered_set` (a set kept in key order), `bag` (many distinct objects per key), `duplicate_bag`.
 * Objects are stored by reference; as with messages, treat them as immutable values.
 */
import type { Pid } from "./pid.ts";

/** Table types, as in ets. */
export type TableType = "set" | "ordered_set" | "bag" | "duplicate_bag";

/** A key a table can order: numbers, strings, or arrays of them (compared element by element). */
export type TableKey = number | string | bigint | boolean | readonly TableKey[];

/** Using a table whose owner has exited. */
export class TableDeletedError extends Error {
  constructor(readonly table: string) {
    super(`table ${table} no longer exists (its owner exited)`);
    this.name = "TableDeletedError";
  }
}

/** Orders keys the way ets's ordered_set does (numbers < strings < arrays here; arrays element-wise). */
export function compareKeys(a: TableKey, b: TableKey): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = compareKeys(a[i] as TableKey, b[i] as TableKey);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function rank(k: TableKey): number {
  if (typeof k === "number" || typeof k === "bigint") return 0;
  if (typeof k === "boolean") return 1;
  if (typeof k === "string") return 2;
  return 3;
}

function keyId(key: TableKey): unknown {
  // Arrays are compared by value: give them a stable primitive identity.
  return Array.isArray(key)
    ? `\u0000${JSON.stringify(key, (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`
    : key;
}

/** An ets-like table. */
export class Table<K extends TableKey, V> {
  private map: Map<unknown, { key: K; values: V[] }> | null = new Map();
  private sortedKeys: K[] | null;

  constructor(
    readonly name: string,
    readonly type: TableType,
    readonly owner: Pid,
  ) {
    this.sortedKeys = type === "ordered_set" ? [] : null;
  }

  private entries(): Map<unknown, { key: K; values: V[] }> {
    if (this.map === null) throw new TableDeletedError(this.name);
    return this.map;
  }

  /** Inserts an object. In a set, replaces the object at the key; in a bag, adds it unless an equal one exists. */
  insert(key: K, value: V): void {
    const map = this.entries();
    const id = keyId(key);
    const entry = map.get(id);
    if (entry === undefined) {
      map.set(id, { key, values: [value] });
      if (this.sortedKeys !== null) this.sortedKeys.splice(this.lowerBound(key), 0, key);
      return;
    }
    if (this.type === "set" || this.type === "ordered_set") entry.values[0] = value;
    else if (
      this.type === "duplicate_bag" ||
      !entry.values.some((v) => Object.is(v, value) || deepEqual(v, value))
    ) {
      entry.values.push(value);
    }
  }

  /** Inserts only if the key is absent; returns whether it did (ets:insert_new). */
  insertNew(key: K, value: V): boolean {
    if (this.entries().has(keyId(key))) return false;
    this.insert(key, value);
    return true;
  }

  /** The objects at `key` (at most one for sets). */
  lookup(key: K): V[] {
    const entry = this.entries().get(keyId(key));
    return entry === undefined ? [] : [...entry.values];
  }

  /** The single object at `key` in a set, or undefined. */
  get(key: K): V | undefined {
    return this.entries().get(keyId(key))?.values[0];
  }

  has(key: K): boolean {
    return this.entries().has(keyId(key));
  }

  /** Removes every object at `key`. */
  delete(key: K): void {
    const map = this.entries();
    const id = keyId(key);
    if (!map.delete(id)) return;
    if (this.sortedKeys !== null) {
      const i = this.lowerBound(key);
      if (i < this.sortedKeys.length && compareKeys(this.sortedKeys[i] as K, key) === 0)
        this.sortedKeys.splice(i, 1);
    }
  }

  /** Number of keys. */
  get size(): number {
    return this.entries().size;
  }

  /** Every [key, object] pair; in key order for ordered_set. */
  toArray(): Array<[K, V]> {
    const map = this.entries();
    const out: Array<[K, V]> = [];
    const keys = this.sortedKeys ?? [...map.values()].map((e) => e.key);
    for (const key of keys)
      for (const v of (map.get(keyId(key)) as { values: V[] }).values) out.push([key, v]);
    return out;
  }

  /** Objects whose key and value satisfy `pred` (ets:select with a function instead of a match spec). */
  select(pred: (key: K, value: V) => boolean): Array<[K, V]> {
    return this.toArray().filter(([k, v]) => pred(k, v));
  }

  /** ordered_set: keys in [from, to] in order. */
  range(from: K, to: K): Array<[K, V]> {
    if (this.sortedKeys === null)
      return this.select((k) => compareKeys(k, from) >= 0 && compareKeys(k, to) <= 0);
    const map = this.entries();
    const out: Array<[K, V]> = [];
    for (let i = this.lowerBound(from); i < this.sortedKeys.length; i++) {
      const key = this.sortedKeys[i] as K;
      if (compareKeys(key, to) > 0) break;
      out.push([key, (map.get(keyId(key)) as { values: V[] }).values[0] as V]);
    }
    return out;
  }

  /** ordered_set: the smallest and largest keys. */
  first(): K | undefined {
    this.entries();
    return this.sortedKeys?.[0];
  }
  last(): K | undefined {
    this.entries();
    return this.sortedKeys?.[this.sortedKeys.length - 1];
  }

  /** True once the owner has exited (or {@link drop} was called). */
  get deleted(): boolean {
    return this.map === null;
  }

  /** Deletes the table now (ets:delete/1). */
  drop(): void {
    this.map = null;
    this.sortedKeys = null;
  }

  private lowerBound(key: K): number {
    const keys = this.sortedKeys as K[];
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(keys[mid] as K, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Creates a table owned by `owner`; it is dropped when the owner exits (ets:new). */
export function newTable<K extends TableKey, V>(
  owner: Pid,
  options: { name?: string; type?: TableType } = {},
): Table<K, V> {
  const table = new Table<K, V>(options.name ?? "table", options.type ?? "set", owner);
  const proc = owner.proc;
  if (proc === null) table.drop();
  else proc.onExit(() => table.drop());
  return table;
}
