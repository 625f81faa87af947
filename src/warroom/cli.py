"""The ``warroom`` command line (Typer + Rich).

Exit codes: 0 all good; 1 some rows were quarantined or conflicted; 2 a usage or configuration
error. Errors go to stderr, one clear line each; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from warroom import status as status_mod
from warroom.domain import Report, Scenario
from warroom.estimate.config import estimate_params
from warroom.estimate.track import estimate
from warroom.forecast.params import ForecastParams, OverrideError, parse_overrides
from warroom.forecast.run import forecast as run_forecast
from warroom.forecast.summary import headline
from warroom.ingest.pipeline import IngestResult, ingest_stream
from warroom.scenario import ScenarioError
from warroom.store import StoreError
from warroom.timeutil import TimeFormatError, parse_time, to_iso
from warroom.workspace import UsageError, Workspace, open_workspace

app = typer.Typer(
    no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="warroom: where each force is, how fast it advances, and who reaches each objective "
         "first.",
)
# pipes and logs get 120 columns; plain lines are never wrapped mid-sentence
out = Console(width=None if Console().is_terminal else 120, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # one error, one line
_state = {"debug": False}

DEMO_SCENARIO = "berlin1945"
DEMO_AT = "1945-04-12T12:00:00Z"

DbOpt = Annotated[str | None, typer.Option("--db", help="SQLite store (default: WARROOM_DB, "
                                           "else warroom.db; in memory with --scenario alone)")]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", help="scenario folder or "
                                                 "built-in name (e.g. berlin1945)")]
AtOpt = Annotated[str | None, typer.Option("--at", help="as of this time, ISO 8601 with zone "
                                           "(default: now)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    _state["debug"] = debug


@contextmanager
def _guard() -> Iterator[None]:
    """Turn known errors into one line on stderr and exit code 2."""
    try:
        yield
    except (UsageError, StoreError, TimeFormatError) as e:
        if _state["debug"]:
            raise
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(2) from None
    except ScenarioError as e:
        if _state["debug"]:
            raise
        for p in e.problems:
            err.print(f"error: {p}", markup=False)
        raise typer.Exit(2) from None


def _at(at: str | None) -> int:
    if at is None:
        return int(time.time())
    try:
        return parse_time(at)
    except TimeFormatError as e:
        raise UsageError(f"--at: {e}") from None


def _print_seed(ws: Workspace) -> None:
    if ws.seeded is not None and not ws.seeded.clean:
        for m in ws.seeded.messages:
            err.print(f"warning: {m}", markup=False)


@app.command()
def init(db: DbOpt = None, scenario: ScenarioOpt = None) -> None:
    """Create the store for a scenario and load the scenario's own reports."""
    with _guard():
        if scenario is None:
            raise UsageError("init needs --scenario DIR|NAME")
        ws = open_workspace(db, scenario, create=True)
        _print_seed(ws)
        out.print(f"store {ws.store.path}: scenario {ws.scenario.name!r}, "
                  f"{ws.store.count_reports()} reports, {len(ws.scenario.forces)} forces")
        ws.store.close()


@app.command()
def ingest(
    files: Annotated[list[str], typer.Argument(help="files to ingest; - reads stdin")],
    db: DbOpt = None, scenario: ScenarioOpt = None, json_out: JsonOpt = False,
) -> None:
    """Ingest reports (CSV, NDJSON or GeoJSON, detected from the content)."""
    with _guard():
        ws = open_workspace(db, scenario)
        _print_seed(ws)
        results: list[IngestResult] = []
        for name in files:
            results.append(_ingest_one(ws, name))
        ws.store.close()
    total = IngestResult(origin="total")
    for r in results:
        total.accepted += r.accepted
        total.duplicate += r.duplicate
        total.conflict += r.conflict
        total.quarantined += r.quarantined
        for m in r.messages:
            err.print(m, markup=False)
    if json_out:
        print(json.dumps({"files": [r.as_dict() for r in results], "total": total.as_dict()}))
    else:
        t = Table("file", "format", "accepted", "duplicate", "conflict", "quarantined")
        for r in results + ([total] if len(results) > 1 else []):
            t.add_row(r.origin, r.format, str(r.accepted), str(r.duplicate), str(r.conflict),
                      str(r.quarantined))
        out.print(t)
    if not total.clean:
        raise typer.Exit(1)


def _ingest_one(ws: Workspace, name: str) -> IngestResult:
    if name == "-":
        return ingest_stream(ws.store, ws.validator(), sys.stdin.buffer, origin="stdin")
    path = Path(name)
    if not path.is_file():
        raise UsageError(f"{name}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as fh, Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=not err.is_terminal or size < 1 << 20,
    ) as bar:
        task = bar.add_task(path.name, total=size)
        return ingest_stream(ws.store, ws.validator(), fh, origin=path.name, filename=path.name,
                             progress=lambda n: bar.update(task, completed=n))


