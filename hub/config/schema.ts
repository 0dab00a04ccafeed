/**
 * The fleet file's schema: the one place that says which keys `fleet.yaml` may hold, their defaults and their
 * limits (DESIGN.md §2). Every object is strict, so a misspelt key is refused by name instead of ignored.
 */
import { z } from "zod";

/** Device and sensor ids (DESIGN.md §2). */
export const ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Ids no device may take: `hub` is the hub's own path segment and MQTT topic (`ganglion/hub/events`). */
export const RESERVED_IDS: ReadonlySet<string> = new Set(["hub"]);

/** Board kinds as the API and the config spell them. */
export const BOARD_KINDS = ["arduino-uno", "arduino-nano", "arduino-mega", "raspberry-pi"] as const;
export type BoardKind = (typeof BOARD_KINDS)[number];

/** Short names the CLI and the fleet file also accept; they are normalised to {@link BOARD_KINDS}. */
export const BOARD_ALIASES: Readonly<Record<string, BoardKind>> = {
  uno: "arduino-uno",
  nano: "arduino-nano",
  mega: "arduino-mega",
  pi: "raspberry-pi",
  rpi: "raspberry-pi",
};

/** Returns the canonical board kind for a kind or alias, or `undefined` when it is neither. */
export function normaliseBoardKind(kind: string): BoardKind | undefined {
  if ((BOARD_KINDS as readonly string[]).includes(kind)) return kind as BoardKind;
  return BOARD_ALIASES[kind];
}

/** Input kinds: the hub reads them and publishes `state/<id>`. */
export const SENSOR_KINDS = ["thermometer", "analog", "button", "digital-in", "humidity", "light"] as const;
/** Output kinds: the hub drives them through `cmd/<id>` or the board protocol. */
export const ACTUATOR_KINDS = ["led", "relay", "servo", "digital-out", "pwm"] as const;

/** Encoded scrypt hash as written by `hashToken`: `scrypt$N$r$p$salt$hash`, salt and hash base64url. */
export const TOKEN_HASH_PATTERN = /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/;

/**
 * A bus address: a 1-Wire id (`28-0316a2794bff`), an I2C address (`0x48`), or an IIO device by number or name
 * (`iio:device0`, `iio:bme280`).
 */
export const ADDRESS_PATTERN = /^(?:[0-9a-f]{2}-[0-9a-f]{12}|0x[0-9a-fA-F]{2}|iio:[A-Za-z0-9_-]+)$/;

const id = (what: string) =>
  z
    .string({ error: `expected a ${what} id (string)` })
    .regex(ID_PATTERN, { error: `expected a ${what} id matching [a-z0-9][a-z0-9-]{0,63}` });

const port = z
  .number({ error: "expected a port number" })
  .int({ error: "expected an integer port" })
  .min(0, { error: "expected a port in 0-65535 (0 picks a free port)" })
  .max(65535, { error: "expected a port in 0-65535 (0 picks a free port)" });

const positiveMs = (what: string) =>
  z
    .number({ error: `expected ${what} in milliseconds` })
    .int({ error: `expected ${what} as whole milliseconds` })
    .positive({ error: `expected ${what} > 0 ms` });

/** A serial board's heartbeat period (device `heartbeatMs`): the firmware takes 14 bits; below 100 ms it is all chatter. */
export const MIN_SERIAL_HEARTBEAT_MS = 100;
export const MAX_SERIAL_HEARTBEAT_MS = 16_383;
const HEARTBEAT_MS_RANGE = `${MIN_SERIAL_HEARTBEAT_MS}-${MAX_SERIAL_HEARTBEAT_MS} ms, the firmware's range`;

/** An Arduino pin: a number, or an analog name `A0`..`A15`. */
const pin = z.union([z.number().int().min(0).max(69), z.string().regex(/^A(?:[0-9]|1[0-5])$/)], {
  error: "expected a pin number (0-69) or an analog pin A0..A15",
});

const ADDRESS_EXPECTED =
  "expected a 1-Wire id (28-xxxxxxxxxxxx), an I2C address (0x48), iio:deviceN or iio:<name>";
/** YAML reads an unquoted `0x48` as the number 72; either spelling ends up as the string `0x48`. */
const address = z.union(
  [
    z
      .number()
      .int({ error: ADDRESS_EXPECTED })
      .min(0x03, { error: "expected an I2C address in 0x03-0x77" })
      .max(0x77, { error: "expected an I2C address in 0x03-0x77" })
      .transform((n) => `0x${n.toString(16).padStart(2, "0")}`),
    z.string().regex(ADDRESS_PATTERN, { error: ADDRESS_EXPECTED }),
  ],
  { error: ADDRESS_EXPECTED },
);

const range = z
  .tuple([z.number(), z.number()], { error: "expected [min, max] with min < max" })
  .refine(([min, max]) => min < max, { error: "expected [min, max] with min < max" });

const usbId = z
  .string({ error: 'expected a USB id of 4 hex digits, e.g. "2341"' })
  .regex(/^(?:0x)?[0-9a-fA-F]{4}$/, { error: 'expected a USB id of 4 hex digits, e.g. "2341"' })
  .transform((s) => s.replace(/^0x/, "").toLowerCase());

