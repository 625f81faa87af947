"""The engine interface: ``map(fn, items, **shared) -> list`` and ``close()``.

``fn`` must be a module-level function (it is pickled to the workers of a cluster) and pure:
the same item gives the same result wherever it runs. ``shared`` keyword arguments (the
scenario, parameters) are the same for every call; a cluster sends them to each worker once.
Results come back in the order of ``items``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class EngineError(Exception):
    """An engine that cannot start or reach its cluster (a usage error: exit code 2)."""


class Engine(Protocol):
    """Runs a function over items, here or on a cluster."""

    name: str

    def map(self, fn: Callable[..., R], items: Iterable[Any], **shared: Any) -> list[R]: ...

    @property
    def workers(self) -> int:
        """How many workers run tasks at once (for choosing the number of partitions)."""
        ...

    def close(self) -> None: ...


def open_engine(name: str, address: str | None = None, workers: int | None = None) -> Engine:
    """An engine by name: ``local``, or ``dask`` (``address`` of a running scheduler, else a
    ``LocalCluster`` of ``workers`` processes)."""
    if name not in ENGINES:
        raise EngineError(f"--engine {name!r}; expected one of {', '.join(ENGINES)}")
    if name == "local":
        if address is not None:
            raise EngineError("--address needs --engine dask")
        from warroom.engine.local import LocalEngine

        return LocalEngine()
    from warroom.engine.dask_engine import DaskEngine

    return DaskEngine(address=address, n_workers=workers)


ENGINES = ("local", "dask")
