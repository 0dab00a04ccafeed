/**
 * Runtime benchmarks: the workloads of ../shared/anchors (Erlang/OTP and nact) on Ganglion's runtime.
 * Each workload runs in a fresh Node process (`node --expose-gc --import tsx bench/runtime.ts <workload>`) and
 * prints one JSON object per metric: {"suite":"runtime","bench","metric","value","unit"}.
 * The fairness rule (yield to the event loop every millisecond of work) is on, as always.
 */
import {
  call,
  exit,
  type Pid,
  replyWith,
  send,
  spawn,
  startIsolated,
  startServer,
  startSupervisor,
  stopSupervisor,
  whichChildren,
} from "../hub/runtime/index.ts";
import { runQueueLength } from "../hub/runtime/scheduler.ts";

/** One measured figure. */
export interface Metric {
  suite: string;
  bench: string;
  metric: string;
  value: number;
  unit: "ns" | "us" | "ms" | "s" | "bytes" | "per_s";
}

const out: Metric[] = [];
function emit(bench: string, metric: string, value: number, unit: Metric["unit"]): void {
  const m = { suite: "runtime", bench, metric, value: Math.round(value * 100) / 100, unit };
  out.push(m);
  console.log(JSON.stringify(m));
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const now = () => performance.now();
const quiesce = async () => {
  while (runQueueLength() > 0) await new Promise<void>((r) => setImmediate(r));
  await new Promise<void>((r) => setImmediate(r));
};
function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}
// Seeded PRNG so every run kills the same children.
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

async function benchSpawn(): Promise<void> {
  const N = 1_000_000;
  gc();
  await quiesce();
  gc();
  const before = process.memoryUsage().heapUsed;
  const pids = new Array<Pid>(N);
  const t0 = now();
  for (let i = 0; i < N; i++) {
    pids[i] = spawn(async (self) => {
      await self.receive();
    });
  }
  const tSpawn = now() - t0;
  await quiesce(); // every process has run to its receive
  const tReady = now() - t0;
  gc();
  const after = process.memoryUsage().heapUsed;
  // The anchor leaves out the memory of the list holding the pids (8 bytes a slot here).
  const bytesPerProcess = (after - before) / N - 8;
  emit("spawn", "ns_per_spawn", (tSpawn * 1e6) / N, "ns");
  emit("spawn", "ms_until_all_waiting", tReady, "ms");
  emit("spawn", "bytes_per_process", bytesPerProcess, "bytes");
  const t1 = now();
  for (const pid of pids) exit(pid, "kill");
  emit("spawn", "kill_all_ms", now() - t1, "ms");
}

async function benchPingPong(): Promise<void> {
  const N = 1_000_000;
  const pong = spawn(async (self) => {
    for (;;) {
      const from = (await self.receive()) as Pid;
      send(from, "pong");
    }
  });
  const elapsed = await new Promise<number>((resolve) => {
    spawn(async (self) => {
      const t0 = now();
      for (let i = 0; i < N; i++) {
        send(pong, self.pid);
        await self.receive();
      }
      resolve(now() - t0);
    });
  });
  emit("pingpong", "ns_per_round_trip", (elapsed * 1e6) / N, "ns");
  emit("pingpong", "round_trips_per_s", N / (elapsed / 1000), "per_s");
  exit(pong, "kill");
}

const counter = {
  init: () => 0,
  handleCall: (_req: "inc", _from: unknown, n: number) => replyWith(n + 1, n + 1),
};

async function benchCall(): Promise<void> {
  const TOTAL = 1_000_000;
  let server = await startServer(counter, undefined);
  let elapsed = await new Promise<number>((resolve) => {
    spawn(async () => {
      const t0 = now();
      for (let i = 0; i < TOTAL; i++) await call(server, "inc");
      resolve(now() - t0);
    });
  });
  if ((await call(server, "inc")) !== TOTAL + 1) throw new Error("counter mismatch (1 client)");
  emit("call", "calls_per_s_1", TOTAL / (elapsed / 1000), "per_s");
  emit("call", "ns_per_call_1", (elapsed * 1e6) / TOTAL, "ns");

  server = await startServer(counter, undefined);
  const CLIENTS = 100;
  const t0 = now();
  await Promise.all(
    Array.from(
      { length: CLIENTS },
      () =>
        new Promise<void>((resolve) => {
          spawn(async () => {
            for (let i = 0; i < TOTAL / CLIENTS; i++) await call(server, "inc");
            resolve();
          });
        }),
    ),
  );
  elapsed = now() - t0;
  if ((await call(server, "inc")) !== TOTAL + 1) throw new Error("counter mismatch (100 clients)");
  emit("call", "calls_per_s_100", TOTAL / (elapsed / 1000), "per_s");
}

/**
 * 10k senders × 100 messages to one collector. Measured twice: with the collector as a GenServer (handleInfo, how
 * the hub's actors are written) and as an async function looping on `receive`.
 */
