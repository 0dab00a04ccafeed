/**
 * Device tokens. The fleet file keeps only `scrypt$N$r$p$salt$hash`; the clear token is shown once (and, with
 * `--tokens FILE`, appended as `id=token` for the device's own config or the simulator).
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

/** scrypt cost parameters: N=2^14, r=8, p=1 (~16 MiB, tens of ms); slow on purpose, so callers cache. */
export const SCRYPT_PARAMS = { N: 16384, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;
const SALT_BYTES = 16;

function scryptAsync(
  token: string,
  salt: Buffer,
  N: number,
  r: number,
  p: number,
  keylen: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(token, salt, keylen, { N, r, p, maxmem: 128 * N * r * 2 + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** A fresh device token: 32 random bytes, base64url (43 characters, safe in a URL, a shell and `id=token`). */
export function generateToken(): string {
  return randomBytes(32).toString("base64url");
}

/**
 * Hashes a token with scrypt and a random salt, encoded as `scrypt$N$r$p$salt$hash` (salt, hash base64url).
 *
 * `params` may lower the cost. A generated token carries 256 random bits, so scrypt's cost is defence in depth
 * (against a leaked fleet file holding a weak hand-written token), not what keeps it from being guessed; a fleet
 * of thousands of devices, which all log in at once when the hub starts, may choose `{ N: 1024 }` (~1 ms each).
 * The parameters travel in the hash, so hashes of different costs verify side by side.
 */
export async function hashToken(
  token: string,
  params: { N?: number; r?: number; p?: number } = {},
): Promise<string> {
  const { N, r, p } = { ...SCRYPT_PARAMS, ...params };
  if (!Number.isInteger(N) || N < 2 || (N & (N - 1)) !== 0)
    throw new RangeError("scrypt N must be a power of 2");
  const salt = randomBytes(SALT_BYTES);
  const key = await scryptAsync(token, salt, N, r, p, KEY_LENGTH);
  return `scrypt$${N}$${r}$${p}$${salt.toString("base64url")}$${key.toString("base64url")}`;
}

/**
 * Checks a token against an encoded hash in constant time with respect to the hash. A malformed hash, or
 * parameters out of sane bounds (which could make scrypt eat memory), verify as `false` rather than throw.
 */
export async function verifyToken(token: string, encoded: string): Promise<boolean> {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![N, r, p].every(Number.isInteger)) return false;
  if (N < 2 || N > 1 << 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const salt = Buffer.from(parts[4] ?? "", "base64url");
  const expected = Buffer.from(parts[5] ?? "", "base64url");
  if (salt.length === 0 || expected.length < 16) return false;
  const actual = await scryptAsync(token, salt, N, r, p, expected.length);
  return timingSafeEqual(actual, expected);
}
