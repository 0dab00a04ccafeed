/**
 * The agent's configuration file (JSON or YAML) and its schema. This file is the one place where every config key
 * is defined; `README.md` shows an example.
 */
import { readFileSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

/** Device, sensor and output ids: the same rule as the hub's (DESIGN.md §2). */
const ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
const id = z.string().regex(ID, "must match [a-z0-9][a-z0-9-]{0,63}");
const periodMs = z.number().int().min(10).max(86_400_000).default(5000);
const gpio = z.number().int().min(0).max(4095);

const ds18b20Sensor = z.strictObject({
  id,
  kind: z.literal("ds18b20"),
  /** 1-Wire slave name as it appears under /sys/bus/w1/devices, e.g. `28-0000075c2f2a`. */
  address: z.string().regex(/^28-[0-9a-f]{12}$/, "must look like 28-0000075c2f2a"),
  periodMs,
});

const iioSensor = z.strictObject({
  id,
  kind: z.literal("iio"),
  /** `iio:deviceN`, or the device's `name` file content (e.g. `bme280`), which survives renumbering. */
  device: z.string().min(1),
  /** IIO channel: `temp` (°C), `humidityrelative` (%RH) or `pressure` (hPa). */
  channel: z.enum(["temp", "humidityrelative", "pressure"]),
  periodMs,
});

const gpioInputSensor = z.strictObject({
  id,
  kind: z.literal("gpio-input"),
  gpio,
  /** Report `true` when the line is low (a button to ground with a pull-up). */
  activeLow: z.boolean().default(false),
  periodMs,
});

const sensor = z.discriminatedUnion("kind", [ds18b20Sensor, iioSensor, gpioInputSensor]);

const output = z.strictObject({
  id,
  /** `led`: on/off/toggle/blink; `relay`: open/close; every kind: set. */
  kind: z.enum(["led", "relay", "output"]),
  gpio,
  /** Drive the line low for "on"/"close"/`true` (many relay boards are active-low). */
  activeLow: z.boolean().default(false),
});

const configSchema = z
  .strictObject({
    /** Device id; also the MQTT client id and username. */
    device: id.refine((v) => v !== "hub", "`hub` is reserved"),
    /** The device's token (MQTT password). Prefer `tokenFile`. */
    token: z.string().min(1).optional(),
    /** File holding the token (trailing whitespace ignored); relative paths are from the config file. */
    tokenFile: z.string().min(1).optional(),
    /** `mqtt://host:1883` or `mqtts://host:8883`. */
    broker: z.string().regex(/^mqtts?:\/\/[^/]+$/, "must be mqtt://host:port or mqtts://host:port"),
    /** PEM file of the CA that signed the broker's certificate (mqtts). */
    caFile: z.string().min(1).optional(),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/, "must be topic levels without wildcards")
      .default("ganglion"),
    heartbeatMs: z.number().int().min(100).max(3_600_000).default(5000),
    /** Root under which `sys/...` is read: `/` on a Pi, a virtual tree in the simulator. */
    ioRoot: z.string().min(1).default("/"),
    /** Added to every `gpio` number: sysfs numbers are offset by the chip base on recent kernels (e.g. 512). */
    gpioBase: z.number().int().min(0).max(4096).default(0),
    /** Where the seq counters and the disk buffer live. */
    stateDir: z.string().min(1).default("/var/lib/ganglion-agent"),
    buffer: z
      .strictObject({
        /** Directory of the disk buffer; defaults to `<stateDir>/buffer`. */
        dir: z.string().min(1).optional(),
        /** Upper bound of the buffer on disk; the oldest readings are dropped (and counted) beyond it. */
        maxBytes: z
          .number()
          .int()
          .min(4096)
          .default(8 * 1024 * 1024),
      })
      .prefault({}),
    reconnect: z
      .strictObject({
        minMs: z.number().int().min(10).default(500),
        maxMs: z.number().int().min(10).default(30_000),
      })
      .prefault({})
      .refine((r) => r.maxMs >= r.minMs, "maxMs must be >= minMs"),
    /** At most 40: their seq counters must fit in the buffer's one-page mark. */
    sensors: z.array(sensor).max(40).default([]),
    outputs: z.array(output).default([]),
  })
  .superRefine((cfg, ctx) => {
    if (!cfg.token && !cfg.tokenFile) {
      ctx.addIssue({ code: "custom", path: ["token"], message: "one of token or tokenFile is required" });
    }
    const seen = new Map<string, string>();
    for (const [list, items] of [
      ["sensors", cfg.sensors],
      ["outputs", cfg.outputs],
    ] as const) {
      items.forEach((item, i) => {
        const where = `${list}.${i}`;
        const first = seen.get(item.id);
        if (first) {
          ctx.addIssue({
            code: "custom",
            path: [list, i, "id"],
            message: `duplicate id "${item.id}" (also ${first})`,
          });
        }
        seen.set(item.id, where);
      });
    }
    const pins = new Map<number, string>();
    for (const [list, items] of [
      ["sensors", cfg.sensors],
      ["outputs", cfg.outputs],
    ] as const) {
      items.forEach((item, i) => {
        if (!("gpio" in item)) return;
        const first = pins.get(item.gpio);
        if (first) {
          ctx.addIssue({
            code: "custom",
            path: [list, i, "gpio"],
            message: `gpio ${item.gpio} is already used by ${first}`,
          });
        }
        pins.set(item.gpio, `${list}.${i}`);
      });
    }
  });

