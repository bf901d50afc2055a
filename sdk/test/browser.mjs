// browser.mjs: drives the SDK in headless Chromium (Debian's /usr/bin/chromium,
// through playwright-core; no Playwright browser download) against a real
// collector, for sdk/browser_test.go, which starts the collector, the page
// server and Kafka, runs this script and then checks the Kafka topic.
//
// Env: COLLECTOR_URL (serves /v1/sdk.js and the ingest endpoints), PAGE_URL
// (serves /app.html and /other.html on another origin), WRITE_KEY, and
// RESULT_FILE, where the event ids of each scenario are written as JSON.
// CHROMIUM overrides the browser path. Exits non-zero on any failure.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const { COLLECTOR_URL, PAGE_URL, WRITE_KEY, RESULT_FILE } = process.env;
for (const [k, v] of Object.entries({ COLLECTOR_URL, PAGE_URL, WRITE_KEY, RESULT_FILE })) {
  if (!v) throw new Error(`${k} is not set`);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const args = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const gen = {
  quality: "uhd",
  resolution: "2160p",
  aspect_ratio: "16:9",
  duration_s: 8,
  width: 3840,
  height: 2160,
  prompt: "a fox running through snow at dawn, cinematic",
  model: "sora3-video-2.1",
};

const url = (s, q = "") => `${PAGE_URL}/app.html?s=${s}${q}`;
const log = (...a) => console.log("browser.mjs:", ...a);

/** Waits until the SDK has nothing queued or in flight. */
async function idle(page, timeout = 20000) {
  await page.waitForFunction(
    () => {
      const s = window.telemetry && window.telemetry.stats();
      return s && s.queued === 0 && s.inflight === 0;
    },
    null,
    { timeout, polling: 50 },
  );
  return page.evaluate(() => window.telemetry.stats());
}

async function open(browser, path, ctxOpts = {}) {
  const ctx = await browser.newContext(ctxOpts);
  const page = await ctx.newPage();
  page.on("console", (m) => m.type() === "error" && log("console:", m.text()));
  const resp = await page.goto(path);
  assert.equal(resp.status(), 200, `GET ${path}`);
  assert.equal(await page.evaluate(() => typeof window.telemetry), "object", "sdk.js did not load from the collector");
  return { ctx, page };
}

const scenarios = {
  /** The page's own events: identify, a generation lifecycle, settings, errors. */
  async main(browser) {
    const { ctx, page } = await open(browser, url("main"));
    await idle(page);
    const r = await page.evaluate(async (gen) => {
      const t = window.telemetry;
      t.identify("user-browser-1");
      const g = t.generationRequested(gen);
      await new Promise((res) => setTimeout(res, 300));
      const completed = g.completed();
      const downloaded = g.downloaded("mp4");
      const f = t.generationRequested({ quality: "fast", resolution: "720p", aspect_ratio: "9:16", duration_s: 5 });
      const failed = f.failed("GPU_OOM", "out of memory at 2160p");
      const setting = t.track("settings_changed", { setting: "theme", value: "dark" });
      setTimeout(() => {
        throw new Error("boom-browser");
      }, 0);
      Promise.reject(new Error("rejected-browser"));
      await new Promise((res) => setTimeout(res, 50));
      return {
        generation_id: g.generation_id,
        requested: g.event_id,
        completed,
        downloaded,
        failed_generation_id: f.generation_id,
        failed_requested: f.event_id,
        failed,
        setting,
        anonymous_id: localStorage.getItem("tlm:aid"),
        session_id: (localStorage.getItem("tlm:sid") || "").split(".")[0],
        page_url: location.href,
      };
    }, gen);
    const st = await idle(page);
    assert.equal(st.rejected, 0, "the collector refused events");
    await ctx.close();
    return r;
  },

  /** Events still queued when the page navigates away leave by sendBeacon. */
  async unload(browser) {
    const { ctx, page } = await open(browser, url("unload", "&fi=600000&bs=100"));
    const ids = await page.evaluate(() =>
      [1, 2, 3].map((i) => window.telemetry.track("settings_changed", { setting: "unload-" + i, value: "v" })),
    );
    assert.ok((await page.evaluate(() => window.telemetry.stats().queued)) >= 4, "events were sent before unload");
    await page.goto(`${PAGE_URL}/other.html`);
    await ctx.close();
    return { ids };
  },

  /**
   * A drop at unload: the session's events still queued when the page
   * navigates away leave by sendBeacon, which the network loses (the Go
   * test's proxy in front of the collector resets every /v1/beacon
   * connection); the session's next page sends on and says where that
   * hand-off began (unload_seq). Only with SCENARIOS=drop (sdk/gaps_test.go).
   */
  async drop(browser) {
    const app = url("drop", "&fi=600000&bs=100");
    const { ctx, page } = await open(browser, app);
    const sent = await page.evaluate(async () => {
      const t = window.telemetry;
      const ids = [1, 2].map((i) => t.track("settings_changed", { setting: "kept-" + i, value: "v" }));
      await t.flush();
      return ids;
    });
    await idle(page);
    const lost = await page.evaluate(() =>
      [1, 2, 3].map((i) => window.telemetry.track("settings_changed", { setting: "dropped-" + i, value: "v" })),
    );
    await page.goto(`${PAGE_URL}/other.html`);
    await page.goto(app);
    const next = await page.evaluate(async () => {
      const t = window.telemetry;
      const id = t.track("settings_changed", { setting: "after", value: "v" });
      await t.flush();
      return id;
    });
    await idle(page);
    const session = (await page.evaluate(() => localStorage.getItem("tlm:sid"))).split(".")[0];
    await ctx.close();
    return { sent, lost, next, session };
  },

  /** ... and when the page is closed. */
  async close(browser) {
    const { ctx, page } = await open(browser, url("close", "&fi=600000&bs=100"));
    const ids = await page.evaluate(() =>
      [1, 2].map((i) => window.telemetry.track("video_downloaded", { format: "webm", generation_id: "gen-close-" + i })),
    );
    assert.ok((await page.evaluate(() => window.telemetry.stats().queued)) >= 3, "events were sent before close");
    await page.close();
    // Closing the context right away could cancel the beacon; give it time.
    await new Promise((res) => setTimeout(res, 1500));
    await ctx.close();
    return { ids };
  },

  /**
   * Offline: events wait (in memory and localStorage) and go out once
   * online; events of a page closed while offline go out from the next page.
   */
  async offline(browser) {
    const { ctx, page } = await open(browser, url("offline", "&fi=200"));
    await idle(page);
    await ctx.setOffline(true);
    assert.equal(await page.evaluate(() => navigator.onLine), false, "navigator.onLine under setOffline");
    const ids = await page.evaluate(() =>
      [1, 2, 3].map((i) => window.telemetry.track("settings_changed", { setting: "offline-" + i, value: "v" })),
    );
    await page.waitForTimeout(1500);
    const st = await page.evaluate(() => window.telemetry.stats());
    assert.equal(st.queued, 3, `queued while offline: ${JSON.stringify(st)}`);
    const stored = await page.evaluate(() => JSON.parse(localStorage.getItem("tlm:q")).map((e) => e.event_id));
    assert.deepEqual(stored, ids, "offline queue in localStorage");
    await ctx.setOffline(false);
    await idle(page);

    await ctx.setOffline(true);
    const closedIds = await page.evaluate(() =>
      [1, 2].map((i) => window.telemetry.track("settings_changed", { setting: "closed-offline-" + i, value: "v" })),
    );
    await page.close();
    await ctx.setOffline(false);
    const page2 = await ctx.newPage();
    await page2.goto(url("offline-next", "&fi=200"));
    await idle(page2);
    await ctx.close();
    return { ids, closed_ids: closedIds };
  },

  /** After optOut nothing identifying leaves the browser, on this page and the next. */
  async optout(browser) {
    const { ctx, page } = await open(browser, url("optout", "&uid=user-optout-1"));
    await idle(page);
    const ids = await page.evaluate((gen) => {
      const t = window.telemetry;
      t.optOut();
      const g = t.generationRequested(gen);
      return [g.event_id, g.completed(), t.track("settings_changed", { setting: "privacy", value: "opt-out" })];
    }, gen);
    await idle(page);
    await page.goto(url("optout-next", "&uid=user-optout-1"));
    const next = await page.evaluate((gen) => window.telemetry.generationRequested(gen).event_id, gen);
    await idle(page);
    assert.equal(await page.evaluate(() => localStorage.getItem("tlm:aid")), null, "anonymous id kept after optOut");
    await ctx.close();
    return { ids: [...ids, next] };
  },

  /** DNT and GPC: the same as an opt-out, from the first event. */
  async dnt(browser) {
    return privacySignal(browser, "dnt", () =>
      Object.defineProperty(Navigator.prototype, "doNotTrack", { get: () => "1", configurable: true }),
    );
  },
  async gpc(browser) {
    return privacySignal(browser, "gpc", () =>
      Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true, configurable: true }),
    );
  },
};

