"""Writing a simulation: a scenario folder the loader reads, plus the truth beside it.

::

    DIR/
      scenario.toml        sides, forces (routes, objectives, halt orders), objectives,
                           rivers as obstacles, halt lines
      world.geojson        routes, objectives, rivers, lines, a town at each objective
      reports.csv          the reports (what the war room is told)
      truth.csv            per force: its objective, where it is along its route (km) and
                           when it truly arrived (empty: not within the record)
      truth_track.csv      the piecewise-linear true tracks: force, t, s_km (vertices)
      truth_reports.csv    per report: the true km along the route and its kind (position,
                           off_axis, false, reached, crossed, halted)
      README.md            what was simulated

The ``truth*`` files are not part of the scenario: the loader ignores them.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from warroom.simulate.generate import Simulation
from warroom.timeutil import to_iso

REPORT_COLUMNS = ("report_id", "source", "force", "observed_at", "received_at", "lat", "lon",
                  "grade", "event", "target", "text")


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a TOML basic string


def scenario_toml(sim: Simulation) -> str:
    w, spec = sim.world, sim.spec
    kind = "mis-specified (hidden halts)" if spec.mis_specified else "the model's own process"
    lines = [f"name = {_q(f'Synthetic races: {spec.forces} forces, seed {spec.seed}')}",
             f"description = {_q(f'warroom simulate: {kind}, {spec.days:g} days from ' + str(to_iso(spec.start)))}",  # noqa: E501
             ""]
    for side in sorted({f.side for f in w.forces}):
        lines += ["[[sides]]", f"id = {_q(side)}", f"name = {_q(side.replace('-', ' '))}", ""]
    for f in w.forces:
        lines += ["[[forces]]", f"id = {_q(f.id)}", f"name = {_q(f.name)}",
                  f"side = {_q(f.side)}", f"route = {_q(f.id + '-route')}",
                  f"objectives = [{_q(f.objective)}]"]
        if f.halt is not None:
            line, p, start, until = f.halt
            order = (f"{{ line = {_q(line)}, p_obey = {p:g}, "
                     f"from = {_q(to_iso(spec.start + start * 86400))}")
            if math.isfinite(until):
                order += f", until = {_q(to_iso(spec.start + until * 86400))}"
            lines.append(f"halt_lines = [{order} }}]")
        lines.append("")
    for oid, (name, feature, radius) in w.objectives.items():
        lines += ["[[objectives]]", f"id = {_q(oid)}", f"name = {_q(name)}",
                  f"feature = {_q(feature)}", f"radius_km = {radius:g}", ""]
    for fid, name, p50, p90 in w.obstacles:
        lines += ["[[obstacles]]", f"feature = {_q(fid)}", f"name = {_q(name)}",
                  f"delay_hours = {{ p50 = {p50:g}, p90 = {p90:g} }}", ""]
    for fid, name in w.lines:
        lines += ["[[lines]]", f"feature = {_q(fid)}", f"name = {_q(name)}", ""]
    return "\n".join(lines)


def _num(x: float | None, nd: int) -> str:
    return "" if x is None else f"{x:.{nd}f}"


def write_scenario(sim: Simulation, out: Path, reports_csv: bool = True) -> dict[str, Path]:
    """Write the folder (created if missing; our files overwritten); the paths written.
    ``reports_csv`` False leaves the reports out (the caller archives them elsewhere, e.g. as
    Parquet) and removes a ``reports.csv`` left by an earlier run."""
    out.mkdir(parents=True, exist_ok=True)
    names = ["scenario.toml", "world.geojson", "reports.csv", "truth.csv", "truth_track.csv",
             "truth_reports.csv", "README.md"]
    if not reports_csv:
        names.remove("reports.csv")
        (out / "reports.csv").unlink(missing_ok=True)
    paths = {name: out / name for name in names}
    paths["scenario.toml"].write_text(scenario_toml(sim), encoding="utf-8")
    paths["world.geojson"].write_text(json.dumps(
        {"type": "FeatureCollection", "features": sim.world.features}) + "\n", encoding="utf-8")
    if reports_csv:
        _write_reports(sim, paths["reports.csv"])
    with paths["truth.csv"].open("w", encoding="utf-8", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["force", "objective", "objective_km", "arrival", "arrival_day",
                     "halt_line", "halted_at_line", "surprise_halt"])
        for t in sim.truth:
            wr.writerow([t["force"], t["objective"], f"{t['objective_km']:.3f}",
                         to_iso(t["arrival"]) or "", _num(t["arrival_day"], 4),
                         t["halt_line"] or "", int(t["halted_at_line"]),
                         int(t["surprise_halt"])])
    with paths["truth_track.csv"].open("w", encoding="utf-8", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["force", "t", "s_km"])
        for p in sim.track:
            wr.writerow([p["force"], to_iso(p["t"]), f"{p['s_km']:.3f}"])
    with paths["truth_reports.csv"].open("w", encoding="utf-8", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["source", "report_id", "force", "kind", "true_s_km", "reported_s_km",
                     "across_km"])
        for r in sim.report_truth:
            wr.writerow([r["source"], r["report_id"], r["force"], r["kind"],
                         f"{r['true_s_km']:.3f}", f"{r['reported_s_km']:.3f}",
                         f"{r['across_km']:.2f}"])
    paths["README.md"].write_text(_readme(sim), encoding="utf-8")
    return paths


def _write_reports(sim: Simulation, path: Path) -> None:
    rows = sorted(sim.reports, key=lambda r: (r["observed_at"], r["force"], r["report_id"]))
    with path.open("w", encoding="utf-8", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(REPORT_COLUMNS)
        for r in rows:
            wr.writerow([r["report_id"], r["source"], r["force"], to_iso(r["observed_at"]),
                         to_iso(r["received_at"]), f"{r['lat']:.5f}", f"{r['lon']:.5f}",
                         r["grade"], r["event"], r["target"] or "", r["text"] or ""])


def _readme(sim: Simulation) -> str:
    spec = sim.spec
    arrived = sum(t["arrival"] is not None for t in sim.truth)
    return f"""# Synthetic races ({spec.forces} forces, seed {spec.seed})

Written by `warroom simulate`: {spec.forces} forces in races of {spec.per_race}, {spec.days:g}
days from {to_iso(spec.start)}, {len(sim.reports)} reports;
{arrived} of {len(sim.truth)} forces reached their objective within the record.
{"Mis-specified: forces also halt at a hidden line the scenario does not mention." if
 spec.mis_specified else "The truth follows the forecast's own generative model."}

`scenario.toml`, `world.geojson` and `reports.csv` (or the Parquet archive
`reports.parquet/`, to load with `warroom ingest --parquet`) are the scenario: try
`warroom backtest --scenario <this folder>`. `truth*.csv` hold what really happened (see
`warroom.simulate` for the model).
"""
