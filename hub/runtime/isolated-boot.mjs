// Entry of an isolated process's worker thread. Loader hooks given with --import do not reach a worker's entry
// module on Node 20, so register tsx here, then load the TypeScript bootstrap.
import { register } from "tsx/esm/api";

register();
await import("./isolated-worker.ts");
