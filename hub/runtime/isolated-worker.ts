/**
 * The bootstrap of an isolated process: runs inside a worker thread, loads the GenServer spec module, and handles
 * calls, casts and messages one at a time, posting replies and sends back to the main thread.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { NoReply, Reply, Stop } from "./gen-server.ts";
import type { IsolatedSelf, IsolatedSpec } from "./isolated.ts";
import {
  decodeValue,
  encodeValue,
  type FromWorker,
  type IsolatedWorkerData,
  type PidLike,
  type ToWorker,
} from "./isolated-codec.ts";

if (parentPort === null) throw new Error("isolated-worker.ts must run in a worker thread");
const port: MessagePort = parentPort;
const data = workerData as IsolatedWorkerData;

/** A pid from the main thread, as seen inside the worker. */
class RemotePid implements PidLike {
  constructor(readonly id: number) {}
  toString(): string {
    return `<0.${this.id}.0>`;
  }
}
const isRemotePid = (v: unknown): v is PidLike => v instanceof RemotePid;
const decode = (v: unknown) => decodeValue(v, (id) => new RemotePid(id));
const post = (msg: FromWorker) => port.postMessage(msg);

const self: IsolatedSelf = {
  pid: new RemotePid(data.selfId),
  send(to, message) {
    post({ t: "send", to: to.id, message: encodeValue(message, isRemotePid) });
  },
};

class WorkerFrom {
  done = false;
  constructor(readonly id: number) {}
  settle(value: unknown): void {
    if (this.done) return;
    this.done = true;
    post({ t: "reply", id: this.id, value: encodeValue(value, isRemotePid) });
  }
}

const mod = (await import(data.moduleUrl)) as Record<string, unknown>;
const spec = mod[data.exportName] as IsolatedSpec<unknown, unknown> | undefined;
if (spec === undefined || typeof spec.init !== "function") {
  post({ t: "init_error", error: `${data.moduleUrl} has no GenServer spec export "${data.exportName}"` });
  process.exit(1);
}
const server = spec as IsolatedSpec<unknown, unknown>;

let state: unknown;
try {
  state = await server.init(decode(data.args), self);
} catch (err) {
  post({ t: "init_error", error: encodeValue(err, isRemotePid) });
  process.exit(1);
}
post({ t: "ready" });

let stopping = false;
async function finish(reason: unknown): Promise<void> {
  stopping = true;
  try {
    await server.terminate?.(reason, state, self);
  } finally {
    post({ t: "exit", reason: encodeValue(reason, isRemotePid) });
    port.close();
  }
}

async function handle(msg: ToWorker): Promise<void> {
  if (stopping) return;
  try {
    if (msg.t === "call") {
      const from = new WorkerFrom(msg.id);
      if (server.handleCall === undefined) throw new Error("isolated server has no handleCall");
      const result = await server.handleCall(decode(msg.request), from as never, state, self);
      if (result instanceof Reply) {
        state = result.state;
        from.settle(result.value);
      } else if (result instanceof NoReply) {
        state = result.state;
      } else if (result instanceof Stop) {
        state = result.state;
        if (result.hasReply) from.settle(result.replyValue);
        await finish(result.reason);
      }
      return;
    }
    if (msg.t === "stop") {
      await finish(msg.reason);
      return;
    }
    const callback = msg.t === "cast" ? server.handleCast : server.handleInfo;
    if (callback === undefined) return;
    const result = await callback(decode(msg.message), state, self);
    if (result instanceof Stop) {
      state = result.state;
      await finish(result.reason);
    } else {
      state = result;
    }
  } catch (err) {
    await finish(err);
  }
}

// One message at a time, in arrival order, like a GenServer's mailbox.
let chain = Promise.resolve();
port.on("message", (msg: ToWorker) => {
  chain = chain.then(() => handle(msg));
});
