/**
 * Ctrl-C and SIGTERM for the long-running commands (`start`, `simulate`, `watch`).
 *
 * One Ctrl-C often arrives twice: the terminal sends SIGINT to the whole process group, and a parent that relays
 * signals (bin/ganglion.js, the heap relaunch, npm) sends it again. A handler installed with `process.once` is gone
 * by the second one, and Node's default action then kills the process in the middle of its clean stop. So the
 * handlers stay installed: the first signal starts the stop, repeats within {@link REPEAT_WINDOW_MS} are that same
 * Ctrl-C and are ignored, and a later one is the user pressing Ctrl-C again to give up waiting: exit at once.
 */

/** Signals closer together than this are one Ctrl-C delivered twice. */
export const REPEAT_WINDOW_MS = 1000;

/** Calls `stop` on the first SIGINT or SIGTERM; see the module comment for the ones after. */
export function onStopSignal(stop: (signal: NodeJS.Signals) => void): void {
  let firstAt: number | null = null;
  const handle = (signal: NodeJS.Signals) => {
    const now = Date.now();
    if (firstAt === null) {
      firstAt = now;
      stop(signal);
    } else if (now - firstAt >= REPEAT_WINDOW_MS) {
      console.error(`ganglion: ${signal} again: exiting without waiting for the stop to finish`);
      process.exit(130);
    }
  };
  process.on("SIGINT", handle);
  process.on("SIGTERM", handle);
}