def _reports(ws: Workspace, at: int) -> dict[str, list[Report]]:
    reports: dict[str, list[Report]] = {}
    for r in ws.store.reports(as_of=at):
        reports.setdefault(r.force, []).append(r)
    return reports


def _status(ws: Workspace, at: int) -> list[dict[str, Any]]:
    reports = _reports(ws, at)
    estimates = estimate(ws.scenario, reports, at, estimate_params(ws.scenario))
    return status_mod.force_status(ws.scenario, reports, estimates, at)


def _print_status(ws: Workspace, rows: list[dict[str, Any]], at: int) -> None:
    sc = ws.scenario
    out.print(f"[bold]{sc.name}[/bold] as of {to_iso(at)}")
    t = Table("force", "last report", "where (last known)", "km along", "speed km/day",
              "regime / trend", "to go (km)", header_style="bold")
    notes: list[str] = []
    for row in rows:
        lr = row["last_report"]
        last = f"{lr['age']} ago\n{lr['source']}, {lr['grade']}" if lr else "none"
        pos = row["position"]
        est = row["estimate"]
        if pos:
            where = (f"{pos['place_km']:.0f} km from {pos['place']}\n"
                     f"{pos['lat']:.3f}, {pos['lon']:.3f}")
            along = f"{pos['s_km']:.0f} ± {est['s_sd_km']:.0f}"
            speed = f"{est['speed_kmpd']:.0f} ± {est['speed_sd_kmpd']:.0f}"
            reg = est["regime"]
            top = max(reg, key=reg.get)
            regime = f"{top} {reg[top]:.2f}\n{est['trend']}"
        else:
            where, along, speed, regime = "unknown", "-", "-", "-"
        togo = []
        for o in row["objectives"].values():
            if o["reached_at"]:
                togo.append(f"{o['name']}: reached {o['reached_at'][:10]}")
            elif o["km_to_go"] is not None:
                togo.append(f"{o['name']}: {o['km_to_go']:.0f}")
        t.add_row(row["name"], last, where, along, speed, regime, "\n".join(togo) or "-")
        for f in row["flags"]:
            notes.append(f"{row['name']}: {f['report']} disregarded ({f['reason']}): "
                         f"{f['detail']}")
    out.print(t)
    if notes:
        out.print(f"{len(notes)} report(s) disregarded:")
        for n in notes:
            out.print(f"  {n}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def status(
    at: AtOpt = None, db: DbOpt = None, scenario: ScenarioOpt = None, json_out: JsonOpt = False,
) -> None:
    """Each force as of a time: last report, where it is, km along its route, km to go."""
    with _guard():
        when = _at(at)
        ws = open_workspace(db, scenario)
        _print_seed(ws)
        rows = _status(ws, when)
    if json_out:
        print(json.dumps({"scenario": ws.scenario.name, "as_of": to_iso(when), "forces": rows},
                         indent=2))
    else:
        _print_status(ws, rows, when)


