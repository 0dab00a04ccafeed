/**
 * Bundles the agent into one ES module that plain `node` (>= 20) runs, with every dependency inlined:
 *
 *   npx tsx firmware/pi-agent/build.ts            # writes firmware/pi-agent/dist/ganglion-agent.mjs
 *   npx tsx firmware/pi-agent/build.ts --check    # exits 1 if the committed bundle is not what the sources build
 *
 * The output is deterministic (no timestamps, no absolute paths), so the committed bundle can be checked.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
/** Where the bundle goes, relative to this file. */
export const BUNDLE = join(here, "dist", "ganglion-agent.mjs");
/** The licenses of the bundled packages, next to the bundle. */
export const LICENSES = join(here, "dist", "THIRD-PARTY-LICENSES.txt");

/** Builds the bundle in memory and returns its text. */
export async function bundle(): Promise<{ text: string; licenses: string }> {
  const result = await build({
    entryPoints: [join(here, "cli.ts")],
    absWorkingDir: here,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    // Smaller to load on a Pi Zero; names kept so stack traces and logs stay readable.
    minify: true,
    keepNames: true,
    legalComments: "inline",
    metafile: true,
    write: false,
    logLevel: "warning",
    // Bundled CommonJS dependencies call require() for node built-ins; give the ES module one.
    banner: {
      js: [
        "#!/usr/bin/env node",
        "// ganglion-agent: the Ganglion Raspberry Pi agent, bundled from firmware/pi-agent (do not edit).",
        'import { createRequire as __ganglionCreateRequire } from "node:module";',
        "const require = __ganglionCreateRequire(import.meta.url);",
      ].join("\n"),
    },
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error("esbuild produced no output");
  return { text: file.text, licenses: licenses(Object.keys(result.metafile.inputs)) };
}

/** The license texts of every npm package inlined in the bundle, which their licenses ask copies to carry. */
function licenses(inputs: string[]): string {
  const dirs = new Set<string>();
  for (const input of inputs) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m?.[1]) dirs.add(m[1]);
  }
  const parts: string[] = [];
  for (const dir of [...dirs].sort()) {
    const pkg = JSON.parse(readFileSync(join(here, dir, "package.json"), "utf8")) as {
      name: string;
      version: string;
      license?: string;
    };
    const file = readdirSync(join(here, dir)).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
    const text = file
      ? readFileSync(join(here, dir, file), "utf8").trim()
      : `(no license file; package.json says ${pkg.license})`;
    parts.push(`${pkg.name}@${pkg.version} (${pkg.license ?? "unknown"})\n\n${text}\n`);
  }
  return `Third-party software bundled in ganglion-agent.mjs\n\n${parts.join(`\n${"-".repeat(78)}\n\n`)}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { text, licenses } = await bundle();
  if (process.argv.includes("--check")) {
    const read = (f: string) => {
      try {
        return readFileSync(f, "utf8");
      } catch {
        return "";
      }
    };
    if (read(BUNDLE) !== text || read(LICENSES) !== licenses) {
      console.error(`${BUNDLE} is out of date: run npx tsx firmware/pi-agent/build.ts and commit dist/`);
      process.exit(1);
    }
    console.log(`${BUNDLE} is up to date`);
  } else {
    mkdirSync(dirname(BUNDLE), { recursive: true });
    writeFileSync(BUNDLE, text, { mode: 0o755 });
    writeFileSync(LICENSES, licenses);
    console.log(`wrote ${BUNDLE} (${(Buffer.byteLength(text) / 1024).toFixed(0)} KiB)`);
  }
}
