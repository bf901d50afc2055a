// format.js: numbers, times and units as the panels show them.

/** Formats a value in a Grafana unit. */
export function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "no value";
  if (typeof v !== "number") return String(v);
  if (unit === "percentunit") return (v * 100).toFixed(Math.abs(v) < 0.1 ? 2 : 1) + "%";
  if (unit === "ms") return v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + " s" : Math.round(v) + " ms";
  const s = compact(v);
  const suffix = unitSuffix(unit);
  return suffix ? s + " " + suffix : s;
}

/** A number in few characters: 1.2k, 3.4M. */
export function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return v.toLocaleString("en-US", { maximumFractionDigits: a < 1 ? 3 : 2 });
}

/** The words a unit adds after a number ("suffix: events/s" gives events/s). */
export function unitSuffix(unit) {
  if (!unit) return "";
  if (unit.startsWith("suffix:")) return unit.slice(7).trim();
  return "";
}

/** The axis title of a unit. */
export function unitLabel(unit, fallback) {
  if (unit === "percentunit") return "%";
  if (unit === "ms") return "ms";
  return unitSuffix(unit) || fallback || "";
}

const pad = (n) => String(n).padStart(2, "0");
const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** A UTC time at the precision a step calls for. */
export function fmtTime(ms, step) {
  const d = new Date(ms);
  const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  const day = `${months[d.getUTCMonth()]} ${pad(d.getUTCDate())}`;
  if (step >= 864e5) return day;
  if (step >= 3600e3 && d.getUTCHours() === 0) return day;
  return hm;
}

/** A full UTC time for tooltips and tables. */
export function fmtFull(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "").replace("Z", "") + " UTC";
}
