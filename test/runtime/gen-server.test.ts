import { afterEach, describe, expect, it } from "vitest";
import {
  CallTimeoutError,
  call,
  cast,
  type Exit,
  exit,
  type From,
  type GenServerSpec,
  ManualClock,
  NoProcError,
  names,
  noreply,
  RealClock,
  Registry,
  reply,
  replyWith,
  ServerExitError,
  StartError,
  send,
  startServer,
  stop,
  stopServer,
  useClock,
  via,
  watchedDeadlines,
} from "../../hub/runtime/index.ts";
import { collector, sleep, until } from "./helpers.ts";

type Req =
  | { op: "get" }
  | { op: "inc"; by: number }
  | { op: "defer" }
  | { op: "release" }
  | { op: "crash" }
  | { op: "quit" };

function counterSpec(
  log: string[] = [],
): GenServerSpec<{ n: number; waiting: From<unknown>[] }, number, Req, unknown, string> {
  return {
    init: (n) => ({ n, waiting: [] }),
    handleCall(req, from, state) {
      switch (req.op) {
        case "get":
          return replyWith(state.n, state);
        case "inc":
          return replyWith(state.n + req.by, { ...state, n: state.n + req.by });
        case "defer":
          return noreply({ ...state, waiting: [...state.waiting, from] });
        case "release":
          for (const f of state.waiting) reply(f, state.n);
          return replyWith("released", { ...state, waiting: [] });
        case "crash":
          throw new Error("server blew up");
        case "quit":
          return stop("normal", state, "bye");
      }
    },
    handleCast(msg, state) {
      log.push(`cast:${msg}`);
      return { ...state, n: state.n + 100 };
    },
    handleInfo(msg, state) {
      log.push(`info:${String(msg)}`);
      return state;
    },
    terminate(reason) {
      log.push(`terminate:${typeof reason === "string" ? reason : "error"}`);
    },
  };
}

afterEach(() => {
  useClock(new RealClock());
});

