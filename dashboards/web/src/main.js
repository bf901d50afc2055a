// main.js: the built-in dashboard's page logic. It lists the panels from
// /dashboard/api/panels, fetches each panel's rows from
// /dashboard/api/panels/<id> with the page's filters (the same SQL as the
// Grafana panel) and draws them: time series and bar charts with uPlot,
// stats as numbers, tables as HTML. window.__dashboard reports what was
// drawn (for the browser test and for debugging).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";

const state = (window.__dashboard = { panels: {}, errors: [], done: false });
const palette = ["#3274d9", "#e0752d", "#56a64b", "#a352cc", "#f2cc0c", "#e02f44", "#1f9aa8", "#8f6b32", "#c15c17", "#6e7bd6", "#508642", "#d683ce"];
const $ = (sel, el = document) => el.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};

const isTime = (t) => /^(Nullable\()?(DateTime|Date)/.test(t);
const isText = (t) => /String|UUID|Enum/.test(t) && !isTime(t);

function fmt(v, unit) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (unit === "percentunit") return (v * 100).toFixed(1) + "%";
  if (unit === "ms") return v >= 1000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms";
  return v.toLocaleString("en-US", { maximumFractionDigits: 3 });
}

/** Filters from the page URL: from, to, plan, quality, browser. */
function filters() {
  const q = new URLSearchParams(location.search);
  const to = q.get("to") || new Date().toISOString().slice(0, 10) + "T23:59:59Z";
  const from = q.get("from") || new Date(Date.parse(to) - 30 * 864e5).toISOString().slice(0, 10) + "T00:00:00Z";
  return { from, to, plan: q.get("plan") || "", quality: q.get("quality") || "", browser: q.get("browser") || "" };
}

function initForm(f) {
  const form = $("#filters");
  const day = (s) => (/^\d+$/.test(s) ? new Date(+s) : new Date(s)).toISOString().slice(0, 10);
  form.from.value = day(f.from);
  form.to.value = day(f.to);
  for (const name of ["plan", "quality"]) {
    const chosen = f[name].split(",");
    for (const o of form[name].options) o.selected = chosen.includes(o.value);
  }
  form.browser.value = f.browser;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    q.set("from", form.from.value + "T00:00:00Z");
    q.set("to", form.to.value + "T23:59:59Z");
    for (const name of ["plan", "quality"]) {
      const v = [...form[name].selectedOptions].map((o) => o.value).join(",");
      if (v) q.set(name, v);
    }
    if (form.browser.value.trim()) q.set("browser", form.browser.value.trim());
    history.replaceState(null, "", "?" + q);
    load();
  });
}

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

