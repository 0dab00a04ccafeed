import { describe, expect, it } from "vitest";
import { call, exit, replyWith, send, spawn, startServer } from "../../hub/runtime/index.ts";
import { sleep } from "./helpers.ts";

describe("fairness", () => {
  it("a busy ping-pong never starves Node's timers and I/O", async () => {
    let stop = false;
    let rounds = 0;
    const pong = spawn(async (self) => {
      for (;;) {
        const from = (await self.receive()) as { from: import("../../hub/runtime/index.ts").Pid };
        send(from.from, "pong");
      }
    });
    const ping = spawn(async (self) => {
      while (!stop) {
        send(pong, { from: self.pid });
        await self.receive();
        rounds++;
      }
    });
    // While the pair runs flat out, the event loop keeps getting turns. Measured in CPU time between turns (not
    // wall time), so a loaded machine that preempts the whole process does not make it flaky.
    let turns = 0;
    const gapsMs: number[] = [];
    let last = process.cpuUsage();
    await new Promise<void>((resolve) => {
      const turn = () => {
        const now = process.cpuUsage();
        gapsMs.push((now.user - last.user + now.system - last.system) / 1000);
        last = now;
        if (++turns < 200) setImmediate(turn);
        else resolve();
      };
      setImmediate(turn);
    });
    let timerFired = false;
    setTimeout(() => {
      timerFired = true;
    }, 5);
    await sleep(30);
    stop = true;
    exit(pong, "kill");
    exit(ping, "kill");
    expect(rounds).toBeGreaterThan(1000);
    expect(timerFired).toBe(true);
    // A slice is 1 ms of work. Process CPU time also counts GC helper threads, so judge the typical turn (p90)
    // tightly and the worst one loosely; without the slice rule the loop would never get a turn at all.
    gapsMs.sort((a, b) => a - b);
    expect(gapsMs[Math.floor(gapsMs.length * 0.9)]).toBeLessThan(10);
    expect(gapsMs[gapsMs.length - 1]).toBeLessThan(250);
  });

  it("a flood of casts to a server does not starve calls from plain code or timers", async () => {
    const server = await startServer(
      {
        init: () => 0,
        handleCast: (_m: "tick", n: number) => n + 1,
        handleCall: (_q: "count", _f, n: number) => replyWith(n, n),
      },
      undefined,
    );
    const flooder = spawn(async (self) => {
      for (;;) {
        for (let i = 0; i < 1000; i++) send(server, "noise");
        // yield to the scheduler between bursts, like a busy device reader
        send(self.pid, "next");
        await self.receive();
      }
    });
    const t0 = performance.now();
    await sleep(10);
    expect(performance.now() - t0).toBeLessThan(200);
    expect(typeof (await call(server, "count"))).toBe("number");
    exit(flooder, "kill");
  });
});
