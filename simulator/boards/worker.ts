/**
 * Worker-thread entry: runs one emulated board (and its pty, if any) off the main thread. Started by
 * emulated-board.ts with a {@link WorkerBoardConfig} as workerData; talks only by messages (protocol.ts).
 */
import { parentPort, workerData } from "node:worker_threads";
import { AvrBoard, type PinChange } from "./avr-board.ts";
import type { FromWorker, ToWorker, WorkerBoardConfig } from "./protocol.ts";
import { PtyBridge } from "./pty.ts";
import { BoardRunner } from "./runner.ts";

const port = parentPort!;
const config = workerData as WorkerBoardConfig;
const post = (message: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(message, transfer ?? []);

let pty: PtyBridge | undefined;
let tx: Uint8Array[] = [];
let pins: PinChange[] = [];

function main(): void {
  const board = new AvrBoard(config);
  const flush = () => {
    if (tx.length === 0 && pins.length === 0) return;
    const message: FromWorker = { type: "turn" };
    if (tx.length > 0) message.tx = tx.length === 1 ? tx[0]! : Buffer.concat(tx);
    if (pins.length > 0) message.pins = pins;
    tx = [];
    pins = [];
    post(message);
  };
  board.hooks.onTransmit = (bytes) => {
    tx.push(bytes);
    pty?.write(bytes);
  };
  board.hooks.onPinChange = (change) => pins.push(change);
  board.hooks.onReset = (cause, mcusr) => {
    flush();
    post({ type: "reset", cause, mcusr });
  };
  const runner = new BoardRunner(board, { realtime: config.realtime, afterTurn: flush });
  let powered = true;

  port.on("message", (message: ToWorker) => {
    switch (message.type) {
      case "rx":
        if (!powered) break; // a chip without power hears nothing
        board.receive(message.bytes);
        runner.kick();
        break;
      case "analog":
        board.setAnalog(message.channel, message.volts);
        break;
      case "digital":
        board.setDigitalInput(message.pin, message.high);
        runner.kick();
        break;
      case "power":
        if (message.on === powered) break;
        powered = message.on;
        if (powered) {
          board.reset("power-on");
          runner.start(); // start() lines emulated time up with wall time again
        } else {
          runner.stop();
          flush();
        }
        break;
      case "reset":
        if (!powered) break;
        runner.resync();
        board.reset(message.cause);
        runner.kick();
        break;
      case "query": {
        let value: FromWorker & { type: "reply" };
        if (message.what === "stats") {
          value = {
            type: "reply",
            id: message.id,
            value: {
              ...board.stats,
              cycles: board.cycles,
              seconds: board.seconds,
              lagMs: runner.pacer.lagMs,
              flashPageWrites: board.flashPageWrites,
              ptyOpens: pty?.opens ?? 0,
            },
          };
        } else if (message.what === "flash") {
          value = { type: "reply", id: message.id, value: board.flash.slice() };
        } else if (message.what === "eeprom") {
          value = { type: "reply", id: message.id, value: board.eeprom.memory.slice() };
        } else {
          value = {
            type: "reply",
            id: message.id,
            // An unpowered chip drives no pin.
            value: board.spec.digitalPins.map((_, pin) => (powered ? board.pinLevel(pin) : "low")),
          };
        }
        post(value);
        break;
      }
      case "stop":
        runner.stop();
        flush();
        (pty ? pty.stop() : Promise.resolve()).finally(() => {
          post({ type: "stopped" });
          port.close();
        });
        break;
    }
  });

  const start = async () => {
    if (config.ptyPath) {
      pty = new PtyBridge(config.ptyPath, {
        onOpen: () => {
          if (config.resetOnOpen) {
            // Start the reset level with wall time, so the bootloader's timing matches what the opener expects.
            runner.resync();
            board.reset("external");
          }
          runner.kick();
          post({ type: "pty", event: "open" });
        },
        onData: (bytes) => {
          board.receive(bytes);
          runner.kick();
        },
        onClose: () => post({ type: "pty", event: "close" }),
        onReady: () => post({ type: "pty", event: "ready" }),
        onError: (error) => post({ type: "error", message: error.message, fatal: false }),
      });
      await pty.start();
    }
    runner.start();
    post({ type: "ready", ptyPath: config.ptyPath, resetVector: board.resetVector });
  };
  start().catch((error: Error) => post({ type: "error", message: error.message, fatal: true }));
}

try {
  main();
} catch (error) {
  post({ type: "error", message: (error as Error).message, fatal: true });
}
