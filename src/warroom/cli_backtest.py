"""``warroom backtest`` (how good were the forecasts?) and ``warroom simulate`` (synthetic races
with known truth). Mounted on the main app in :mod:`warroom.cli`.

Exit codes as in :mod:`warroom.cli`: 0 good; 2 a usage or configuration error, one line on
stderr.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from warroom.cli_engine import AddressOpt, EngineOpt, WorkersOpt, engine_from_options
from warroom.timeutil import TimeFormatError, parse_time
from warroom.workspace import UsageError, open_workspace

out = Console(width=None if Console().is_terminal else 120, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ENGINES = ("local", "dask")  # where the cut-offs run (see warroom.backtest.run.run_backtest)

DbOpt = Annotated[str | None, typer.Option("--db", help="SQLite store (default: WARROOM_DB, "
                                           "else warroom.db; in memory with --scenario alone)")]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", help="scenario folder or "
                                                 "built-in name (e.g. berlin1945)")]


def _cli() -> Any:
    from warroom import cli  # imported here: warroom.cli imports this module

    return cli


def _time(option: str, text: str) -> int:
    try:
        return parse_time(text)
    except TimeFormatError as e:
        raise UsageError(f"{option}: {e}") from None


def _mapper(bar: Progress, task: Any) -> Callable[[Callable[[int], Any], Iterable[int]],
                                                  Iterator[Any]]:
    """The builtin map, advancing the progress bar at each cut-off."""
    def run(fn: Callable[[int], Any], cutoffs: Iterable[int]) -> Iterator[Any]:
        for result in map(fn, cutoffs):
            bar.update(task, advance=1)
            yield result
    return run


def backtest(
    db: DbOpt = None, scenario: ScenarioOpt = None,
    every: Annotated[str, typer.Option("--every", help="cut-off spacing, e.g. 6h")] = "6h",
    start: Annotated[str | None, typer.Option("--from", help="first cut-off (default: the "
                                              "day of the first report)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="last cut-off (default: the last "
                                            "report received)")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Monte Carlo samples per "
                                         "force at each cut-off")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same "
                                      "output)")] = 0,
    horizon: Annotated[float, typer.Option("--horizon", min=0.01, help="days ahead")] = 30.0,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    out_dir: Annotated[str | None, typer.Option("--out", help="write backtest.json and "
                                                "backtest.html into this folder")] = None,
    engine: EngineOpt = "local", address: AddressOpt = None, workers: WorkersOpt = None,
) -> None:
    """Forecast at every cut-off from the reports received by then (the bitemporal rule) and
    score against what the full record shows: ETA coverage and CRPS against the naive forecast,
    Brier score and reliability of P(first), lead time."""
    from warroom.backtest.cutoffs import cutoff_grid, default_span
    from warroom.backtest.report import headline, not_scored_lines, render_html, tables, title
    from warroom.backtest.run import BacktestParams, run_backtest
    from warroom.estimate.config import estimate_params
    from warroom.forecast.params import ForecastParams

    cli = _cli()
    with cli._guard():
        if engine not in ENGINES:
            raise UsageError(f"--engine {engine!r}; expected one of {', '.join(ENGINES)}")
        if address is not None and engine != "dask":
            raise UsageError("--address needs --engine dask")
        step_h = cli._hours(every)
        if not (step_h > 0 and math.isfinite(step_h)):
            raise UsageError(f"--every: {every!r}; expected a positive duration (e.g. 6h)")
        ws = open_workspace(db, scenario)
        cli._print_seed(ws)
        sc = ws.scenario
        reports = ws.store.reports_by_force()
        if not reports:
            raise UsageError("no reports to backtest")
        first, last = default_span(reports)
        first = _time("--from", start) if start else first
        last = _time("--to", end) if end else last
        if first > last:
            raise UsageError(f"--from {start or first} is after --to {end or last}")
        cutoffs = cutoff_grid(first, last, round(step_h * 3600))
        if not cutoffs:
            raise UsageError(f"no cut-off between --from and --to every {every}")
        params = BacktestParams(ForecastParams(samples=samples, seed=seed,
                                               horizon_days=horizon), estimate_params(sc))
        if engine == "local":
            with Progress(TextColumn("{task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                          console=err, transient=True, disable=not err.is_terminal) as bar:
                task = bar.add_task("backtesting", total=len(cutoffs))
                bt = run_backtest(sc, reports, cutoffs, params, map_fn=_mapper(bar, task))
        else:  # one task per cut-off on the cluster; the same numbers as local
            with engine_from_options(engine, address, workers) as eng:
                err.print(f"backtesting {len(cutoffs)} cut-offs on {eng.name} "
                          f"({eng.workers} worker(s))", markup=False, highlight=False)
                bt = run_backtest(sc, reports, cutoffs, params, engine=eng)
        bt["engine"] = engine
        ws.store.close()
        paths = []
        if out_dir is not None:
            folder = Path(out_dir)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "backtest.json").write_text(json.dumps(bt, indent=1) + "\n",
                                                      encoding="utf-8")
                (folder / "backtest.html").write_text(render_html(bt, sc), encoding="utf-8")
            except OSError as e:
                raise UsageError(f"--out {out_dir}: cannot write there ({e.strerror})") from None
            paths = [folder / "backtest.json", folder / "backtest.html"]
    if json_out:
        print(json.dumps(bt))
        for p in paths:
            err.print(f"wrote {p}", markup=False)
        return
    out.print(f"[bold]{title(bt)}[/bold]", highlight=False)
    out.print(headline(bt), markup=False, highlight=False)
    for t in tables(bt):
        out.print(t)
    for line in not_scored_lines(bt):
        out.print(line, markup=False, highlight=False)
    for p in paths:
        out.print(f"wrote {p}", markup=False, highlight=False)


def simulate(
    out_dir: Annotated[str, typer.Option("--out", help="the scenario folder to write")] =
        "warroom-sim",
    forces: Annotated[int, typer.Option("--forces", min=1, help="how many forces")] = 30,
    per_race: Annotated[int, typer.Option("--per-race", min=1, help="forces racing for each "
                                          "objective")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same "
                                      "scenario)")] = 0,
    days: Annotated[float, typer.Option("--days", min=0.1, help="length of the record, "
                                        "days")] = 45.0,
    start: Annotated[str, typer.Option("--start", help="day 0, ISO 8601 with zone")] =
        "2001-03-01T00:00:00Z",
    rivers: Annotated[int, typer.Option("--rivers", min=0, max=3, help="rivers to cross "
                                        "(0-3)")] = 3,
    mis_specified: Annotated[bool, typer.Option(
        "--mis-specified", "--halts", help="forces also halt at a line the scenario does not "
        "mention (a world the model does not expect)")] = False,
    parquet: Annotated[bool, typer.Option("--parquet", help="write the reports as a Parquet "
                                          "archive (DIR/reports.parquet) instead of "
                                          "reports.csv, for large N")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print a summary as JSON")] = False,
) -> None:
    """Synthetic races with known truth: a scenario folder (scenario.toml, world.geojson,
    reports) plus truth.csv, truth_track.csv and truth_reports.csv."""
    from warroom.simulate import SimSpec, write_scenario
    from warroom.simulate import simulate as run_simulation

    cli = _cli()
    with cli._guard():
        try:
            spec = SimSpec(forces=forces, per_race=per_race, days=days, seed=seed,
                           start=_time("--start", start), mis_specified=mis_specified,
                           rivers=rivers)
        except ValueError as e:
            raise UsageError(str(e)) from None
        sim = run_simulation(spec)
        folder = Path(out_dir)
        try:
            paths = write_scenario(sim, folder, reports_csv=not parquet)
            if parquet:
                paths["reports.parquet"] = _write_parquet(sim, folder / "reports.parquet")
        except OSError as e:
            raise UsageError(f"--out {out_dir}: cannot write there ({e.strerror})") from None
    arrived = sum(t["arrival"] is not None for t in sim.truth)
    summary = {"out": str(folder), "forces": forces, "races": len(sim.world.objectives),
               "reports": len(sim.reports), "arrived": arrived, "days": days, "seed": seed,
               "mis_specified": mis_specified, "files": {k: str(v) for k, v in paths.items()}}
    if json_out:
        print(json.dumps(summary))
        return
    out.print(f"{folder}: {forces} forces in {summary['races']} races, {len(sim.reports)} "
              f"reports over {days:g} days; {arrived} forces reached their objective"
              + (" (mis-specified: hidden halts)" if mis_specified else ""), markup=False,
              highlight=False)
    for p in paths.values():
        out.print(f"  {p}", markup=False, highlight=False)


def _write_parquet(sim: Any, path: Path) -> Path:
    """The reports as a Parquet archive (``warroom ingest --parquet`` reads it)."""
    from warroom.archive.parquet import ArchiveError, write_reports
    from warroom.domain import Report

    reports = (Report(source=r["source"], report_id=r["report_id"], force=r["force"],
                      observed_at=r["observed_at"], received_at=r["received_at"],
                      lat=round(r["lat"], 5), lon=round(r["lon"], 5), grade=r["grade"],
                      event=r["event"], target=r["target"], text=r["text"])
               for r in sorted(sim.reports, key=lambda r: (r["observed_at"], r["force"])))
    try:
        write_reports(reports, path)
    except ArchiveError as e:
        raise UsageError(str(e)) from None
    return path