/** The hub's own settings; every key has a default so an empty `hub:` (or none) is valid. */
export const HubSettingsSchema = z.strictObject({
  http: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: port.default(8080),
    })
    .prefault({}),
  mqtt: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: port.default(1883),
      /** Topic prefix of DESIGN.md §2's MQTT contract. */
      topicPrefix: z
        .string()
        .regex(/^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*$/, { error: "expected topic levels without wildcards" })
        .default("ganglion"),
      /** Largest MQTT packet accepted, in bytes; a bigger one drops only that connection. */
      maxPacketSize: z
        .number()
        .int()
        .min(128)
        .max(268_435_455)
        .default(64 * 1024),
      /** Let anonymous clients read `state/#`, `+/status` and `hub/events`. */
      anonymousRead: z.boolean().default(false),
      /** Use this broker instead of the embedded one, e.g. `mqtt://10.0.0.2:1883`. */
      broker: z
        .string()
        .regex(/^(?:mqtts?|wss?):\/\/\S+$/, { error: "expected a broker URL like mqtt://host:1883" })
        .optional(),
    })
    .prefault({}),
  tls: z
    .strictObject({
      cert: z.string({ error: "expected a path to a PEM certificate" }).min(1),
      key: z.string({ error: "expected a path to a PEM private key" }).min(1),
    })
    .optional(),
  dataDir: z.string().min(1).default("./data"),
  /** Rows of telemetry kept per sensor unless the sensor sets its own `retention`. */
  retention: z.number().int().positive().default(100_000),
  heartbeatMs: positiveMs("heartbeatMs").default(5000),
});

/** A serial link: by port path, or by USB vendor/product id as serialport's list reports them. */
export const SerialLinkSchema = z
  .strictObject({
    type: z.literal("serial"),
    path: z.string().min(1).optional(),
    vendorId: usbId.optional(),
    productId: usbId.optional(),
    baudRate: z.number().int().positive().default(57600),
  })
  .superRefine((link, ctx) => {
    if (link.path === undefined && (link.vendorId === undefined || link.productId === undefined)) {
      ctx.addIssue({ code: "custom", message: "expected a port path, or both vendorId and productId" });
    }
  });

/** An MQTT link: the device logs in with its id and a token whose hash is kept here. */
export const MqttLinkSchema = z.strictObject({
  type: z.literal("mqtt"),
  tokenHash: z
    .string({ error: "expected tokenHash (scrypt$N$r$p$salt$hash; `ganglion device add` writes it)" })
    .regex(TOKEN_HASH_PATTERN, {
      error: "expected scrypt$N$r$p$salt$hash (`ganglion device add` writes it)",
    }),
});

export const LinkSchema = z.discriminatedUnion("type", [SerialLinkSchema, MqttLinkSchema], {
  error: 'expected link.type "serial" or "mqtt"',
});

/** A part may name a pin or a bus address, not both. */
const onePlace = <T extends { pin?: unknown; address?: unknown }>(v: T, ctx: z.RefinementCtx) => {
  if (v.pin !== undefined && v.address !== undefined) {
    ctx.addIssue({ code: "custom", message: "expected either pin or address, not both", path: ["address"] });
  }
};

export const SensorSchema = z
  .strictObject({
    id: id("sensor"),
    kind: z.enum(SENSOR_KINDS, { error: `expected a sensor kind: ${SENSOR_KINDS.join(", ")}` }),
    unit: z.string().min(1).optional(),
    pin: pin.optional(),
    address: address.optional(),
    periodMs: positiveMs("periodMs").default(1000),
    /** Valid readings lie in `[min, max]`; others are rejected and counted. */
    range: range.optional(),
    /** Largest believable change per second; faster jumps are flagged as noise. */
    maxRatePerS: z.number().positive().optional(),
    /** A sensor with no reading for this long is stale (`faulty`); default 3 × periodMs. */
    staleMs: positiveMs("staleMs").optional(),
    /** A value that does not move for this long is flat-lined (`faulty`); unset disables the check. */
    flatLineMs: positiveMs("flatLineMs").optional(),
    /** Telemetry rows kept for this sensor (overrides `hub.retention`). */
    retention: z.number().int().positive().optional(),
  })
  .superRefine(onePlace);

export const ActuatorSchema = z
  .strictObject({
    id: id("actuator"),
    kind: z.enum(ACTUATOR_KINDS, { error: `expected an actuator kind: ${ACTUATOR_KINDS.join(", ")}` }),
    unit: z.string().min(1).optional(),
    pin: pin.optional(),
    address: address.optional(),
    /** State applied at start and re-applied after a reset: on/off, or a number (servo degrees, PWM duty). */
    initial: z.union([z.boolean(), z.number()]).optional(),
  })
  .superRefine(onePlace);

