// charts.js: the panels' charts as SVG, so that what a person sees can be
// checked in the DOM: time axes span exactly the selected range, bars and
// areas start at zero, category labels that do not fit are turned and
// shortened (the full text in a tooltip), every axis says its unit, and
// the legend shows the values under the cursor (the latest ones when the
// cursor is elsewhere).
import { fmt, fmtTime, fmtFull, compact, unitLabel } from "./format.js";
import { el as h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
export const palette = ["#3274d9", "#e0752d", "#56a64b", "#a352cc", "#d4a00c", "#e02f44", "#1f9aa8", "#8f6b32", "#c15c17", "#6e7bd6", "#508642", "#d683ce"];

function s(tag, attrs = {}, ...kids) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}
const titled = (text) => s("title", {}, text);
let clips = 0;

/** Nice ticks from 0 (or min) to at least max: [ticks, top]. */
export function niceTicks(min, max, count = 4) {
  if (!(max > min)) max = min + 1;
  const raw = (max - min) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(+v.toPrecision(12));
  return [ticks, hi, lo];
}

const timeSteps = [60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 864e5, 2 * 864e5, 7 * 864e5, 14 * 864e5, 30 * 864e5];

/** The anchor that keeps a label at px inside the plot. */
const anchorAt = (px, plot) => (px - plot.x0 < 28 ? "start" : plot.x1 - px < 28 ? "end" : "middle");

/** Time ticks inside [from, to], at least minGap px apart. */
export function timeTicks(from, to, px, minGap = 90) {
  const per = (to - from) / px;
  const step = timeSteps.find((st) => st / per >= minGap) || timeSteps[timeSteps.length - 1];
  const ticks = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
  return { ticks, step };
}

function frame(box, height, margin) {
  const width = Math.max(box.clientWidth || 540, 320);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const plot = { x0: margin.left, x1: width - margin.right, y0: margin.top, y1: height - margin.bottom };
  return { svg, width, plot };
}

function yAxis(svg, plot, min, max, unit, title) {
  const [ticks, top, bottom] = niceTicks(min, max);
  const y = (v) => plot.y1 - ((v - bottom) / (top - bottom || 1)) * (plot.y1 - plot.y0);
  const g = s("g", { class: "axis-y" });
  // Latencies of ten seconds and more read better in seconds.
  const seconds = unit === "ms" && top >= 10000;
  for (const t of ticks) {
    g.append(s("line", { x1: plot.x0, x2: plot.x1, y1: y(t), y2: y(t), class: t === 0 ? "zero" : "grid" }));
    const v = unit === "percentunit" ? compact(+(t * 100).toPrecision(6)) : seconds ? compact(+(t / 1000).toPrecision(6)) : compact(t);
    g.append(s("text", { x: plot.x0 - 6, y: y(t) + 4, "text-anchor": "end", class: "tick-y" }, v));
  }
  const label = seconds ? "s" : unitLabel(unit, title);
  if (label) {
    g.append(s("text", { x: 12, y: (plot.y0 + plot.y1) / 2, transform: `rotate(-90 12 ${(plot.y0 + plot.y1) / 2})`, "text-anchor": "middle", class: "axis-title" }, label));
  }
  svg.append(g);
  svg.dataset.yMin = String(bottom);
  svg.dataset.yMax = String(top);
  return y;
}

function legend(names, colors) {
  const el = h("div", { class: "legend" });
  const values = names.map((n, i) => {
    const v = h("span", { class: "lv" });
    const name = h("span", { class: "ln", title: n }, n);
    el.append(h("span", { class: "li" }, h("i", { style: `background:${colors[i]}` }), name, v));
    return v;
  });
  const where = h("span", { class: "lwhen" });
  el.prepend(where);
  return { el, set(vals, when) { vals.forEach((v, i) => (values[i].textContent = v)); where.textContent = when; } };
}

/**
 * A time series over exactly [from, to]: series [{name, values}] at xs
 * (ms). Counts and rates start at zero. Returns what was drawn.
 */
