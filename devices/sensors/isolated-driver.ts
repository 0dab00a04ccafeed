/**
 * A sensor's driver as an isolated process (hub/runtime `startIsolated`): the same conversion as the main thread's
 * healthy path, in a worker thread that can be terminated wherever its JS is. A sensor actor starts one only while
 * a `hang` fault is set on it (see driver.ts); this module is loaded inside the worker.
 */
import type { SensorKind } from "../../hub/config.ts";
import { replyWith } from "../../hub/runtime/gen-server.ts";
import type { IsolatedSpec } from "../../hub/runtime/isolated.ts";
import { convertRaw } from "./convert.ts";

/** What an isolated driver is started with. */
export interface IsolatedDriverArgs {
  kind: SensorKind;
}

/** One conversion; `hang` is the injected fault, read from the hub's switchboard when the call was made. */
export interface ConvertRequest {
  raw: unknown;
  hang: boolean;
}

const isolatedDriver: IsolatedSpec<IsolatedDriverArgs, IsolatedDriverArgs, ConvertRequest, unknown> = {
  init: (args) => args,
  handleCall(request, _from, state) {
    if (request.hang) {
      // The injected `hang`: a driver that never answers. It would freeze the hub's event loop on the main
      // thread; here only terminating the worker stops it.
      for (;;) {}
    }
    return replyWith(convertRaw(state.kind, request.raw), state);
  },
};

export default isolatedDriver;