describe("GenServer", () => {
  it("handles calls, casts and info in order", async () => {
    const log: string[] = [];
    const pid = await startServer(counterSpec(log), 1);
    expect(await call(pid, { op: "inc", by: 2 })).toBe(3);
    cast(pid, "x");
    send(pid, "hello");
    expect(await call(pid, { op: "get" })).toBe(103);
    expect(log).toEqual(["cast:x", "info:hello"]);
  });

  it("supports deferred replies", async () => {
    const pid = await startServer(counterSpec(), 7);
    const a = call(pid, { op: "defer" });
    const b = call(pid, { op: "defer" });
    expect(await call(pid, { op: "release" })).toBe("released");
    expect(await Promise.all([a, b])).toEqual([7, 7]);
  });

  it("a call to a server that dies mid-call rejects with its exit reason", async () => {
    const pid = await startServer(counterSpec(), 0);
    const pending = call(pid, { op: "defer" });
    await sleep(1);
    exit(pid, "kill");
    await expect(pending).rejects.toBeInstanceOf(ServerExitError);
    await expect(pending).rejects.toMatchObject({ reason: "killed" });
  });

  it("a crash in handleCall rejects the caller with the error, runs terminate, and ends only the server", async () => {
    const log: string[] = [];
    const pid = await startServer(counterSpec(log), 0);
    const err = await call(pid, { op: "crash" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerExitError);
    expect(((err as ServerExitError).reason as Error).message).toBe("server blew up");
    expect(pid.alive).toBe(false);
    expect(log).toContain("terminate:error");
  });

  it("stop with a reply replies, then terminates", async () => {
    const log: string[] = [];
    const pid = await startServer(counterSpec(log), 0);
    expect(await call(pid, { op: "quit" })).toBe("bye");
    await until(() => !pid.alive);
    expect(log).toEqual(["terminate:normal"]);
  });

  it("calling a dead or unknown server rejects with noproc", async () => {
    const pid = await startServer(counterSpec(), 0);
    exit(pid, "kill");
    await expect(call(pid, { op: "get" })).rejects.toBeInstanceOf(NoProcError);
    await expect(call("nobody-here", { op: "get" })).rejects.toMatchObject({ reason: "noproc" });
  });

  it("times out with a typed error, leaves no timer per call, and drops the late reply", async () => {
    const clock = new ManualClock();
    useClock(clock);
    const pid = await startServer(counterSpec(), 0);
    const calls = Array.from({ length: 50 }, () => call(pid, { op: "defer" }, 1000));
    const settled = Promise.allSettled(calls);
    // One shared timer for all 50 deadlines.
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance(999);
    expect(watchedDeadlines()).toBe(50);
    await clock.advance(1);
    const results = await settled;
    expect(results.every((r) => r.status === "rejected" && r.reason instanceof CallTimeoutError)).toBe(true);
    expect(watchedDeadlines()).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
    // The server is fine; releasing the timed-out callers does nothing.
    expect(await call(pid, { op: "release" }, 1000)).toBe("released");
  });

  it("completed calls leave nothing behind", async () => {
    const pid = await startServer(counterSpec(), 0);
    for (let i = 0; i < 100; i++) await call(pid, { op: "inc", by: 1 });
    expect(watchedDeadlines()).toBe(0);
  });

  it("init that throws fails the start with StartError and no process is left", async () => {
    const err = await startServer(
      {
        init: () => {
          throw new Error("no config");
        },
      },
      undefined,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect(((err as StartError).reason as Error).message).toBe("no config");
  });

  it("async init holds messages until it is done", async () => {
    const pid = await startServer(
      {
        init: async () => {
          await sleep(10);
          return ["ready"];
        },
        handleCall: (_req: "log", _from, state: string[]) => replyWith(state, state),
        handleInfo: (msg, state: string[]) => [...state, String(msg)],
      },
      undefined,
    );
    send(pid, "after");
    expect(await call(pid, "log")).toEqual(["ready", "after"]);
  });

  it("registers names, refuses a taken one, and frees it when the server dies", async () => {
    const pid = await startServer(counterSpec(), 5, { name: "counter" });
    expect(await call("counter", { op: "get" })).toBe(5);
    await expect(startServer(counterSpec(), 0, { name: "counter" })).rejects.toBeInstanceOf(StartError);
    exit(pid, "kill");
    expect(names.whereis("counter")).toBeUndefined();
    await startServer(counterSpec(), 9, { name: "counter" });
    expect(await call("counter", { op: "get" })).toBe(9);
  });

  it("addresses servers through via-names in a Registry", async () => {
    const devices = new Registry<string>("devices");
    await startServer(counterSpec(), 42, { name: via(devices, "uno-1") });
    expect(await call(via(devices, "uno-1"), { op: "get" })).toBe(42);
    expect(devices.keysOf(devices.whereis("uno-1")!)).toEqual(["uno-1"]);
  });

  it("stopServer runs terminate and waits until the server is gone", async () => {
    const log: string[] = [];
    const pid = await startServer(counterSpec(log), 0);
    await stopServer(pid, "shutdown");
    expect(pid.alive).toBe(false);
    expect(log).toEqual(["terminate:shutdown"]);
  });

  it("a trapping server stops with its parent's exit reason", async () => {
    const log: string[] = [];
    const parent = await collector({ trapExit: true });
    const spec = counterSpec(log);
    const trapping = {
      ...spec,
      init: (n: number, self: import("../../hub/runtime/index.ts").Process) => {
        self.setTrapExit(true);
        return spec.init(n, self);
      },
    };
    const pid = await startServer(trapping, 0, { link: parent.pid });
    exit(pid, "shutdown", parent.pid);
    await until(() => !pid.alive);
    expect(log).toEqual(["terminate:shutdown"]);
    await until(() => parent.messages.length === 1);
    expect((parent.messages[0] as Exit).reason).toBe("shutdown");
  });
});
