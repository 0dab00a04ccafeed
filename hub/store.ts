/**
 * Durable history in SQLite (better-sqlite3): telemetry, device status changes and supervision events, in
 * `<dataDir>/ganglion.db`.
 *
 * Durability. The database runs in WAL mode. Every append commits before it returns (or, for
 * {@link HistoryStore.storeTelemetry}, before its callback runs), so a caller that acknowledges after that
 * (the broker's PUBACK) never acknowledges a row that is not committed.
 * - `synchronous: "full"` (the default): a committed row is on disk before it is acknowledged: it survives
 *   `kill -9` of the hub and a power cut or kernel crash. {@link HistoryStore.storeTelemetry} answers only once
 *   an `fdatasync` of the WAL that started after its commit has completed; {@link HistoryStore.appendTelemetry}
 *   syncs before it returns.
 * - `synchronous: "normal"`: commits reach the WAL file (the OS page cache) without an fsync; the WAL is synced at
 *   checkpoints. A committed row survives `kill -9` (the kernel still writes it out), but a power cut can lose the
 *   last commits (the database stays consistent; it just ends earlier). Cheaper on SD cards.
 * How "full" syncs: SQLite itself runs with `synchronous = NORMAL` (a commit writes its WAL frames and returns),
 * and the store fsyncs the WAL file asynchronously, on libuv's thread pool, so the ~3 ms a disk takes per fsync no
 * longer stops the event loop (better-sqlite3 is synchronous: with SQLite's FULL every commit blocked the hub for
 * its fsync). fsync is per file, so a sync that starts after a commit returned covers that commit's frames; a WAL
 * checkpoint (which moves frames into the database and lets the WAL be reused) syncs the WAL and the database
 * itself first under NORMAL, so a frame is on disk in one or the other. Status, event and state commits are synced
 * by the next sync too (nothing waits for it).
 * Group commit: rows handed to `storeTelemetry` in the same turn of the event loop share one transaction; while
 * a sync is in flight, rows gather and are committed in one transaction when it completes, then synced by the
 * next one — so durability costs per batch, not per reading.
 *
 * Retention is a ring per sensor (like RingLogger): once a sensor holds more than its limit N (plus a slack of N/64,
 * so the oldest pages are touched once per chunk rather than on every insert), its oldest rows (by `ts`) are
 * deleted down to N in the same transaction, through the `(sensor, ts, seq)` index; the row count per sensor is
 * kept in the `sensors` table, so nothing ever scans the telemetry table.
 *
 * Duplicates. A device replaying its buffer resends readings with the same `seq` and `ts`: a unique index on
 * (device, sensor, ts, seq) makes the replay a no-op. `ts` is part of the key so an agent that restarts its
 * `seq` counter from 0 is not mistaken for a replay and silently dropped.
 */
