// The dashboard: wires the map, the panels, the time slider, the live stream and the what-if.
//
// "As of": live (follow now; the page refreshes when reports land) or pinned to a time on the
// slider, when the page shows only what was known then (the server's bitemporal rule for the
// situation; alerts and briefings filtered by their own times here).
import { HttpError, getJSON, setToken, subscribe, token } from "./api.js";
import { colours, h, ms, when } from "./fmt.js";
import { SituationMap } from "./map.js";
import { ack, openBriefing, renderAlerts, renderBriefings, renderForces } from "./panels.js";
import { renderRaces } from "./race.js";

const $ = (id) => document.getElementById(id);
const HOUR = 3600e3;

const ui = {
  geo: null, colour: {}, map: null,
  asOf: null,            // ms, or null = live
  state: null,           // GET /dashboard/state for asOf
  baseline: null,        // the state before a what-if
  whatIf: [],            // ["us9.p_obey.elbe-mulde=0.2"]
  alerts: new Map(), fresh: new Set(), briefings: [],
  playing: null, requestSeq: 0,
};

function stepMs() { return (ui.geo.brief_every_h || 6) * HOUR; }

function setBusy(busy) { document.body.dataset.state = busy ? "loading" : "ready"; }

function isoOf(msValue) { return new Date(msValue).toISOString().replace(".000Z", "Z"); }

// -- the situation -----------------------------------------------------------------------------
async function refresh() {
  const seq = ++ui.requestSeq;
  setBusy(true);
  try {
    const params = { at: ui.asOf === null ? null : isoOf(ui.asOf), set: ui.whatIf };
    const state = await getJSON("/dashboard/state", params);
    if (seq !== ui.requestSeq) return;  // a newer request is on its way
    ui.state = state;
    draw();
    document.body.dataset.asOf = state.as_of;
    setBusy(false);
  } catch (e) {
    if (seq === ui.requestSeq) { setBusy(false); problem(e); }
  }
}

function draw() {
  const st = ui.state;
  $("asof").textContent = `as of ${when(st.as_of, true)}`;
  $("headline").textContent = (st.headline || []).join(" ");
  $("mode").textContent = ui.asOf === null ? "live" : "as of then";
  $("mode").className = ui.asOf === null ? "badge live" : "badge";
  $("live").classList.toggle("on", ui.asOf === null);
  ui.map.draw(st);
  renderForces($("forces").tBodies[0], st, ui.colour);
  renderRaces($("races"), ui.geo, st, ui.colour, ui.whatIf.length ? ui.baseline : null);
  $("whatif-badge").hidden = !ui.whatIf.length;
  drawAlerts();
  drawBriefings();
}

function drawAlerts() {
  renderAlerts($("alerts"), $("alerts-count"), ui.alerts, ui.asOf, ui.fresh, async (a, btn) => {
    const res = await ack(a, btn);
    if (res) { ui.alerts.set(res.id, res); drawAlerts(); }
  });
}

function drawBriefings() {
  renderBriefings($("briefings"), $("briefing-latest"), ui.briefings, ui.asOf,
    (b) => openBriefing(b, $("briefing-dialog"), $("briefing-frame"), $("briefing-title")));
}

function problem(e) {
  if (e instanceof HttpError && e.status === 401) {
    $("token-box").hidden = false;
    $("token-msg").textContent = token() ? "that token was refused" : "this server needs an API token";
    return;
  }
  console.warn("warroom:", e.message || e);  // shown, not thrown: the page keeps working
  $("whatif-msg").textContent = String(e.message || e);
}

// -- time --------------------------------------------------------------------------------------
function sliderRange() {
  const first = ms(ui.geo.time_range.first), last = ms(ui.geo.time_range.last);
  const now = Date.now();
  const lo = Math.floor((first ?? now - 7 * 24 * HOUR) / HOUR);
  const hi = Math.ceil(Math.max(last ?? now, (first ?? now) + HOUR) / HOUR);
  const s = $("slider");
  s.min = lo; s.max = hi;
}

function setAsOf(msValue, { fetch = true } = {}) {
  ui.asOf = msValue;
  const s = $("slider");
  if (msValue === null) {
    s.value = s.max;
    $("slider-label").textContent = "now";
    history.replaceState(null, "", location.pathname);
  } else {
    s.value = Math.round(msValue / HOUR);
    $("slider-label").textContent = when(isoOf(msValue), true);
    history.replaceState(null, "", `${location.pathname}#at=${isoOf(msValue)}`);
  }
  if (fetch) refresh();
}

function stepBy(k) {
  const base = ui.asOf ?? Number($("slider").max) * HOUR;
  const step = stepMs();
  const next = (Math.floor(base / step) + k) * step;
  setAsOf(Math.min(Math.max(next, Number($("slider").min) * HOUR), Number($("slider").max) * HOUR));
}

function togglePlay() {
  if (ui.playing) {
    clearInterval(ui.playing); ui.playing = null; $("play").textContent = "▶"; return;
  }
  if (ui.asOf === null) setAsOf(Number($("slider").min) * HOUR, { fetch: false });
  $("play").textContent = "❚❚";
  ui.playing = setInterval(() => {
    if (document.body.dataset.state === "loading") return;  // wait for the last frame
    if (ui.asOf >= Number($("slider").max) * HOUR) { togglePlay(); return; }
    stepBy(1);
  }, 900);
}

