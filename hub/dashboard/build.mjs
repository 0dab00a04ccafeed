// Bundles the dashboard into hub/dashboard/dist (index.html, app.js, app.css). Run by `npm install`/`npm ci`
// (the root package's `prepare` script) and by `npm run build:dashboard`; `--watch` rebuilds on change;
// `--outdir DIR` builds elsewhere (the end-to-end test builds the current sources into a temp dir).
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outFlag = process.argv.indexOf("--outdir");
const out = outFlag > 0 ? resolve(process.argv[outFlag + 1] ?? "") : join(here, "dist");
const watch = process.argv.includes("--watch");

// Files are overwritten in place (no wipe first), so a hub serving this directory never sees it empty.
await mkdir(out, { recursive: true });
await copyFile(join(here, "index.html"), join(out, "index.html"));

/**
 * Hub modules the page may bundle (it imports their values, not only types): each has no imports and no Node code.
 * `import type` from any hub module is fine (esbuild erases it); a value import from one not listed here fails the
 * build, so Node code (or a module that may grow some) never reaches the browser by accident.
 */
const BUNDLED_HUB_MODULES = new Set(["hub/faults/contract.ts"]);
const root = resolve(here, "../..");

const options = {
  entryPoints: { app: join(here, "src/main.tsx") },
  platform: "browser",
  outdir: out,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: !watch,
  sourcemap: true,
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "linked",
  logLevel: watch ? "info" : "warning",
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  const result = await esbuild.build({ ...options, metafile: true });
  const stray = Object.keys(result.metafile.inputs)
    .map((input) => relative(root, resolve(process.cwd(), input)).split(sep).join("/"))
    .filter((file) => file.startsWith("hub/") && !file.startsWith("hub/dashboard/"))
    .filter((file) => !BUNDLED_HUB_MODULES.has(file));
  if (stray.length > 0) {
    console.error(
      `dashboard: the bundle pulled in hub modules not known to be Node-free: ${stray.join(", ")}\n` +
        "  (use `import type`, or check the module and add it to BUNDLED_HUB_MODULES in hub/dashboard/build.mjs)",
    );
    process.exit(1);
  }
  const bytes = Object.entries(result.metafile.outputs)
    .filter(([file]) => !file.endsWith(".map"))
    .reduce((n, [, o]) => n + o.bytes, 0);
  console.log(`dashboard: built ${out} (${Math.round(bytes / 1024)} KiB of JS and CSS)`);
}
