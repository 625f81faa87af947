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
from rich.markdown import Markdown
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from warroom import status as status_mod
from warroom.assess.config import alert_config
from warroom.assess.lifecycle import Alert, advance
from warroom.assess.rules import evaluate
from warroom.assess.sinks import JsonLinesSink, payload
from warroom.brief import build_briefing, due_slots
from warroom.cli_admin import keys_app, send, tokens_app
from warroom.cli_archive import export_cmd, ingest_archive
from warroom.cli_backtest import backtest, simulate
from warroom.cli_engine import AddressOpt, EngineOpt, WorkersOpt, engine_from_options
from warroom.domain import Report, Scenario
from warroom.engine.forecast import forecast as engine_forecast
from warroom.estimate.config import estimate_params
from warroom.estimate.track import estimate
from warroom.forecast.params import ForecastParams, OverrideError, parse_overrides
from warroom.forecast.run import forecast as run_forecast
from warroom.forecast.summary import headline
from warroom.ingest.pipeline import IngestResult, ingest_stream
from warroom.outputs import BackgroundWriter, stem, write_briefing, write_index
from warroom.publish import RENDERERS
from warroom.replay import replay as replay_steps
from warroom.scenario import ScenarioError
from warroom.situation import build_situation
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
prose = Console(width=None if Console().is_terminal else 120)  # Markdown: wrapped
err = Console(stderr=True, highlight=False, soft_wrap=True)  # one error, one line
_state = {"debug": False}

DEMO_SCENARIO = "berlin1945"
DEMO_AT = "1945-04-12T12:00:00Z"
DEMO_FROM = "1945-04-01T00:00:00Z"
DEMO_TO = "1945-05-03T00:00:00Z"

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
    files: Annotated[list[str] | None, typer.Argument(help="files to ingest; - reads "
                                                      "stdin")] = None,
    db: DbOpt = None, scenario: ScenarioOpt = None, json_out: JsonOpt = False,
    parquet: Annotated[list[str] | None, typer.Option(
        "--parquet", help="a Parquet archive (folder or file) to ingest, as written by "
        "`warroom export --parquet` (repeatable)")] = None,
) -> None:
    """Ingest reports (CSV, NDJSON or GeoJSON, detected from the content; Parquet archives
    with --parquet)."""
    with _guard():
        if not files and not parquet:
            raise UsageError("ingest needs FILE... or --parquet DIR")
        ws = open_workspace(db, scenario)
        _print_seed(ws)
        results: list[IngestResult] = []
        for name in files or []:
            results.append(_ingest_one(ws, name))
        for name in parquet or []:
            results.append(ingest_archive(ws, name, err))
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
    return ws.store.reports_by_force(as_of=at)


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
    engine: EngineOpt = "local", address: AddressOpt = None, workers: WorkersOpt = None,
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
        params = ForecastParams(samples=samples, seed=seed, horizon_days=horizon,
                                overrides=overrides)
        if engine == "local" and address is None:
            fc = _forecast(ws, when, params)
        else:  # the same forecast, partitioned by force on the engine
            with engine_from_options(engine, address, workers) as eng:
                fc = engine_forecast(eng, sc, _reports(ws, when), when, params,
                                     estimate_params(sc))
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


def _hours(text: str) -> float:
    """``6h``, ``90m``, ``1d`` or a number of hours."""
    t = text.strip().lower()
    try:
        if t.endswith("h"):
            return float(t[:-1])
        if t.endswith("m"):
            return float(t[:-1]) / 60
        if t.endswith("d"):
            return float(t[:-1]) * 24
        return float(t)
    except ValueError:
        raise UsageError(f"--every: {text!r} is not a duration (e.g. 6h, 90m, 1d)") from None


def _stored_alerts(ws: Workspace) -> dict[str, Alert]:
    return {a["id"]: Alert.from_dict(a) for a in ws.store.alerts()
            if a["state"] != "resolved"}


FormatOpt = Annotated[str, typer.Option("--format", help="md, html, json or pdf")]


