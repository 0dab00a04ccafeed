import { describe, expect, it } from "vitest";
import {
  Down,
  Exit,
  exit,
  isDown,
  type Process,
  processCount,
  send,
  spawn,
  TIMEOUT,
} from "../../hub/runtime/index.ts";
import { collector, idle, sleep, until } from "./helpers.ts";

describe("processes", () => {
  it("prints pids Erlang-style and reports liveness", async () => {
    const pid = idle();
    expect(pid.toString()).toMatch(/^<0\.\d+\.0>$/);
    expect(pid.alive).toBe(true);
    exit(pid, "kill");
    expect(pid.alive).toBe(false);
  });

  it("keeps per-sender message order", async () => {
    const c = await collector();
    const senders = [0, 1, 2].map((s) =>
      spawn(async () => {
        for (let i = 0; i < 200; i++) send(c.pid, [s, i]);
      }),
    );
    expect(senders).toHaveLength(3);
    await until(() => c.messages.length === 600);
    for (const s of [0, 1, 2]) {
      const seq = c.messages.filter((m) => (m as number[])[0] === s).map((m) => (m as number[])[1]);
      expect(seq).toEqual([...Array(200).keys()]);
    }
  });

  it("sending to a dead pid is a no-op", async () => {
    const pid = idle();
    exit(pid, "kill");
    expect(() => send(pid, "hello")).not.toThrow();
  });

  it("selective receive takes the first match and leaves the rest in order", async () => {
    const got: unknown[] = [];
    const pid = spawn(async (self) => {
      await sleep(5);
      got.push(await self.receive((m): m is string => m === "b"));
      got.push(await self.receive());
      got.push(await self.receive());
    });
    send(pid, "a");
    send(pid, "b");
    send(pid, "c");
    await until(() => got.length === 3);
    expect(got).toEqual(["b", "a", "c"]);
  });

  it("receive with a timeout resolves TIMEOUT when nothing matches in time", async () => {
    let result: unknown;
    const pid = spawn(async (self) => {
      result = await self.receive((m) => m === "never", 20);
    });
    send(pid, "other");
    await until(() => result !== undefined);
    expect(result).toBe(TIMEOUT);
    let immediate: unknown;
    spawn(async (self) => {
      immediate = await self.receive(undefined, 0);
    });
    await until(() => immediate !== undefined);
    expect(immediate).toBe(TIMEOUT);
  });

  it("a thrown error ends only that process, with the error as reason", async () => {
    const bystander = idle();
    const watcher = await collector();
    const crasher = spawn(async (self) => {
      await self.receive();
      throw new Error("boom");
    });
    watcher.self().monitor(crasher);
    send(crasher, "go");
    await until(() => watcher.messages.length === 1);
    const down = watcher.messages[0] as Down;
    expect(down).toBeInstanceOf(Down);
    expect((down.reason as Error).message).toBe("boom");
    expect(bystander.alive).toBe(true);
  });

  it("a rejected promise is a crash too", async () => {
    const watcher = await collector();
    const pid = spawn(async () => {
      await Promise.reject(new Error("rejected"));
    });
    watcher.self().monitor(pid);
    await until(() => watcher.messages.length === 1);
    expect(((watcher.messages[0] as Down).reason as Error).message).toBe("rejected");
  });
});

describe("links and exit signals", () => {
  it("an abnormal exit kills linked processes; a normal exit does not", async () => {
    const a = idle();
    const b = idle({ link: a });
    const c = idle();
    const d = idle({ link: c });
    exit(a, "crash");
    expect(b.alive).toBe(false);
    expect(b.proc).toBeNull();
    const finisher = spawn(async () => {}, { link: d });
    await until(() => !finisher.alive);
    expect(d.alive).toBe(true);
    exit(c, "kill");
  });

  it("a trapping process gets Exit messages instead of dying", async () => {
    const c = await collector({ trapExit: true });
    const child = idle({ link: c.pid });
    exit(child, "oops");
    await until(() => c.messages.length === 1);
    const msg = c.messages[0] as Exit;
    expect(msg).toBeInstanceOf(Exit);
    expect(msg.from).toBe(child);
    expect(msg.reason).toBe("oops");
    expect(c.pid.alive).toBe(true);
  });

  it("kill is not trappable, and linked processes see `killed`", async () => {
    const trapper = await collector({ trapExit: true });
    const linked = await collector({ trapExit: true });
    linked.self().link(trapper.pid);
    exit(trapper.pid, "kill");
    expect(trapper.pid.alive).toBe(false);
    await until(() => linked.messages.length === 1);
    expect((linked.messages[0] as Exit).reason).toBe("killed");
  });

  it("exit(pid, 'normal') is ignored by a process that does not trap exits", () => {
    const pid = idle();
    exit(pid, "normal");
    expect(pid.alive).toBe(true);
    exit(pid, "kill");
  });

  it("linking to a dead process signals noproc", async () => {
    const dead = idle();
    exit(dead, "kill");
    const c = await collector({ trapExit: true });
    c.self().link(dead);
    await until(() => c.messages.length === 1);
    expect((c.messages[0] as Exit).reason).toBe("noproc");
  });

  it("propagates along a long chain of links without overflowing the stack", async () => {
    const first = idle();
    let prev = first;
    const chain = [first];
    for (let i = 0; i < 20_000; i++) {
      prev = idle({ link: prev });
      chain.push(prev);
    }
    exit(first, "boom");
    expect(chain.every((p) => !p.alive)).toBe(true);
  });
});

describe("monitors", () => {
  it("a monitor of a dead pid gets DOWN with noproc at once", async () => {
    const dead = idle();
    exit(dead, "kill");
    const c = await collector();
    const ref = c.self().monitor(dead);
    await until(() => c.messages.length === 1);
    expect(c.messages[0]).toEqual(new Down(ref, dead, "noproc"));
  });

  it("DOWN carries the reason; demonitor stops it", async () => {
    const c = await collector();
    const a = idle();
    const b = idle();
    const refA = c.self().monitor(a);
    const refB = c.self().monitor(b);
    c.self().demonitor(refB);
    exit(a, "bye");
    exit(b, "bye");
    await sleep(5);
    expect(c.messages.filter(isDown)).toEqual([new Down(refA, a, "bye")]);
  });

  it("counts live processes", async () => {
    const before = processCount();
    const pids = [idle(), idle(), idle()];
    expect(processCount()).toBe(before + 3);
    for (const p of pids) exit(p, "kill");
    expect(processCount()).toBe(before);
  });

  it("a killed process stops at its next receive", async () => {
    let after = false;
    let proc: Process | undefined;
    const pid = spawn(async (self) => {
      proc = self;
      await sleep(20);
      await self.receive();
      after = true;
    });
    await until(() => proc !== undefined);
    exit(pid, "kill");
    send(pid, "late");
    await sleep(40);
    expect(after).toBe(false);
  });
});
