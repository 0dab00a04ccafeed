import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Agent, type BufferedReading } from "../../firmware/pi-agent/src/agent.ts";
import { DiskQueue } from "../../firmware/pi-agent/src/buffer.ts";
import type { AgentConfigInput } from "../../firmware/pi-agent/src/config.ts";
import { createVirtualSysfs, type VirtualSysfs, w1SlaveText } from "../../simulator/pi/virtual-sysfs.ts";
import {
  deadPort,
  type HubClient,
  hubClient,
  ManualClock,
  startBroker,
  type TestBroker,
  tempDir,
  testConfig,
  W1_ADDRESS,
  waitFor,
} from "./helpers.ts";

interface Telemetry {
  value: number | boolean;
  ts: number;
  seq: number;
}

const T = "ganglion/pi-1";
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Rig {
  dir: string;
  sys: VirtualSysfs;
  broker: TestBroker;
  hub: HubClient;
  agent: Agent;
  /** Starts another agent (same state dir) after the first was stopped. */
  restart(overrides?: Partial<AgentConfigInput>): Promise<Agent>;
}

async function rig(
  overrides: Partial<AgentConfigInput> = {},
  opts: { startAgent?: boolean } = {},
): Promise<Rig> {
  const t = tempDir();
  cleanups.push(t.remove);
  const sys = await createVirtualSysfs(join(t.dir, "root"));
  cleanups.push(() => sys.close());
  sys.addDs18b20(W1_ADDRESS, 21.5);
  sys.addIio("bme280", { temp: 22.25, humidityrelative: 40, pressure: 1013.2 });
  sys.setGpioInput(17, 1); // button released (active low)
  const broker = await startBroker(0, { "pi-1": "secret-pi-1" });
  const brokerRef = { current: broker };
  cleanups.push(() => brokerRef.current.close());
  const hub = await hubClient(broker.port, [`${T}/#`]);
  cleanups.push(() => hub.close());
  const make = (o: Partial<AgentConfigInput>) => {
    const agent = new Agent({
      config: testConfig(broker.port, sys.root, join(t.dir, "state"), { ...overrides, ...o }),
    });
    cleanups.push(() => agent.stop());
    return agent;
  };
  const agent = make({});
  if (opts.startAgent !== false) await agent.start();
  return {
    dir: t.dir,
    sys,
    broker,
    hub,
    agent,
    async restart(o = {}) {
      const next = make(o);
      await next.start();
      return next;
    },
  };
}

function expectConsecutive(list: Telemetry[], from?: number): void {
  expect(list.length).toBeGreaterThan(0);
  const first = from ?? (list[0] as Telemetry).seq;
  expect(list.map((m) => m.seq)).toEqual(Array.from({ length: list.length }, (_, i) => first + i));
}