async function privacySignal(browser, name, script) {
  const ctx = await browser.newContext();
  await ctx.addInitScript(script);
  const page = await ctx.newPage();
  await page.goto(url(name, "&uid=user-" + name + "-1"));
  const ids = await page.evaluate((gen) => {
    const t = window.telemetry;
    t.identify("user-signal");
    return [t.generationRequested(gen).event_id, String(t.isOptedOut())];
  }, gen);
  assert.equal(ids.pop(), "true", `${name} not honoured`);
  await idle(page);
  await ctx.close();
  return { ids };
}

// A fresh user-data-dir per run: Playwright creates the browser's profile
// directory in the temporary directory, which is made here and removed after.
const profileRoot = mkdtempSync(join(tmpdir(), "sdk-chromium-"));
process.env.TMPDIR = profileRoot;
const out = {};
let failed = false;
const browser = await chromium.launch({ executablePath, args, headless: true });
try {
  log("chromium", browser.version());
  // Each scenario runs in its own context, with empty storage.
  for (const [name, run] of Object.entries(scenarios)) {
    const only = process.env.SCENARIOS ? process.env.SCENARIOS.split(",") : [];
    if ((only.length && !only.includes(name)) || (!only.length && name === "drop")) continue;
    const t0 = Date.now();
    try {
      out[name] = await run(browser);
      log(`${name}: ok (${Date.now() - t0} ms)`);
    } catch (e) {
      failed = true;
      log(`${name}: FAILED: ${e.stack || e}`);
    }
  }
} finally {
  await browser.close().catch(() => {});
  rmSync(profileRoot, { recursive: true, force: true });
}
writeFileSync(RESULT_FILE, JSON.stringify(out, null, 2));
process.exit(failed ? 1 : 0);
