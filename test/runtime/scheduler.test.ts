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
    // While the pair runs flat out, a 5 ms timer keeps firing close to on time.
    const lateness: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await sleep(5);
      lateness.push(performance.now() - t0 - 5);
    }
    stop = true;
    exit(pong, "kill");
    exit(ping, "kill");
    lateness.sort((a, b) => a - b);
    expect(rounds).toBeGreaterThan(1000);
    expect(lateness[Math.floor(lateness.length / 2)]).toBeLessThan(20);
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
