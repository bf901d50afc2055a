// build.mjs: bundles src/main.js (the pages and their SVG charts) into
// dist/dashboard.js (minified IIFE) and its styles into
// dist/dashboard.css. Both are committed and embedded by the Go package
// dashboards, which serves them at /dashboard/assets/. `node build.mjs
// --outdir DIR` writes elsewhere (the Go test builds into a temporary
// directory and compares with the committed files).
import { build } from "esbuild";
import { readFileSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const i = process.argv.indexOf("--outdir");
const outdir = i > 0 ? process.argv[i + 1] : join(here, "dist");

await build({
  entryPoints: { dashboard: join(here, "src/main.js") },
  bundle: true,
  format: "iife",
  minify: true,
  target: ["es2020"],
  platform: "browser",
  legalComments: "none",
  charset: "utf8",
  outdir,
  logLevel: "warning",
});

for (const f of ["dashboard.js", "dashboard.css"]) {
  const p = join(outdir, f);
  console.log(`${f}: ${statSync(p).size} bytes, ${gzipSync(readFileSync(p), { level: 9 }).length} gzipped`);
}
