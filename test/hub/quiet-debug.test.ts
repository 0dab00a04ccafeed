/**
 * hub/broker/quiet-debug.ts: with DEBUG unset, the loggers mqtt-packet makes are one shared no-op (a disabled
 * `debug` logger allocates its arguments on every call); with DEBUG set, `debug` works as before.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
// What mqtt-packet's parser gets when it asks for its logger, after the hub's broker module has loaded.
const probe = `
import { createRequire } from "node:module";
await import("./hub/broker.ts");
const { quietLogger } = await import("./hub/broker/quiet-debug.ts");
const req = createRequire(import.meta.url);
const packet = createRequire(req.resolve("aedes")).resolve("mqtt-packet");
const log = createRequire(packet)("debug")("mqtt-packet:parser");
console.log(JSON.stringify({ quiet: log === quietLogger, enabled: log.enabled }));
`;

function run(env: NodeJS.ProcessEnv): { quiet: boolean; enabled: boolean } {
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", probe], {
    cwd: root,
    env,
    encoding: "utf8",
  });
  return JSON.parse(out.trim().split("\n").at(-1) ?? "{}");
}

describe("quiet debug", () => {
  it("gives mqtt-packet a no-op logger when DEBUG is unset", () => {
    const { DEBUG: _, ...env } = process.env;
    expect(run(env)).toEqual({ quiet: true, enabled: false });
  }, 30_000);

  it("leaves debug alone when DEBUG asks for output", () => {
    expect(run({ ...process.env, DEBUG: "mqtt-packet:*" })).toEqual({ quiet: false, enabled: true });
  }, 30_000);
});
