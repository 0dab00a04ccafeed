import { describe, expect, it } from "vitest";
import {
  dynamicSupervisorChild,
  exit,
  findNode,
  inspectTree,
  onRuntimeEvent,
  type Pid,
  type RuntimeEvent,
  startChild,
  startDynamicSupervisor,
  startServer,
  startSupervisor,
  stopSupervisor,
  supervisorChild,
  whichChildren,
} from "../../hub/runtime/index.ts";
import { until } from "./helpers.ts";

const server = (id: string) => ({
  id,
  start: (ctx: { parent: Pid }) => startServer({ init: () => ({}) }, undefined, { link: ctx.parent }),
});

describe("introspection", () => {
  it("snapshots the tree with paths, kinds, strategies, restarts, last exits and the restart budget", async () => {
    const events: RuntimeEvent[] = [];
    const off = onRuntimeEvent((e) => events.push(e));
    const hub = await startSupervisor(
      {
        children: [server("events"), dynamicSupervisorChild("fleet")],
      },
      { path: "hub" },
    );
    const fleet = whichChildren(hub)[1]?.pid as Pid;
    await startChild(
      fleet,
      supervisorChild("uno-1", { strategy: "rest_for_one", children: [server("link"), server("board")] }),
    );
    const device = whichChildren(fleet)[0]?.pid as Pid;
    const link = whichChildren(device)[0]?.pid as Pid;
    exit(link, "serial port closed");
    await until(
      () => whichChildren(device)[0]?.restarts === 1 && whichChildren(device)[1]?.status === "running",
    );

    const tree = inspectTree(hub);
    expect(tree).toMatchObject({
      id: "hub",
      path: "hub",
      kind: "supervisor",
      strategy: "one_for_one",
      status: "running",
    });
    const deviceNode = findNode(tree!, "hub/fleet/uno-1");
    expect(deviceNode).toMatchObject({
      kind: "supervisor",
      strategy: "rest_for_one",
      intensity: { max: 3, periodMs: 5000, recent: 1 },
    });
    const linkNode = findNode(tree!, "hub/fleet/uno-1/link");
    expect(linkNode).toMatchObject({ kind: "worker", status: "running", restarts: 1 });
    expect(linkNode?.lastExit?.reason).toBe("serial port closed");
    expect(linkNode?.pid).toMatch(/^<0\.\d+\.0>$/);

    const forLink = events.filter((e) => e.path === "hub/fleet/uno-1/link").map((e) => e.type);
    expect(forLink).toEqual(["started", "exited", "restarted"]);
    expect(events.every((e) => typeof e.ts === "number")).toBe(true);
    off();
    await stopSupervisor(hub);
    expect(inspectTree(hub)).toBeUndefined();
  });

  it("a dynamic supervisor's tree lists children added at run time", async () => {
    const fleet = await startDynamicSupervisor({}, { path: "fleet" });
    await startChild(fleet, server("pi-1"));
    expect(inspectTree(fleet)?.children?.map((c) => c.path)).toEqual(["fleet/pi-1"]);
    await stopSupervisor(fleet);
  });
});
