/**
 * A serial board's heartbeat period (`heartbeatMs` in fleet.yaml): the hub sets it on the board over the heartbeat
 * sysex and counts silence in it. The board here is the load mode's Firmata model (simulator/load/firmata-board.ts),
 * which answers the sysex as firmware/arduino does; the emulated Uno's own heartbeat path is in arduino.test.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { FleetConfigError, FleetConfigSchema, parseFleetConfig } from "../../hub/config.ts";
import type { SerialOpener } from "../../hub/context.ts";
import { startHub } from "../../hub/hub.ts";
import { FirmataBoard, newFirmataCounters } from "../../simulator/load/firmata-board.ts";
import { until } from "../runtime/helpers.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The cable: bytes both ways; `quiet` drops what the board sends while the port stays open (a loose wire). */
class Cable extends Duplex {
  quiet = false;
  /** Heartbeat intervals the board reported, in order (PROTOCOL.md: bytes 13-14 of the frame). */
  readonly intervals: number[] = [];
  /** Heartbeat-interval commands the hub sent (`F0 0A lsb msb F7`), as ms. */
  readonly asked: number[] = [];
  constructor(private readonly board: Duplex) {
    super();
    board.on("data", (chunk: Buffer) => {
      if (this.quiet) return;
      for (let i = 0; i + 15 < chunk.length + 1; i++) {
        if (chunk[i] === 0xf0 && chunk[i + 1] === 0x0a && chunk[i + 15] === 0xf7) {
          this.intervals.push((chunk[i + 13] as number) | ((chunk[i + 14] as number) << 7));
        }
      }
      this.push(chunk);
    });
    board.once("close", () => this.destroy());
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    for (let i = 0; i + 4 < chunk.length; i++) {
      if (chunk[i] === 0xf0 && chunk[i + 1] === 0x0a && chunk[i + 4] === 0xf7) {
        this.asked.push((chunk[i + 2] as number) | ((chunk[i + 3] as number) << 7));
      }
    }
    this.board.write(chunk, done);
  }
  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.board.destroy();
    done(err);
  }
}

function issuesOf(text: string): string {
  try {
    parseFleetConfig(text, "fleet.yaml");
  } catch (err) {
    if (err instanceof FleetConfigError) return err.message;
    throw err;
  }
  throw new Error("expected the fleet text to be refused");
}

describe("a serial board's heartbeatMs", () => {
  const uno = (extra: string) =>
    `devices:\n  - id: uno-1\n    board: uno\n    link: { type: serial, path: /dev/ttyACM0 }\n${extra}`;

  it("is refused outside the firmware's 100-16383 ms, or on an mqtt device, naming the key and line", () => {
    expect(issuesOf(uno("    heartbeatMs: 20000\n"))).toBe(
      "fleet.yaml:5: devices[0].heartbeatMs: expected heartbeatMs in 100-16383 ms, the firmware's range",
    );
    expect(issuesOf(uno("    heartbeatMs: 0\n"))).toMatch(
      /^fleet\.yaml:5: devices\[0\]\.heartbeatMs: expected heartbeatMs in 100-16383 ms/,
    );
    expect(issuesOf(uno("    heartbeatMs: 1.5s\n"))).toMatch(
      /^fleet\.yaml:5: devices\[0\]\.heartbeatMs: expected heartbeatMs in milliseconds/,
    );
    const pi =
      "devices:\n  - id: pi-1\n    board: pi\n    link: { type: mqtt, tokenHash: scrypt$1024$8$1$c2FsdA$aGFzaA }\n    heartbeatMs: 5000\n";
    expect(issuesOf(pi)).toMatch(
      /^fleet\.yaml:5: devices\[0\]\.heartbeatMs: expected heartbeatMs only on a serial/,
    );
    expect(parseFleetConfig(uno("    heartbeatMs: 16383\n"), "fleet.yaml").devices[0]?.heartbeatMs).toBe(
      16_383,
    );
  });

  it("is set on the board, and a board silent for 3 of them is offline and its link restarted", async () => {
    const counters = newFirmataCounters();
    const board = new FirmataBoard("uno-1", 0, counters);
    const cables: Cable[] = [];
    const opener: SerialOpener = async () => {
      const cable = new Cable(board.open());
      cables.push(cable);
      return cable;
    };
    const dataDir = mkdtempSync(join(tmpdir(), "ganglion-heartbeat-"));
    dirs.push(dataDir);
    const config = FleetConfigSchema.parse({
      devices: [
        {
          id: "uno-1",
          board: "uno",
          link: { type: "serial", path: "/dev/ttyACM0" },
          heartbeatMs: 300,
          sensors: [{ id: "temp", kind: "thermometer", pin: "A0", periodMs: 500 }],
        },
      ],
    });
    const hub = await startHub({
      config,
      dataDir,
      mqttPort: 0,
      api: false,
      logger: pino({ level: "silent" }),
      serialOpener: opener,
    });
    try {
      await until(() => hub.device("uno-1")?.status === "online", 10_000, "uno-1 online");
      const first = cables[0] as Cable;
      expect(first.asked).toContain(300);
      // The board's heartbeats carry the period it now runs at (the first, at boot, the firmware's 1000).
      await until(() => first.intervals.filter((ms) => ms === 300).length >= 3, 5000, "heartbeats at 300 ms");

      first.quiet = true;
      await until(() => hub.device("uno-1")?.status === "offline", 5000, "uno-1 offline when silent");
      expect(hub.device("uno-1")?.reason).toMatch(/no heartbeat for 900 ms/);
      // The link restarted: a fresh port, where the hub sets the period again, and the board is back.
      await until(() => hub.device("uno-1")?.status === "online", 15_000, "uno-1 online again");
      expect(cables.length).toBeGreaterThan(1);
      expect((cables.at(-1) as Cable).asked).toContain(300);
    } finally {
      await hub.stop();
      board.close();
    }
  }, 30_000);
});
