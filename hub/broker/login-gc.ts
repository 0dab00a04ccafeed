/**
 * A full garbage collection after every burst of logins. Each CONNECT leaves garbage that lives long enough to be
 * promoted to V8's old generation (aedes builds stream pipelines to replay a session's queue and retained messages:
 * `pipeline`, `Readable.from`, `eos`…), and V8 lets the old generation grow up to 4× before collecting it: 10k
 * devices logging in after a hub restart took the hub from ~250 MB to ~450 MB of heap before the first full GC
 * (535-590 MB RSS; ~480 MB once collected). Steady traffic is unaffected: only logins count.
 *
 * Needs `gc` (Node's `--expose-gc`, set in bin/node-flags.json); without it this does nothing. The collection is
 * requested with `execution: "async"`: V8 runs it from a task, not inside the login's callback.
 */

/** Logins between two requested collections. */
export const LOGINS_PER_COLLECTION = 1000;

type GcFunction = (options: { type: "major"; execution: "async" }) => void;

/** Returns a function to call on each login; every {@link LOGINS_PER_COLLECTION}th call requests a collection. */
export function loginCollector(every = LOGINS_PER_COLLECTION): () => void {
  const gc = (globalThis as { gc?: GcFunction }).gc;
  if (typeof gc !== "function") return () => undefined;
  let logins = 0;
  return () => {
    logins++;
    if (logins < every) return;
    logins = 0;
    gc({ type: "major", execution: "async" });
  };
}
