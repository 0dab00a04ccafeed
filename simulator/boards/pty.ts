/**
 * A pseudo-terminal in front of an emulated board, which any program can open like /dev/ttyACM0 (avrdude, screen,
 * serialport). Debian's socat makes the pty and connects it to a TCP listener on 127.0.0.1 (with TCP_NODELAY: Nagle
 * plus delayed ACKs doubled avrdude's flashing time). socat runs with `wait-slave`, so it connects only when a
 * program opens the pty and exits when that program closes it; it is then started again. Each connection is thus
 * one open of the port — the emulated Uno resets on it, as a real one does on DTR (a pty has no DTR line).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, lstatSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";

/** Callbacks of a {@link PtyBridge}. */
export interface PtyBridgeHandlers {
  /** A program opened the pty (reset the board here). */
  onOpen: () => void;
  /** Bytes the program wrote. */
  onData: (bytes: Uint8Array) => void;
  /** The program closed the pty. */
  onClose?: () => void;
  /** The pty exists and can be opened (at start, and again after each close). */
  onReady?: () => void;
  /** socat failed to start or died unexpectedly. */
  onError?: (error: Error) => void;
}

/** Why the pty could not be made. */
export class PtyError extends Error {
  override readonly name = "PtyError";
}

/** The socat-backed pty of one board. */
export class PtyBridge {
  private server: Server | undefined;
  private socat: ChildProcess | undefined;
  private client: Socket | undefined;
  private stopped = false;
  private port = 0;
  /** Number of times a program opened the pty. */
  opens = 0;

  constructor(
    /** Path of the symlink to the pty (e.g. /tmp/ganglion-uno-1/tty). */
    readonly path: string,
    private readonly handlers: PtyBridgeHandlers,
  ) {}

  /** Starts the listener and socat; resolves once the pty path exists. */
  async start(): Promise<void> {
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (!address || typeof address === "string") throw new PtyError("TCP listener has no port");
    this.port = address.port;
    await this.spawnSocat();
  }

  /** Sends bytes the firmware transmitted to the program that has the pty open (dropped when none has). */
  write(bytes: Uint8Array): void {
    const client = this.client;
    if (client && !client.destroyed) client.write(bytes);
  }

  /** Whether a program has the pty open. */
  get isOpen(): boolean {
    return this.client !== undefined;
  }

  /** Stops socat (removing the pty) and the listener. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.client?.destroy();
    const socat = this.socat;
    if (socat && socat.exitCode === null && socat.signalCode === null) {
      const exited = new Promise<void>((resolve) => socat.once("exit", () => resolve()));
      socat.kill("SIGTERM");
      await exited;
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    if (this.client) this.client.destroy();
    this.client = socket;
    this.opens++;
    this.handlers.onOpen();
    socket.on("data", (data) =>
      this.handlers.onData(new Uint8Array(data.buffer, data.byteOffset, data.length)),
    );
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.client === socket) {
        this.client = undefined;
        this.handlers.onClose?.();
      }
    });
  }

  private async spawnSocat(): Promise<void> {
    const args = [
      `PTY,link=${this.path},raw,echo=0,wait-slave,pty-interval=0.01`,
      `TCP:127.0.0.1:${this.port},nodelay`,
    ];
    let child: ChildProcess;
    try {
      child = spawn("socat", args, { stdio: ["ignore", "ignore", "pipe"] });
    } catch (error) {
      throw new PtyError(`cannot run socat (apt-get install socat): ${(error as Error).message}`);
    }
    this.socat = child;
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
    child.once("exit", (code, signal) => {
      if (this.socat !== child || this.stopped) return;
      this.socat = undefined;
      // A program closed the pty (socat ends with it): make a fresh one for the next open.
      if (code !== 0 && signal === null && this.opens === 0) {
        this.handlers.onError?.(new PtyError(`socat exited with ${code}: ${stderr.trim()}`));
        return;
      }
      setTimeout(() => {
        if (!this.stopped) this.spawnSocat().catch((e: Error) => this.handlers.onError?.(e));
      }, 0);
    });
    // Wait for socat to create the link (it does so before waiting for the slave to be opened).
    const deadline = Date.now() + 5000;
    for (;;) {
      const failed = await Promise.race([spawnError, sleep(5).then(() => undefined)]);
      if (failed) {
        const hint = (failed as NodeJS.ErrnoException).code === "ENOENT" ? " (apt-get install socat)" : "";
        throw new PtyError(`cannot run socat${hint}: ${failed.message}`);
      }
      if (child.exitCode !== null)
        throw new PtyError(`socat exited with ${child.exitCode}: ${stderr.trim()}`);
      if (isSymlink(this.path)) {
        this.handlers.onReady?.();
        return;
      }
      if (Date.now() > deadline) throw new PtyError(`socat did not create ${this.path} within 5 s`);
    }
  }
}

function isSymlink(path: string): boolean {
  try {
    return existsSync(path) && lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
