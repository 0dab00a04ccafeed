import { afterEach, describe, expect, it } from "vitest";
import {
  type ChildSpec,
  call,
  countChildren,
  deleteChild,
  exit,
  ManualClock,
  onRuntimeEvent,
  type Pid,
  RealClock,
  type RuntimeEvent,
  replyWith,
  restartChild,
  StartError,
  SupervisorError,
  startChild,
  startDynamicSupervisor,
  startServer,
  startSupervisor,
  stopSupervisor,
  supervisorChild,
  terminateChild,
  useClock,
  whichChildren,
} from "../../hub/runtime/index.ts";
import { sleep, until } from "./helpers.ts";

afterEach(() => {
  useClock(new RealClock());
});

/** A child that logs its starts and stops, answers `ping`, and can be told how to stop. */
function worker(
  id: string,
  log: string[],
  options: Partial<ChildSpec> & { trap?: boolean; slowStopMs?: number } = {},
): ChildSpec {
  const { trap, slowStopMs, ...spec } = options;
  return {
    id,
    start: (ctx) =>
      startServer(
        {
          init: (_: undefined, self) => {
            log.push(`start:${id}`);
            if (trap) self.setTrapExit(true);
            return {};
          },
          handleCall: (req: "ping", _from, state) => replyWith(req === "ping" ? `pong:${id}` : "?", state),
          terminate: async (reason) => {
            if (slowStopMs !== undefined) await sleep(slowStopMs);
            log.push(`stop:${id}:${String(reason)}`);
          },
        },
        undefined,
        { link: ctx.parent },
      ),
    ...spec,
  };
}

function pidOf(sup: Pid, id: string): Pid {
  const child = whichChildren(sup).find((c) => c.id === id);
  if (child?.pid == null) throw new Error(`${id} is not running`);
  return child.pid;
}

async function waitForRunning(sup: Pid, id: string, not?: Pid): Promise<Pid> {
  return until(
    () => {
      const c = whichChildren(sup).find((x) => x.id === id);
      return c?.pid != null && c.pid !== not && c.pid.alive ? c.pid : undefined;
    },
    2000,
    `${id} running`,
  );
}

