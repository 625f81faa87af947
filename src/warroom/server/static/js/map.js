// The map: the scenario's geometry once, then each situation's tracks, positions (with a circle
// of one standard deviation along the route) and forecast fans (24 h and 72 h, p10-p90).
/* global L */
import { h, num, when } from "./fmt.js";

const OSM = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";

export class SituationMap {
  constructor(el, geo, colour) {
    this.colour = colour;
    this.map = L.map(el, { zoomSnap: 0.25, preferCanvas: false, attributionControl: true });
    this.map.attributionControl.setPrefix("Leaflet");
    this.base = L.tileLayer(OSM, { maxZoom: 18, attribution: "© OpenStreetMap contributors" });
    this.static = L.layerGroup().addTo(this.map);
    this.dynamic = L.layerGroup().addTo(this.map);
    this.drawScenario(geo);
    this.bounds = geo.bounds;
    this.fit();
    // the grid may settle after the map is made: measure again, and on every resize
    requestAnimationFrame(() => this.fit());
    addEventListener("resize", () => this.fit());
    this.legend(geo);
  }

  fit() {
    this.map.invalidateSize();
    if (this.bounds) this.map.fitBounds(this.bounds, { padding: [24, 24] });
  }

  setBaseMap(on) {
    if (on) this.base.addTo(this.map); else this.base.remove();
  }

  drawScenario(geo) {
    const css = getComputedStyle(document.documentElement);
    const river = css.getPropertyValue("--river").trim();
    const halt = css.getPropertyValue("--halt").trim();
    for (const o of geo.obstacles) {
      L.polyline(o.coords, { color: river, weight: 2, opacity: 0.8, className: "river" })
        .bindTooltip(o.name, { sticky: true }).addTo(this.static);
    }
    for (const l of geo.lines) {
      L.polyline(l.coords, { color: halt, weight: 3, dashArray: "8 6", className: "halt-line" })
        .bindTooltip(`halt line: ${l.name}`, { sticky: true }).addTo(this.static);
    }
    for (const f of geo.forces) {
      L.polyline(f.route, { color: this.colour[f.id], weight: 1.5, opacity: 0.45,
        dashArray: "2 4", className: `route route-${f.id}` })
        .bindTooltip(`${f.name}: route`, { sticky: true }).addTo(this.static);
    }
    for (const o of geo.objectives) {
      if (o.geometry === "Point") {
        const c = o.coords[0];
        if (o.radius_km > 0) {
          L.circle(c, { radius: o.radius_km * 1000, color: "#000", weight: 1, fillOpacity: 0.05,
            className: "objective-area" }).addTo(this.static);
        }
        L.circleMarker(c, { radius: 6, color: "#000", weight: 2, fillColor: "#ffd400",
          fillOpacity: 1, className: `objective objective-${o.id}` })
          .bindTooltip(o.name, { permanent: true, direction: "right", className: "obj-label" })
          .addTo(this.static);
      } else {
        L.polyline(o.coords, { color: "#ffd400", weight: 6, opacity: 0.5,
          className: `objective objective-${o.id}` })
          .bindTooltip(`objective: ${o.name}`, { sticky: true }).addTo(this.static);
      }
    }
  }

  legend(geo) {
    const ctl = L.control({ position: "bottomleft" });
    ctl.onAdd = () => h("div", { class: "legend" },
      geo.forces.map((f) => h("div", {}, h("i", { style: `background:${this.colour[f.id]}` }),
        f.name, f.ours ? " (ours)" : "")),
      h("div", { class: "muted" }, "thick: track · dot: now ±1σ · band: where in 24 h / 72 h"));
    ctl.addTo(this.map);
  }

  // state: GET /dashboard/state
  draw(state) {
    this.dynamic.clearLayers();
    for (const f of state.forces) {
      const c = this.colour[f.id];
      for (const [label, weight, opacity] of [["72h", 14, 0.18], ["24h", 9, 0.35]]) {
        const fan = f.fan_latlon && f.fan_latlon[label];
        if (fan && fan.length > 1) {
          L.polyline(fan, { color: c, weight, opacity, lineCap: "butt",
            className: `fan fan-${label} fan-${f.id}` })
            .bindTooltip(`${f.name}: where in ${label} (p10–p90, ${num(f.fan[label].p10)}–` +
              `${num(f.fan[label].p90)} km)`, { sticky: true }).addTo(this.dynamic);
        }
      }
      if (f.track_latlon.length > 1) {
        L.polyline(f.track_latlon.map((p) => [p[0], p[1]]), { color: c, weight: 4, opacity: 0.9,
          className: `track track-${f.id}` })
          .bindTooltip(`${f.name}: smoothed track`, { sticky: true }).addTo(this.dynamic);
      }
      const p = f.position;
      if (!p) continue;
      if (p.s_sd_km > 0) {
        L.circle([p.lat, p.lon], { radius: p.s_sd_km * 1000, color: c, weight: 1,
          fillOpacity: 0.12, className: `sigma sigma-${f.id}` }).addTo(this.dynamic);
      }
      const last = f.last_report;
      const tip = [
        `<b>${escape(f.name)}</b>`,
        `${p.place ? "near " + escape(p.place) + " · " : ""}${num(p.s_km)} ± ${num(p.s_sd_km)} km`,
        `${num(f.speed_kmpd)} km/day (${escape(f.trend || "—")})`,
        last ? `last report ${escape(last.source)}/${escape(last.report_id)} ${last.grade} · ` +
          `${when(last.observed_at)} (${last.age} old)` : "no report",
      ].join("<br>");
      L.circleMarker([p.lat, p.lon], { radius: 7, color: "#fff", weight: 2, fillColor: c,
        fillOpacity: 1, className: `force-pos force-${f.id}` })
        .bindTooltip(tip).addTo(this.dynamic);
    }
  }
}

function escape(s) {
  return String(s ?? "").replace(/[&<>"']/g, (ch) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch]));
}