describe("pi-agent against a real broker and a virtual sysfs", () => {
  it("publishes 1-Wire, IIO and GPIO readings with increasing seq, after online and with its credentials", async () => {
    const { hub, broker, sys } = await rig();
    await hub.until((m) =>
      ["water", "air", "pressure", "button"].every(
        (s) => m.filter((x) => x.topic === `${T}/telemetry/${s}`).length >= 3,
      ),
    );
    expect(broker.logins).toContainEqual({ clientId: "pi-1", username: "pi-1", password: "secret-pi-1" });
    const status = hub.messages.filter((m) => m.topic === `${T}/status`);
    expect(status.at(-1)?.text).toBe("online");
    expect(broker.subscriptions.get("pi-1")).toEqual([`${T}/cmd/#`]); // only its own commands

    const water = hub.json<Telemetry>(`${T}/telemetry/water`);
    expectConsecutive(water, 1);
    expect(water[0]?.value).toBe(21.5);
    expect(Math.abs((water[0]?.ts ?? 0) - Date.now())).toBeLessThan(5000);
    expect(hub.json<Telemetry>(`${T}/telemetry/air`)[0]?.value).toBe(22.25);
    expect(hub.json<Telemetry>(`${T}/telemetry/pressure`)[0]?.value).toBe(1013.2);
    expect(hub.json<Telemetry>(`${T}/telemetry/button`)[0]?.value).toBe(false);
    for (const s of ["air", "pressure", "button"])
      expectConsecutive(hub.json<Telemetry>(`${T}/telemetry/${s}`), 1);

    // Values follow the world.
    sys.setTemperature(W1_ADDRESS, -3.125);
    sys.setIio("bme280", "temp", 30.5);
    sys.setGpioInput(17, 0); // pressed
    await hub.until(
      () =>
        hub.json<Telemetry>(`${T}/telemetry/water`).some((m) => m.value === -3.125) &&
        hub.json<Telemetry>(`${T}/telemetry/air`).some((m) => m.value === 30.5) &&
        hub.json<Telemetry>(`${T}/telemetry/button`).some((m) => m.value === true),
      5000,
      "new values",
    );
  });

  it("never publishes a reading whose CRC is NO: it reports the failed read (no value, no seq) and counts it in the heartbeat", async () => {
    const { hub, sys, agent } = await rig();
    const rejected: string[] = [];
    agent.on("rejected", (r) => rejected.push(`${r.sensor}:${r.code}`));
    await hub.until((m) => m.some((x) => x.topic === `${T}/telemetry/water`));
    sys.setCrcError(W1_ADDRESS, true);
    await waitFor(() => rejected.length >= 5, 5000, "rejected readings");
    const readings = () => hub.json<Telemetry>(`${T}/telemetry/water`).filter((m) => "value" in m);
    const during = readings().length;
    await new Promise((r) => setTimeout(r, 300));
    sys.setCrcError(W1_ADDRESS, false);
    await hub.until(() => readings().length > during + 2);
    const water = readings();
    expect(water.every((m) => m.value === 21.5)).toBe(true); // the corrupted t= never made it
    expectConsecutive(water, 1); // and consumed no seq
    expect(rejected.every((r) => r === "water:crc")).toBe(true);
    // Each failed read was reported on the sensor's telemetry topic, as an error with its time and no seq.
    const failed = hub.json<Record<string, unknown>>(`${T}/telemetry/water`).filter((m) => !("value" in m));
    expect(failed.length).toBeGreaterThanOrEqual(5);
    for (const f of failed) {
      expect(f).toMatchObject({
        error: "crc",
        ts: expect.any(Number),
        message: expect.stringMatching(/CRC/i),
      });
      expect(f).not.toHaveProperty("seq");
    }
    await hub.until(() =>
      hub
        .json<{ rejected: Record<string, number> }>(`${T}/heartbeat`)
        .some((h) => (h.rejected.water ?? 0) >= 5),
    );
  });

  it("sends heartbeats with ts, uptime and the reset cause, which tells a restart from a crash and a reboot", async () => {
    const r = await rig();
    await r.hub.until((m) => m.filter((x) => x.topic === `${T}/heartbeat`).length >= 4);
    const beats = r.hub.json<{ ts: number; uptimeS: number; resetCause: string }>(`${T}/heartbeat`);
    expect(beats[0]).toMatchObject({ resetCause: "power-on", uptimeS: 0 });
    expect(beats.at(-1)!.ts).toBeGreaterThan(beats[0]!.ts);
    // Every heartbeatMs (200) on average after the one sent on connecting (a late tick does not shift the next).
    const periodic = beats.slice(1);
    const mean = (periodic.at(-1)!.ts - periodic[0]!.ts) / (periodic.length - 1);
    expect(mean).toBeGreaterThanOrEqual(150);
    expect(mean).toBeLessThan(400);
    await r.agent.stop();
    const second = await r.restart();
    expect(second.resetCause).toBe("agent-restart");
    // A run that dies (crash, power cut) is told apart on the next start.
    await second.abort();
    const third = await r.restart();
    expect(third.resetCause).toBe("agent-crash");
    await third.stop();
    r.sys.reboot();
    const fourth = await r.restart();
    expect(fourth.resetCause).toBe("power-on");
  });

  it("obeys commands by driving GPIO and replies, with clear errors for bad ones", async () => {
    const { hub, sys } = await rig();
    await hub.until((m) => m.some((x) => x.topic === `${T}/status` && x.text === "online"));
    expect(sys.readGpio(27)).toBe(0); // led off at start
    expect(sys.readGpio(22)).toBe(1); // active-low relay open at start
    let n = 0;
    const send = async (target: string, op: string, args?: unknown) => {
      const id = `c${++n}`;
      hub.client.publish(`${T}/cmd/${target}`, JSON.stringify({ id, op, ...(args ? { args } : {}) }), {
        qos: 1,
      });
      await hub.until(
        (m) => m.some((x) => x.topic === `${T}/reply` && JSON.parse(x.text).id === id),
        5000,
        id,
      );
      return hub.json<{ id: string; ok: boolean; error?: string }>(`${T}/reply`).find((r) => r.id === id)!;
    };
    expect(await send("led", "on")).toEqual({ id: "c1", ok: true });
    expect(sys.readGpio(27)).toBe(1);
    expect(await send("led", "toggle")).toEqual({ id: "c2", ok: true });
    expect(sys.readGpio(27)).toBe(0);
    expect(await send("pump", "close")).toMatchObject({ ok: true });
    expect(sys.readGpio(22)).toBe(0);
    expect(await send("pump", "open")).toMatchObject({ ok: true });
    expect(sys.readGpio(22)).toBe(1);
    expect(await send("fan", "set", { value: true })).toMatchObject({ ok: true });
    expect(sys.readGpio(5)).toBe(1);
    expect(await send("fan", "set", { value: 0 })).toMatchObject({ ok: true });
    expect(sys.readGpio(5)).toBe(0);

    expect(await send("led", "blink", { periodMs: 60 })).toMatchObject({ ok: true });
    const seen = new Set<number | undefined>();
    await waitFor(
      () => {
        seen.add(sys.readGpio(27));
        return seen.has(0) && seen.has(1);
      },
      3000,
      "blinking",
    );
    expect(await send("led", "off")).toMatchObject({ ok: true });
    await new Promise((r) => setTimeout(r, 150));
    expect(sys.readGpio(27)).toBe(0); // blinking stopped

    expect(await send("heater", "on")).toEqual({
      id: "c9",
      ok: false,
      error: 'unknown target "heater" (outputs: led, pump, fan)',
    });
    expect((await send("pump", "toggle")).error).toBe(
      'relay "pump" has no op "toggle" (ops: open, close, set)',
    );
    expect((await send("led", "blink", { periodMs: 2 })).error).toMatch(
      /blink needs args.periodMs, an integer from 20/,
    );
    expect((await send("fan", "set", { value: "yes" })).error).toMatch(/set needs args.value/);
    expect((await send("water", "on")).ok).toBe(false); // a sensor is not an output

    hub.client.publish(`${T}/cmd/led`, "{not json", { qos: 1 });
    hub.client.publish(`${T}/cmd/led`, JSON.stringify({ id: "no-op" }), { qos: 1 });
    await hub.until((m) => m.filter((x) => x.topic === `${T}/reply`).length >= n + 2);
    const bad = hub.json<{ id: string; ok: boolean; error: string }>(`${T}/reply`).slice(-2);
    expect(bad.map((b) => b.id).sort()).toEqual(["", "no-op"]);
    for (const b of bad) expect(b.error).toMatch(/^bad command on cmd\/led: expected JSON/);
  });

  it("answers a redelivered command again without acting twice", async () => {
    const { hub, sys } = await rig();
    await hub.until((m) => m.some((x) => x.topic === `${T}/status` && x.text === "online"));
    for (let i = 0; i < 2; i++)
      hub.client.publish(`${T}/cmd/led`, JSON.stringify({ id: "t1", op: "toggle" }), { qos: 1 });
    await hub.until((m) => m.filter((x) => x.topic === `${T}/reply`).length >= 2);
    expect(hub.json(`${T}/reply`)).toEqual([
      { id: "t1", ok: true },
      { id: "t1", ok: true },
    ]);
    expect(sys.readGpio(27)).toBe(1); // toggled once, not twice
  });

  it("drops a reply whose connection ended while the command ran (the hub redelivers it), without throwing", async () => {
    const { hub, agent } = await rig();
    await hub.until((m) => m.some((x) => x.topic === `${T}/status` && x.text === "online"));
    // The connection a command came in on, ended before its reply (a partition, a stop): mqtt.js throws on a
    // publish after end(), and onCommand's rejection went unhandled (seen in CI).
    const client = (agent as unknown as { client: import("mqtt").MqttClient }).client;
    await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
    const sendReply = (agent as unknown as { sendReply(c: unknown, r: unknown): void }).sendReply.bind(agent);
    expect(() => sendReply(client, { id: "late", ok: true })).not.toThrow();
  });

  it("fires the retained last will offline when its socket is cut, and comes back online", async () => {
    const { hub, broker } = await rig();
    await hub.until((m) => m.some((x) => x.topic === `${T}/status` && x.text === "online"));
    broker.cut("pi-1");
    await hub.until(
      (m) => m.some((x) => x.topic === `${T}/status` && x.text === "offline"),
      5000,
      "last will",
    );
    await hub.until((m) => m.filter((x) => x.topic === `${T}/status` && x.text === "online").length >= 2);
    // Both were published retained: a client arriving now sees the latest.
    const late = await hubClient(broker.port, [`${T}/status`]);
    cleanups.push(() => late.close());
    await late.until((m) => m.some((x) => x.retain && x.text === "online"));
  });

  it("publishes offline itself on a clean stop (no will needed)", async () => {
    const { hub, agent } = await rig();
    await hub.until((m) => m.some((x) => x.topic === `${T}/status` && x.text === "online"));
    await agent.stop();
    await hub.until((m) => m.at(-1)?.topic === `${T}/status` && m.at(-1)?.text === "offline");
  });

  it("loses no reading across a broker outage: every seq arrives, in order, with its original timestamp", async () => {
    const r = await rig({ sensors: [{ id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 20 }] });
    const produced: Telemetry[] = [];
    r.agent.on("reading", (x) => produced.push({ value: x.v as number, ts: x.ts, seq: x.seq }));
    await r.hub.until((m) => m.filter((x) => x.topic === `${T}/telemetry/water`).length >= 5);
    await r.hub.close();
    await r.broker.close();
    const downAt = Date.now();
    await waitFor(() => !r.agent.online, 3000, "agent to notice");
    let temp = 10;
    const changer = setInterval(() => {
      temp += 0.125;
      r.sys.setTemperature(W1_ADDRESS, temp);
    }, 20);
    cleanups.push(() => clearInterval(changer));
    await waitFor(() => r.agent.buffered >= 40, 5000, "readings buffered during the outage");
    // The broker comes back on the same port (fresh: no session, no retained state).
    const again = await startBroker(r.broker.port, { "pi-1": "secret-pi-1" });
    cleanups.push(() => again.close());
    const upAt = Date.now();
    const hub = await hubClient(again.port, [`${T}/#`]);
    cleanups.push(() => hub.close());
    await waitFor(() => r.agent.online && r.agent.buffered === 0, 10_000, "replay");
    clearInterval(changer);
    const last = produced.at(-1)!.seq;
    await hub.until(() => hub.json<Telemetry>(`${T}/telemetry/water`).some((m) => m.seq === last));
    await r.agent.stop();

    const before = r.hub.json<Telemetry>(`${T}/telemetry/water`);
    const after = hub.json<Telemetry>(`${T}/telemetry/water`);
    // At-least-once: a reading sent just before the cut may come twice; the hub drops it by seq.
    const bySeq = new Map<number, Telemetry>();
    for (const m of [...before, ...after]) bySeq.set(m.seq, m);
    const all = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    expectConsecutive(all, 1);
    expect(all.length).toBe(produced.length);
    expect(all).toEqual(produced); // same values and original timestamps
    // After the reconnection, replayed readings arrive in seq order.
    expectConsecutive(after.filter((m, i) => after.findIndex((x) => x.seq === m.seq) === i));
    const buffered = after.filter((m) => m.ts > downAt && m.ts < upAt);
    expect(buffered.length).toBeGreaterThanOrEqual(20); // taken while the broker was down, delivered after
    expect(new Set(buffered.map((m) => m.value)).size).toBeGreaterThan(10); // each kept its own value
  });

  it("takes its time from the injected clock: one reading per period, ts and uptime from that clock", async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(join(t.dir, "root"));
    cleanups.push(() => sys.close());
    sys.addDs18b20(W1_ADDRESS, 21);
    sys.addIio("bme280", { temp: 20 });
    const broker = await startBroker(0, { "pi-1": "secret-pi-1" });
    cleanups.push(() => broker.close());
    const hub = await hubClient(broker.port, [`${T}/#`]);
    cleanups.push(() => hub.close());
    const config = testConfig(broker.port, sys.root, join(t.dir, "state"), {
      heartbeatMs: 5000,
      sensors: [
        { id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 1000 },
        { id: "air", kind: "iio", device: "bme280", channel: "temp", periodMs: 2500 },
      ],
      outputs: [],
    });
    const agent = new Agent({ config, clock });
    cleanups.push(() => agent.stop());
    await agent.start();
    const count = (s: string) => hub.json<Telemetry>(`${T}/telemetry/${s}`).length;
    await hub.until(
      () => count("water") === 1 && count("air") === 1 && hub.json(`${T}/heartbeat`).length === 1,
    );
    for (let i = 1; i <= 5; i++) {
      clock.advance(1000);
      await hub.until(() => count("water") === i + 1, 5000, `reading ${i}`);
    }
    await hub.until(() => hub.json(`${T}/heartbeat`).length === 2 && count("air") === 3);
    await new Promise((r) => setTimeout(r, 200)); // real time passes; the agent's does not
    expect(hub.json<Telemetry>(`${T}/telemetry/water`).map((m) => m.ts - 1_700_000_000_000)).toEqual([
      0, 1000, 2000, 3000, 4000, 5000,
    ]);
    expect(hub.json<Telemetry>(`${T}/telemetry/air`).map((m) => m.ts - 1_700_000_000_000)).toEqual([
      0, 2500, 5000,
    ]);
    expect(hub.json<{ ts: number; uptimeS: number }>(`${T}/heartbeat`)).toMatchObject([
      { ts: 1_700_000_000_000, uptimeS: 0 },
      { ts: 1_700_000_005_000, uptimeS: 5 },
    ]);
  });

  it("keeps retrying, without publishing, when the broker refuses its token", async () => {
    const broker = await startBroker(0, { "pi-1": "another-token" });
    cleanups.push(() => broker.close());
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(join(t.dir, "root"));
    cleanups.push(() => sys.close());
    sys.addDs18b20(W1_ADDRESS, 21);
    const agent = new Agent({
      config: testConfig(broker.port, sys.root, join(t.dir, "state"), {
        sensors: [{ id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 50 }],
        outputs: [],
      }),
    });
    cleanups.push(() => agent.stop());
    const reasons: string[] = [];
    agent.on("offline", (e) => reasons.push(e.reason));
    await agent.start();
    await waitFor(() => reasons.length >= 3, 5000, "refused attempts");
    expect(reasons[0]).toMatch(/Not authorized/i);
    expect(broker.logins.filter((l) => l.username === "pi-1").length).toBeGreaterThanOrEqual(3);
    expect(agent.online).toBe(false);
    expect(agent.buffered).toBeGreaterThan(0); // readings wait on disk for a fixed token
  });

  it("keeps running when GPIO cannot be set up, and picks the lines up once they can", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const root = join(t.dir, "root");
    // A 1-Wire sensor but no GPIO class yet (as with a wrong gpioBase, or a line held by another program).
    mkdirSync(join(root, "sys/bus/w1/devices", W1_ADDRESS), { recursive: true });
    writeFileSync(join(root, "sys/bus/w1/devices", W1_ADDRESS, "w1_slave"), w1SlaveText(19));
    const broker = await startBroker(0, { "pi-1": "secret-pi-1" });
    cleanups.push(() => broker.close());
    const hub = await hubClient(broker.port, [`${T}/#`]);
    cleanups.push(() => hub.close());
    const agent = new Agent({
      config: testConfig(broker.port, root, join(t.dir, "state"), {
        sensors: [
          { id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 50 },
          { id: "button", kind: "gpio-input", gpio: 17, periodMs: 50 },
        ],
        outputs: [{ id: "led", kind: "led", gpio: 27 }],
      }),
    });
    cleanups.push(() => agent.stop());
    const rejected: string[] = [];
    agent.on("rejected", (r) => rejected.push(`${r.sensor}:${r.code}`));
    await agent.start();
    await hub.until((m) => m.filter((x) => x.topic === `${T}/telemetry/water`).length >= 3);
    expect(rejected).toContain("button:io");
    hub.client.publish(`${T}/cmd/led`, JSON.stringify({ id: "l1", op: "on" }), { qos: 1 });
    await hub.until((m) => m.some((x) => x.topic === `${T}/reply`));
    expect(hub.json(`${T}/reply`)[0]).toMatchObject({
      id: "l1",
      ok: false,
      error: expect.stringMatching(/gpio 27: export failed/),
    });

    const sys = await createVirtualSysfs(root); // the GPIO class appears
    cleanups.push(() => sys.close());
    await hub.until((m) => m.some((x) => x.topic === `${T}/telemetry/button`), 5000, "button readings");
    hub.client.publish(`${T}/cmd/led`, JSON.stringify({ id: "l2", op: "on" }), { qos: 1 });
    await hub.until((m) => m.filter((x) => x.topic === `${T}/reply`).length === 2);
    expect(hub.json(`${T}/reply`)[1]).toEqual({ id: "l2", ok: true });
    expect(sys.readGpio(27)).toBe(1);
  });

  it("reconnects with growing, jittered delays while the broker is down", async () => {
    const port = await deadPort();
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(join(t.dir, "root"));
    cleanups.push(() => sys.close());
    const cfg = testConfig(port, sys.root, join(t.dir, "state"), {
      sensors: [],
      outputs: [],
      reconnect: { minMs: 20, maxMs: 160 },
    });
    let x = 0;
    const agent = new Agent({ config: cfg, random: () => [0, 0.99][x++ % 2] as number });
    cleanups.push(() => agent.stop());
    const delays: number[] = [];
    agent.on("offline", (e) => delays.push(e.delayMs));
    await agent.start();
    await waitFor(() => delays.length >= 7, 5000, "reconnect attempts");
    // ceilings 20, 40, 80, 160, 160...; equal jitter keeps each delay in [ceiling/2, ceiling)
    expect(delays.slice(0, 7)).toEqual([10, 40, 40, 159, 80, 159, 80]);
  });

  it("continues every sensor's seq after a restart, and after a crash, once everything was delivered", async () => {
    const r = await rig({ sensors: [{ id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 20 }] });
    const seqs = () => r.hub.json<Telemetry>(`${T}/telemetry/water`).map((m) => m.seq);
    await r.hub.until(() => seqs().length >= 3);
    await r.agent.stop();
    const second = await r.restart();
    await r.hub.until(() => seqs().length >= 8);
    await second.abort(); // a crash: the counters come from the buffer's mark and the readings still in it
    await r.restart();
    await r.hub.until(() => seqs().length >= 14);
    const unique = [...new Set(seqs())].sort((a, b) => a - b);
    expect(unique).toEqual(Array.from({ length: unique.length }, (_, i) => i + 1));
  });

  it("regression: a crash between buffering a reading and saving its seq neither reuses nor skips a seq", async () => {
    const r = await rig({ sensors: [{ id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 20 }] });
    await r.hub.until((m) => m.filter((x) => x.topic === `${T}/telemetry/water`).length >= 3);
    await r.agent.stop();
    const last = Math.max(...r.hub.json<Telemetry>(`${T}/telemetry/water`).map((m) => m.seq));
    // What the dead run left: reading last+1 in the buffer, state.json still saying `last`.
    const q = DiskQueue.open<BufferedReading>({ dir: join(r.dir, "state", "buffer"), maxBytes: 8 << 20 });
    q.append({ s: "water", v: 99, ts: 1234, seq: last + 1 });
    q.close();
    await r.restart();
    await r.hub.until(() => r.hub.json<Telemetry>(`${T}/telemetry/water`).some((m) => m.seq === last + 3));
    const after = r.hub.json<Telemetry>(`${T}/telemetry/water`).filter((m) => m.seq > last);
    expect(after[0]).toEqual({ value: 99, ts: 1234, seq: last + 1 });
    expectConsecutive(after, last + 1);
  });

  it("bounds its disk buffer, drops and counts the oldest, and replays the rest after a restart", async () => {
    const port = await deadPort();
    const t = tempDir();
    cleanups.push(t.remove);
    const sys = await createVirtualSysfs(join(t.dir, "root"));
    cleanups.push(() => sys.close());
    sys.addDs18b20(W1_ADDRESS, 18);
    const stateDir = join(t.dir, "state");
    const overrides: Partial<AgentConfigInput> = {
      sensors: [{ id: "water", kind: "ds18b20", address: W1_ADDRESS, periodMs: 10 }],
      outputs: [],
      buffer: { maxBytes: 4096 },
    };
    const offline = new Agent({ config: testConfig(port, sys.root, stateDir, overrides) });
    cleanups.push(() => offline.stop());
    let produced = 0;
    offline.on("reading", () => produced++);
    await offline.start();
    const bufDir = join(stateDir, "buffer");
    const size = () =>
      readdirSync(bufDir)
        .filter((f) => f.endsWith(".seg"))
        .reduce((n, f) => n + statSync(join(bufDir, f)).size, 0);
    let maxSeen = 0;
    await waitFor(
      () => {
        maxSeen = Math.max(maxSeen, size());
        return offline.dropped > 20;
      },
      10_000,
      "the buffer to overflow",
    );
    await offline.stop();
    expect(maxSeen).toBeLessThanOrEqual(4096);
    const kept = offline.buffered;
    const dropped = offline.dropped;
    expect(kept + dropped).toBe(produced);

    // The agent restarts with a broker reachable: the kept readings arrive first, in order, then new ones.
    const broker = await startBroker(0, { "pi-1": "secret-pi-1" });
    cleanups.push(() => broker.close());
    const hub = await hubClient(broker.port, [`${T}/#`]);
    cleanups.push(() => hub.close());
    const online = new Agent({ config: testConfig(broker.port, sys.root, stateDir, overrides) });
    cleanups.push(() => online.stop());
    await online.start();
    await hub.until(() => hub.json<Telemetry>(`${T}/telemetry/water`).length >= kept + 5, 10_000, "replay");
    const got = hub.json<Telemetry>(`${T}/telemetry/water`);
    expectConsecutive(got, produced - kept + 1); // the newest `kept` of the first run, then the second run's
    await hub.until(() =>
      hub.json<{ dropped: number; resetCause: string }>(`${T}/heartbeat`).some((h) => h.dropped === dropped),
    );
  });
});
