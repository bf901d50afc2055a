// The size budget of the bundle the web client loads: 5 KB gzipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUDGET = 5 * 1024;

test("dist/sdk.js is at most 5 KB gzipped", () => {
  const js = readFileSync(new URL("../dist/sdk.js", import.meta.url));
  const gz = gzipSync(js, { level: 9 }).length;
  assert.ok(gz <= BUDGET, `dist/sdk.js is ${gz} bytes gzipped, budget ${BUDGET}`);
});

test("dist/sdk.js defines window.telemetry with the API", async () => {
  const js = readFileSync(new URL("../dist/sdk.js", import.meta.url), "utf8");
  const { runInNewContext } = await import("node:vm");
  const win = {};
  runInNewContext(js + ";this.telemetry = telemetry;", win);
  for (const f of ["init", "identify", "track", "page", "generationRequested", "optOut", "optIn", "isOptedOut", "flush", "stats", "reset"]) {
    assert.equal(typeof win.telemetry[f], "function", f);
  }
});
