// The race panel: per objective, the forces with km to go, speed, ETA p10/p50/p90, P(first) and
// our timetable; under each table an ETA chart (p10-p90 bar, p50 tick, planned date diamond).
import { h, ms, num, pct, short, when } from "./fmt.js";

const NS = "http://www.w3.org/2000/svg";
const DAY = 86400e3;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// rows of one race: [{force, o (objective entry), planned}]
function rowsOf(state, oid) {
  const rows = [];
  for (const f of state.forces) {
    const o = f.objectives[oid];
    if (!o) continue;
    const plan = state.timetable.find((t) => t.force === f.id && t.objective === oid);
    rows.push({ f, o, planned: plan ? plan.planned : null });
  }
  const key = (r) => (r.o.reached_at ? 2 - ms(r.o.reached_at) / 1e15 : (r.o.p_first ?? 0));
  return rows.sort((a, b) => key(b) - key(a) || (ms(a.o.eta.p50) ?? Infinity) - (ms(b.o.eta.p50) ?? Infinity));
}

function pFirstCell(fid, oid, p, baseline) {
  const td = h("td", { class: "num p-first", dataset: { force: fid, objective: oid, p: p ?? "" } }, pct(p));
  if (baseline) {
    const b = baseline.races[oid] ? baseline.races[oid][fid] : null;
    if (b !== null && b !== undefined && p !== null && Math.abs(p - b) >= 0.005) {
      td.append(h("span", { class: p > b ? "delta-up small" : "delta-down small" },
        ` (${p > b ? "+" : "−"}${Math.round(Math.abs(p - b) * 100)})`));
    }
  }
  return td;
}

export function renderRaces(el, geo, state, colour, baseline) {
  el.replaceChildren();
  const asOf = ms(state.as_of);
  for (const obj of geo.objectives) {
    const rows = rowsOf(state, obj.id);
    if (!rows.length) continue;
    const race = state.races[obj.id] || {};
    const decided = race.decided;
    const title = decided
      ? `${obj.name} — decided: ${state.forces.find((f) => f.id === decided.winner)?.name ?? decided.winner} (${when(decided.at)})`
      : race.nobody === undefined ? obj.name
        : `${obj.name} — nobody within ${num(state.horizon_days)} days: ${pct(race.nobody)}`;
    const tbody = h("tbody", {}, rows.map(({ f, o, planned }) => {
      const late = planned && !o.reached_at && (o.eta.p50 === null || ms(o.eta.p50) > ms(planned));
      return h("tr", { class: f.ours ? "ours" : "", dataset: { force: f.id, objective: obj.id } },
        h("td", {}, h("span", { class: "swatch", style: `background:${colour[f.id]}` }), f.name),
        h("td", { class: "num" }, o.reached_at ? "reached" : num(o.km_to_go)),
        h("td", { class: "num" }, num(f.speed_kmpd)),
        h("td", { class: "num" }, o.reached_at ? short(o.reached_at) : short(o.eta.p10)),
        h("td", { class: "num eta-p50" }, o.reached_at ? "" : short(o.eta.p50)),
        h("td", { class: "num" }, o.reached_at ? "" : (o.eta.p90 ? short(o.eta.p90) : "beyond")),
        pFirstCell(f.id, obj.id, o.p_first, baseline),
        h("td", { class: late ? "t late" : "t", title: late ? "p50 after the plan" : "" },
          planned ? short(planned) + (late ? " ✗" : "") : ""));
    }));
    el.append(h("div", { class: "race", dataset: { objective: obj.id } },
      h("h3", {}, title),
      h("table", { class: "tbl" },
        h("thead", {}, h("tr", {}, ["Force", "km to go", "km/day", "ETA p10 (UTC)", "p50", "p90",
          "P(first)", "Planned"].map((t, i) => h("th", { class: i && i < 7 ? "num" : "" }, t)))),
        tbody),
      chart(rows, asOf, state.horizon_days, colour)));
  }
}

// ETA chart: one row per force, time from as_of to the latest p90 (at most the horizon).
function chart(rows, asOf, horizonDays, colour) {
  const W = 560, rowH = 18, top = 6, left = 110, right = 10, bottom = 22;
  const H = top + rows.length * rowH + bottom;
  let end = asOf + DAY;
  for (const { o, planned } of rows) {
    for (const t of [o.eta.p90, o.eta.p50, planned]) if (t) end = Math.max(end, ms(t));
  }
  end = Math.min(end, asOf + horizonDays * DAY);
  let start = asOf;
  for (const { o } of rows) if (o.reached_at) start = Math.min(start, ms(o.reached_at));
  const x = (t) => left + ((Math.min(Math.max(t, start), end) - start) / (end - start || 1)) * (W - left - right);
  const svg = s("svg", { class: "eta", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "ETA chart: p10-p90 bars, p50 ticks, planned diamonds" });
  const days = (end - start) / DAY;
  const step = days > 20 ? 7 : days > 6 ? 2 : 1;
  for (let t = Math.ceil(start / DAY) * DAY; t <= end; t += step * DAY) {
    svg.append(s("line", { class: "axis", x1: x(t), x2: x(t), y1: top, y2: H - bottom }));
    const d = new Date(t);
    svg.append(s("text", { x: x(t), y: H - 6, "text-anchor": "middle" },
      `${d.getUTCDate()}/${d.getUTCMonth() + 1}`));
  }
  svg.append(s("line", { class: "now", x1: x(asOf), x2: x(asOf), y1: top - 4, y2: H - bottom }));
  rows.forEach(({ f, o, planned }, i) => {
    const y = top + i * rowH + rowH / 2;
    svg.append(s("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, f.name.slice(0, 18)));
    if (o.reached_at) {
      svg.append(s("circle", { cx: x(ms(o.reached_at)), cy: y, r: 5, fill: colour[f.id] }));
    } else if (o.eta.p10) {
      const x0 = x(ms(o.eta.p10)), x1 = o.eta.p90 ? x(ms(o.eta.p90)) : W - right;
      svg.append(s("rect", { x: x0, y: y - 5, width: Math.max(2, x1 - x0), height: 10,
        fill: colour[f.id], "fill-opacity": 0.45, rx: 2 }));
      if (o.eta.p50) {
        svg.append(s("rect", { x: x(ms(o.eta.p50)) - 1.5, y: y - 8, width: 3, height: 16,
          fill: colour[f.id] }));
      }
      if (!o.eta.p90) svg.append(s("text", { x: W - right, y: y + 4, "text-anchor": "end" }, "→"));
    }
    if (planned) {
      const px = x(ms(planned));
      svg.append(s("path", { class: "plan", d: `M${px} ${y - 6} l5 6 l-5 6 l-5 -6 z` }));
    }
  });
  return svg;
}