export function timeChart(box, { xs, series, from, to, unit, title }) {
  const { svg, plot } = frame(box, 240, { left: 62, right: 14, top: 10, bottom: 26 });
  const x = (t) => plot.x0 + ((t - from) / (to - from)) * (plot.x1 - plot.x0);
  const all = series.flatMap((sr) => sr.values.filter((v) => v !== null));
  const min = Math.min(0, ...all);
  const y = yAxis(svg, plot, min, Math.max(...all, min + (unit === "percentunit" ? 0.01 : 1)), unit, title);
  const { ticks, step } = timeTicks(from, to, plot.x1 - plot.x0);
  const gx = s("g", { class: "axis-x" });
  for (const t of ticks) {
    gx.append(s("line", { x1: x(t), x2: x(t), y1: plot.y1, y2: plot.y1 + 4, class: "tick" }));
    gx.append(s("text", { x: x(t), y: plot.y1 + 17, "text-anchor": anchorAt(x(t), plot), class: "tick-x" }, fmtTime(t, step), titled(fmtFull(t))));
  }
  svg.append(gx);
  svg.dataset.xMin = String(from);
  svg.dataset.xMax = String(to);
  const colors = series.map((_, i) => palette[i % palette.length]);
  // Nothing is drawn outside the plot, whatever the data.
  const clip = `plot-clip-${++clips}`;
  svg.append(s("clipPath", { id: clip }, s("rect", { x: plot.x0, y: plot.y0 - 2, width: plot.x1 - plot.x0, height: plot.y1 - plot.y0 + 4 })));
  const lines = s("g", { "clip-path": `url(#${clip})` });
  svg.append(lines);
  series.forEach((sr, i) => {
    let d = "";
    sr.values.forEach((v, k) => {
      if (v === null) return;
      const prev = k > 0 ? sr.values[k - 1] : null;
      d += `${prev === null ? "M" : "L"}${x(xs[k]).toFixed(1)},${y(v).toFixed(1)}`;
      const next = k + 1 < sr.values.length ? sr.values[k + 1] : null;
      if (prev === null && next === null) lines.append(s("circle", { cx: x(xs[k]), cy: y(v), r: 2.5, fill: colors[i], class: "dot" }));
    });
    lines.append(s("path", { d, fill: "none", stroke: colors[i], "stroke-width": 1.6, class: "line" }));
  });
  const cursor = s("line", { y1: plot.y0, y2: plot.y1, class: "cursor", visibility: "hidden" });
  svg.append(cursor);
  const lg = legend(series.map((sr) => sr.name), colors);
  const latest = () => {
    lg.set(series.map((sr) => fmt([...sr.values].reverse().find((v) => v !== null) ?? null, unit)), "latest:");
    cursor.setAttribute("visibility", "hidden");
  };
  const hover = s("rect", { x: plot.x0, y: plot.y0, width: plot.x1 - plot.x0, height: plot.y1 - plot.y0, fill: "transparent", class: "hover" });
  hover.addEventListener("mousemove", (ev) => {
    const r = svg.getBoundingClientRect();
    const t = from + ((ev.clientX - r.left - plot.x0) / (plot.x1 - plot.x0)) * (to - from);
    let k = 0;
    for (let j = 0; j < xs.length; j++) if (Math.abs(xs[j] - t) < Math.abs(xs[k] - t)) k = j;
    if (!xs.length) return;
    cursor.setAttribute("x1", x(xs[k]));
    cursor.setAttribute("x2", x(xs[k]));
    cursor.setAttribute("visibility", "visible");
    lg.set(series.map((sr) => fmt(sr.values[k], unit)), fmtFull(xs[k]) + ":");
  });
  hover.addEventListener("mouseleave", latest);
  svg.append(hover);
  latest();
  box.append(svg, lg.el);
  return { series: series.length, points: xs.length };
}

/** Category labels that fit the slot, else turned upright and shortened. */
function categoryLabels(g, cats, x, slot, yTop, maxChars = 14) {
  const longest = Math.max(...cats.map((c) => c.length));
  const turn = longest * 6.6 > slot - 6;
  const every = turn ? Math.max(1, Math.ceil(15 / slot)) : 1;
  cats.forEach((c, i) => {
    if (i % every) return;
    const text = turn && c.length > maxChars ? c.slice(0, maxChars - 1) + "…" : c;
    const attrs = turn
      ? { x: x(i), y: yTop + 8, transform: `rotate(-90 ${x(i)} ${yTop + 8}) translate(0 4)`, "text-anchor": "end", class: "tick-x" }
      : { x: x(i), y: yTop + 16, "text-anchor": "middle", class: "tick-x" };
    g.append(s("text", attrs, text, titled(c)));
  });
  return turn;
}

