// browser.mjs: @segment/analytics-next's browser build, unchanged, in
// headless Chromium (Debian's /usr/bin/chromium through playwright-core),
// on a test page of another origin than the collector. For
// collector/segmentclients, which starts the pipeline, the proxy in front
// of it (SEGMENT_URL) and the page server (PAGE_URL), then checks the rows.
//
// 1. Standard mode, settings served by the collector (cdnURL: no CDN):
//    track, page, alias, identify and group, one request each.
// 2. Batching mode, settings given inline (cdnSettings): two tracks and a
//    page in one batch, which the proxy answers 503 once; the library
//    retries it.
// Each step waits until the proxy has seen the collector accept every
// message. Exits non-zero on any failure.
import { chromium } from "playwright-core";

const { SEGMENT_URL, PAGE_URL, WRITE_KEY, RUN } = process.env;
for (const [k, v] of Object.entries({ SEGMENT_URL, PAGE_URL, WRITE_KEY, RUN })) {
  if (!v) throw new Error(`${k} is not set`);
}
const log = (...a) => console.log("browser.mjs:", ...a);

async function delivered() {
  const r = await fetch(`${SEGMENT_URL}/__test/delivered`);
  return (await r.json()).messages;
}

async function waitDelivered(n, what, timeout = 30000) {
  const end = Date.now() + timeout;
  let got = 0;
  while (Date.now() < end) {
    if ((got = await delivered()) >= n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: ${got} messages accepted after ${timeout} ms, want ${n}`);
}

async function open(browser) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.on("console", (m) => (m.type() === "error" || m.type() === "warning") && log("console:", m.text()));
  page.on("pageerror", (e) => log("page error:", e.message));
  await page.goto(`${PAGE_URL}/app.html`);
  await page.waitForFunction(() => window.AnalyticsNext && window.AnalyticsNext.AnalyticsBrowser);
  return { ctx, page };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  {
    const { ctx, page } = await open(browser);
    await page.evaluate(
      async ({ url, key, run }) => {
        const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load({ writeKey: key, cdnURL: url });
        analytics.setAnonymousId(`web-anon-${run}`);
        await analytics.track("Generation Requested", {
          quality: "uhd", resolution: "2160p", aspect_ratio: "16:9", duration_s: 8,
          prompt: "a fox in the snow at dawn", generation_id: `gen-${run}`,
        });
        await analytics.page();
        // As Segment documents it: alias while still anonymous (the
        // library makes the anonymous id previousId), then identify.
        // After an identify this version sends the identified user as
        // both userId and previousId.
        await analytics.alias(`web-user-${run}`);
        await analytics.identify(`web-user-${run}`, { plan: "pro" });
        await analytics.group(`web-org-${run}`, { name: "Acme" });
      },
      { url: SEGMENT_URL, key: WRITE_KEY, run: RUN },
    );
    await waitDelivered(5, "standard mode");
    log("standard mode: 5 messages accepted");
    await ctx.close();
  }
  {
    const { ctx, page } = await open(browser);
    await page.evaluate(
      async ({ url, key, run }) => {
        const host = new URL(url).host;
        const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load({
          writeKey: key,
          cdnSettings: {
            integrations: {
              "Segment.io": {
                apiKey: key, apiHost: `${host}/v1`, protocol: "http",
                deliveryStrategy: { strategy: "batching", config: { size: 3, timeout: 300 } },
              },
            },
            metrics: { sampleRate: 0 },
          },
        });
        analytics.setAnonymousId(`web-batch-${run}`);
        // Not awaited: the batch is sent when it holds three.
        analytics.track("Video Downloaded", { format: "mp4", generation_id: `gen-${run}` });
        analytics.track("Session Start");
        analytics.page("Gallery");
      },
      { url: SEGMENT_URL, key: WRITE_KEY, run: RUN },
    );
    await waitDelivered(8, "batching mode");
    log("batching mode: 3 more messages accepted");
    await ctx.close();
  }
} finally {
  await browser.close();
}
