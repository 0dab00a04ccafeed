/** Errors the broker raises for its callers (the CLI turns them into one line and an exit code). */

/**
 * The MQTT port is taken. The message is the one line the CLI prints; `exitCode` is what it exits with. Shaped
 * like the API's `PortInUseError` (`kind`, `host`, `port`) so the CLI can handle both alike.
 */
export class MqttPortInUseError extends Error {
  readonly kind = "mqtt" as const;
  readonly exitCode = 2;
  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    super(
      `mqtt port ${host}:${port} is already in use (on Debian, often the mosquitto service); pick another with ` +
        `--mqtt-port (0 picks a free one), or use the broker already there with --broker mqtt://${host}:${port}`,
    );
    this.name = "MqttPortInUseError";
  }
}

/** A publish or subscribe the ACL refused; counted and logged, and it closes a publishing connection. */
export class AclError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AclError";
  }
}

/** Persisting a QoS 1 reading failed: no PUBACK is sent and the connection is closed, so the device resends. */
export class PersistError extends Error {
  constructor(
    message: string,
    override readonly cause: unknown,
  ) {
    super(message);
    this.name = "PersistError";
  }
}