export const DeviceSchema = z
  .strictObject({
    id: id("device").refine((v) => !RESERVED_IDS.has(v), {
      error: '"hub" is reserved; pick another device id',
    }),
    board: z
      .string({ error: `expected a board kind: ${BOARD_KINDS.join(", ")} (or uno, nano, mega)` })
      .transform((v, ctx): BoardKind => {
        const kind = normaliseBoardKind(v);
        if (kind) return kind;
        ctx.addIssue({
          code: "custom",
          message: `expected a board kind: ${BOARD_KINDS.join(", ")} (or uno, nano, mega); got "${v}"`,
        });
        return z.NEVER;
      }),
    name: z.string().optional(),
    link: LinkSchema,
    /** No telemetry or heartbeat for this long marks the device offline; default 3 × hub.heartbeatMs. */
    silenceMs: positiveMs("silenceMs").optional(),
    /**
     * An MQTT device offline this long (after it was last heard) is `down`: its link exits and restarts with
     * backoff, and it is `online` again as soon as it reports (devices/links/mqtt-link.ts); default 60000.
     */
    downAfterMs: positiveMs("downAfterMs").optional(),
    /**
     * A serial board's heartbeat period, which the hub sets on the Ganglion firmware (sysex 0x0A, whose 14 bits
     * cap it at 16383 ms); the board is silent, and its link restarted, after 3 periods without one. Default 1000.
     */
    heartbeatMs: z
      .number({ error: `expected heartbeatMs in milliseconds (${HEARTBEAT_MS_RANGE})` })
      .int({ error: `expected heartbeatMs as whole milliseconds (${HEARTBEAT_MS_RANGE})` })
      .min(MIN_SERIAL_HEARTBEAT_MS, { error: `expected heartbeatMs in ${HEARTBEAT_MS_RANGE}` })
      .max(MAX_SERIAL_HEARTBEAT_MS, { error: `expected heartbeatMs in ${HEARTBEAT_MS_RANGE}` })
      .optional(),
    sensors: z.array(SensorSchema).default([]),
    actuators: z.array(ActuatorSchema).default([]),
  })
  .superRefine((device, ctx) => {
    const isPi = device.board === "raspberry-pi";
    if (isPi && device.link.type !== "mqtt") {
      ctx.addIssue({ code: "custom", path: ["link", "type"], message: 'expected "mqtt" for a raspberry-pi' });
    }
    if (device.downAfterMs !== undefined && device.link.type !== "mqtt") {
      ctx.addIssue({
        code: "custom",
        path: ["downAfterMs"],
        message:
          "expected downAfterMs only on an mqtt device (a serial board is down as soon as its port is gone)",
      });
    }
    if (device.heartbeatMs !== undefined && device.link.type !== "serial") {
      ctx.addIssue({
        code: "custom",
        path: ["heartbeatMs"],
        message:
          "expected heartbeatMs only on a serial board (an mqtt device's heartbeat is hub.heartbeatMs; its silence, silenceMs)",
      });
    }
    if (!isPi && device.link.type !== "serial") {
      ctx.addIssue({
        code: "custom",
        path: ["link", "type"],
        message: `expected "serial" for an ${device.board}`,
      });
    }
    const seen = new Map<string, string>();
    for (const list of ["sensors", "actuators"] as const) {
      device[list].forEach((part, i) => {
        // The hub drives an Arduino's pins itself; a Pi's agent has its own hardware config, so there it is optional.
        if (!isPi && part.pin === undefined && part.address === undefined) {
          ctx.addIssue({ code: "custom", path: [list, i], message: "expected a pin or a bus address" });
        }
        const first = seen.get(part.id);
        if (first) {
          ctx.addIssue({
            code: "custom",
            path: [list, i, "id"],
            message: `duplicate id "${part.id}" (already used by ${first})`,
          });
        } else seen.set(part.id, `${list}[${i}]`);
      });
    }
  });

export const FleetConfigSchema = z
  .strictObject({
    hub: HubSettingsSchema.prefault({}),
    devices: z.array(DeviceSchema, { error: "expected a list of devices" }).nullable().default([]),
  })
  .transform((c) => ({ ...c, devices: c.devices ?? [] }))
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    config.devices.forEach((device, i) => {
      const first = seen.get(device.id);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["devices", i, "id"],
          message: `duplicate device id "${device.id}" (already used by devices[${first}])`,
        });
      } else seen.set(device.id, i);
    });
  });

/** A validated fleet file with defaults filled in. */
export type FleetConfig = z.infer<typeof FleetConfigSchema>;
/** The hub's settings block. */
export type HubSettings = z.infer<typeof HubSettingsSchema>;
/** One device, board kind normalised. */
export type DeviceConfig = z.infer<typeof DeviceSchema>;
/** A device as written by a user or posted to `POST /api/devices` (aliases and omitted defaults allowed). */
export type DeviceInput = z.input<typeof DeviceSchema>;
export type LinkConfig = z.infer<typeof LinkSchema>;
export type SerialLinkConfig = z.infer<typeof SerialLinkSchema>;
export type MqttLinkConfig = z.infer<typeof MqttLinkSchema>;
export type SensorConfig = z.infer<typeof SensorSchema>;
export type ActuatorConfig = z.infer<typeof ActuatorSchema>;
export type SensorKind = (typeof SENSOR_KINDS)[number];
export type ActuatorKind = (typeof ACTUATOR_KINDS)[number];
