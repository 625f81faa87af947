// Small formatting and DOM helpers. Text from reports is user data: it only ever goes in as
// text (never as HTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export const ms = (iso) => (iso ? Date.parse(iso) : null);

// "12 Apr 1945 12:00Z" (year only when asked)
export function when(iso, year = false) {
  if (!iso) return "—";
  const d = new Date(iso);
  const hh = String(d.getUTCHours()).padStart(2, "0");
  const mm = String(d.getUTCMinutes()).padStart(2, "0");
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}${year ? " " + d.getUTCFullYear() : ""} ${hh}:${mm}Z`;
}

export function isoHour(msValue) {
  return new Date(msValue).toISOString().replace(/:\d\d\.\d{3}Z$/, "Z").replace(/:\d\dZ$/, ":00Z");
}

// "12 Apr 16:43" (UTC; for table cells whose header says so)
export function short(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCHours()).padStart(2, "0")}:` +
    `${String(d.getUTCMinutes()).padStart(2, "0")}`;
}

export const num = (x, d = 0) => (x === null || x === undefined ? "—" : Number(x).toFixed(d));
export const pct = (p) => (p === null || p === undefined ? "—" : `${Math.round(p * 100)}%`);

// A colour per force, stable by its order in the scenario.
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22"];
export function colours(forces) {
  const out = {};
  forces.forEach((f, i) => { out[f.id] = PALETTE[i % PALETTE.length]; });
  return out;
}
