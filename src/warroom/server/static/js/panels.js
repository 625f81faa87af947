// The forces table, the alerts list (firing first, acknowledge) and the briefings list.
import { HttpError, getText, postJSON } from "./api.js";
import { h, ms, num, when } from "./fmt.js";

export function renderForces(tbody, state, colour) {
  tbody.replaceChildren(...state.forces.map((f) => {
    const p = f.position;
    const last = f.last_report;
    return h("tr", {
      class: `force-row${f.ours ? " ours" : ""}`,
      dataset: { force: f.id, lat: p ? p.lat : "", lon: p ? p.lon : "", sKm: p ? p.s_km : "" },
    },
    h("td", {}, h("span", { class: "swatch", style: `background:${colour[f.id]}` }), f.name),
    h("td", { class: "where" }, p ? `${p.place ? "near " + p.place + ", " : ""}km ${num(p.s_km)} ± ${num(p.s_sd_km)}` : "no report yet"),
    h("td", { class: "num" }, f.speed_kmpd === null ? "—" : `${num(f.speed_kmpd)} ± ${num(f.speed_sd_kmpd)}`),
    h("td", {}, f.trend || "—"),
    h("td", { title: last ? `${last.source}/${last.report_id}, observed ${last.observed_at}, received ${last.received_at}` : "" },
      last ? `${last.report_id} ${last.grade}, ${last.age} ago` : "none"));
  }));
}

const ORDER = { firing: 0, pending: 1, resolved: 2 };
const SEVERITY = { critical: 0, warning: 1, info: 2 };

// Alerts as known at `asOf` (ms; null = live): fired by then and not yet resolved then.
export function visibleAlerts(alerts, asOf) {
  const out = [];
  for (const a of alerts.values()) {
    if (asOf === null) { out.push(a); continue; }
    const since = ms(a.fired_at || a.since);
    if (since === null || since > asOf) continue;
    const resolved = a.resolved_at && ms(a.resolved_at) <= asOf;
    out.push({ ...a, state: resolved ? "resolved" : (a.fired_at && ms(a.fired_at) <= asOf ? "firing" : "pending") });
  }
  return out.sort((a, b) => (ORDER[a.state] ?? 3) - (ORDER[b.state] ?? 3)
    || (SEVERITY[a.severity] ?? 3) - (SEVERITY[b.severity] ?? 3)
    || String(b.fired_at || b.since).localeCompare(String(a.fired_at || a.since)));
}

export function renderAlerts(ul, countEl, alerts, asOf, fresh, onAck) {
  const shown = visibleAlerts(alerts, asOf);
  const firing = shown.filter((a) => a.state === "firing").length;
  countEl.textContent = `${firing} firing · ${shown.length} shown`;
  ul.replaceChildren(...shown.map((a) => h("li", {
    class: `alert ${a.state} ${a.severity || ""}${fresh.has(a.id) ? " new" : ""}`,
    dataset: { id: a.id, state: a.state, rule: a.rule },
  },
  h("span", {}, a.message),
  a.state !== "resolved" && asOf === null
    ? (a.acked ? h("span", { class: "muted small" }, "acked")
      : h("button", { type: "button", class: "ack", onclick: (e) => onAck(a, e.target) }, "Ack"))
    : h("span"),
  h("span", { class: "meta" }, `${a.state} · ${a.rule} · ${a.severity || ""} · since ${when(a.fired_at || a.since)}`
    + (a.resolved_at ? ` · resolved ${when(a.resolved_at)}` : "")
    + (a.reports && a.reports.length ? ` · reports ${a.reports.join(", ")}` : "")))));
}

export async function ack(alert, button) {
  button.disabled = true;
  try {
    const res = await postJSON(`/alerts/${encodeURIComponent(alert.id)}/ack`);
    return res;
  } catch (e) {
    button.disabled = false;
    button.textContent = e instanceof HttpError && e.status === 403 ? "needs analyst" : "failed";
    return null;
  }
}

// Briefings stored by `asOf` (ms; null = all), newest first; a click opens one in place.
export function renderBriefings(ul, latestEl, briefings, asOf, open) {
  const shown = briefings.filter((b) => asOf === null || ms(b.slot) <= asOf)
    .sort((a, b) => ms(b.slot) - ms(a.slot));
  latestEl.textContent = shown.length
    ? `latest: ${when(shown[0].slot, true)}${shown[0].late ? " (late)" : ""}${shown[0].headline ? " — " + shown[0].headline.join(" ") : ""}`
    : "no briefing stored yet";
  ul.replaceChildren(...shown.slice(0, 60).map((b) => h("li", { dataset: { slot: b.slot } },
    h("a", { onclick: () => open(b) }, when(b.slot, true)), b.late ? h("span", { class: "late" }, " late") : "")));
}

export function slotName(iso) {
  // 1945-04-12T12:00:00Z -> 1945-04-12T1200Z (the name GET /briefings/{name} takes)
  return `${iso.slice(0, 13)}${iso.slice(14, 16)}Z`;
}

export async function openBriefing(b, dialog, frame, title) {
  title.textContent = `Briefing ${when(b.slot, true)}`;
  frame.srcdoc = "<p style='font-family:sans-serif'>loading…</p>";
  dialog.showModal();
  try {
    frame.srcdoc = await getText(`/briefings/${slotName(b.slot)}.html`);
  } catch (e) {
    frame.srcdoc = `<p style='font-family:sans-serif'>could not open: ${String(e.message).replace(/</g, "&lt;")}</p>`;
  }
}