@app.command()
def brief(
    at: AtOpt = None, db: DbOpt = None, scenario: ScenarioOpt = None,
    fmt: FormatOpt = "md",
    out_dir: Annotated[str | None, typer.Option("--out", help="write the file here")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1)] = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """One briefing as of a time: headline, forces, alerts, changes, map."""
    with _guard():
        if fmt not in RENDERERS:
            raise UsageError(f"--format {fmt!r}; expected one of {', '.join(RENDERERS)}")
        when = _at(at)
        ws = open_workspace(db, scenario)
        _print_seed(ws)
        sc = ws.scenario
        reports = _reports(ws, when)
        eparams = estimate_params(sc)
        cfg = alert_config(sc)
        sit = build_situation(sc, reports, when, ForecastParams(samples=samples, seed=seed),
                              eparams)
        previous = ws.store.briefing_before(when)
        alerts, transitions = advance(_stored_alerts(ws), evaluate(sit, previous, cfg), when,
                                      cfg)
        b = build_briefing(sit, alerts, transitions, previous, when)
        ws.store.save_alerts([a.as_dict() for a in alerts.values()],
                             [(t.alert.id, t.to, t.at, payload(t)) for t in transitions])
        ws.store.save_briefing(when, when, False, b)
    if out_dir is None and fmt in ("md", "json"):
        text = RENDERERS[fmt](sc, b).decode()
        if fmt == "md":
            prose.print(Markdown(text))
        else:
            print(text)
        return
    paths = write_briefing(Path(out_dir or "."), sc, b, [fmt])
    out.print(str(paths[fmt]))


@app.command()
def alerts(
    db: DbOpt = None, scenario: ScenarioOpt = None,
    state: Annotated[str | None, typer.Option("--state", help="pending, firing or "
                                              "resolved")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Alerts kept in the store (by brief, replay or serve), with their state."""
    with _guard():
        ws = open_workspace(db, scenario)
        rows = ws.store.alerts(state)
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    t = Table("state", "since", "alert", header_style="bold")
    for a in rows:
        t.add_row(a["state"], a["since"] or "", a["message"] or a["id"])
    out.print(t)


@app.command()
def replay(
    db: DbOpt = None, scenario: ScenarioOpt = None,
    start: Annotated[str | None, typer.Option("--from", help="first slot (default: the day "
                                              "of the first report)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="last slot (default: the last "
                                            "report received)")] = None,
    every: Annotated[str, typer.Option("--every", help="slot spacing, e.g. 6h")] = "6h",
    out_dir: Annotated[str, typer.Option("--out", help="folder for the briefings")] =
        "warroom-out",
    formats: Annotated[str, typer.Option("--formats", help="comma-separated: md,html,json,"
                                         "pdf")] = "html,md,json",
    samples: Annotated[int, typer.Option("--samples", min=1)] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Walk history slot by slot (bitemporal): every briefing and alert as it would have been."""
    with _guard():
        ws = open_workspace(db, scenario)
        _print_seed(ws)
        path, _ = _replay(ws, start, end, every, Path(out_dir), formats, samples, seed)
    out.print(f"index: {path}")


def _replay(ws: Workspace, start: str | None, end: str | None, every: str, out_dir: Path,
            formats: str, samples: int, seed: int, highlight: str | None = None
            ) -> tuple[Path, list[dict[str, Any]]]:
    sc = ws.scenario
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    for f in fmts:
        if f not in RENDERERS:
            raise UsageError(f"--formats: {f!r}; expected some of {', '.join(RENDERERS)}")
    everything = ws.store.reports()
    if not everything:
        raise UsageError("no reports to replay")
    first = _at(start) if start else min(r.observed_at for r in everything) // 86400 * 86400
    last = _at(end) if end else max(r.received_at for r in everything)
    step_h = _hours(every)
    slots = [s for s, _ in due_slots(None, last, every_h=step_h, first=first)]
    by_force = ws.store.reports_by_force()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "alerts.jsonl").unlink(missing_ok=True)
    sinks = [JsonLinesSink(out_dir / "alerts.jsonl")]
    briefings = []
    params = ForecastParams(samples=samples, seed=seed)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"
                  "/{task.total}"), TimeRemainingColumn(), console=err, transient=True,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task("replaying", total=len(slots))
        writer = BackgroundWriter(out_dir, sc, fmts)
        try:
            for st in replay_steps(sc, by_force, slots, params, estimate_params(sc),
                                   alert_config(sc), sinks):
                briefings.append(st.briefing)
                writer.submit(st.briefing)
                bar.update(task, advance=1)
            bar.add_task("writing the last briefings", total=None)
        finally:
            writer.close()
    top = next((b for b in briefings if b["slot"] == highlight), None)
    return write_index(out_dir, sc, briefings, fmts, top), briefings


