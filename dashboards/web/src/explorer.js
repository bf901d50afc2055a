// explorer.js: the error explorer (/dashboard/errors): error groups with
// their sparklines, a group's latest occurrences, and one occurrence with
// its stack, device, page, app version and the session's events within
// ±5 minutes. Its state (filters, group, occurrence) is in the URL.
import { sparkline } from "./charts.js";
import { fmtFull } from "./format.js";
import { table } from "./panels.js";
import { apiQuery, writeState } from "./state.js";
import { el } from "./dom.js";

export const explorerFilters = [
  ["q", "Message text"], ["code", "Code"], ["app_version", "App version"], ["browser", "Browser"], ["os", "OS"],
  ["plan", "Plan"], ["user_id", "user_id"], ["anonymous_id", "anonymous_id"], ["session_id", "session_id"], ["generation_id", "generation_id"],
];


function section(main, title, desc) {
  const card = el("section", { class: "panel wide" }, el("h3", {}, title), el("p", { class: "desc" }, desc), el("div", { class: "body" }));
  main.append(card);
  return card.querySelector(".body");
}

/** Loads the explorer for the state in the URL; reports into state.explorer. */
export async function loadExplorer(main, st, state, getJSON, reload) {
  main.textContent = "";
  const filters = Object.fromEntries(explorerFilters.map(([k]) => [k, st.params.get(k) || ""]));
  const ex = (state.explorer = { groups: 0, occurrences: 0, occurrence: "", stack: "", sessionEvents: 0 });
  const groupsBox = section(main, "Error groups", "Code and normalised message (numbers and ids become #): how often, how many users, first and last seen, and when in the range.");
  const g = await getJSON(`api/errors/groups?${apiQuery(st, filters)}`);
  ex.groups = g.rows.length;
  const col = (res, name) => res.columns.findIndex((c) => c.name === name);
  if (!g.rows.length) {
    groupsBox.append(el("div", { class: "empty" }, "No errors in this range match the filters."));
    return;
  }
  const code = st.params.get("group_code") || "";
  const message = st.params.get("group_message") || "";
  const view = { columns: [...g.columns.filter((c) => c.name !== "type")], rows: g.rows.map((r) => r.filter((_, i) => g.columns[i].name !== "type")) };
  table(groupsBox, view, "none", (v, c) => (c.name === "sparkline" ? sparkline(v) : null));
  groupsBox.querySelectorAll("tbody tr").forEach((tr, i) => {
    const r = g.rows[i];
    tr.classList.add("link");
    if (r[col(g, "error_code")] === code && r[col(g, "message")] === message) tr.classList.add("selected");
    tr.addEventListener("click", () => { writeState({ group_code: r[col(g, "error_code")], group_message: r[col(g, "message")], event: "" }); reload(); });
  });
  if (!code && !message && !st.params.get("event")) return;

  const occBox = section(main, `Latest occurrences: ${code} ${message}`.trim(), "The newest errors of the group (with the filters); open one to see its stack and its session.");
  const o = await getJSON(`api/errors/occurrences?${apiQuery(st, { ...filters, group_code: code, group_message: message })}`);
  ex.occurrences = o.rows.length;
  table(occBox, o, "none");
  const event = st.params.get("event") || "";
  occBox.querySelectorAll("tbody tr").forEach((tr, i) => {
    const id = o.rows[i][col(o, "event_id")];
    tr.classList.add("link");
    if (id === event) tr.classList.add("selected");
    tr.addEventListener("click", () => { writeState({ event: id }); reload(); });
  });
  if (!event) return;

  const one = await getJSON(`api/errors/occurrence/${encodeURIComponent(event)}`);
  const occ = one.occurrence;
  ex.occurrence = occ.event_id;
  ex.stack = occ.error_stack || "";
  const box = section(main, `Occurrence ${occ.event_id}`, "The scrubbed stack, device, page and app version of this error.");
  box.parentElement.setAttribute("data-occurrence", occ.event_id);
  const dl = el("dl", { class: "facts" });
  const facts = [
    ["time", fmtFull(Date.parse(occ.timestamp))], ["type", occ.type], ["code", occ.error_code], ["message", occ.error_message],
    ["app version", occ.app_version], ["page", occ.page_url], ["device", occ.device_class],
    ["browser", `${occ.browser} ${occ.browser_version}`.trim()], ["OS", `${occ.os} ${occ.os_version}`.trim()],
    ["plan", occ.plan], ["model", occ.model], ["generation_id", occ.generation_id],
    ["session_id", occ.session_id], ["user_id", occ.user_id], ["anonymous_id", occ.anonymous_id], ["source", occ.source],
  ];
  for (const [k, v] of facts) if (v) dl.append(el("dt", {}, k), el("dd", {}, v));
  box.append(dl, el("h4", {}, "Stack"), el("pre", { class: "stack" }, occ.error_stack || "(no stack)"));
  const sBox = section(main, "The session's events within 5 minutes", "Every event of this session from 5 minutes before the error to 5 minutes after, in order; the error is highlighted.");
  ex.sessionEvents = one.session.rows.length;
  if (!one.session.rows.length) {
    sBox.append(el("div", { class: "empty" }, occ.session_id ? "No events of this session in the window." : "This error has no session (opted out)."));
    return;
  }
  table(sBox, one.session, "none");
  sBox.querySelectorAll("tbody tr").forEach((tr, i) => {
    if (one.session.rows[i][0] === occ.event_id) tr.classList.add("selected");
  });
  sBox.parentElement.setAttribute("data-session-events", String(one.session.rows.length));
}
