// main.js: the built-in dashboards' pages (body[data-page]): product and
// errors panels (/dashboard/), the error explorer (/dashboard/errors) and
// the pipeline (/dashboard/pipeline). The header holds the time range
// (quick ranges or from/to in UTC), auto-refresh and the page's filters,
// all kept in the URL. window.__dashboard reports what was drawn (for the
// browser tests and for debugging).
import "./style.css";
import { quickRanges, refreshes, readState, writeState } from "./state.js";
import { loadPanels } from "./panels.js";
import { loadExplorer, explorerFilters } from "./explorer.js";
import { el } from "./dom.js";

const page = document.body.dataset.page || "product";
const defaultRange = { product: "24h", errors: "24h", pipeline: "1h" }[page];
const state = (window.__dashboard = { page, panels: {}, errors: [], done: false, loads: 0 });
const $ = (sel, e = document) => e.querySelector(sel);

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

// The product page's groups (accounts), from the dashboard's group variable.
let groups = null;

const pageFilters = {
  product: [
    ["plan", "Plan", ["free", "pro"], true],
    ["quality", "Quality", ["standard", "fast", "pro", "uhd"], true],
    ["group", "Group", () => groups || []],
    ["browser", "Browser"],
  ],
  errors: explorerFilters.map(([k, label]) => (k === "plan" ? [k, label, ["free", "pro"]] : [k, label])),
  pipeline: [],
};

const utcInput = (ms) => new Date(ms).toISOString().slice(0, 16);

function buildForm(st) {
  const form = $("#filters");
  form.textContent = "";
  const range = el("select", { name: "range", "aria-label": "Time range" });
  for (const [k, label] of quickRanges) range.append(el("option", { value: k }, label));
  range.append(el("option", { value: "" }, "Custom (from/to)"));
  range.value = st.range;
  const refresh = el("select", { name: "refresh", "aria-label": "Auto-refresh" });
  for (const [k] of refreshes) refresh.append(el("option", { value: k }, k === "off" ? "Refresh off" : `Every ${k}`));
  refresh.value = st.refresh;
  form.append(
    el("label", {}, "Range", range),
    el("label", {}, "From (UTC)", el("input", { type: "datetime-local", name: "from", value: utcInput(st.from) })),
    el("label", {}, "To (UTC)", el("input", { type: "datetime-local", name: "to", value: utcInput(st.to) })),
    el("label", {}, "Auto-refresh", refresh),
  );
  for (const [name, label, choices, multi] of pageFilters[page]) {
    const v = st.params.get(name) || "";
    let options = typeof choices === "function" ? choices() : choices;
    if (options && v && !multi && !options.includes(v)) options = [v, ...options]; // a shared URL's value
    if (multi) {
      // Several values at once; none checked means All.
      const chosen = v.split(",");
      const box = el("span", { class: "checks", "data-name": name });
      for (const o of options) {
        const cb = el("input", { type: "checkbox", value: o });
        cb.checked = chosen.includes(o);
        box.append(el("label", {}, cb, o));
      }
      form.append(el("label", {}, `${label} (none: all)`, box));
    } else if (options) {
      const sel = el("select", { name }, el("option", { value: "" }, "All"), ...options.map((o) => el("option", { value: o }, o)));
      sel.value = v;
      form.append(el("label", {}, label, sel));
    } else {
      form.append(el("label", {}, label, el("input", { type: "text", name, value: v, placeholder: "any", size: name.endsWith("_id") ? 14 : 10 })));
    }
  }
  form.append(el("button", { type: "submit" }, "Apply"));
  range.addEventListener("change", () => {
    if (range.value) {
      writeState({ range: range.value, from: "", to: "" });
      load();
    }
  });
  refresh.addEventListener("change", () => { writeState({ refresh: refresh.value === "off" ? "" : refresh.value }); schedule(); });
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const values = {};
    for (const [name, , , multi] of pageFilters[page]) {
      values[name] = multi
        ? [...form.querySelectorAll(`[data-name=${name}] input:checked`)].map((c) => c.value).join(",")
        : form[name].value.trim();
    }
    const from = Date.parse(form.from.value + "Z");
    const to = Date.parse(form.to.value + "Z");
    const custom = range.value === "" || form.from.value !== utcInput(st.from) || form.to.value !== utcInput(st.to);
    if (custom && from < to) Object.assign(values, { range: "", from: new Date(from).toISOString(), to: new Date(to).toISOString() });
    if (page === "errors") Object.assign(values, { group_code: "", group_message: "", event: "" });
    writeState(values);
    load();
  };
}

let list = null;
let loading = false;
async function load() {
  if (loading) return;
  loading = true;
  state.done = false;
  state.panels = {};
  state.errors = [];
  const st = readState(defaultRange);
  state.range = { from: st.from, to: st.to };
  if (page === "product" && groups === null) {
    groups = await getJSON("api/variables/group").then((b) => b.values, (err) => {
      state.errors.push(`groups: ${err.message || err}`);
      return null;
    });
  }
  buildForm(st);
  const main = $("#panels");
  try {
    if (page === "errors") {
      await loadExplorer(main, st, state, getJSON, load);
    } else {
      list = list || (await getJSON("api/panels")).panels;
      const filters = Object.fromEntries(pageFilters[page].map(([k]) => [k, st.params.get(k) || ""]));
      await loadPanels(main, list.filter((p) => p.page === page), st, filters, state, getJSON);
    }
  } catch (err) {
    main.textContent = "";
    main.append(el("div", { class: "error" }, String(err.message || err)));
    state.errors.push(String(err.message || err));
    console.error(err);
  }
  state.loads++;
  state.done = true;
  loading = false;
}

let timer = null;
function schedule() {
  clearInterval(timer);
  const { refreshMs } = readState(defaultRange);
  if (refreshMs) timer = setInterval(load, refreshMs);
}

for (const a of document.querySelectorAll("[data-nav]")) if (a.dataset.nav === page) a.classList.add("active");
load();
schedule();