async function benchFanIn(): Promise<void> {
  const SENDERS = 10_000;
  const PER = 100;
  const TOTAL = SENDERS * PER;

  async function run(collector: Pid, finished: Promise<number>): Promise<number> {
    const senders: Pid[] = [];
    for (let s = 0; s < SENDERS; s++) {
      senders.push(
        spawn(async (self) => {
          await self.receive();
          for (let i = 0; i < PER; i++) send(collector, i);
        }),
      );
    }
    await quiesce();
    const t0 = now();
    for (const s of senders) send(s, "go");
    return TOTAL / (((await finished) - t0) / 1000);
  }

  let done!: (t: number) => void;
  let finished = new Promise<number>((r) => {
    done = r;
  });
  const server = await startServer(
    {
      init: () => 0,
      handleInfo: (_msg: unknown, n: number) => {
        if (n + 1 === TOTAL) done(now());
        return n + 1;
      },
    },
    undefined,
  );
  emit("fanin", "msgs_per_s", await run(server, finished), "per_s");

  finished = new Promise<number>((r) => {
    done = r;
  });
  const receiver = spawn(async (self) => {
    for (let i = 0; i < TOTAL; i++) await self.receive();
    done(now());
  });
  emit("fanin", "msgs_per_s_receive", await run(receiver, finished), "per_s");
}

/** Workers that report each start, so restart latency is measured until the new worker answers a call. */
let onWorkerStarted: ((id: number, pid: Pid) => void) | null = null;
function workerSpec(id: number) {
  return {
    id: `w${id}`,
    start: (ctx: { parent: Pid }) =>
      startServer(
        {
          init: (_args: undefined, self: { pid: Pid }) => {
            onWorkerStarted?.(id, self.pid);
            return id;
          },
          handleCall: (_req: "ping", _from: unknown, s: number) => replyWith("pong", s),
        },
        undefined,
        { link: ctx.parent },
      ),
  };
}

async function benchSupervisor(): Promise<void> {
  const N = 10_000;
  const children = Array.from({ length: N }, (_, i) => workerSpec(i));
  let t0 = now();
  let sup = await startSupervisor({
    strategy: "one_for_one",
    intensity: 1_000_000,
    periodMs: 1000,
    children,
  });
  emit("sup_start_10k", "ms", now() - t0, "ms");

  const random = lcg(42);
  const latencies: number[] = [];
  for (let rep = 0; rep < 1000; rep++) {
    const victim = Math.floor(random() * N);
    const old = whichChildren(sup)[victim]?.pid as Pid;
    const restarted = new Promise<Pid>((resolve) => {
      onWorkerStarted = (id, pid) => {
        if (id === victim) resolve(pid);
      };
    });
    const start = now();
    exit(old, "kill");
    await call(await restarted, "ping");
    latencies.push((now() - start) * 1000);
  }
  onWorkerStarted = null;
  latencies.sort((a, b) => a - b);
  emit("restart_one_for_one", "p50_us", percentile(latencies, 50), "us");
  emit("restart_one_for_one", "p99_us", percentile(latencies, 99), "us");
  t0 = now();
  await stopSupervisor(sup);
  emit("sup_shutdown_10k", "ms", now() - t0, "ms");

  const M = 100;
  sup = await startSupervisor({
    strategy: "one_for_all",
    intensity: 1_000_000,
    periodMs: 1000,
    children: Array.from({ length: M }, (_, i) => workerSpec(i)),
  });
  const allLatencies: number[] = [];
  for (let rep = 0; rep < 1000; rep++) {
    const victim = Math.floor(random() * M);
    let started = 0;
    const allBack = new Promise<Pid>((resolve) => {
      onWorkerStarted = (_id, pid) => {
        if (++started === M) resolve(pid);
      };
    });
    const victimPid = whichChildren(sup)[victim]?.pid as Pid;
    const start = now();
    exit(victimPid, "kill");
    await call(await allBack, "ping");
    allLatencies.push((now() - start) * 1000);
  }
  onWorkerStarted = null;
  allLatencies.sort((a, b) => a - b);
  emit("restart_one_for_all", "p50_us", percentile(allLatencies, 50), "us");
  emit("restart_one_for_all", "p99_us", percentile(allLatencies, 99), "us");
  await stopSupervisor(sup);
}

async function benchIsolated(): Promise<void> {
  const module = new URL("./isolated-echo.ts", import.meta.url);
  const N = 8;
  gc();
  const rss0 = process.memoryUsage().rss;
  const pids: Pid[] = [];
  const starts: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = now();
    pids.push(await startIsolated(module, undefined));
    starts.push(now() - t0);
  }
  await new Promise((r) => setTimeout(r, 200));
  const rss1 = process.memoryUsage().rss;
  starts.sort((a, b) => a - b);
  emit("isolated", "start_ms_p50", percentile(starts, 50), "ms");
  emit("isolated", "rss_bytes_per_worker", (rss1 - rss0) / N, "bytes");
  const CALLS = 20_000;
  const t0 = now();
  for (let i = 0; i < CALLS; i++) await call(pids[0] as Pid, "ping");
  emit("isolated", "call_round_trip_us", ((now() - t0) * 1000) / CALLS, "us");
  const t1 = now();
  exit(pids[1] as Pid, "kill");
  emit("isolated", "kill_ms", now() - t1, "ms");
  for (const pid of pids) exit(pid, "kill");
}

/** The workloads, each run in its own process. */
export const WORKLOADS: Record<string, () => Promise<void>> = {
  spawn: benchSpawn,
  pingpong: benchPingPong,
  call: benchCall,
  fanin: benchFanIn,
  sup: benchSupervisor,
  isolated: benchIsolated,
};

if (import.meta.url === `file://${process.argv[1]}`) {
  const name = process.argv[2] ?? "";
  const workload = WORKLOADS[name];
  if (workload === undefined) {
    console.error(
      `bench/runtime.ts: unknown workload "${name}" (one of ${Object.keys(WORKLOADS).join(", ")})`,
    );
    process.exit(2);
  }
  await workload();
  process.exit(0);
}
