/**
 * The device's actuators and the ops each kind accepts (DESIGN.md §2): led `on`/`off`/`toggle`/`blink`
 * (`{periodMs}`), relay `open`/`close`, and `set` (`{value}`: boolean or 0/1) on every output.
 */
import type { Logger } from "pino";
import type { Clock, TimerHandle } from "./clock.ts";
import type { OutputConfig } from "./config.ts";
import type { Level, SysfsGpio } from "./gpio.ts";

/** Why a command was refused; `code` is stable, `message` is what the reply's `error` says. */
export type CommandErrorCode = "bad-request" | "unknown-target" | "unknown-op" | "bad-args" | "io";

export class CommandError extends Error {
  override readonly name = "CommandError";
  constructor(
    readonly code: CommandErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const OPS: Record<OutputConfig["kind"], readonly string[]> = {
  led: ["on", "off", "toggle", "blink", "set"],
  relay: ["open", "close", "set"],
  output: ["set"],
};

/** Blink periods outside this range are refused: faster wears SD-backed sysfs writes for nothing visible. */
export const BLINK_MIN_MS = 20;
export const BLINK_MAX_MS = 60_000;

interface OutputState {
  config: OutputConfig;
  /** Logical state: true = on / closed. */
  on: boolean;
  blink: TimerHandle | undefined;
  /** Serialises writes to one line. */
  chain: Promise<void>;
  /** Exported and made an output. */
  ready: boolean;
}

/** Drives the configured outputs through sysfs GPIO. */
export class Outputs {
  private readonly states = new Map<string, OutputState>();

  constructor(
    private readonly gpio: SysfsGpio,
    outputs: readonly OutputConfig[],
    private readonly gpioBase: number,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    for (const config of outputs) {
      this.states.set(config.id, {
        config,
        on: false,
        blink: undefined,
        chain: Promise.resolve(),
        ready: false,
      });
    }
  }

  /**
   * Exports every output line and drives it off. A line that fails is logged and retried by its next command (whose
   * reply carries the error if it fails again): one bad line does not keep the agent down.
   */
  async init(): Promise<void> {
    for (const s of this.states.values()) {
      try {
        await this.setup(s);
      } catch (err) {
        this.log.error({ output: s.config.id, err: (err as Error).message }, "cannot set up output");
      }
    }
  }

  private async setup(s: OutputState): Promise<void> {
    await this.gpio.output(this.gpioBase + s.config.gpio, this.level(s, false));
    s.ready = true;
  }

  /** The logical state of every output (`true` = on / closed), for logs and tests. */
  snapshot(): Record<string, boolean | "blink"> {
    const out: Record<string, boolean | "blink"> = {};
    for (const [id, s] of this.states) out[id] = s.blink ? "blink" : s.on;
    return out;
  }

  /** Runs one op on one output; throws {@link CommandError} with a message fit for the reply. */
  async execute(target: string, op: string, args: Record<string, unknown> | undefined): Promise<void> {
    const s = this.states.get(target);
    if (!s) {
      const known = [...this.states.keys()].join(", ") || "none";
      throw new CommandError("unknown-target", `unknown target "${target}" (outputs: ${known})`);
    }
    const ops = OPS[s.config.kind];
    if (!ops.includes(op)) {
      throw new CommandError(
        "unknown-op",
        `${s.config.kind} "${target}" has no op "${op}" (ops: ${ops.join(", ")})`,
      );
    }
    const task = async () => {
      switch (op) {
        case "on":
        case "close":
          return this.drive(s, true);
        case "off":
        case "open":
          return this.drive(s, false);
        case "toggle":
          return this.drive(s, !s.on);
        case "set":
          return this.drive(s, parseSetValue(args));
        case "blink":
          return this.startBlink(s, parseBlinkPeriod(args));
      }
    };
    // Validate args before queueing so a bad command fails without waiting behind others.
    if (op === "set") parseSetValue(args);
    if (op === "blink") parseBlinkPeriod(args);
    const run = s.chain.then(task);
    s.chain = run.catch(() => undefined);
    await run;
  }

  /** Stops blinking timers (the lines keep their last level). */
  stop(): void {
    for (const s of this.states.values()) this.stopBlink(s);
  }

  private level(s: OutputState, on: boolean): Level {
    return on !== s.config.activeLow ? 1 : 0;
  }

  private async drive(s: OutputState, on: boolean): Promise<void> {
    this.stopBlink(s);
    await this.write(s, on);
  }

  private async write(s: OutputState, on: boolean): Promise<void> {
    try {
      if (!s.ready) await this.setup(s);
      await this.gpio.write(this.gpioBase + s.config.gpio, this.level(s, on));
    } catch (err) {
      throw new CommandError("io", (err as Error).message);
    }
    s.on = on;
  }

  private async startBlink(s: OutputState, periodMs: number): Promise<void> {
    this.stopBlink(s);
    await this.write(s, !s.on);
    const half = Math.max(1, Math.round(periodMs / 2));
    const tick = () => {
      s.chain = s.chain
        .then(() => (s.blink ? this.write(s, !s.on) : undefined))
        .catch((err: Error) =>
          this.log.warn({ output: s.config.id, err: err.message }, "blink write failed"),
        );
      if (s.blink) s.blink = this.clock.setTimeout(tick, half);
    };
    s.blink = this.clock.setTimeout(tick, half);
  }

  private stopBlink(s: OutputState): void {
    if (s.blink) this.clock.clearTimeout(s.blink);
    s.blink = undefined;
  }
}

function parseSetValue(args: Record<string, unknown> | undefined): boolean {
  const v = args?.value;
  if (v === true || v === 1) return true;
  if (v === false || v === 0) return false;
  throw new CommandError("bad-args", `set needs args.value true/false or 1/0, got ${JSON.stringify(v)}`);
}

function parseBlinkPeriod(args: Record<string, unknown> | undefined): number {
  const p = args?.periodMs;
  if (typeof p !== "number" || !Number.isInteger(p) || p < BLINK_MIN_MS || p > BLINK_MAX_MS) {
    throw new CommandError(
      "bad-args",
      `blink needs args.periodMs, an integer from ${BLINK_MIN_MS} to ${BLINK_MAX_MS}, got ${JSON.stringify(p)}`,
    );
  }
  return p;
}
