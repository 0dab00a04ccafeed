/** The isolated GenServer the runtime benchmark starts: answers `ping`. */
import { replyWith } from "../hub/runtime/gen-server.ts";
import type { IsolatedSpec } from "../hub/runtime/isolated.ts";

const echo: IsolatedSpec<null, undefined, "ping", "pong"> = {
  init: () => null,
  handleCall: (_req, _from, state) => replyWith("pong" as const, state),
};

export default echo;