// -- live --------------------------------------------------------------------------------------
let pendingRefresh = null;
function onEvent(kind, data) {
  if (kind === "alert") {
    const a = { ...(ui.alerts.get(data.alert.id) || {}), ...data.alert };
    ui.alerts.set(a.id, a);
    ui.fresh.add(a.id);
    setTimeout(() => ui.fresh.delete(a.id), 2000);
    drawAlerts();
  } else if (kind === "briefing") {
    ui.briefings = ui.briefings.filter((b) => b.slot !== data.slot).concat([data]);
    drawBriefings();
  } else if (kind === "report") {
    ui.geo.time_range.last = isoOf(Math.max(ms(ui.geo.time_range.last) || 0, Date.now()));
    if (ui.asOf === null) {  // coalesce bursts of reports into one refresh
      clearTimeout(pendingRefresh);
      pendingRefresh = setTimeout(refresh, 500);
    }
  }
}

async function loadLists() {
  const [alerts, briefings] = await Promise.all([getJSON("/alerts"), getJSON("/briefings")]);
  ui.alerts = new Map(alerts.map((a) => [a.id, a]));
  ui.briefings = briefings;
}

// -- what-if -----------------------------------------------------------------------------------
function setupWhatIf() {
  const fsel = $("wi-force"), lsel = $("wi-line");
  const withLines = ui.geo.forces.filter((f) => f.halt_lines.length);
  fsel.replaceChildren(...ui.geo.forces.map((f) => h("option", { value: f.id }, f.name)));
  const fillLines = () => {
    const f = ui.geo.forces.find((x) => x.id === fsel.value);
    lsel.replaceChildren(h("option", { value: "" }, "every line"),
      ...f.halt_lines.map((l) => h("option", { value: l.line }, `${l.line} (now ${l.p_obey})`)));
    const p = f.halt_lines.length ? f.halt_lines[0].p_obey : 0.5;
    $("wi-p").value = p; $("wi-p-out").textContent = Number(p).toFixed(2);
  };
  if (withLines.length) fsel.value = withLines[0].id;
  fsel.addEventListener("change", fillLines);
  fillLines();
  $("wi-p").addEventListener("input", () => { $("wi-p-out").textContent = Number($("wi-p").value).toFixed(2); });
  $("whatif").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!ui.whatIf.length) ui.baseline = ui.state;
    const key = lsel.value ? `${fsel.value}.p_obey.${lsel.value}` : `${fsel.value}.p_obey`;
    ui.whatIf = ui.whatIf.filter((x) => !x.startsWith(key + "=")).concat([`${key}=${$("wi-p").value}`]);
    $("whatif-msg").textContent = `what-if: ${ui.whatIf.join(", ")}`;
    await refresh();
  });
  $("wi-reset").addEventListener("click", async () => {
    ui.whatIf = []; ui.baseline = null; $("whatif-msg").textContent = "";
    await refresh();
  });
}

// -- start -------------------------------------------------------------------------------------
async function start() {
  token();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token-input").value.trim());
    location.reload();
  });
  $("theme").addEventListener("click", () => {
    const t = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = t;
    localStorage.setItem("warroom.theme", t);
  });
  try {
    ui.geo = await getJSON("/dashboard/scenario");
    await loadLists();
  } catch (e) { problem(e); setBusy(false); return; }
  document.title = `warroom · ${ui.geo.scenario}`;
  $("scenario-name").textContent = ui.geo.scenario;
  ui.colour = colours(ui.geo.forces);
  ui.map = new SituationMap($("map"), ui.geo, ui.colour);
  $("basemap").addEventListener("change", (e) => ui.map.setBaseMap(e.target.checked));
  sliderRange();
  setupWhatIf();

  const s = $("slider");
  s.addEventListener("input", () => { $("slider-label").textContent = when(isoOf(Number(s.value) * HOUR), true); });
  s.addEventListener("change", () => setAsOf(Number(s.value) * HOUR));
  $("step-back").addEventListener("click", () => stepBy(-1));
  $("step-fwd").addEventListener("click", () => stepBy(1));
  $("play").addEventListener("click", togglePlay);
  $("live").addEventListener("click", () => { if (ui.playing) togglePlay(); setAsOf(null); });
  $("briefing-close").addEventListener("click", () => $("briefing-dialog").close());

  subscribe("/events", onEvent, (on) => $("conn").classList.toggle("on", on));

  // Where to start: a time in the address (#at=...); else live when the record is recent, else
  // the end of the record (a historical scenario opens on its last known situation).
  const m = location.hash.match(/at=([^&]+)/);
  const last = ms(ui.geo.time_range.last);
  if (m && !Number.isNaN(Date.parse(decodeURIComponent(m[1])))) setAsOf(Date.parse(decodeURIComponent(m[1])));
  else if (last !== null && Date.now() - last > 4 * stepMs()) setAsOf(last);
  else setAsOf(null);
}

start();
