// browser.mjs: loads the built-in dashboard in headless Chromium (Debian's
// /usr/bin/chromium through playwright-core, the launch flags of
// sdk/test/browser.mjs) for dashboards/browser_test.go, which serves it over
// seeded data. It waits until every panel was drawn, keeps a full-page
// screenshot and writes what the page reported as JSON.
//
// Env: DASHBOARD_URL (the page, with its query string), SCREENSHOT (PNG
// path), RESULT_FILE (JSON path). CHROMIUM overrides the browser path.
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";

const { DASHBOARD_URL, SCREENSHOT, RESULT_FILE } = process.env;
for (const [k, v] of Object.entries({ DASHBOARD_URL, SCREENSHOT, RESULT_FILE })) {
  if (!v) throw new Error(`${k} is not set`);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const console_ = [];
const requests = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (m) => console_.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => console_.push({ type: "pageerror", text: String(e) }));
  page.on("requestfailed", (r) => console_.push({ type: "requestfailed", text: `${r.url()}: ${r.failure()?.errorText}` }));
  page.on("response", (r) => requests.push({ url: r.url(), status: r.status() }));
  await page.goto(DASHBOARD_URL, { waitUntil: "load" });
  await page.waitForFunction(() => window.__dashboard && window.__dashboard.done, null, { timeout: 60000, polling: 100 });
  const state = await page.evaluate(() => window.__dashboard);
  const dom = await page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("[data-panel]")].map((s) => [s.dataset.panel, {
      canvas: s.querySelectorAll("canvas").length,
      tableRows: s.querySelectorAll("tbody tr").length,
      stats: s.querySelectorAll(".stat").length,
      text: s.querySelector(".body").innerText.slice(0, 200),
    }])),
  );
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  writeFileSync(RESULT_FILE, JSON.stringify({ state, dom, console: console_, requests }, null, 2));
  console.log(`browser.mjs: ${Object.keys(state.panels).length} panels, ${state.errors.length} errors, screenshot ${SCREENSHOT}`);
} finally {
  await browser.close();
}
