import { afterEach, describe, expect, it } from "vitest";
import { startVirtualPi, type VirtualPi } from "../../simulator/pi/virtual-pi.ts";
import { hubClient, startBroker, tempDir } from "./helpers.ts";

interface Telemetry {
  value: number | boolean;
  ts: number;
  seq: number;
}

const T = "ganglion/pi-7";
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{ pi: VirtualPi; hub: Awaited<ReturnType<typeof hubClient>> }> {
  const t = tempDir();
  cleanups.push(t.remove);
  const broker = await startBroker(0, { "pi-7": "tok-7" });
  cleanups.push(() => broker.close());
  const hub = await hubClient(broker.port, [`${T}/#`]);
  cleanups.push(() => hub.close());
  const pi = await startVirtualPi({
    dir: t.dir,
    device: "pi-7",
    token: "tok-7",
    broker: `mqtt://127.0.0.1:${broker.port}`,
    heartbeatMs: 200,
    sensors: [
      { id: "water", kind: "ds18b20", address: "28-00000000beef", periodMs: 30 },
      { id: "air", kind: "iio", device: "bme280", channel: "humidityrelative", periodMs: 100 },
      { id: "door", kind: "gpio-input", gpio: 17, activeLow: true, periodMs: 100 },
    ],
  });
  cleanups.push(() => pi.stop());
  return { pi, hub };
}

const statuses = (hub: { messages: { topic: string; text: string }[] }) =>
  hub.messages.filter((m) => m.topic === `${T}/status`).map((m) => m.text);

describe("virtual Pi (simulator/pi)", () => {
  it("runs the agent against its virtual sysfs with the default IIO values and a released door", async () => {
    const { hub } = await setup();
    await hub.until((m) =>
      ["water", "air", "door"].every((s) => m.some((x) => x.topic === `${T}/telemetry/${s}`)),
    );
    expect(hub.json<Telemetry>(`${T}/telemetry/water`)[0]?.value).toBe(20);
    expect(hub.json<Telemetry>(`${T}/telemetry/air`)[0]?.value).toBe(45);
    expect(hub.json<Telemetry>(`${T}/telemetry/door`)[0]?.value).toBe(false);
  });

  it("partition: the will fires, readings are buffered, and replayed without a gap when the link returns", async () => {
    const { pi, hub } = await setup();
    await hub.until((m) => m.filter((x) => x.topic === `${T}/telemetry/water`).length >= 3);
    pi.partition(true);
    await hub.until(() => statuses(hub).at(-1) === "offline", 5000, "last will");
    const agent = pi.agent!;
    await new Promise((r) => setTimeout(r, 500));
    expect(agent.buffered).toBeGreaterThan(5);
    pi.partition(false);
    await hub.until(() => statuses(hub).at(-1) === "online", 8000, "back online");
    await hub.until(() => agent.buffered === 0 && hub.json<Telemetry>(`${T}/telemetry/water`).length > 20);
    const seqs = [...new Set(hub.json<Telemetry>(`${T}/telemetry/water`).map((m) => m.seq))].sort(
      (a, b) => a - b,
    );
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  });

  it("reboot, crash and power loss show in status and the heartbeat's reset cause", async () => {
    const { pi, hub } = await setup();
    const causes = () => hub.json<{ resetCause: string }>(`${T}/heartbeat`).map((h) => h.resetCause);
    await hub.until(() => causes().includes("power-on"));
    await pi.crash();
    // aedes may deliver the QoS 0 heartbeat before the retained QoS 1 status: wait for both.
    await hub.until(
      () => causes().at(-1) === "agent-crash" && statuses(hub).at(-1) === "online",
      5000,
      "restart",
    );
    expect(statuses(hub)).toContain("offline"); // the crash fired the will
    await pi.powerOff();
    await hub.until(() => statuses(hub).at(-1) === "offline");
    const before = hub.messages.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(hub.messages.slice(before).map((m) => `${m.topic} ${m.text}`)).toEqual([]); // a dead Pi says nothing
    await pi.powerOn();
    await hub.until(
      () => statuses(hub).at(-1) === "online" && causes().at(-1) === "power-on",
      5000,
      "power-on",
    );
    await pi.reboot();
    await hub.until(
      () => hub.json(`${T}/heartbeat`).length > 0 && causes().filter((c) => c === "power-on").length >= 3,
    );
  });
});