/** Bars from zero, one group per category and one bar per numeric column. */
export function barChart(box, { cats, series, unit, title }) {
  const longest = Math.max(...cats.map((c) => c.length), 1);
  const width0 = Math.max(box.clientWidth || 540, 320) - 76;
  const turn = longest * 6.6 > width0 / Math.max(cats.length, 1) - 6;
  const bottom = turn ? Math.min(14, longest) * 6.6 + 16 : 26;
  const { svg, plot } = frame(box, 220 + (turn ? bottom - 26 : 0), { left: 62, right: 14, top: 10, bottom });
  const all = series.flatMap((sr) => sr.values.filter((v) => v !== null));
  const y = yAxis(svg, plot, Math.min(0, ...all), Math.max(...all, 1e-9), unit, title);
  const slot = (plot.x1 - plot.x0) / Math.max(cats.length, 1);
  const x = (i) => plot.x0 + slot * (i + 0.5);
  const g = s("g", { class: "axis-x" });
  categoryLabels(g, cats, x, slot, plot.y1);
  svg.append(g);
  svg.dataset.baseline = String(y(0));
  const colors = series.map((_, i) => palette[i % palette.length]);
  const bw = (slot * 0.75) / series.length;
  series.forEach((sr, k) => {
    sr.values.forEach((v, i) => {
      if (v === null) return;
      const top = Math.min(y(v), y(0));
      const bar = s("rect", { x: x(i) - (slot * 0.75) / 2 + k * bw, y: top, width: Math.max(bw - 1, 1), height: Math.abs(y(0) - y(v)), fill: colors[k], class: "bar" },
        titled(`${cats[i]} · ${sr.name}: ${fmt(v, unit)}`));
      svg.append(bar);
    });
  });
  const lg = legend(series.map((sr) => sr.name), colors);
  // Counts add up; latencies and shares do not: show their highest.
  const additive = !["ms", "percentunit"].includes(unit) && !String(unit).includes("/s");
  const total = () => lg.set(series.map((sr) => fmt(additive ? sr.values.reduce((a, v) => a + (v || 0), 0) : Math.max(...sr.values.filter((v) => v !== null)), unit)), additive ? "total:" : "highest:");
  const hover = s("rect", { x: plot.x0, y: plot.y0, width: plot.x1 - plot.x0, height: plot.y1 - plot.y0, fill: "transparent", class: "hover" });
  hover.addEventListener("mousemove", (ev) => {
    const r = svg.getBoundingClientRect();
    const i = Math.min(cats.length - 1, Math.max(0, Math.floor((ev.clientX - r.left - plot.x0) / slot)));
    lg.set(series.map((sr) => fmt(sr.values[i], unit)), cats[i] + ":");
  });
  hover.addEventListener("mouseleave", total);
  svg.prepend(hover);
  total();
  box.append(svg, lg.el);
  return { series: series.length, points: cats.length };
}

/** A heatmap: time buckets across, value buckets (numbers) up, count as colour. */
export function heatmap(box, { cells, from, to, bucket, unit, title }) {
  const { svg, plot } = frame(box, 260, { left: 62, right: 14, top: 10, bottom: 26 });
  const ys = [...new Set(cells.map((c) => c.y))].sort((a, b) => a - b);
  const maxN = Math.max(...cells.map((c) => c.n), 1);
  const x = (t) => plot.x0 + ((t - from) / (to - from)) * (plot.x1 - plot.x0);
  const rowH = (plot.y1 - plot.y0) / Math.max(ys.length, 1);
  const gy = s("g", { class: "axis-y" });
  const every = Math.max(1, Math.ceil(14 / rowH));
  ys.forEach((v, i) => {
    if (i % every) return;
    gy.append(s("text", { x: plot.x0 - 6, y: plot.y1 - rowH * (i + 0.5) + 4, "text-anchor": "end", class: "tick-y" }, fmt(v, unit), titled(`${fmt(v, unit)} to ${fmt(v * 2, unit)}`)));
  });
  gy.append(s("text", { x: 12, y: (plot.y0 + plot.y1) / 2, transform: `rotate(-90 12 ${(plot.y0 + plot.y1) / 2})`, "text-anchor": "middle", class: "axis-title" }, title));
  svg.append(gy);
  const { ticks, step } = timeTicks(from, to, plot.x1 - plot.x0);
  const gx = s("g", { class: "axis-x" });
  for (const t of ticks) gx.append(s("text", { x: x(t), y: plot.y1 + 17, "text-anchor": anchorAt(x(t), plot), class: "tick-x" }, fmtTime(t, step), titled(fmtFull(t))));
  svg.append(gx);
  svg.dataset.xMin = String(from);
  svg.dataset.xMax = String(to);
  for (const c of cells) {
    const x0 = Math.max(x(c.t), plot.x0);
    const x1 = Math.min(x(Math.max(c.t, from) === c.t ? c.t + bucket : from + bucket), plot.x1);
    const i = ys.indexOf(c.y);
    const a = 0.15 + 0.85 * (c.n / maxN);
    svg.append(s("rect", { x: x0, y: plot.y1 - rowH * (i + 1), width: Math.max(x1 - x0 - 0.5, 1), height: Math.max(rowH - 0.5, 1), fill: `rgba(224,117,45,${a.toFixed(3)})`, class: "cell" },
      titled(`${fmtFull(c.t)} · ${fmt(c.y, unit)}–${fmt(c.y * 2, unit)}: ${c.n.toLocaleString("en-US")}`)));
  }
  box.append(svg, h("div", { class: "legend" }, h("span", { class: "lwhen" }, `darkest: ${maxN.toLocaleString("en-US")} per cell`)));
  return { series: ys.length, points: cells.length };
}

/** A small inline line of counts (the explorer's sparklines). */
export function sparkline(values, width = 120, height = 22) {
  const maxV = Math.max(...values, 1);
  const step = width / Math.max(values.length - 1, 1);
  const d = values.map((v, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(height - 1 - (v / maxV) * (height - 2)).toFixed(1)}`).join("");
  return s("svg", { width, height, class: "spark", viewBox: `0 0 ${width} ${height}` },
    s("path", { d: `${d}L${width},${height}L0,${height}Z`, fill: "#3274d933", stroke: "none" }),
    s("path", { d, fill: "none", stroke: "#3274d9", "stroke-width": 1.2 }));
}