/** Turns long rows (time, labels..., numbers...) into uPlot's wide data. */
function pivot(res) {
  const cols = res.columns;
  const t = cols.findIndex((c) => isTime(c.type));
  const labels = cols.map((c, i) => i).filter((i) => i !== t && isText(cols[i].type));
  const nums = cols.map((c, i) => i).filter((i) => i !== t && !labels.includes(i));
  const xs = [...new Set(res.rows.map((r) => Date.parse(r[t]) / 1000))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const series = new Map();
  for (const r of res.rows) {
    const lab = labels.map((i) => r[i] || "(none)").join(" / ");
    for (const n of nums) {
      const name = [lab, nums.length > 1 || !lab ? cols[n].name : ""].filter(Boolean).join(" ");
      if (!series.has(name)) series.set(name, new Array(xs.length).fill(null));
      series.get(name)[at.get(Date.parse(r[t]) / 1000)] = r[n];
    }
  }
  return { xs, series };
}

function timeChart(box, res, unit) {
  const { xs, series } = pivot(res);
  const names = [...series.keys()];
  const opts = {
    width: box.clientWidth || 540,
    height: 240,
    scales: { x: { time: true } },
    series: [{}, ...names.map((n, i) => ({ label: n, stroke: palette[i % palette.length], width: 1.5, spanGaps: false, value: (u, v) => fmt(v, unit) }))],
    axes: [{}, { values: (u, vals) => vals.map((v) => fmt(v, unit)), size: 70 }],
    legend: { live: true },
  };
  new uPlot(opts, [xs, ...names.map((n) => series.get(n))], box);
  return names.length;
}

function barChart(box, res, unit) {
  const cols = res.columns;
  const c = cols.findIndex((col) => isText(col.type));
  const nums = cols.map((col, i) => i).filter((i) => i !== c && !isTime(cols[i].type));
  const cats = res.rows.map((r) => r[c] || "(none)");
  const xs = cats.map((_, i) => i);
  const opts = {
    width: box.clientWidth || 540,
    height: 240,
    scales: { x: { time: false, range: [-0.5, cats.length - 0.5] } },
    series: [
      { label: cols[c].name, value: (u, v) => (v === null ? "" : cats[v]) },
      ...nums.map((n, k) => ({
        label: cols[n].name,
        stroke: palette[k % palette.length],
        fill: k === 0 ? palette[0] + "cc" : undefined,
        width: k === 0 ? 0 : 2,
        paths: k === 0 ? uPlot.paths.bars({ size: [0.7, 80] }) : undefined,
        points: { show: k > 0, size: 6 },
        value: (u, v) => fmt(v, unit),
      })),
    ],
    axes: [
      { splits: () => xs, values: (u, splits) => splits.map((v) => cats[v] ?? ""), rotate: 0 },
      { values: (u, vals) => vals.map((v) => fmt(v, unit)), size: 70 },
    ],
  };
  new uPlot(opts, [xs, ...nums.map((n) => res.rows.map((r) => r[n]))], box);
  return nums.length;
}

function stat(box, res, unit) {
  const wrap = el("div", { class: "stats" });
  const row = res.rows[0] || [];
  res.columns.forEach((col, i) => {
    const u = /per_mau|share|rate/.test(col.name) ? (unit === "short" ? "percentunit" : unit) : unit;
    wrap.append(el("div", { class: "stat" }, el("div", { class: "v" }, fmt(row[i], col.name === "dau_per_mau" ? "percentunit" : u)), el("div", { class: "k" }, col.name)));
  });
  box.append(wrap);
  return res.columns.length;
}

function table(box, res, unit) {
  const t = el("table");
  t.append(el("thead", {}, el("tr", {}, ...res.columns.map((c) => el("th", {}, c.name)))));
  const body = el("tbody");
  for (const r of res.rows.slice(0, 200)) {
    body.append(el("tr", {}, ...r.map((v, i) => {
      const name = res.columns[i].name;
      if (name === "error_stack" && v) return el("td", {}, el("pre", {}, v));
      return el("td", {}, name.endsWith("_rate") ? fmt(v, "percentunit") : fmt(v, unit));
    })));
  }
  t.append(body);
  box.append(el("div", { class: "table" }, t));
  return res.columns.length;
}

const draw = { timeseries: timeChart, barchart: barChart, piechart: barChart, stat, table };

async function loadPanel(p, card, q) {
  const box = $(".body", card);
  box.textContent = "";
  try {
    const res = await getJSON(`api/panels/${encodeURIComponent(p.id)}?${q}`);
    if (!res.rows.length) {
      box.textContent = "No data in this range.";
      state.panels[p.id] = { type: p.type, rows: 0, series: 0, canvas: false };
      return;
    }
    const n = (draw[p.type] || table)(box, res, p.unit);
    state.panels[p.id] = { type: p.type, rows: res.rows.length, series: n, canvas: !!$("canvas", box) };
  } catch (err) {
    box.append(el("div", { class: "error" }, String(err.message || err)));
    state.errors.push(`${p.id}: ${err.message || err}`);
    console.error(`panel ${p.id}:`, err);
  }
}

let list = null;
async function load() {
  state.done = false;
  state.panels = {};
  state.errors = [];
  const f = filters();
  const q = new URLSearchParams(Object.entries(f).filter(([, v]) => v)).toString();
  const main = $("#panels");
  main.textContent = "";
  try {
    list = list || (await getJSON("api/panels")).panels;
  } catch (err) {
    main.append(el("div", { class: "error" }, String(err.message || err)));
    state.errors.push(String(err));
    console.error("panel list:", err);
    state.done = true;
    return;
  }
  let section = "";
  const jobs = [];
  for (const p of list) {
    if (p.dashboard !== section) {
      section = p.dashboard;
      main.append(el("h2", { class: "section" }, section));
    }
    const card = el("section", { class: "panel" + (p.type === "table" && p.id.startsWith("errors") ? " wide" : ""), "data-panel": p.id },
      el("h3", {}, p.title), el("p", { class: "desc" }, p.description), el("div", { class: "body" }));
    main.append(card);
    jobs.push(() => loadPanel(p, card, q));
  }
  // The engine runs one query at a time: ask for panels a few at a time.
  const queue = [...jobs];
  await Promise.all([0, 1, 2].map(async () => { while (queue.length) await queue.shift()(); }));
  state.done = true;
}

initForm(filters());
load();
