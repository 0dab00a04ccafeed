/**
 * `ganglion` — the command line and the composition root. Each command lives in `hub/cli/<command>.ts`; this file
 * only wires them. Every failure is one line on stderr (`ganglion: ...`) and a non-zero exit.
 */
import { Command } from "commander";
import { registerBoards } from "./cli/boards.ts";
import { registerDevice } from "./cli/device.ts";
import { registerDevices } from "./cli/devices.ts";
import { registerFault } from "./cli/fault.ts";
import { registerFlash } from "./cli/flash.ts";
import { registerInit } from "./cli/init.ts";
import { registerSimulate } from "./cli/simulate.ts";
import { registerStart } from "./cli/start.ts";
import { registerWatch } from "./cli/watch.ts";

const program = new Command("ganglion")
  .description(
    "Supervise a fleet of Arduino and Raspberry Pi boards the way Erlang/OTP supervises processes.",
  )
  // Options after a subcommand belong to it (`fault list --url X`, where `fault` has a --url of its own).
  .enablePositionalOptions()
  .configureOutput({
    // Commander's own errors (bad flag, missing argument) as one line, like ours.
    outputError: (text, write) => write(`ganglion: ${text.trim().replace(/^error: /, "")} (see --help)\n`),
  });

registerInit(program);
registerStart(program);
registerDevices(program);
registerDevice(program);
registerBoards(program);
registerFlash(program);
registerWatch(program);
registerSimulate(program);
registerFault(program);

await program.parseAsync(process.argv);
