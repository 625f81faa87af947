"""Archive commands: ``warroom export --parquet DIR`` and the Parquet side of ``warroom
ingest --parquet DIR``. Mounted on the main app in :mod:`warroom.cli`.

Exit codes as in :mod:`warroom.cli`: 0 good; 2 a usage error (an unreadable archive, an
export folder that is not empty), one line on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from warroom.ingest.pipeline import IngestResult
from warroom.workspace import UsageError, Workspace, open_workspace

out = Console(width=None if Console().is_terminal else 120, soft_wrap=True)


def ingest_archive(ws: Workspace, name: str, err: Console) -> IngestResult:
    """Ingest one Parquet archive (folder or file) into the workspace's store."""
    from warroom.archive.parquet import ArchiveError, ingest_parquet

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"
                  " rows"), console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(Path(name).name, total=None)
        try:
            return ingest_parquet(ws.store, ws.validator(), name,
                                  progress=lambda n: bar.update(task, completed=n))
        except ArchiveError as e:
            raise UsageError(f"--parquet {e}") from None


def export_cmd(
    parquet: Annotated[str, typer.Option("--parquet", help="write the store's reports to "
                                         "this new folder as a Parquet dataset partitioned "
                                         "by force hash")],
    db: Annotated[str | None, typer.Option("--db", help="SQLite store (default: WARROOM_DB, "
                                           "else warroom.db)")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", help="scenario folder or "
                                                 "built-in name (default: the store's)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Export every stored report (all fields, observed and received times) as Parquet."""
    from warroom.archive.parquet import BUCKETS, ArchiveError, export_store, fragments
    from warroom.cli import _guard

    with _guard():
        ws = open_workspace(db, scenario)
        try:
            n = export_store(ws.store, parquet)
            files = len(fragments(parquet))
        except ArchiveError as e:
            raise UsageError(f"--parquet {e}") from None
        finally:
            ws.store.close()
    if json_out:
        print(json.dumps({"reports": n, "path": parquet, "files": files, "buckets": BUCKETS}))
    else:
        out.print(f"exported {n} reports to {parquet} ({files} files, partitioned by "
                  f"crc32(force) % {BUCKETS})", markup=False, highlight=False)