/** The configuration as written (before paths are resolved and the token is read). */
export type AgentConfigInput = z.input<typeof configSchema>;
export type SensorConfig = z.output<typeof sensor>;
export type OutputConfig = z.output<typeof output>;

/** A validated configuration with absolute paths and the token resolved. */
export interface AgentConfig {
  device: string;
  token: string;
  broker: string;
  ca?: Buffer;
  prefix: string;
  heartbeatMs: number;
  ioRoot: string;
  gpioBase: number;
  stateDir: string;
  buffer: { dir: string; maxBytes: number };
  reconnect: { minMs: number; maxMs: number };
  sensors: SensorConfig[];
  outputs: OutputConfig[];
}

/** A configuration that failed to load or validate; `message` lists every problem with its path. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    message: string,
    readonly issues: string[] = [],
  ) {
    super(message);
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? "(root)" : path.map(String).join(".");
}

/**
 * Validates a configuration object. Relative paths (tokenFile, caFile, stateDir, ioRoot, buffer.dir) are resolved
 * against `baseDir`; `source` names the file in error messages.
 */
export function parseConfig(raw: unknown, baseDir: string, source = "config"): AgentConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
    throw new ConfigError(`${source}: invalid configuration:\n  ${issues.join("\n  ")}`, issues);
  }
  const cfg = result.data;
  const abs = (p: string) => resolve(baseDir, p);
  let token = cfg.token;
  if (cfg.tokenFile) {
    try {
      token = readFileSync(abs(cfg.tokenFile), "utf8").trim();
    } catch (err) {
      throw new ConfigError(
        `${source}: tokenFile: cannot read ${abs(cfg.tokenFile)}: ${(err as Error).message}`,
      );
    }
    if (!token) throw new ConfigError(`${source}: tokenFile: ${abs(cfg.tokenFile)} is empty`);
  }
  let ca: Buffer | undefined;
  if (cfg.caFile) {
    try {
      ca = readFileSync(abs(cfg.caFile));
    } catch (err) {
      throw new ConfigError(`${source}: caFile: cannot read ${abs(cfg.caFile)}: ${(err as Error).message}`);
    }
  }
  const stateDir = abs(cfg.stateDir);
  return {
    device: cfg.device,
    token: token as string,
    broker: cfg.broker,
    ...(ca ? { ca } : {}),
    prefix: cfg.prefix,
    heartbeatMs: cfg.heartbeatMs,
    ioRoot: abs(cfg.ioRoot),
    gpioBase: cfg.gpioBase,
    stateDir,
    buffer: {
      dir: cfg.buffer.dir ? abs(cfg.buffer.dir) : resolve(stateDir, "buffer"),
      maxBytes: cfg.buffer.maxBytes,
    },
    reconnect: cfg.reconnect,
    sensors: cfg.sensors,
    outputs: cfg.outputs,
  };
}

/** Reads and validates a `.json`, `.yaml` or `.yml` configuration file. */
export function loadConfig(file: string): AgentConfig {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${path}: cannot read config: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = extname(path) === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      `${path}: not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${(err as Error).message}`,
    );
  }
  return parseConfig(raw, dirname(path), path);
}
