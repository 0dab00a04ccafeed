/**
 * The broker's credentials table: device id → token hash from the fleet file, plus the hub's own per-run secret.
 * Replaced at run time when devices are added or removed; no restart.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { verifyToken } from "../config/tokens.ts";
import type { Identity } from "./acl.ts";

/** A device allowed to log in over MQTT. */
export interface DeviceCredential {
  id: string;
  /** `scrypt$N$r$p$salt$hash`, as the fleet file holds it. */
  tokenHash: string;
}

/** The outcome of a login attempt. */
export type AuthResult = { ok: true; identity: Identity } | { ok: false; reason: string };

/** scrypt verifications allowed to run at once (see {@link Credentials}). */
export const MAX_CONCURRENT_SCRYPT = 2;

/** The username the hub's own client logs in with; `hub` is a reserved device id, so no device can hold it. */
export const HUB_USERNAME = "hub";

function digest(password: Buffer): Buffer {
  return createHash("sha256").update(password).digest();
}

/**
 * Checks logins. scrypt is slow on purpose (tens of ms), and after a broker restart every device reconnects at
 * once, so a successful verification is remembered as a SHA-256 of the token, bound to the hash it was checked
 * against: the next login of that device with the same token costs a hash, not an scrypt. Changing or removing a
 * device's token forgets it.
 */
export class Credentials {
  /** The hub client's password for this run. */
  readonly hubSecret: string;
  private devices = new Map<string, string>();
  private verified = new Map<string, { tokenHash: string; digest: Buffer }>();
  private running = 0;
  /** scrypt runs, logins answered from the cache, and the most verifications that ran at once. */
  readonly stats = { scrypt: 0, cacheHits: 0, peakConcurrent: 0 };
  private readonly waiting: (() => void)[] = [];

  constructor(devices: Iterable<DeviceCredential> = [], hubSecret = randomBytes(32).toString("base64url")) {
    this.hubSecret = hubSecret;
    this.set(devices);
  }

  /**
   * Runs at most {@link MAX_CONCURRENT_SCRYPT} verifications at once. scrypt runs on libuv's thread pool (4 threads),
   * which file I/O and DNS share: a reconnect storm, or someone spraying wrong tokens, must not take all of it.
   */
  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    // A finishing verification hands its slot straight to the next waiter, so `running` never overshoots.
    if (this.running >= MAX_CONCURRENT_SCRYPT)
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    this.stats.peakConcurrent = Math.max(this.stats.peakConcurrent, this.running);
    this.stats.scrypt++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** Replaces the table; returns the ids whose credentials were removed or changed (their sessions must go). */
  set(devices: Iterable<DeviceCredential>): string[] {
    const next = new Map<string, string>();
    for (const d of devices) next.set(d.id, d.tokenHash);
    const revoked: string[] = [];
    for (const [id, hash] of this.devices) {
      if (next.get(id) !== hash) revoked.push(id);
    }
    for (const id of revoked) this.verified.delete(id);
    this.devices = next;
    return revoked;
  }

  /** The devices in the table. */
  list(): DeviceCredential[] {
    return [...this.devices].map(([id, tokenHash]) => ({ id, tokenHash }));
  }

  /** Whether a device id is in the table. */
  has(id: string): boolean {
    return this.devices.has(id);
  }

  /** Number of devices in the table. */
  get size(): number {
    return this.devices.size;
  }

  /**
   * Checks a CONNECT's username and password. No username and no password is an anonymous login, allowed only
   * when `anonymous` is true.
   */
  async authenticate(
    username: string | undefined,
    password: Buffer | undefined,
    anonymous: boolean,
  ): Promise<AuthResult> {
    if (!username) {
      if (password && password.length > 0) return { ok: false, reason: "password without username" };
      return anonymous
        ? { ok: true, identity: { kind: "anonymous" } }
        : { ok: false, reason: "anonymous login is not allowed by the fleet config" };
    }
    if (!password || password.length === 0) return { ok: false, reason: "no password" };
    if (username === HUB_USERNAME) {
      const a = digest(password);
      const b = digest(Buffer.from(this.hubSecret));
      return timingSafeEqual(a, b)
        ? { ok: true, identity: { kind: "hub" } }
        : { ok: false, reason: "wrong hub secret" };
    }
    const tokenHash = this.devices.get(username);
    if (!tokenHash) return { ok: false, reason: "unknown device" };
    const d = digest(password);
    const cached = this.verified.get(username);
    if (cached && cached.tokenHash === tokenHash && timingSafeEqual(cached.digest, d)) {
      this.stats.cacheHits++;
      return { ok: true, identity: { kind: "device", id: username } };
    }
    const ok = await this.limited(() => verifyToken(password.toString("utf8"), tokenHash));
    // The table may have changed while scrypt ran: only a still-current hash counts.
    if (!ok || this.devices.get(username) !== tokenHash) return { ok: false, reason: "wrong token" };
    this.verified.set(username, { tokenHash, digest: d });
    return { ok: true, identity: { kind: "device", id: username } };
  }
}