import { closeSync, fdatasync, fdatasyncSync, fsyncSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";

/** A telemetry value as the MQTT contract allows it. */
export type ReadingValue = number | boolean | string;

/** One reading to store. `seq` is the device's per-sensor counter; readings without one are never deduplicated. */
export interface TelemetryRow {
  device: string;
  sensor: string;
  /** Epoch milliseconds, as the device stamped it. */
  ts: number;
  value: ReadingValue;
  seq?: number | null;
}

/** A stored reading as `GET /api/devices/:id/telemetry` returns it (`sensor` added when no sensor was asked). */
export interface StoredReading {
  ts: number;
  value: ReadingValue;
  seq: number | null;
  sensor?: string;
}

/** The newest reading of one sensor, and the state the hub last published for it, if any. */
export interface LatestReading {
  device: string;
  sensor: string;
  ts: number;
  value: ReadingValue;
  seq: number | null;
  /** Last `state/<sensor>` payload saved with {@link HistoryStore.saveState} (unit, health, ...). */
  state?: Record<string, unknown>;
}

/** A supervision or device event (DESIGN.md §2); extra fields are kept. */
export interface HubEvent {
  type: string;
  path: string;
  ts: number;
  reason?: string;
  restarts?: number;
  fault?: unknown;
  [extra: string]: unknown;
}

/** A device status change. */
export interface StatusChange {
  device: string;
  status: string;
  ts: number;
  reason?: string;
}

/** Options for {@link HistoryStore.open}. */
export interface StoreOptions {
  /** Directory for `ganglion.db` (created if missing). */
  dataDir: string;
  /** `"full"` fsyncs every commit (survives power loss); `"normal"` survives only process death. */
  synchronous?: "full" | "normal";
  /** Telemetry rows kept per sensor unless {@link HistoryStore.setRetention} says otherwise. Default 100 000. */
  retention?: number;
  /** Events and status changes kept (each table); the oldest are pruned. Default 1 000 000. */
  maxEvents?: number;
}

/** Query for {@link HistoryStore.telemetry}. */
export interface TelemetryQuery {
  device: string;
  sensor?: string;
  /** Only readings with `ts >= since` (epoch ms), oldest first from there. */
  since?: number;
  /** Default 1000, at most 10 000. */
  limit?: number;
}

/** Query for {@link HistoryStore.events}. */
export interface EventQuery {
  since?: number;
  limit?: number;
  device?: string;
  type?: string;
}

/** The history database could not be opened or created; the message names the file and the flag to change. */
export class StoreOpenError extends Error {
  constructor(
    readonly file: string,
    override readonly cause: unknown,
  ) {
    super(`cannot open the history database ${file}: ${(cause as Error).message} (check --data-dir)`);
    this.name = "StoreOpenError";
  }
}

/** Default and maximum `limit` of the history queries (the HTTP API's contract). */
export const DEFAULT_LIMIT = 1000;
export const MAX_LIMIT = 10_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sensors (
  id INTEGER PRIMARY KEY,
  device TEXT NOT NULL,
  sensor TEXT NOT NULL,
  rows INTEGER NOT NULL DEFAULT 0,
  state TEXT,
  UNIQUE (device, sensor)
);
CREATE TABLE IF NOT EXISTS telemetry (
  id INTEGER PRIMARY KEY,
  sensor_id INTEGER NOT NULL REFERENCES sensors(id),
  ts INTEGER NOT NULL,
  seq INTEGER,
  value TEXT NOT NULL
);
-- One index serves dedup, time queries, retention and "latest". A second one would double the B-tree pages each
-- commit dirties (one hot leaf per sensor per index), which is most of a commit's cost with many sensors.
DROP INDEX IF EXISTS telemetry_dedup;
DROP INDEX IF EXISTS telemetry_by_ts;
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_key ON telemetry (sensor_id, ts, seq);
CREATE TABLE IF NOT EXISTS status (
  id INTEGER PRIMARY KEY,
  device TEXT NOT NULL,
  status TEXT NOT NULL,
  reason TEXT,
  ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS status_by_device ON status (device, ts);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  path TEXT NOT NULL,
  device TEXT,
  ts INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_ts ON events (ts);
CREATE INDEX IF NOT EXISTS events_by_device ON events (device, ts);
`;

function clampLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_LIMIT;
  return Math.max(1, Math.min(MAX_LIMIT, Math.floor(limit)));
}

/** The device an event is about: the segment after `hub/fleet/` in its path. */
export function deviceOfPath(path: string): string | null {
  const m = /^hub\/fleet\/([^/]+)/.exec(path);
  return m?.[1] ?? null;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** Why a row cannot be stored, or `null`. */
function invalidRow(row: TelemetryRow): string | null {
  if (
    typeof row.device !== "string" ||
    row.device === "" ||
    typeof row.sensor !== "string" ||
    row.sensor === ""
  ) {
    return "telemetry row needs a device and a sensor";
  }
  if (typeof row.ts !== "number" || !Number.isFinite(row.ts)) {
    return `telemetry ${row.device}/${row.sensor}: ts must be epoch milliseconds`;
  }
  if (row.seq !== undefined && row.seq !== null && !Number.isSafeInteger(row.seq)) {
    return `telemetry ${row.device}/${row.sensor}: seq must be an integer`;
  }
  const t = typeof row.value;
  if (!(t === "boolean" || t === "string" || (t === "number" && Number.isFinite(row.value)))) {
    return `telemetry ${row.device}/${row.sensor}: value must be a finite number, a boolean or a string`;
  }
  return null;
}

interface SensorEntry {
  id: number;
  rows: number;
  limit: number | undefined;
}

/** Called once a reading's batch is durable (`inserted`: new, not a duplicate), or with the error that failed it. */
export type StoredCallback = (err: Error | null, inserted: boolean) => void;

interface Pending {
  row: TelemetryRow;
  done: StoredCallback;
}

/** The hub's history. Synchronous and single-connection: one per process, owned by the Events service. */
/** How long {@link HistoryStore.saveState} gathers states before writing them in one transaction. */
const STATE_WRITE_MS = 500;
/**
 * States written per turn of the event loop by the timer: the rest follow in the next turns. A thousand sensors'
 * states in one transaction held every reading behind them for milliseconds, twice a second.
 */
const STATE_CHUNK = 100;

export class HistoryStore {
  /** Path of the database file. */
  readonly file: string;
  private readonly db: Database.Database;
  private readonly defaultRetention: number;
  private readonly maxEvents: number;
  private readonly sensors = new Map<string, SensorEntry>();
  private pending: Pending[] = [];
  private flushScheduled = false;
  /** Sensor row id → the newest state payload not yet written (see {@link saveState}). */
  private pendingStates = new Map<number, Record<string, unknown>>();
  /** Status and event rows waiting for their batch (see {@link queueWrite}). */
  private pendingWrites: (() => void)[] = [];
  private stateTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** `synchronous: "full"`: acknowledge telemetry only after the WAL is synced (see the durability note). */
  private readonly syncWal: boolean;
  /** A read-only descriptor of the WAL file, for the syncs; opened on the first one. */
  private walFd: number | null = null;
  /** An fdatasync of the WAL is running on the thread pool. */
  private syncing = false;
  /** Commits since the last sync started: another one is needed. */
  private dirty = false;
  /** Batches committed since the last sync started, resolved when the next one completes. */
  private awaitingSync: (() => void)[] = [];
  private awaitingSyncFailed: ((err: unknown) => void)[] = [];
  /** In-memory row counts before the running transaction touched them, restored if it rolls back. */
  private readonly rowsBefore = new Map<SensorEntry, number>();
  /** Counters for introspection and benchmarks. */
  readonly stats = { inserted: 0, duplicates: 0, pruned: 0, commits: 0 };

  /** {@link insertBatch} wrapped in BEGIN/COMMIT once, not per call. */
  private readonly insertTransaction: (rows: readonly TelemetryRow[]) => boolean[];
  private readonly stmts: {
    insertSensor: Database.Statement;
    insertTelemetry: Database.Statement;
    updateRows: Database.Statement;
    prune: Database.Statement;
    insertStatus: Database.Statement;
    insertEvent: Database.Statement;
    pruneEvents: Database.Statement;
    pruneStatus: Database.Statement;
    saveState: Database.Statement;
    latest: Database.Statement;
  };

  private constructor(options: StoreOptions) {
    this.file = join(options.dataDir, "ganglion.db");
    this.defaultRetention = options.retention ?? 100_000;
    this.syncWal = options.synchronous !== "normal";
    this.maxEvents = options.maxEvents ?? 1_000_000;
    try {
      mkdirSync(options.dataDir, { recursive: true });
      this.db = new Database(this.file);
      this.db.pragma("journal_mode = WAL");
      // FULL's fsync is the store's own, off the event loop (see the durability note).
      this.db.pragma("synchronous = NORMAL");
      this.db.pragma("foreign_keys = ON");
      this.db.exec(SCHEMA);
    } catch (err) {
      throw new StoreOpenError(this.file, err);
    }
    this.stmts = {
      insertSensor: this.db.prepare("INSERT INTO sensors (device, sensor) VALUES (?, ?) RETURNING id"),
      insertTelemetry: this.db.prepare(
        "INSERT OR IGNORE INTO telemetry (sensor_id, ts, seq, value) VALUES (?, ?, ?, ?)",
      ),
      updateRows: this.db.prepare("UPDATE sensors SET rows = ? WHERE id = ?"),
      prune: this.db.prepare(
        "DELETE FROM telemetry WHERE id IN (SELECT id FROM telemetry WHERE sensor_id = ? ORDER BY ts, seq, id LIMIT ?)",
      ),
      insertStatus: this.db.prepare("INSERT INTO status (device, status, reason, ts) VALUES (?, ?, ?, ?)"),
      insertEvent: this.db.prepare(
        "INSERT INTO events (type, path, device, ts, data) VALUES (?, ?, ?, ?, ?)",
      ),
      pruneEvents: this.db.prepare("DELETE FROM events WHERE id <= ?"),
      pruneStatus: this.db.prepare("DELETE FROM status WHERE id <= ?"),
      saveState: this.db.prepare("UPDATE sensors SET state = ? WHERE id = ?"),
      latest: this.db.prepare(
        "SELECT ts, seq, value FROM telemetry WHERE sensor_id = ? ORDER BY ts DESC, seq DESC, id DESC LIMIT 1",
      ),
    };
    this.insertTransaction = this.db.transaction(this.insertBatch);
    for (const row of this.db.prepare("SELECT id, device, sensor, rows FROM sensors").all() as {
      id: number;
      device: string;
      sensor: string;
      rows: number;
    }[]) {
      this.sensors.set(`${row.device}\0${row.sensor}`, { id: row.id, rows: row.rows, limit: undefined });
    }
  }

  /** Opens (creating if needed) the history in `options.dataDir`. */
  static open(options: StoreOptions): HistoryStore {
    return new HistoryStore(options);
  }

  private sensor(device: string, sensor: string): SensorEntry {
    const key = `${device}\0${sensor}`;
    let entry = this.sensors.get(key);
    if (!entry) {
      const { id } = this.stmts.insertSensor.get(device, sensor) as { id: number };
      entry = { id, rows: 0, limit: undefined };
      this.sensors.set(key, entry);
    }
    return entry;
  }

  /** Sets how many telemetry rows one sensor keeps (from its config's `retention`); pruned on its next append. */
  setRetention(device: string, sensor: string, rows: number): void {
    this.sensor(device, sensor).limit = rows;
  }

  private readonly insertBatch = (rows: readonly TelemetryRow[]): boolean[] => {
    const results: boolean[] = [];
    const touched = new Set<SensorEntry>();
    for (const row of rows) {
      const entry = this.sensor(row.device, row.sensor);
      const info = this.stmts.insertTelemetry.run(
        entry.id,
        row.ts,
        row.seq ?? null,
        JSON.stringify(row.value),
      );
      const inserted = info.changes > 0;
      results.push(inserted);
      if (inserted) {
        if (!this.rowsBefore.has(entry)) this.rowsBefore.set(entry, entry.rows);
        entry.rows++;
        touched.add(entry);
      }
    }
    for (const entry of touched) {
      const limit = entry.limit ?? this.defaultRetention;
      // Pruning in chunks of limit/64 rows touches a sensor's oldest pages once per chunk, not on every insert.
      if (entry.rows > limit + Math.floor(limit / 64)) {
        const pruned = this.stmts.prune.run(entry.id, entry.rows - limit).changes;
        entry.rows -= pruned;
        this.stats.pruned += pruned;
      }
      this.stmts.updateRows.run(entry.rows, entry.id);
    }
    return results;
  };

  private commitTelemetry(rows: readonly TelemetryRow[]): boolean[] {
    this.rowsBefore.clear();
    try {
      const results = this.insertTransaction(rows);
      this.dirty = true;
      this.stats.commits++;
      for (const inserted of results) {
        if (inserted) this.stats.inserted++;
        else this.stats.duplicates++;
      }
      return results;
    } catch (err) {
      // The transaction rolled back: so must the in-memory row counts.
      for (const [entry, rows] of this.rowsBefore) entry.rows = rows;
      throw err;
    } finally {
      this.rowsBefore.clear();
    }
  }

  /** The WAL's descriptor; on first use, also syncs the directory so a newly created WAL's entry is durable. */
  private wal(): number {
    if (this.walFd === null) {
      this.walFd = openSync(`${this.file}-wal`, "r");
      const dir = openSync(join(this.file, ".."), "r");
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
    return this.walFd;
  }

  /**
   * Starts an fdatasync of the WAL on the thread pool when something was committed since the last one started and
   * none is running; when it completes, the batches committed before it started are durable and resolved. Commits
   * made meanwhile wait for the next one, which starts as soon as this one is done (a natural group commit).
   */
  private requestSync(): void {
    if (this.syncing || !this.dirty || this.walFd === -1) return;
    const resolves = this.awaitingSync;
    const rejects = this.awaitingSyncFailed;
    this.awaitingSync = [];
    this.awaitingSyncFailed = [];
    this.dirty = false;
    let fd: number;
    try {
      fd = this.wal();
    } catch (err) {
      for (const reject of rejects) reject(err);
      return;
    }
    this.syncing = true;
    fdatasync(fd, (err) => {
      this.syncing = false;
      if (err) for (const reject of rejects) reject(err);
      else for (const resolve of resolves) resolve();
      if (this.closed) {
        // close() synced whatever was left itself and left the descriptor to this callback.
        if (this.walFd !== null && this.walFd !== -1) closeSync(this.walFd);
        this.walFd = -1;
        return;
      }
      // The readings that arrived during the sync, in one transaction: committing each turn's few rows while a
      // sync runs would write the same hot pages to the WAL again and again for nothing (they wait anyway).
      if (this.pending.length > 0) this.flush();
      this.requestSync();
    });
  }

  /** Syncs the WAL now, on this thread (the synchronous API and close()); settles every batch waiting for a sync. */
  private syncNow(): void {
    if (!this.syncWal) return;
    const resolves = this.awaitingSync;
    const rejects = this.awaitingSyncFailed;
    this.awaitingSync = [];
    this.awaitingSyncFailed = [];
    this.dirty = false;
    try {
      fdatasyncSync(this.wal());
    } catch (err) {
      for (const reject of rejects) reject(err);
      throw err;
    }
    for (const resolve of resolves) resolve();
  }

  /** After a commit nobody waits on (status, events, states): the next sync covers it. */
  private committed(): void {
    this.dirty = true;
    if (this.syncWal) this.requestSync();
  }

  /**
   * Appends readings in one transaction; returns once it is committed (see the durability note above).
   * @returns for each row, whether it was new (`false`: a duplicate of a stored (seq, ts)).
   */
  appendTelemetry(rows: TelemetryRow | readonly TelemetryRow[]): boolean[] {
    this.assertOpen();
    const list: readonly TelemetryRow[] = Array.isArray(rows) ? rows : [rows as TelemetryRow];
    for (const row of list) {
      const problem = invalidRow(row);
      if (problem) throw new TypeError(problem);
    }
    const results = this.commitTelemetry(list);
    this.syncNow();
    return results;
  }

  /**
   * Appends one reading with group commit: rows handed over in the same turn of the event loop are committed in
   * one transaction. Resolves (`true` if new, `false` if a duplicate) once that transaction is durable; rejects
   * if it failed. The broker's path uses {@link storeTelemetry}, the same with a callback.
   */
  persistTelemetry(row: TelemetryRow): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.storeTelemetry(row, (err, inserted) => (err ? reject(err) : resolve(inserted)));
    });
  }

  /**
   * {@link persistTelemetry} with a callback instead of a promise, for the broker's path (one reading per device
   * publish: a promise, its executor and its two resolving functions per reading were garbage the collector paid
   * for). `done` runs once, never synchronously.
   */
  storeTelemetry(row: TelemetryRow, done: StoredCallback): void {
    this.assertOpen();
    // A bad row is refused on its own here; inside the batch it would roll back everyone's readings.
    const problem = invalidRow(row);
    if (problem) {
      const err = new TypeError(problem);
      queueMicrotask(() => done(err, false));
      return;
    }
    this.pending.push({ row, done });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // While a sync runs, readings gather for the commit its completion makes (see requestSync).
      if (!this.syncing) setImmediate(() => this.flush());
    }
  }

  /**
   * Queues a status or event row: rows queued in the same turn of the event loop are committed in one transaction
   * (one fsync), instead of one each — a storm of supervision events at start-up cost ~3 ms per row on disk. Reads
   * commit the queue first, so a caller always sees what it recorded; a crash loses at most that turn's rows.
   */
  private queueWrite(write: () => void): void {
    this.pendingWrites.push(write);
    if (this.pendingWrites.length === 1) setImmediate(() => this.flushWrites());
  }

  /** Commits the rows {@link queueWrite} has queued. */
  private flushWrites(): void {
    if (this.pendingWrites.length === 0 || this.closed) return;
    const writes = this.pendingWrites;
    this.pendingWrites = [];
    this.db.transaction(() => {
      for (const write of writes) write();
    })();
    this.committed();
  }

  /** Commits what {@link persistTelemetry} has queued. Called by itself; public for shutdown paths. */
  flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let results: boolean[];
    try {
      results = this.commitTelemetry(batch.map((p) => p.row));
    } catch (err) {
      const failed = asError(err);
      queueMicrotask(() => {
        for (const p of batch) p.done(failed, false);
      });
      return;
    }
    const settle = () => {
      for (let i = 0; i < batch.length; i++) batch[i]?.done(null, results[i] ?? false);
    };
    if (!this.syncWal) {
      // Never inside the caller of flush() (a read commits the queue first): callbacks run after it returns.
      queueMicrotask(settle);
      return;
    }
    this.awaitingSync.push(settle);
    this.awaitingSyncFailed.push((err) => {
      for (const p of batch) p.done(asError(err), false);
    });
    this.requestSync();
  }

  /** Records a device status change (`online`, `offline`, `down`); committed with the next batch (see {@link queueWrite}). */
  appendStatus(change: StatusChange): void {
    this.assertOpen();
    this.queueWrite(() => this.insertStatus(change));
  }

  private insertStatus(change: StatusChange): void {
    const { lastInsertRowid } = this.stmts.insertStatus.run(
      change.device,
      change.status,
      change.reason ?? null,
      change.ts,
    );
    const cut = Number(lastInsertRowid) - this.maxEvents;
    if (cut > 0 && Number(lastInsertRowid) % 1000 === 0) this.stmts.pruneStatus.run(cut);
  }

  /** Records a supervision or device event. `device` defaults to the one its path names. Committed on return. */
  appendEvent(event: HubEvent, device?: string): void {
    this.assertOpen();
    this.queueWrite(() => this.insertEvent(event, device));
  }

  private insertEvent(event: HubEvent, device?: string): void {
    const { lastInsertRowid } = this.stmts.insertEvent.run(
      event.type,
      event.path,
      device ?? deviceOfPath(event.path),
      event.ts,
      JSON.stringify(event),
    );
    // Pruning by id keeps the newest maxEvents rows; done every 1000 inserts so it costs nothing per event.
    const cut = Number(lastInsertRowid) - this.maxEvents;
    if (cut > 0 && Number(lastInsertRowid) % 1000 === 0) this.stmts.pruneEvents.run(cut);
  }

  /**
   * Readings of one device (one sensor, or all), oldest first. With `since`: the first `limit` readings from
   * there. Without: the newest `limit` readings (still returned oldest first), which is what a chart wants.
   */
  telemetry(query: TelemetryQuery): StoredReading[] {
    this.assertOpen();
    const limit = clampLimit(query.limit);
    const ids: [number, string][] = [];
    for (const [key, entry] of this.sensors) {
      const [device, sensor] = key.split("\0") as [string, string];
      if (device === query.device && (query.sensor === undefined || sensor === query.sensor)) {
        ids.push([entry.id, sensor]);
      }
    }
    if (ids.length === 0) return [];
    const names = new Map(ids);
    const placeholders = ids.map(() => "?").join(", ");
    const where = `sensor_id IN (${placeholders})${query.since !== undefined ? " AND ts >= ?" : ""}`;
    const params: number[] = ids.map(([id]) => id);
    if (query.since !== undefined) params.push(query.since);
    const sql =
      query.since !== undefined
        ? `SELECT sensor_id, ts, seq, value FROM telemetry WHERE ${where} ORDER BY ts, seq, id LIMIT ?`
        : `SELECT * FROM (SELECT id, sensor_id, ts, seq, value FROM telemetry WHERE ${where}
             ORDER BY ts DESC, seq DESC, id DESC LIMIT ?) ORDER BY ts, seq, id`;
    const rows = this.db.prepare(sql).all(...params, limit) as {
      sensor_id: number;
      ts: number;
      seq: number | null;
      value: string;
    }[];
    return rows.map((r) => {
      const out: StoredReading = { ts: r.ts, value: JSON.parse(r.value) as ReadingValue, seq: r.seq };
      if (query.sensor === undefined) out.sensor = names.get(r.sensor_id) ?? "";
      return out;
    });
  }

  /** Events, oldest first, filtered by `since` (ts >= since), device and type; `limit` as for telemetry. */
  events(query: EventQuery = {}): HubEvent[] {
    this.flushWrites();
    this.assertOpen();
    const limit = clampLimit(query.limit);
    const conds: string[] = [];
    const params: (string | number)[] = [];
    if (query.since !== undefined) {
      conds.push("ts >= ?");
      params.push(query.since);
    }
    if (query.device !== undefined) {
      conds.push("device = ?");
      params.push(query.device);
    }
    if (query.type !== undefined) {
      conds.push("type = ?");
      params.push(query.type);
    }
    const where = conds.length > 0 ? `WHERE ${conds.join(" AND ")}` : "";
    const sql =
      query.since !== undefined
        ? `SELECT data FROM events ${where} ORDER BY ts, id LIMIT ?`
        : `SELECT data FROM (SELECT id, ts, data FROM events ${where} ORDER BY ts DESC, id DESC LIMIT ?)
             ORDER BY ts, id`;
    const rows = this.db.prepare(sql).all(...params, limit) as { data: string }[];
    return rows.map((r) => JSON.parse(r.data) as HubEvent);
  }

  /** Status changes of one device, oldest first; `since` and `limit` work as for {@link telemetry}. */
  statusHistory(device: string, options: { since?: number; limit?: number } = {}): StatusChange[] {
    this.flushWrites();
    this.assertOpen();
    const limit = clampLimit(options.limit);
    const sql =
      options.since !== undefined
        ? "SELECT device, status, reason, ts FROM status WHERE device = ? AND ts >= ? ORDER BY ts, id LIMIT ?"
        : `SELECT * FROM (SELECT id, device, status, reason, ts FROM status WHERE device = ?
             ORDER BY ts DESC, id DESC LIMIT ?) ORDER BY ts, id`;
    const params = options.since !== undefined ? [device, options.since, limit] : [device, limit];
    const rows = this.db.prepare(sql).all(...params) as {
      device: string;
      status: string;
      reason: string | null;
      ts: number;
    }[];
    return rows.map((r) => ({
      device: r.device,
      status: r.status,
      ts: r.ts,
      ...(r.reason === null ? {} : { reason: r.reason }),
    }));
  }

  /**
   * Saves the `state/<sensor>` payload the hub last published, so it can re-publish it after a restart. Written
   * in one transaction at most every {@link STATE_WRITE_MS}, newest per sensor: committing (and fsyncing) on every
   * reading cost ~2.5 ms of the main thread each. A crash loses at most that long of health changes; the readings
   * themselves are durable through {@link persistTelemetry}, and the value re-published comes from them.
   * `state` is kept as it is and serialized when written (only the newest per sensor is): do not change it after.
   */
  saveState(device: string, sensor: string, state: Record<string, unknown>): void {
    this.assertOpen();
    this.pendingStates.set(this.sensor(device, sensor).id, state);
    if (this.stateTimer === null) {
      this.stateTimer = setTimeout(() => this.flushStates(STATE_CHUNK), STATE_WRITE_MS);
      this.stateTimer.unref();
    }
  }

  /** Writes the states {@link saveState} has queued: all of them, or `max` now and the rest in the next turns. */
  private flushStates(max = Number.POSITIVE_INFINITY): void {
    if (this.stateTimer !== null) clearTimeout(this.stateTimer);
    this.stateTimer = null;
    if (this.pendingStates.size === 0) return;
    const states: [number, Record<string, unknown>][] = [];
    for (const entry of this.pendingStates) {
      this.pendingStates.delete(entry[0]);
      states.push(entry);
      if (states.length >= max) break;
    }
    this.db.transaction(() => {
      for (const [id, state] of states) this.stmts.saveState.run(JSON.stringify(state), id);
    })();
    this.committed();
    if (this.pendingStates.size > 0) {
      this.stateTimer = setTimeout(() => this.flushStates(STATE_CHUNK), 0);
      this.stateTimer.unref();
    }
  }

  /** The newest reading of every sensor that has one (one index seek each), with its saved state. */
  latest(): LatestReading[] {
    this.assertOpen();
    this.flushStates();
    const out: LatestReading[] = [];
    const states = new Map(
      (
        this.db.prepare("SELECT id, state FROM sensors WHERE state IS NOT NULL").all() as {
          id: number;
          state: string;
        }[]
      ).map((r) => [r.id, JSON.parse(r.state) as Record<string, unknown>]),
    );
    for (const [key, entry] of this.sensors) {
      const newest = this.newestOf(entry);
      if (newest === undefined) continue;
      const [device, sensor] = key.split("\0") as [string, string];
      const reading: LatestReading = { device, sensor, ...newest };
      const state = states.get(entry.id);
      if (state) reading.state = state;
      out.push(reading);
    }
    return out;
  }

  /** The newest committed reading of one sensor (one index seek), or `undefined` if it has none. */
  latestOf(device: string, sensor: string): StoredReading | undefined {
    this.assertOpen();
    const entry = this.sensors.get(`${device}\0${sensor}`);
    return entry === undefined ? undefined : this.newestOf(entry);
  }

  /** A sensor's newest committed row, decoded. */
  private newestOf(entry: SensorEntry): StoredReading | undefined {
    const row = this.stmts.latest.get(entry.id) as
      | { ts: number; seq: number | null; value: string }
      | undefined;
    return row && { ts: row.ts, seq: row.seq, value: JSON.parse(row.value) as ReadingValue };
  }

  /** Rows currently kept for a sensor (from the counter, not a scan). */
  rowCount(device: string, sensor: string): number {
    return this.sensors.get(`${device}\0${sensor}`)?.rows ?? 0;
  }

  /** Commits anything queued, checkpoints the WAL and closes the database. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.flushStates();
    this.flushWrites();
    // Whatever still waits for a sync is synced here; a sync in flight closes the descriptor when it returns.
    if (this.dirty || this.awaitingSync.length > 0) this.syncNow();
    this.closed = true;
    this.db.pragma("wal_checkpoint(TRUNCATE)");
    this.db.close();
    if (!this.syncing && this.walFd !== null && this.walFd !== -1) closeSync(this.walFd);
    if (!this.syncing) this.walFd = -1;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`history store ${this.file} is closed`);
  }
}
