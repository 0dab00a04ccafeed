import { describe, expect, it } from "vitest";
import {
  AlreadyRegisteredError,
  awaitTask,
  castAgent,
  exit,
  getAgent,
  newTable,
  Registry,
  startAgent,
  startTask,
  startTaskSupervisor,
  stopSupervisor,
  supervisedTask,
  TableDeletedError,
  TaskExitError,
  TaskTimeoutError,
  updateAgent,
  whichChildren,
} from "../../hub/runtime/index.ts";
import { idle, sleep, until } from "./helpers.ts";

describe("Registry", () => {
  it("keeps names unique and frees a name when its process dies", () => {
    const registry = new Registry<string>("sensors");
    const a = idle();
    const b = idle();
    registry.register("uno-1/temp", a);
    expect(() => registry.register("uno-1/temp", b)).toThrow(AlreadyRegisteredError);
    expect(registry.whereis("uno-1/temp")).toBe(a);
    exit(a, "kill");
    expect(registry.whereis("uno-1/temp")).toBeUndefined();
    registry.register("uno-1/temp", b);
    expect(registry.whereis("uno-1/temp")).toBe(b);
    expect(registry.size).toBe(1);
    exit(b, "kill");
    expect(registry.size).toBe(0);
  });
});

describe("Agent", () => {
  it("holds a value that others read and update", async () => {
    const agent = await startAgent(() => ({ readings: [] as number[] }));
    await updateAgent<{ readings: number[] }>(agent, (s) => ({ readings: [...s.readings, 1] }));
    castAgent<{ readings: number[] }>(agent, (s) => ({ readings: [...s.readings, 2] }));
    expect(await getAgent<{ readings: number[] }, number[]>(agent, (s) => s.readings)).toEqual([1, 2]);
  });
});

describe("Task", () => {
  it("awaits a result", async () => {
    const task = startTask(async () => {
      await sleep(5);
      return 42;
    });
    expect(await awaitTask(task)).toBe(42);
  });

  it("rejects with the task's exit reason when it crashes or is killed", async () => {
    const crashing = startTask(async () => {
      throw new Error("i2c nack");
    });
    await expect(awaitTask(crashing)).rejects.toBeInstanceOf(TaskExitError);
    const slow = startTask(() => sleep(10_000));
    await sleep(1);
    exit(slow.pid, "kill");
    await expect(awaitTask(slow)).rejects.toMatchObject({ reason: "killed" });
  });

  it("times out, killing the task", async () => {
    const task = startTask(() => sleep(10_000));
    await expect(awaitTask(task, 20)).rejects.toBeInstanceOf(TaskTimeoutError);
    expect(task.pid.alive).toBe(false);
  });

  it("runs supervised tasks that do not take the caller or each other down", async () => {
    const sup = await startTaskSupervisor({ path: "tasks" });
    const bad = await supervisedTask(sup, async () => {
      throw new Error("flash failed");
    });
    const good = await supervisedTask(sup, async () => "flashed");
    await expect(awaitTask(bad)).rejects.toBeInstanceOf(TaskExitError);
    expect(await awaitTask(good)).toBe("flashed");
    await until(() => whichChildren(sup).length === 0);
    expect(sup.alive).toBe(true);
    await stopSupervisor(sup);
  });
});

describe("Table", () => {
  it("set replaces, bag keeps distinct objects, duplicate_bag keeps all", () => {
    const owner = idle();
    const set = newTable<string, number>(owner, { type: "set" });
    set.insert("a", 1);
    set.insert("a", 2);
    expect(set.lookup("a")).toEqual([2]);
    expect(set.insertNew("a", 3)).toBe(false);
    const bag = newTable<string, { v: number }>(owner, { type: "bag" });
    bag.insert("k", { v: 1 });
    bag.insert("k", { v: 1 });
    bag.insert("k", { v: 2 });
    expect(bag.lookup("k")).toEqual([{ v: 1 }, { v: 2 }]);
    const dup = newTable<string, number>(owner, { type: "duplicate_bag" });
    dup.insert("k", 1);
    dup.insert("k", 1);
    expect(dup.lookup("k")).toEqual([1, 1]);
    exit(owner, "kill");
  });

  it("ordered_set keeps keys in order, including tuple keys, and answers ranges", () => {
    const owner = idle();
    const t = newTable<[string, number], string>(owner, { type: "ordered_set" });
    t.insert(["uno-1", 30], "c");
    t.insert(["uno-1", 10], "a");
    t.insert(["pi-1", 99], "z");
    t.insert(["uno-1", 20], "b");
    expect(t.toArray().map(([, v]) => v)).toEqual(["z", "a", "b", "c"]);
    expect(t.range(["uno-1", 15], ["uno-1", 30]).map(([, v]) => v)).toEqual(["b", "c"]);
    t.delete(["uno-1", 20]);
    expect(t.first()).toEqual(["pi-1", 99]);
    expect(t.last()).toEqual(["uno-1", 30]);
    expect(t.size).toBe(3);
    exit(owner, "kill");
  });

  it("is freed when its owner dies", () => {
    const owner = idle();
    const t = newTable<string, number>(owner, { name: "readings" });
    t.insert("x", 1);
    exit(owner, "kill");
    expect(t.deleted).toBe(true);
    expect(() => t.lookup("x")).toThrow(TableDeletedError);
  });
});