@app.command()
def serve(
    db: DbOpt = None, scenario: ScenarioOpt = None,
    host: Annotated[str, typer.Option("--host", help="loopback only, unless "
                                      "--auth")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    samples: Annotated[int, typer.Option("--samples", min=1)] = 2000,
    auth: Annotated[bool, typer.Option("--auth", help="require API tokens (warroom tokens "
                                       "new); allows any --host")] = False,
    brief_every: Annotated[str | None, typer.Option(
        "--brief-every", help="write a briefing every so often, e.g. 6h (missed slots are "
        "caught up, marked late)")] = None,
    cot_port: Annotated[int | None, typer.Option("--cot-port", help="listen for TAK clients' "
                                                 "CoT on this TCP port (e.g. 8087)")] = None,
    cot_map: Annotated[str | None, typer.Option(
        "--cot-map", help="CoT uid -> force, e.g. ANDROID-1=us9,ANDROID-2=1bf (else the "
        "event's contact callsign names the force)")] = None,
    cot_forecasts: Annotated[bool, typer.Option(
        "--cot-forecasts", help="also send connected CoT clients the forecast (how=m-p: where "
        "each force may be in 24 and 72 h) after every assessment")] = False,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", min=0.001,
                                               help="largest POST /reports body")] = 16.0,
    rate: Annotated[float, typer.Option("--rate", min=0.1, help="requests per second per "
                                        "token (with --auth)")] = 200.0,
    max_streams: Annotated[int, typer.Option("--max-streams", min=1, help="open /events "
                                             "streams at most")] = 100,
) -> None:
    """The HTTP API (reports in; situation, forecast, alerts, briefings, map, live events
    out), with the briefing schedule and a CoT listener when asked."""
    from warroom.server.run import check_host
    from warroom.server.run import serve as run_server

    with _guard():
        check_host(host, auth)
        ws = open_workspace(db, scenario, create=scenario is not None)
        _print_seed(ws)
        err.print(f"warroom: {ws.scenario.name!r} on http://{host}:{port} "
                  f"(store {ws.store.path}; docs at /docs)")
    uid_forces = None
    if cot_forecasts and cot_port is None:
        with _guard():
            raise UsageError("--cot-forecasts needs --cot-port (forecasts go to CoT clients)")
    if cot_map:
        with _guard():
            pairs = [p.split("=", 1) for p in cot_map.split(",") if p.strip()]
            if any(len(p) != 2 or p[1].strip() not in ws.scenario.forces for p in pairs):
                raise UsageError(f"--cot-map {cot_map!r}: expected uid=force pairs with forces "
                                 f"of the scenario ({', '.join(ws.scenario.forces)})")
            uid_forces = {u.strip(): f.strip() for u, f in pairs}
    run_server(ws, host=host, port=port, samples=samples, log_level="warning", auth=auth,
               brief_every_h=_hours(brief_every) if brief_every else None, cot_port=cot_port,
               cot_uid_forces=uid_forces, cot_forecasts=cot_forecasts,
               max_body_bytes=round(max_body_mb * 2**20),
               rate_per_s=rate, burst=2 * rate, max_streams=max_streams)


@app.command()
def demo(
    samples: Annotated[int, typer.Option("--samples", min=1)] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out_dir: Annotated[str, typer.Option("--out")] = "warroom-out",
) -> None:
    """The main job: replay berlin1945 from 1 April to 3 May 1945 every 6 hours into
    ./warroom-out/, print the briefing of 1945-04-12T12:00Z and where the files are."""
    with _guard():
        ws = open_workspace(None, DEMO_SCENARIO)
        _print_seed(ws)
        index, briefings = _replay(ws, DEMO_FROM, DEMO_TO, "6h", Path(out_dir),
                                   "html,md,json", samples, seed, highlight=DEMO_AT)
    target = next(b for b in briefings if b["slot"] == DEMO_AT)
    prose.print(Markdown(RENDERERS["md"](ws.scenario, target).decode()))
    out.print()
    out.print(f"{len(briefings)} briefings, every 6 hours from {DEMO_FROM[:10]} to "
              f"{DEMO_TO[:10]}: open {index}")
    out.print(f"this briefing: {Path(out_dir) / (stem(target) + '.html')}")


app.command("export")(export_cmd)
app.add_typer(keys_app, name="keys")
app.add_typer(tokens_app, name="tokens")
app.command("send")(send)
app.command("backtest")(backtest)
app.command("simulate")(simulate)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
