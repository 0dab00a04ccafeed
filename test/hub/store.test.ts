import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HistoryStore, MAX_LIMIT, StoreOpenError, type TelemetryRow } from "../../hub/store.ts";

let dir: string;
const open: HistoryStore[] = [];

function openStore(options: { retention?: number; synchronous?: "full" | "normal" } = {}): HistoryStore {
  const store = HistoryStore.open({ dataDir: dir, ...options });
  open.push(store);
  return store;
}

function readings(device: string, sensor: string, from: number, count: number): TelemetryRow[] {
  return Array.from({ length: count }, (_, i) => ({
    device,
    sensor,
    ts: 1_000_000 + (from + i) * 10,
    value: from + i,
    seq: from + i,
  }));
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ganglion-store-"));
});
afterEach(async () => {
  for (const store of open.splice(0)) store.close();
  await rm(dir, { recursive: true, force: true });
});

describe("history store", () => {
  it("stores readings and queries them by device, sensor, since and limit, oldest first", () => {
    const store = openStore();
    store.appendTelemetry([...readings("uno-1", "temp", 0, 5), ...readings("uno-1", "light", 0, 3)]);
    store.appendTelemetry({ device: "pi-1", sensor: "temp", ts: 5, value: "x", seq: null });
    store.appendTelemetry({ device: "uno-1", sensor: "button", ts: 1_000_005, value: true, seq: 0 });

    const temp = store.telemetry({ device: "uno-1", sensor: "temp" });
    expect(temp).toEqual(readings("uno-1", "temp", 0, 5).map(({ ts, value, seq }) => ({ ts, value, seq })));
    expect(store.telemetry({ device: "uno-1", sensor: "temp", since: 1_000_020 }).map((r) => r.seq)).toEqual([
      2, 3, 4,
    ]);
    expect(
      store.telemetry({ device: "uno-1", sensor: "temp", since: 1_000_000, limit: 2 }).map((r) => r.seq),
    ).toEqual([0, 1]);
    // Without `since`, the newest `limit`, still oldest first.
    expect(store.telemetry({ device: "uno-1", sensor: "temp", limit: 2 }).map((r) => r.seq)).toEqual([3, 4]);
    const all = store.telemetry({ device: "uno-1" });
    expect(all).toHaveLength(9);
    expect(all.slice(0, 3)).toEqual([
      { ts: 1_000_000, value: 0, seq: 0, sensor: "temp" },
      { ts: 1_000_000, value: 0, seq: 0, sensor: "light" },
      { ts: 1_000_005, value: true, seq: 0, sensor: "button" },
    ]);
    expect(store.telemetry({ device: "pi-1", sensor: "temp" })).toEqual([{ ts: 5, value: "x", seq: null }]);
    expect(store.telemetry({ device: "nope" })).toEqual([]);
  });

  it("clamps limit to the API's maximum", () => {
    const store = openStore();
    store.appendTelemetry(readings("d", "s", 0, MAX_LIMIT + 5));
    expect(store.telemetry({ device: "d", sensor: "s", limit: 50_000 })).toHaveLength(MAX_LIMIT);
    expect(store.telemetry({ device: "d", sensor: "s" })).toHaveLength(1000);
  });

  it("drops a replayed reading with the same seq and ts, but keeps a restarted counter's new readings", () => {
    const store = openStore();
    expect(store.appendTelemetry(readings("pi-1", "temp", 0, 5))).toEqual([true, true, true, true, true]);
    // The device replays its buffer: 3..4 again, then new 5..6.
    expect(store.appendTelemetry(readings("pi-1", "temp", 3, 4))).toEqual([false, false, true, true]);
    // The agent restarted and counts from 0 again, at a later time.
    expect(
      store.appendTelemetry({ device: "pi-1", sensor: "temp", ts: 9_000_000, value: 1, seq: 0 }),
    ).toEqual([true]);
    expect(store.telemetry({ device: "pi-1", sensor: "temp" }).map((r) => r.seq)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 0,
    ]);
    expect(store.stats).toMatchObject({ inserted: 8, duplicates: 2 });
  });

  it("keeps only the newest N rows per sensor, per-sensor limits overriding the default", () => {
    const store = openStore({ retention: 10 });
    store.setRetention("uno-1", "fast", 3);
    for (let i = 0; i < 25; i += 5) {
      store.appendTelemetry([...readings("uno-1", "slow", i, 5), ...readings("uno-1", "fast", i, 5)]);
    }
    expect(store.telemetry({ device: "uno-1", sensor: "slow" }).map((r) => r.seq)).toEqual([
      15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
    ]);
    expect(store.telemetry({ device: "uno-1", sensor: "fast" }).map((r) => r.seq)).toEqual([22, 23, 24]);
    expect(store.rowCount("uno-1", "slow")).toBe(10);
    expect(store.rowCount("uno-1", "fast")).toBe(3);
    // A replayed old reading outside the window is re-inserted and pruned again at once: the ring stays newest.
    store.appendTelemetry(readings("uno-1", "fast", 0, 1));
    expect(store.telemetry({ device: "uno-1", sensor: "fast" }).map((r) => r.seq)).toEqual([22, 23, 24]);
  });

  it("prunes large rings in chunks of N/64 rows, back down to the newest N", () => {
    const store = openStore({ retention: 128 }); // slack: 2 rows
    store.appendTelemetry(readings("pi-1", "temp", 0, 130));
    expect(store.rowCount("pi-1", "temp")).toBe(130);
    store.appendTelemetry(readings("pi-1", "temp", 130, 1));
    expect(store.rowCount("pi-1", "temp")).toBe(128);
    const seqs = store.telemetry({ device: "pi-1", sensor: "temp", since: 0 }).map((r) => r.seq);
    expect(seqs).toEqual(Array.from({ length: 128 }, (_, i) => i + 3));
    expect(store.stats.pruned).toBe(3);
  });

  it("keeps data, counts and retention across close and reopen", () => {
    const first = openStore({ retention: 4 });
    first.appendTelemetry(readings("uno-1", "temp", 0, 6));
    first.appendEvent({
      type: "restarted",
      path: "hub/fleet/uno-1/sensors/temp",
      ts: 7,
      reason: "boom",
      restarts: 1,
    });
    first.appendStatus({ device: "uno-1", status: "online", ts: 8 });
    first.close();
    const second = openStore({ retention: 4 });
    expect(second.rowCount("uno-1", "temp")).toBe(4);
    second.appendTelemetry(readings("uno-1", "temp", 5, 3)); // 5 is a duplicate; 6, 7 are new
    expect(second.telemetry({ device: "uno-1", sensor: "temp" }).map((r) => r.seq)).toEqual([4, 5, 6, 7]);
    expect(second.events()).toEqual([
      { type: "restarted", path: "hub/fleet/uno-1/sensors/temp", ts: 7, reason: "boom", restarts: 1 },
    ]);
    expect(second.statusHistory("uno-1")).toEqual([{ device: "uno-1", status: "online", ts: 8 }]);
  });

  it("filters events by since, device and type", () => {
    const store = openStore();
    store.appendEvent({ type: "started", path: "hub/events", ts: 1 });
    store.appendEvent({ type: "offline", path: "hub/fleet/pi-1", ts: 2 });
    store.appendEvent({
      type: "fault_injected",
      path: "hub/fleet/uno-1/sensors/temp",
      ts: 3,
      fault: { kind: "stuck" },
    });
    store.appendEvent({ type: "online", path: "hub/fleet/pi-1", ts: 4 });
    expect(store.events().map((e) => e.ts)).toEqual([1, 2, 3, 4]);
    expect(store.events({ since: 3 }).map((e) => e.ts)).toEqual([3, 4]);
    expect(store.events({ device: "pi-1" }).map((e) => e.type)).toEqual(["offline", "online"]);
    expect(store.events({ type: "fault_injected" })).toEqual([
      { type: "fault_injected", path: "hub/fleet/uno-1/sensors/temp", ts: 3, fault: { kind: "stuck" } },
    ]);
    expect(store.events({ limit: 1 }).map((e) => e.ts)).toEqual([4]);
  });

  it("lists a device's status changes: from `since` onwards, or the newest ones", () => {
    const store = openStore();
    const statuses = ["online", "offline", "down", "online"];
    statuses.forEach((status, i) => {
      store.appendStatus({
        device: "pi-1",
        status,
        ts: 10 + i,
        ...(status === "down" ? { reason: "no broker" } : {}),
      });
    });
    store.appendStatus({ device: "pi-2", status: "online", ts: 11 });
    expect(store.statusHistory("pi-1").map((c) => c.status)).toEqual(statuses);
    expect(store.statusHistory("pi-1", { since: 11, limit: 2 })).toEqual([
      { device: "pi-1", status: "offline", ts: 11 },
      { device: "pi-1", status: "down", ts: 12, reason: "no broker" },
    ]);
    expect(store.statusHistory("pi-1", { limit: 1 })).toEqual([{ device: "pi-1", status: "online", ts: 13 }]);
  });

  it("returns the latest reading and saved state of every sensor", () => {
    const store = openStore();
    store.appendTelemetry([...readings("uno-1", "temp", 0, 3), ...readings("pi-1", "temp", 0, 2)]);
    // A late replay of an old reading does not become "latest".
    store.appendTelemetry({ device: "pi-1", sensor: "temp", ts: 1, value: -1, seq: 99 });
    store.saveState("uno-1", "temp", { value: 2, ts: 1_000_020, unit: "°C", health: "ok" });
    const latest = store.latest().sort((a, b) => a.device.localeCompare(b.device));
    expect(latest).toEqual([
      { device: "pi-1", sensor: "temp", ts: 1_000_010, value: 1, seq: 1 },
      {
        device: "uno-1",
        sensor: "temp",
        ts: 1_000_020,
        value: 2,
        seq: 2,
        state: { value: 2, ts: 1_000_020, unit: "°C", health: "ok" },
      },
    ]);
  });

  it("group-commits readings handed over in the same tick, resolving after the commit", async () => {
    const store = openStore();
    const commitsBefore = store.stats.commits;
    const results = await Promise.all([
      ...readings("pi-1", "temp", 0, 50).map((r) => store.persistTelemetry(r)),
      store.persistTelemetry({ device: "pi-1", sensor: "temp", ts: 1_000_000, value: 0, seq: 0 }),
    ]);
    expect(results.filter(Boolean)).toHaveLength(50);
    expect(results.at(-1)).toBe(false);
    expect(store.stats.commits - commitsBefore).toBe(1);
    // Committed means visible to another connection reading the same file.
    const other = openStore();
    expect(other.rowCount("pi-1", "temp")).toBe(50);
  });

  it("names the file and the flag when the data dir cannot hold a database", async () => {
    const file = join(dir, "not-a-dir");
    await writeFile(file, "x");
    expect(() => HistoryStore.open({ dataDir: join(file, "data") })).toThrow(StoreOpenError);
    expect(() => HistoryStore.open({ dataDir: join(file, "data") })).toThrow(
      new RegExp(`^cannot open the history database ${file}/data/ganglion\\.db: .+ \\(check --data-dir\\)$`),
    );
  });

  it("refuses a bad row on its own, without failing the readings committed with it", async () => {
    const store = openStore();
    const good = readings("pi-1", "temp", 0, 3).map((r) => store.persistTelemetry(r));
    const bad = [
      store.persistTelemetry({ device: "pi-1", sensor: "temp", ts: Number.NaN, value: 1, seq: 9 }),
      store.persistTelemetry({
        device: "pi-1",
        sensor: "temp",
        ts: 5,
        value: Number.POSITIVE_INFINITY,
        seq: 10,
      }),
      store.persistTelemetry({ device: "pi-1", sensor: "temp", ts: 5, value: 1, seq: 1.5 }),
    ];
    const outcomes = Promise.all(
      bad.map((p) =>
        p.then(
          () => "stored",
          (e: unknown) => e,
        ),
      ),
    );
    expect(await Promise.all(good)).toEqual([true, true, true]);
    for (const err of await outcomes) {
      expect(err).toBeInstanceOf(TypeError);
    }
    expect(() => store.appendTelemetry({ device: "", sensor: "t", ts: 1, value: 1 })).toThrow(TypeError);
    expect(store.telemetry({ device: "pi-1", sensor: "temp" }).map((r) => r.seq)).toEqual([0, 1, 2]);
  });

  it("refuses use after close", () => {
    const store = openStore();
    store.close();
    expect(() => store.appendTelemetry(readings("a", "b", 0, 1))).toThrow(/closed/);
  });
});
