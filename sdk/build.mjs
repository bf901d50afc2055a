// build.mjs: bundles src/index.ts into dist/sdk.js (minified IIFE exposing
// window.telemetry; committed, embedded by the Go package and served at
// /v1/sdk.js) and dist/sdk.mjs (ESM, for bundlers and the unit tests), and
// prints their gzipped sizes. `node build.mjs --outdir DIR` writes elsewhere
// (the Go test builds into a temporary directory and compares).
import { build } from "esbuild";
import { readFileSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const i = process.argv.indexOf("--outdir");
const outdir = i > 0 ? process.argv[i + 1] : join(here, "dist");
const pkg = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));

const common = {
  entryPoints: [join(here, "src/index.ts")],
  bundle: true,
  target: ["es2020"],
  platform: "browser",
  legalComments: "none",
  charset: "utf8",
  define: { __VERSION__: JSON.stringify(pkg.version) },
  logLevel: "warning",
};

await Promise.all([
  build({ ...common, format: "iife", globalName: "telemetry", minify: true, outfile: join(outdir, "sdk.js") }),
  build({ ...common, format: "esm", outfile: join(outdir, "sdk.mjs") }),
]);

for (const f of ["sdk.js", "sdk.mjs"]) {
  const p = join(outdir, f);
  const raw = readFileSync(p);
  console.log(`${f}: ${statSync(p).size} bytes, ${gzipSync(raw, { level: 9 }).length} gzipped`);
}
