/**
 * `ganglion init`: writes the commented starter fleet file, never over an existing one unless `--force`.
 */
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { starterFleetYaml } from "../config.ts";
import { action, CliError, defaultConfigPath } from "./common.ts";

/** Options of `ganglion init`. */
export interface InitOptions {
  config: string;
  force?: boolean;
}

/** Writes the starter fleet file to `opts.config`; refuses to overwrite without `force`. */
export async function runInit(opts: InitOptions): Promise<void> {
  try {
    await writeFile(opts.config, starterFleetYaml(), { encoding: "utf8", flag: opts.force ? "w" : "wx" });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw new CliError(`${opts.config} already exists; pass --force to overwrite it`);
    if (code === "ENOENT") throw new CliError(`cannot write ${opts.config}: its directory does not exist`);
    if (code === "EISDIR") throw new CliError(`cannot write ${opts.config}: it is a directory`);
    throw new CliError(`cannot write ${opts.config}: ${(err as Error).message}`);
  }
  console.log(`ganglion: wrote ${opts.config}; add boards with \`ganglion device add <id> --board <kind>\``);
}

/** Registers `init`. */
export function registerInit(program: Command): void {
  program
    .command("init")
    .description("write a commented starter fleet file")
    .option("--config <file>", "fleet file to write (env GANGLION_CONFIG)", defaultConfigPath())
    .option("--force", "overwrite an existing file")
    .action(action((opts: InitOptions) => runInit(opts)));
}