describe("Supervisor", () => {
  it("starts children in order and stops them in reverse order", async () => {
    const log: string[] = [];
    const sup = await startSupervisor({
      children: ["a", "b", "c"].map((id) => worker(id, log, { trap: true })),
    });
    expect(log).toEqual(["start:a", "start:b", "start:c"]);
    await stopSupervisor(sup);
    expect(log.slice(3)).toEqual(["stop:c:shutdown", "stop:b:shutdown", "stop:a:shutdown"]);
    expect(sup.alive).toBe(false);
  });

  it("one_for_one restarts only the failed child", async () => {
    const log: string[] = [];
    const sup = await startSupervisor({
      strategy: "one_for_one",
      children: ["a", "b"].map((id) => worker(id, log)),
    });
    const a = pidOf(sup, "a");
    const b = pidOf(sup, "b");
    exit(a, "crash");
    const a2 = await waitForRunning(sup, "a", a);
    expect(await call(a2, "ping")).toBe("pong:a");
    expect(pidOf(sup, "b")).toBe(b);
    expect(log).toEqual(["start:a", "start:b", "start:a"]);
    await stopSupervisor(sup);
  });

  it("one_for_all restarts every child, in order", async () => {
    const log: string[] = [];
    const sup = await startSupervisor({
      strategy: "one_for_all",
      children: ["a", "b", "c"].map((id) => worker(id, log)),
    });
    const b = pidOf(sup, "b");
    exit(b, "crash");
    await waitForRunning(sup, "b", b);
    await waitForRunning(sup, "c");
    expect(log.filter((l) => l.startsWith("start"))).toEqual([
      "start:a",
      "start:b",
      "start:c",
      "start:a",
      "start:b",
      "start:c",
    ]);
    await stopSupervisor(sup);
  });

  it("rest_for_one restarts only the later siblings, in order", async () => {
    const log: string[] = [];
    const sup = await startSupervisor({
      strategy: "rest_for_one",
      children: ["link", "board", "sensors"].map((id) => worker(id, log, { trap: true })),
    });
    const link = pidOf(sup, "link");
    const board = pidOf(sup, "board");
    exit(board, "kill"); // the children trap exits, so only kill brings one down from outside
    const board2 = await waitForRunning(sup, "board", board);
    await until(() => log.length === 6);
    expect(log.slice(3)).toEqual(["stop:sensors:shutdown", "start:board", "start:sensors"]);
    expect(pidOf(sup, "link")).toBe(link);
    expect(board2).not.toBe(board);
    await stopSupervisor(sup);
  });

  it("a transient child exiting normally is not restarted; exiting abnormally is", async () => {
    const log: string[] = [];
    const sup = await startSupervisor({ children: [worker("t", log, { restart: "transient" })] });
    const t = pidOf(sup, "t");
    exit(t, "crash");
    const t2 = await waitForRunning(sup, "t", t);
    exit(t2, "shutdown");
    await sleep(20);
    expect(whichChildren(sup)[0]).toMatchObject({ id: "t", pid: null, status: "down" });
    expect(log).toEqual(["start:t", "start:t"]);
    await stopSupervisor(sup);
  });

  it("a temporary child is never restarted and is forgotten", async () => {
    const log: string[] = [];
    const sup = await startSupervisor({
      children: [worker("tmp", log, { restart: "temporary" }), worker("p", log)],
    });
    exit(pidOf(sup, "tmp"), "crash");
    await until(() => whichChildren(sup).length === 1);
    expect(whichChildren(sup).map((c) => c.id)).toEqual(["p"]);
    await stopSupervisor(sup);
  });

  it("honours shutdown timeouts: kills a child that does not stop in time", async () => {
    const log: string[] = [];
    const sup = await startSupervisor({
      children: [
        worker("slow", log, { trap: true, slowStopMs: 5000, shutdown: 50 }),
        worker("quick", log, { trap: true, slowStopMs: 10 }),
      ],
    });
    const slow = pidOf(sup, "slow");
    const t0 = Date.now();
    await stopSupervisor(sup);
    const took = Date.now() - t0;
    expect(log).toEqual(["start:slow", "start:quick", "stop:quick:shutdown"]);
    expect(slow.alive).toBe(false);
    expect(took).toBeGreaterThanOrEqual(45);
    expect(took).toBeLessThan(2000);
  });

  it("brutal_kill does not run terminate", async () => {
    const log: string[] = [];
    const sup = await startSupervisor({
      children: [worker("b", log, { trap: true, shutdown: "brutal_kill" })],
    });
    await stopSupervisor(sup);
    expect(log).toEqual(["start:b"]);
  });

  it("a child that throws in init fails the supervisor's start and stops the ones already started", async () => {
    const log: string[] = [];
    const bad: ChildSpec = {
      id: "bad",
      start: () =>
        startServer(
          {
            init: () => {
              throw new Error("sensor not found");
            },
          },
          undefined,
        ),
    };
    const err = await startSupervisor({
      children: [worker("a", log, { trap: true }), bad, worker("c", log)],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as Error).message).toContain("bad failed to start");
    expect(log).toEqual(["start:a", "stop:a:shutdown"]);
  });

  it("gives up after more than `intensity` restarts within the period", async () => {
    const clock = new ManualClock();
    useClock(clock);
    const events: RuntimeEvent[] = [];
    const off = onRuntimeEvent((e) => events.push(e));
    const log: string[] = [];
    const sup = await startSupervisor(
      { intensity: 2, periodMs: 5000, children: [worker("w", log)] },
      { path: "root" },
    );
    for (let i = 0; i < 2; i++) {
      const w = pidOf(sup, "w");
      exit(w, "crash");
      await waitForRunning(sup, "w", w);
      await clock.advance(100);
    }
    exit(pidOf(sup, "w"), "crash");
    await until(() => !sup.alive);
    off();
    expect(events.map((e) => e.type)).toContain("gave_up");
    expect(events.find((e) => e.type === "gave_up")?.path).toBe("root");
    expect(log.filter((l) => l === "start:w")).toHaveLength(3);
  });

  it("restarts spread over more than the period stay within intensity", async () => {
    const clock = new ManualClock();
    useClock(clock);
    const log: string[] = [];
    const sup = await startSupervisor({ intensity: 1, periodMs: 1000, children: [worker("w", log)] });
    for (let i = 0; i < 5; i++) {
      const w = pidOf(sup, "w");
      exit(w, "crash");
      await waitForRunning(sup, "w", w);
      await clock.advance(1001);
    }
    expect(sup.alive).toBe(true);
    expect(whichChildren(sup)[0]?.restarts).toBe(5);
    await stopSupervisor(sup);
  });

  it("escalates two levels up when intensity is exceeded", async () => {
    const log: string[] = [];
    const events: RuntimeEvent[] = [];
    const off = onRuntimeEvent((e) => events.push(e));
    const root = await startSupervisor(
      {
        intensity: 1,
        periodMs: 60_000,
        children: [
          worker("bystander", log),
          supervisorChild("mid", {
            intensity: 0,
            periodMs: 60_000,
            children: [
              supervisorChild("leaf", { intensity: 0, periodMs: 60_000, children: [worker("w", log)] }),
            ],
          }),
        ],
      },
      { path: "hub" },
    );
    const bystander = pidOf(root, "bystander");
    const mid = pidOf(root, "mid");
    const leaf = pidOf(mid, "leaf");
    // leaf gives up on the first crash (intensity 0); mid then gives up too; root restarts mid.
    exit(pidOf(leaf, "w"), "crash");
    const mid2 = await waitForRunning(root, "mid", mid);
    await waitForRunning(mid2, "leaf");
    expect(leaf.alive).toBe(false);
    expect(pidOf(root, "bystander")).toBe(bystander);
    const gaveUp = events.filter((e) => e.type === "gave_up").map((e) => e.path);
    expect(gaveUp).toEqual(["hub/mid/leaf", "hub/mid"]);
    expect(events.find((e) => e.type === "restarted" && e.path === "hub/mid")).toBeDefined();
    off();
    await stopSupervisor(root);
  });

  it("terminateChild, restartChild, deleteChild, startChild and countChildren", async () => {
    const log: string[] = [];
    const sup = await startSupervisor({ children: [worker("a", log)] });
    await terminateChild(sup, "a");
    expect(whichChildren(sup)[0]).toMatchObject({ id: "a", pid: null });
    await expect(deleteChild(sup, "nope")).rejects.toBeInstanceOf(SupervisorError);
    const a2 = await restartChild(sup, "a");
    expect(await call(a2, "ping")).toBe("pong:a");
    await expect(deleteChild(sup, "a")).rejects.toMatchObject({ code: "running" });
    await terminateChild(sup, "a");
    await deleteChild(sup, "a");
    await startChild(sup, worker("b", log));
    await expect(startChild(sup, worker("b", log))).rejects.toMatchObject({ code: "running" });
    expect(countChildren(sup)).toEqual({ specs: 1, active: 1, supervisors: 0, workers: 1 });
    await stopSupervisor(sup);
  });
});

describe("DynamicSupervisor", () => {
  it("starts and stops children at run time, up to maxChildren", async () => {
    const log: string[] = [];
    const fleet = await startDynamicSupervisor({ maxChildren: 2 }, { path: "hub/fleet" });
    const d1 = await startChild(fleet, worker("uno-1", log));
    await startChild(fleet, worker("pi-1", log));
    await expect(startChild(fleet, worker("pi-2", log))).rejects.toMatchObject({ code: "max_children" });
    exit(d1, "crash");
    await waitForRunning(fleet, "uno-1", d1);
    await terminateChild(fleet, "uno-1");
    expect(whichChildren(fleet).map((c) => c.id)).toEqual(["pi-1"]);
    await stopSupervisor(fleet);
  });

  it("a child that fails to start is refused without disturbing the others", async () => {
    const log: string[] = [];
    const fleet = await startDynamicSupervisor({});
    const ok = await startChild(fleet, worker("ok", log));
    const err = await startChild(fleet, {
      id: "broken",
      start: () => Promise.reject(new Error("port not found")),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect(ok.alive).toBe(true);
    expect(whichChildren(fleet).map((c) => c.id)).toEqual(["ok"]);
    await stopSupervisor(fleet);
  });
});
