import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { type ApiOptions, type RunningApi, startApi } from "../../hub/api.ts";
import type { LiveUpdate } from "../../hub/view.ts";
import { FixtureHubView } from "./fixtures/fixture-hub-view.ts";

const silent = pino({ level: "silent" });
const running: RunningApi[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) {
    ws.on("error", () => {});
    ws.terminate();
  }
  await Promise.all(running.splice(0).map((api) => api.close()));
});

async function start(live: ApiOptions["live"] = {}) {
  const view = new FixtureHubView();
  const api = await startApi({ host: "127.0.0.1", port: 0, view, logger: silent, live });
  running.push(api);
  return { api, view, wsUrl: `${api.url.replace("http", "ws")}/api/live` };
}

type Message = { type: string; [key: string]: unknown };

/** A client that records every message it receives. */
class Recorder {
  readonly messages: Message[] = [];
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.messages.push(JSON.parse(data.toString()) as Message);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred()) return true;
        w.resolve();
        return false;
      });
    });
  }
  until(pred: (messages: Message[]) => boolean, timeoutMs = 10_000): Promise<void> {
    if (pred(this.messages)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out; got ${this.messages.map((m) => m.type).join(",")}`)),
        timeoutMs,
      );
      this.waiters.push({
        pred: () => pred(this.messages),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

async function connect(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}) {
  const ws = new WebSocket(url, options);
  sockets.push(ws);
  const recorder = new Recorder(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return recorder;
}

const reading = (value: number, pad = ""): LiveUpdate => ({
  type: "reading",
  device: "uno-1",
  sensor: pad ? `temp-${pad}` : "temp",
  value,
  ts: 1000 + value,
  health: "ok",
});

describe("/api/live", () => {
  it("sends a snapshot first, then the hub's updates in order", async () => {
    const { view, wsUrl } = await start();
    const client = await connect(wsUrl);
    await client.until((m) => m.length >= 1);
    const [snapshot] = client.messages;
    expect(snapshot?.type).toBe("snapshot");
    expect(snapshot).toMatchObject({ tree: { id: "hub" }, faults: [] });
    expect(((snapshot?.devices ?? []) as { id: string }[]).map((d) => d.id)).toEqual(["uno-1", "pi-1"]);

    for (let i = 0; i < 200; i++) view.emit(reading(i));
    view.emit({ type: "event", event: { type: "restarted", path: "hub/fleet/uno-1/sensors/temp", ts: 5 } });
    await client.until((m) => m.length >= 202);
    const readings = client.messages.slice(1, 201);
    expect(readings.map((m) => m.value)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(client.messages[1]).toEqual({
      type: "reading",
      device: "uno-1",
      sensor: "temp",
      value: 0,
      ts: 1000,
      health: "ok",
    });
    expect(client.messages[201]).toMatchObject({ type: "event", event: { type: "restarted" } });
  });

  it("sends a client that falls behind a fresh snapshot instead of queueing without bound", async () => {
    const { api, view, wsUrl } = await start({ maxBufferedBytes: 64 * 1024 });
    const client = await connect(wsUrl);
    await client.until((m) => m.length >= 1);
    client.ws.pause();
    // ~24 MB of updates: more than the kernel's socket buffers on loopback can hold.
    const pad = "x".repeat(8 * 1024);
    const total = 3000;
    for (let i = 0; i < total; i++) view.emit(reading(i, pad));
    expect(api.live?.resyncs).toBe(1);
    client.ws.resume();
    await client.until((m) => m.filter((x) => x.type === "snapshot").length >= 2);
    for (let i = 0; i < 5; i++) view.emit(reading(100_000 + i));
    await client.until((m) => m.at(-1)?.value === 100_004);

    const second = client.messages.findIndex((m, i) => i > 0 && m.type === "snapshot");
    const before = client.messages.slice(1, second).map((m) => m.value as number);
    // What was already written arrives, in order, without gaps; the rest was dropped.
    expect(before).toEqual(Array.from({ length: before.length }, (_, i) => i));
    expect(before.length).toBeLessThan(total);
    expect(client.messages.slice(second + 1).map((m) => m.value)).toEqual([
      100_000, 100_001, 100_002, 100_003, 100_004,
    ]);
  });

  it("does not resync a client that reads normally just because the snapshot is bigger than the bound", async () => {
    const { api, view, wsUrl } = await start({ maxBufferedBytes: 16 * 1024 });
    // A fleet whose snapshot (~12 MB) is far over the bound and the kernel's socket buffers.
    for (let i = 0; i < 3000; i++) {
      view.devicesById.set(`pi-${i}`, {
        id: `pi-${i}`,
        board: "raspberry-pi",
        link: "mqtt",
        status: "online",
        sensors: [{ id: "temp", kind: "thermometer", unit: "x".repeat(4000), health: "ok", value: 1, ts: 1 }],
      });
    }
    const client = await connect(wsUrl);
    // Updates arrive while the snapshot is still on its way.
    for (let i = 0; i < 50; i++) {
      view.emit(reading(i));
      await new Promise((r) => setTimeout(r, 2));
    }
    await client.until((m) => m.at(-1)?.value === 49, 30_000);
    expect(client.messages.filter((m) => m.type === "snapshot")).toHaveLength(1);
    expect(api.live?.resyncs).toBe(0);
    expect(client.messages.slice(1).map((m) => m.value)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it("serves a reconnecting client a new snapshot and keeps one hub subscription", async () => {
    const { api, view, wsUrl } = await start();
    const first = await connect(wsUrl);
    await first.until((m) => m.length >= 1);
    const closed = new Promise((resolve) => first.ws.once("close", resolve));
    first.ws.close();
    await closed;
    view.emit(reading(1));
    const second = await connect(wsUrl);
    await second.until((m) => m.length >= 1);
    expect(second.messages[0]?.type).toBe("snapshot");
    view.emit(reading(2));
    await second.until((m) => m.length >= 2);
    expect(second.messages[1]).toMatchObject({ type: "reading", value: 2 });
    expect(view.subscriberCount).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(api.live?.clientCount).toBe(1);
  });

  it("pings clients and drops one that stops answering", async () => {
    const { wsUrl } = await start({ pingIntervalMs: 100 });
    const answering = await connect(wsUrl);
    let pings = 0;
    answering.ws.on("ping", () => pings++);
    const mute = await connect(wsUrl, { autoPong: false });
    const code = await new Promise<number>((resolve) => mute.ws.once("close", resolve));
    expect(code).toBe(1006);
    expect(pings).toBeGreaterThanOrEqual(2);
    expect(answering.ws.readyState).toBe(WebSocket.OPEN);
  });

  it("closes clients with 1001 and unsubscribes when the hub stops", async () => {
    const { api, view, wsUrl } = await start();
    const client = await connect(wsUrl);
    await client.until((m) => m.length >= 1);
    const closed = new Promise<number>((resolve) => client.ws.once("close", resolve));
    await api.close();
    expect(await closed).toBe(1001);
    expect(view.subscriberCount).toBe(0);
  });

  it("refuses an upgrade from a foreign origin", async () => {
    const { wsUrl } = await start();
    const ws = new WebSocket(wsUrl, { origin: "http://evil.example" });
    sockets.push(ws);
    const status = await new Promise<number>((resolve) =>
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)),
    );
    expect(status).toBe(403);
    const own = await connect(wsUrl, { origin: wsUrl.replace("ws:", "http:").replace("/api/live", "") });
    await own.until((m) => m.length >= 1);
    expect(own.messages[0]?.type).toBe("snapshot");
  });

  it("refuses WebSocket upgrades on other paths", async () => {
    const { wsUrl } = await start();
    const ws = new WebSocket(wsUrl.replace("/api/live", "/api/other"));
    sockets.push(ws);
    const status = await new Promise<number>((resolve) =>
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)),
    );
    expect(status).toBe(404);
  });
});
