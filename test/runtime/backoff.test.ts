import { afterEach, describe, expect, it } from "vitest";
import {
  backoffDelay,
  type ChildSpec,
  exit,
  ManualClock,
  onRuntimeEvent,
  type Pid,
  RealClock,
  type RuntimeEvent,
  startServer,
  startSupervisor,
  stopSupervisor,
  useClock,
  whichChildren,
} from "../../hub/runtime/index.ts";
import { until } from "./helpers.ts";

afterEach(() => {
  useClock(new RealClock());
});

describe("backoff delays", () => {
  it("grow exponentially from min to max", () => {
    const opts = { minMs: 100, maxMs: 1000, jitter: 0 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(opts, n))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it("stay within the jitter band and never exceed max", () => {
    for (const r of [0, 0.25, 0.5, 0.999]) {
      const d = backoffDelay({ minMs: 1000, maxMs: 1100, jitter: 0.2, random: () => r }, 1);
      expect(d).toBeGreaterThanOrEqual(800);
      expect(d).toBeLessThanOrEqual(1100);
    }
  });
});

describe("a supervisor with a backoff child (an unplugged board)", () => {
  it("retries with growing delays, shows down after a few failures, and leaves the budget and siblings alone", async () => {
    const clock = new ManualClock();
    useClock(clock);
    const events: RuntimeEvent[] = [];
    const off = onRuntimeEvent((e) => events.push(e));
    let plugged = true;
    let starts = 0;
    const board: ChildSpec = {
      id: "link",
      backoff: { minMs: 100, maxMs: 1000, jitter: 0, downAfter: 2, resetAfterMs: 10_000 },
      start: (ctx) => {
        starts++;
        if (!plugged) throw new Error("ENOENT /dev/ttyACM0");
        return startServer({ init: () => ({}) }, undefined, { link: ctx.parent });
      },
    };
    const neighbour: ChildSpec = {
      id: "other",
      start: (ctx) => startServer({ init: () => ({}) }, undefined, { link: ctx.parent }),
    };
    // intensity 0: any counted restart would make it give up; backoff restarts must not count.
    const sup = await startSupervisor({ intensity: 0, children: [board, neighbour] }, { path: "dev" });
    const other = whichChildren(sup)[1]?.pid as Pid;
    plugged = false;
    exit(whichChildren(sup)[0]?.pid as Pid, "disconnected");
    await clock.advance(0);
    await clock.advance(100); // attempt 1 after 100 ms: fails
    await clock.advance(200); // attempt 2 after 200 ms: fails
    await clock.advance(400); // attempt 3 after 400 ms: fails
    const delays = events.filter((e) => e.type === "backoff").map((e) => e.delayMs);
    expect(delays).toEqual([100, 200, 400, 800]);
    expect(whichChildren(sup)[0]?.status).toBe("down");
    expect(sup.alive).toBe(true);
    expect(whichChildren(sup)[1]?.pid).toBe(other);
    plugged = true;
    await clock.advance(800);
    await until(() => whichChildren(sup)[0]?.status === "running");
    expect(starts).toBe(5);
    off();
    await stopSupervisor(sup);
  });

  it("rest_for_one: later siblings stop while the link backs off and come back after it", async () => {
    const clock = new ManualClock();
    useClock(clock);
    const log: string[] = [];
    const child = (id: string, extra: Partial<ChildSpec> = {}): ChildSpec => ({
      id,
      start: (ctx) => {
        log.push(`start:${id}`);
        return startServer({ init: () => ({}) }, undefined, { link: ctx.parent });
      },
      ...extra,
    });
    const sup = await startSupervisor({
      strategy: "rest_for_one",
      children: [child("link", { backoff: { minMs: 500, jitter: 0 } }), child("board"), child("sensors")],
    });
    exit(whichChildren(sup)[0]?.pid as Pid, "unplugged");
    await clock.advance(0);
    expect(whichChildren(sup).map((c) => c.status)).toEqual(["restarting", "restarting", "restarting"]);
    await clock.advance(500);
    await until(() => whichChildren(sup).every((c) => c.status === "running"));
    expect(log.slice(3)).toEqual(["start:link", "start:board", "start:sensors"]);
    await stopSupervisor(sup);
  });
});
