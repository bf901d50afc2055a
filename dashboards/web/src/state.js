// state.js: the page's state, kept in the URL so a view can be shared:
// the time range (a quick range like "1h", re-evaluated on every refresh,
// or absolute from/to), auto-refresh, and the page's filters.

/** Quick ranges, as Grafana's: label and length in ms. */
export const quickRanges = [
  ["15m", "Last 15 minutes", 15 * 60e3],
  ["1h", "Last 1 hour", 3600e3],
  ["6h", "Last 6 hours", 6 * 3600e3],
  ["24h", "Last 24 hours", 24 * 3600e3],
  ["7d", "Last 7 days", 7 * 864e5],
  ["30d", "Last 30 days", 30 * 864e5],
];

/** Auto-refresh choices: URL value and interval in ms (0: off). */
export const refreshes = [["off", 0], ["5s", 5e3], ["30s", 30e3]];

const parseTime = (s) => (/^\d+$/.test(s) ? +s : Date.parse(s));

/** Reads the URL: { range, from, to (ms), refresh, params (URLSearchParams) }. */
export function readState(defaultRange) {
  const q = new URLSearchParams(location.search);
  const now = Date.now();
  let range = q.get("range");
  let from = q.get("from") ? parseTime(q.get("from")) : NaN;
  let to = q.get("to") ? parseTime(q.get("to")) : NaN;
  if (!(from < to)) {
    const r = quickRanges.find(([k]) => k === range) || quickRanges.find(([k]) => k === defaultRange);
    range = r[0];
    to = Math.floor(now / 1000) * 1000;
    from = to - r[2];
  } else {
    range = "";
  }
  const refresh = refreshes.find(([k]) => k === q.get("refresh")) || refreshes[0];
  return { range, from, to, refresh: refresh[0], refreshMs: refresh[1], params: q };
}

/** Writes keys into the URL (empty values removed) without reloading. */
export function writeState(values) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(values)) {
    if (v === "" || v === null || v === undefined) q.delete(k);
    else q.set(k, v);
  }
  history.replaceState(null, "", "?" + q.toString());
}

/** The API query string of a state: from/to as RFC 3339 plus extra pairs. */
export function apiQuery(st, extra = {}) {
  const q = new URLSearchParams({ from: new Date(st.from).toISOString(), to: new Date(st.to).toISOString() });
  for (const [k, v] of Object.entries(extra)) if (v) q.set(k, v);
  return q.toString();
}

/** The bucket the panels use for a range: minute, hour or day (ms). */
export function bucketOf(from, to) {
  const span = (to - from) / 1000;
  return span <= 21600 ? 60e3 : span <= 604800 ? 3600e3 : 864e5;
}
