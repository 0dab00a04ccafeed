import { describe, expect, it } from "vitest";
import {
  CallTimeoutError,
  call,
  Down,
  exit,
  type Pid,
  ServerExitError,
  StartError,
  send,
  startIsolated,
  startSupervisor,
  stopSupervisor,
  whichChildren,
} from "../../hub/runtime/index.ts";
import { collector, until } from "./helpers.ts";

const SPINNER = new URL("./fixtures/spinner.ts", import.meta.url);

describe("isolated (worker-thread) processes", () => {
  it("answers calls and exchanges messages with main-thread processes, pids included", async () => {
    const inbox = await collector();
    const pid = await startIsolated(SPINNER, { reportTo: inbox.pid });
    expect(await call(pid, { op: "ping" })).toBe("pong");
    await until(() => inbox.messages.length === 1);
    expect(inbox.messages[0]).toEqual({ started: pid });
    send(pid, { hello: inbox.pid });
    await until(() => inbox.messages.length === 2);
    expect(inbox.messages[1]).toEqual({ echo: { hello: inbox.pid } });
    exit(pid, "kill");
  });

  it("a crash in the worker ends the proxy with the error; monitors see it", async () => {
    const watcher = await collector();
    const pid = await startIsolated(SPINNER, {});
    watcher.self().monitor(pid);
    const err = await call(pid, { op: "crash" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerExitError);
    await until(() => watcher.messages.length === 1);
    const down = watcher.messages[0] as Down;
    expect(down).toBeInstanceOf(Down);
    expect((down.reason as { message: string }).message).toBe("driver crashed");
  });

  it("a failing module is a StartError", async () => {
    await expect(
      startIsolated(new URL("./fixtures/does-not-exist.ts", import.meta.url), {}),
    ).rejects.toBeInstanceOf(StartError);
  });

  it("a driver stuck in while(true) is killed and restarted by its supervisor while the main thread keeps serving", async () => {
    const sup = await startSupervisor({
      children: [
        { id: "driver", start: (ctx) => startIsolated(SPINNER, {}, { link: ctx.parent, label: ctx.path }) },
      ],
    });
    const driver = whichChildren(sup)[0]?.pid as Pid;
    // A 10 ms timer on the main thread keeps firing while the driver spins: the thread stayed free.
    let ticks = 0;
    const ticker = setInterval(() => {
      ticks++;
    }, 10);
    try {
      const err = await call(driver, { op: "spin" }, 300).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CallTimeoutError);
      // ~30 expected in 300 ms; a blocked thread would give 0 or 1 (generous for a loaded 2-core machine).
      expect(ticks).toBeGreaterThanOrEqual(8);
      // What a sensor actor does on a hang: kill the stuck driver; the supervisor restarts it.
      exit(driver, "kill");
      const restarted = await until(() => {
        const p = whichChildren(sup)[0]?.pid;
        return p != null && p !== driver ? p : undefined;
      }, 10_000);
      expect(await call(restarted, { op: "ping" })).toBe("pong");
      expect(whichChildren(sup)[0]?.restarts).toBe(1);
    } finally {
      clearInterval(ticker);
    }
    await stopSupervisor(sup);
  });

  it("resource limits end a worker that allocates past them", async () => {
    const pid = await startIsolated(SPINNER, {}, { resourceLimits: { maxOldGenerationSizeMb: 32 } });
    const err = await call(pid, { op: "alloc", mb: 512 }, 20_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerExitError);
    expect(pid.alive).toBe(false);
  });
});
