"""Command-line options that choose where the work runs (``--engine``, ``--address``,
``--workers``), shared by ``warroom forecast`` and ``warroom backtest``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from warroom.engine.base import Engine, EngineError, open_engine
from warroom.workspace import UsageError

EngineOpt = Annotated[str, typer.Option(
    "--engine", help="where to run: local (this process) or dask (a Dask cluster: --address, "
    "else a LocalCluster on this machine); same numbers either way")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="Dask scheduler to use with --engine dask, e.g. tcp://host:8786")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", min=1, help="worker processes of the LocalCluster started by --engine dask "
    "without --address (default: one per core)")]


@contextmanager
def engine_from_options(name: str, address: str | None,
                        workers: int | None = None) -> Iterator[Engine]:
    """The engine the options ask for, closed afterwards; problems are usage errors."""
    try:
        engine = open_engine(name, address, workers)
    except EngineError as e:
        raise UsageError(str(e)) from None
    try:
        yield engine
    finally:
        engine.close()