@app.command("forecast")
def forecast_cmd(
    at: AtOpt = None, db: DbOpt = None, scenario: ScenarioOpt = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Monte Carlo samples "
                                         "per force")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same "
                                      "output)")] = 0,
    horizon: Annotated[float, typer.Option("--horizon", min=0.01, help="days ahead")] = 30.0,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="what-if, e.g. us3.p_obey=0.1 (repeatable; see docs)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """When each force reaches each objective, and who gets there first."""
    with _guard():
        when = _at(at)
        ws = open_workspace(db, scenario)
        _print_seed(ws)
        sc = ws.scenario
        try:
            overrides = parse_overrides(set_ or [], set(sc.forces),
                                        {o.feature for o in sc.obstacles}, set(sc.lines))
        except OverrideError as e:
            raise UsageError(str(e)) from None
        fc = _forecast(ws, when, ForecastParams(samples=samples, seed=seed,
                                                horizon_days=horizon, overrides=overrides))
    if json_out:
        print(json.dumps(fc, indent=2))
        return
    _print_forecast(sc, fc)


def _forecast(ws: Workspace, at: int, params: ForecastParams) -> dict[str, Any]:
    reports = _reports(ws, at)
    eparams = estimate_params(ws.scenario)
    estimates = estimate(ws.scenario, reports, at, eparams)
    return run_forecast(ws.scenario, estimates, reports, at, params, eparams)


def _print_forecast(sc: Scenario, fc: dict[str, Any]) -> None:
    out.print(f"[bold]{sc.name}[/bold]: forecast as of {fc['as_of']} "
              f"({fc['samples']} samples, seed {fc['seed']}, {fc['horizon_days']:g} days)")
    for line in headline(sc, fc):
        out.print(f"[bold]{line}[/bold]")
    for oid, obj in sc.objectives.items():
        racers = [f for f, d in fc["forces"].items() if oid in d["objectives"]]
        if not racers:
            continue
        race = fc["races"].get(oid, {})
        t = Table("force", "km to go", "speed km/day", "ETA p10", "ETA p50", "ETA p90",
                  "P(within horizon)", "P(first)", "P(before timetable)",
                  title=obj.name, title_justify="left", header_style="bold")
        for f in racers:
            d = fc["forces"][f]
            o = d["objectives"][oid]

            def day(x: str | None) -> str:
                return "beyond" if x is None else x[:13].replace("T", " ") + "h"

            if o["reached_at"]:
                etas = [f"reached {o['reached_at'][:10]}", "", ""]
            else:
                etas = [day(o["eta"][k]) for k in ("p10", "p50", "p90")]
            speed = "-" if d["speed_kmpd"] is None else \
                f"{d['speed_kmpd']:.0f} ± {d['speed_sd_kmpd']:.0f}"
            togo = "-" if o["km_to_go"] is None else f"{o['km_to_go']:.0f}"
            tt = "-" if o["p_before_timetable"] is None else \
                f"{o['p_before_timetable']:.2f} ({o['timetable_of']} {o['planned'][:10]})"
            first = f"{race[f]:.2f}" if f in race else "-"
            t.add_row(d["name"], togo, speed, *etas, f"{o['p_within_horizon']:.2f}", first, tt)
        if race and "nobody" in race:
            t.add_row("nobody", "", "", "", "", "", "", f"{race['nobody']:.2f}", "")
        out.print(t)


@app.command()
def track(
    force: Annotated[str, typer.Argument(help="force id")],
    at: AtOpt = None, db: DbOpt = None, scenario: ScenarioOpt = None, json_out: JsonOpt = False,
) -> None:
    """One force's filtered and smoothed history, and every report behind it."""
    with _guard():
        when = _at(at)
        ws = open_workspace(db, scenario)
        if force not in ws.scenario.forces:
            raise UsageError(f"{force!r} is not a force; expected one of "
                             f"{', '.join(ws.scenario.forces)}")
        reports = _reports(ws, when)
        est = estimate(ws.scenario, reports, when, estimate_params(ws.scenario))[force]
    d = est.as_dict()
    if json_out:
        print(json.dumps(d, indent=2))
        return
    f = ws.scenario.forces[force]
    out.print(f"[bold]{f.name}[/bold] as of {to_iso(when)}: {d['used']} of {d['reports']} "
              f"reports used; trend {d['trend']}")
    t = Table("observed", "report", "z km", "± km", "off axis km", "used", "smoothed s km",
              "speed km/day", header_style="bold")
    for m in d["measurements"]:
        h = m.get("smoothed")
        t.add_row(m["observed_at"][:16] + "Z", m["report"],
                  "-" if m["z_km"] is None else f"{m['z_km']:.1f}", f"{m['sigma_km']:.1f}",
                  f"{m['cross_track_km']:.0f}", "yes" if m["used"] else "no",
                  f"{h['s_km']:.1f} ± {h['s_sd_km']:.1f}" if h else "",
                  f"{h['v_kmpd']:.0f} ± {h['v_sd_kmpd']:.0f}" if h else "")
    out.print(t)
    for fl in d["flags"]:
        out.print(f"{fl['report']} disregarded ({fl['reason']}): {fl['detail']}", markup=False,
                  highlight=False, soft_wrap=True)


@app.command()
def quarantine(db: DbOpt = None, scenario: ScenarioOpt = None, json_out: JsonOpt = False) -> None:
    """The rows that were not accepted, and why."""
    with _guard():
        ws = open_workspace(db, scenario)
        rows = list(ws.store.quarantined())
    for r in rows:
        raw = r.pop("raw")
        r["raw"] = None if raw is None else bytes(raw).decode("utf-8", errors="replace")
        r["at"] = to_iso(r["at"])
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("quarantine is empty")
        return
    t = Table("id", "kind", "error", "raw", header_style="bold")
    for r in rows:
        raw = (r["raw"] or "").strip()
        t.add_row(str(r["id"]), r["kind"], r["error"], raw[:80] + ("…" if len(raw) > 80 else ""))
    out.print(t)


@app.command()
def demo(
    samples: Annotated[int, typer.Option("--samples", min=1)] = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """The main job on the built-in scenario: berlin1945 as of 1945-04-12T12:00Z."""
    with _guard():
        ws = open_workspace(None, DEMO_SCENARIO)
        _print_seed(ws)
        when = _at(DEMO_AT)
        rows = _status(ws, when)
        fc = _forecast(ws, when, ForecastParams(samples=samples, seed=seed))
    _print_status(ws, rows, when)
    out.print()
    _print_forecast(ws.scenario, fc)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
