// browser.mjs: drives the built-in dashboards in headless Chromium
// (Debian's /usr/bin/chromium through playwright-core, the launch flags of
// sdk/test/browser.mjs) for dashboards/browser_test.go, which serves them
// over seeded data behind the staff token. It signs in, then for each
// visit loads a page, waits until it has drawn, measures what a person
// sees (time axes' range, bars' bottoms against the zero line, tick
// label boxes, legend values, empty-range messages, the explorer's
// occurrence) and keeps a screenshot; it writes everything as JSON for the
// Go test to assert.
//
// Env: BASE_URL (the server), TOKEN (staff token), VISITS (JSON list of
// {name, path, refresh?, check?, select?, explore?}), SHOT_DIR (PNG directory), RESULT_FILE (JSON
// path). CHROMIUM overrides the browser path.
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const { BASE_URL, TOKEN, VISITS, SHOT_DIR, RESULT_FILE } = process.env;
for (const [k, v] of Object.entries({ BASE_URL, TOKEN, VISITS, SHOT_DIR, RESULT_FILE })) {
  if (!v) throw new Error(`${k} is not set`);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

/** What the page shows, measured in the DOM. */
function measure() {
  const box = (e) => { const r = e.getBoundingClientRect(); return { l: r.left, r: r.right, t: r.top, b: r.bottom, text: e.textContent }; };
  const panels = {};
  for (const s of document.querySelectorAll("[data-panel]")) {
    const svg = s.querySelector("svg.chart");
    const p = { type: s.dataset.type, text: s.querySelector(".body").innerText.slice(0, 200), tableRows: s.querySelectorAll("tbody tr").length, stats: s.querySelectorAll(".stat").length };
    if (svg) {
      p.svg = { xMin: svg.dataset.xMin ? +svg.dataset.xMin : null, xMax: svg.dataset.xMax ? +svg.dataset.xMax : null, yMin: svg.dataset.yMin ? +svg.dataset.yMin : null, baseline: svg.dataset.baseline ? +svg.dataset.baseline : null };
      p.ticksX = [...svg.querySelectorAll("text.tick-x")].map(box);
      p.ticksY = [...svg.querySelectorAll("text.tick-y")].map(box);
      p.tickXTitles = [...svg.querySelectorAll("text.tick-x title")].map((t) => t.textContent);
      p.bars = [...svg.querySelectorAll("rect.bar")].map((r) => ({ y: +r.getAttribute("y"), h: +r.getAttribute("height") }));
      p.axisTitle = svg.querySelector(".axis-title")?.textContent || "";
      p.legend = [...s.querySelectorAll(".legend .lv")].map((v) => v.textContent);
      p.svgBox = box(svg);
    }
    panels[s.dataset.panel] = p;
  }
  return panels;
}

const console_ = [];
const requests = [];
const out = { visits: {} };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => console_.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => console_.push({ type: "pageerror", text: String(e) }));
  page.on("requestfailed", (r) => console_.push({ type: "requestfailed", text: `${r.url()}: ${r.failure()?.errorText}` }));
  page.on("response", (r) => requests.push({ url: r.url(), status: r.status() }));

  // Sign in as staff would.
  await page.goto(BASE_URL + "/dashboard/login", { waitUntil: "load" });
  await page.fill("input[name=token]", TOKEN);
  await Promise.all([page.waitForURL("**/dashboard/**"), page.click("button[type=submit]")]);
  out.signedIn = page.url();
  const waitDone = async (loads) => {
    await page.waitForFunction((n) => window.__dashboard && window.__dashboard.done && window.__dashboard.loads >= n, loads, { timeout: 90000, polling: 100 });
    return page.evaluate(() => window.__dashboard.loads);
  };
  await waitDone(1); // the page signing in led to (the last 24 hours: empty)
  for (const v of JSON.parse(VISITS)) {
    await page.goto(BASE_URL + v.path, { waitUntil: "load" });
    let loads = await waitDone(1);
    const r = { url: page.url() };
    if (v.refresh) {
      // Auto-refresh reloads on its own and moves a quick range along.
      r.ranges = [await page.evaluate(() => window.__dashboard.range)];
      loads = await waitDone(loads + 1);
      r.ranges.push(await page.evaluate(() => window.__dashboard.range));
      r.url = page.url();
    }
    if (v.check) {
      // Narrow a filter in the form, as a person would, and apply it.
      await page.check(`[data-name=${v.check[0]}] input[value="${v.check[1]}"]`);
      await page.click("#filters button[type=submit]");
      loads = await waitDone(loads + 1);
      r.url = page.url();
    }
    if (v.select) {
      // Pick a value of a selector (the product page's group) and apply it.
      await page.selectOption(`#filters select[name=${v.select[0]}]`, v.select[1]);
      await page.click("#filters button[type=submit]");
      loads = await waitDone(loads + 1);
      r.url = page.url();
    }
    if (v.explore) {
      // Open the first group, then its newest occurrence, as an engineer would.
      await page.click("main section:nth-of-type(1) tbody tr:first-child");
      loads = await waitDone(loads + 1);
      await page.click("main section:nth-of-type(2) tbody tr:first-child");
      loads = await waitDone(loads + 1);
      r.stackText = await page.locator("pre.stack").innerText();
      r.sessionRows = await page.locator("[data-session-events] tbody tr").count();
      r.selectedInSession = await page.locator("[data-session-events] tbody tr.selected").count();
      r.url = page.url();
    }
    // Hover the middle of the first time chart: the legend shows values there.
    const chart = page.locator("[data-type=timeseries] svg.chart rect.hover").first();
    if (await chart.count()) {
      await chart.hover();
      r.hoverLegend = await page.locator("[data-type=timeseries] .legend").first().innerText();
      await page.mouse.move(0, 0);
    }
    r.state = await page.evaluate(() => window.__dashboard);
    r.panels = await page.evaluate(measure);
    await page.screenshot({ path: join(SHOT_DIR, v.name + ".png"), fullPage: !!v.fullPage });
    out.visits[v.name] = r;
  }
  writeFileSync(RESULT_FILE, JSON.stringify({ ...out, console: console_, requests }, null, 2));
  console.log(`browser.mjs: ${Object.keys(out.visits).length} visits, screenshots in ${SHOT_DIR}`);
} finally {
  await browser.close();
}
