// panels.js: the product, errors and pipeline panels: the Grafana panels'
// own SQL run by /dashboard/api/panels/<id>, drawn by charts.js.
import { timeChart, barChart, heatmap } from "./charts.js";
import { fmt, fmtFull } from "./format.js";
import { apiQuery, bucketOf } from "./state.js";
import { el } from "./dom.js";

const isTime = (t) => /^(Nullable\()?(DateTime|Date)/.test(t);
const isText = (t) => /String|UUID|Enum/.test(t) && !isTime(t);

/** The buckets of a range: its start, then every bucket that starts before its end. */
function grid(from, to, step) {
  const xs = from % step ? [from] : [];
  for (let x = Math.ceil(from / step) * step; x < to; x += step) xs.push(x);
  return xs;
}

/**
 * Long rows (time, labels..., numbers...) to xs and named series. For a
 * panel whose buckets follow the range, xs holds every bucket of the
 * range, so an empty bucket is a zero (counts) or a gap (rates), never a
 * line drawn across it.
 */
function pivot(res, unit, st, p) {
  const zeroFill = p.page !== "pipeline";
  const cols = res.columns;
  const t = cols.findIndex((c) => isTime(c.type));
  const labels = cols.map((c, i) => i).filter((i) => i !== t && isText(cols[i].type));
  const nums = cols.map((c, i) => i).filter((i) => i !== t && !labels.includes(i));
  let xs = [...new Set(res.rows.map((r) => Date.parse(r[t])))].sort((a, b) => a - b);
  if (p.follows_range) xs = [...new Set([...grid(st.from, st.to, bucketOf(st.from, st.to)), ...xs])].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  // A count missing from a bucket is a zero; a missing rate, latency or
  // recorded gauge is unknown.
  const fill = zeroFill && !["percentunit", "ms"].includes(unit) && !String(unit).includes("/s") ? 0 : null;
  const series = new Map();
  for (const r of res.rows) {
    const lab = labels.map((i) => r[i] || "(none)").join(" / ");
    for (const n of nums) {
      const name = [lab, nums.length > 1 || !lab ? cols[n].name : ""].filter(Boolean).join(" ");
      if (!series.has(name)) series.set(name, new Array(xs.length).fill(fill));
      series.get(name)[at.get(Date.parse(r[t]))] = r[n];
    }
  }
  return { xs, series: [...series].map(([name, values]) => ({ name, values })) };
}

const colUnit = (name, unit) => (/rate|retention|share|per_mau/.test(name) ? "percentunit" : unit === "percentunit" ? "none" : unit);

function stat(box, res, unit) {
  const wrap = el("div", { class: "stats" });
  const row = res.rows[0] || [];
  res.columns.forEach((col, i) => wrap.append(el("div", { class: "stat" }, el("div", { class: "v" }, fmt(row[i], colUnit(col.name, unit))), el("div", { class: "k" }, col.name))));
  box.append(wrap);
  return { series: res.columns.length, points: 1 };
}

/** A table; cell(value, column) may return a node for a column. */
export function table(box, res, unit, cell = () => null) {
  const t = el("table");
  t.append(el("thead", {}, el("tr", {}, ...res.columns.map((c) => el("th", {}, c.name)))));
  const body = el("tbody");
  for (const r of res.rows.slice(0, 200)) {
    body.append(el("tr", {}, ...r.map((v, i) => {
      const c = res.columns[i];
      const custom = cell(v, c, r);
      if (custom) return el("td", {}, custom);
      if (c.name === "error_stack" && v) return el("td", {}, el("pre", {}, v));
      if (isTime(c.type) && v) return el("td", { class: "time" }, fmtFull(Date.parse(v)));
      return el("td", typeof v === "number" ? { class: "num" } : {}, typeof v === "number" ? fmt(v, colUnit(c.name, unit)) : fmt(v));
    })));
  }
  t.append(body);
  box.append(el("div", { class: "table" }, t));
  return { series: res.columns.length, points: res.rows.length };
}

function bars(box, res, unit, p) {
  const cols = res.columns;
  const c = cols.findIndex((col) => isText(col.type));
  const nums = cols.map((col, i) => i).filter((i) => i !== c && !isTime(cols[i].type));
  return barChart(box, { cats: res.rows.map((r) => r[c] || "(none)"), series: nums.map((n) => ({ name: cols[n].name, values: res.rows.map((r) => r[n]) })), unit, title: nums.map((n) => cols[n].name).join(", ") });
}

const draw = {
  timeseries: (box, res, unit, p, st) => timeChart(box, { ...pivot(res, unit, st, p), from: st.from, to: st.to, unit, title: res.columns.filter((c) => !isTime(c.type) && !isText(c.type)).map((c) => c.name).join(", ") }),
  barchart: bars,
  piechart: bars,
  heatmap: (box, res, unit, p, st) => heatmap(box, { cells: res.rows.map((r) => ({ t: Date.parse(r[0]), y: Number(r[1]), n: r[2] })), from: st.from, to: st.to, bucket: bucketOf(st.from, st.to), unit, title: "latency" }),
  stat,
  table: (box, res, unit) => table(box, res, unit),
};

/** Loads and draws the panels of a page; reports into state. */
export async function loadPanels(main, list, st, filters, state, getJSON) {
  main.textContent = "";
  let section = "";
  const jobs = [];
  for (const p of list) {
    if (p.dashboard !== section) {
      section = p.dashboard;
      const name = section.replace(/^Telemetry: /, "");
      main.append(el("h2", { class: "section" }, name.charAt(0).toUpperCase() + name.slice(1)));
    }
    const wide = p.type === "heatmap" || (p.type === "timeseries" && /plan and quality/.test(p.title));
    const card = el("section", { class: "panel" + (wide ? " wide" : ""), "data-panel": p.id, "data-type": p.type },
      el("h3", {}, p.title), el("p", { class: "desc" }, p.description), el("div", { class: "body" }));
    main.append(card);
    jobs.push(() => loadPanel(p, card, st, filters, state, getJSON));
  }
  // The engine runs one query at a time: ask for panels a few at a time.
  const queue = [...jobs];
  await Promise.all([0, 1, 2].map(async () => { while (queue.length) await queue.shift()(); }));
}

async function loadPanel(p, card, st, filters, state, getJSON) {
  const box = card.querySelector(".body");
  try {
    const res = await getJSON(`api/panels/${encodeURIComponent(p.id)}?${apiQuery(st, filters)}`);
    box.textContent = "";
    if (!res.rows.length) {
      box.append(el("div", { class: "empty" }, "No data in this range."));
      state.panels[p.id] = { type: p.type, rows: 0, series: 0, svg: false };
      return;
    }
    const drawn = (draw[p.type] || draw.table)(box, res, p.unit, p, st);
    state.panels[p.id] = { type: p.type, rows: res.rows.length, ...drawn, svg: !!box.querySelector("svg.chart") };
  } catch (err) {
    box.textContent = "";
    box.append(el("div", { class: "error" }, String(err.message || err)));
    state.errors.push(`${p.id}: ${err.message || err}`);
    console.error(`panel ${p.id}:`, err);
  }
}
