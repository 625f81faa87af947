"""The Dask engine: ``dask.distributed``'s ``Client.map`` / ``gather`` on a cluster.

With an address (``tcp://host:8786``) it connects to a running scheduler (``dask scheduler``
plus ``dask worker tcp://host:8786`` on each machine, or a Kubernetes cluster from
dask-kubernetes); without one it starts a ``LocalCluster`` for the run and stops it at
``close``. Workers must have the same warroom (and Python, NumPy) as the client: the engine
checks warroom's version on every worker when it connects and names any that differ.

Shared arguments (the scenario, parameters) are scattered to every worker once
(``broadcast=True``); each item is one task. No scheduler or RPC of our own: scheduling,
retries on lost workers and data transfer are Dask's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from warroom.engine.base import EngineError

R = TypeVar("R")


def _warroom_version() -> str:
    import warroom

    return getattr(warroom, "__version__", "unknown")


class DaskEngine:
    """Maps over a Dask cluster (an existing one at ``address``, else a LocalCluster)."""

    name = "dask"

    def __init__(self, address: str | None = None, n_workers: int | None = None,
                 threads_per_worker: int = 1, processes: bool = True,
                 timeout_s: float = 10.0, memory_limit: str | float | None = "auto") -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        try:
            if address is not None:
                self.client = Client(address, timeout=f"{timeout_s}s", set_as_default=False)
            else:
                self.cluster = LocalCluster(
                    n_workers=n_workers, threads_per_worker=threads_per_worker,
                    processes=processes, dashboard_address=None, memory_limit=memory_limit)
                self.client = Client(self.cluster, set_as_default=False)
        except (OSError, TimeoutError, RuntimeError) as e:  # RuntimeError: a Nanny failed
            where = address or "a LocalCluster"
            raise EngineError(f"could not reach the Dask scheduler at {where}: {e}") from None
        self._check_versions()

    def _check_versions(self) -> None:
        """Refuse workers running another warroom (results would silently differ)."""
        ours = _warroom_version()
        try:
            theirs = self.client.run(_warroom_version)
        except Exception as e:  # a worker that cannot even import warroom
            self.close()
            raise EngineError(f"the Dask workers cannot run warroom ({type(e).__name__}: {e}); "
                              f"install warroom {ours} on every worker") from None
        bad = {w: v for w, v in theirs.items() if v != ours}
        if bad:
            self.close()
            raise EngineError(f"Dask workers run another warroom than this client ({ours}): "
                              + ", ".join(f"{w} has {v}" for w, v in sorted(bad.items())))

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def map(self, fn: Callable[..., R], items: Iterable[Any], **shared: Any) -> list[R]:
        items = list(items)
        if not items:
            return []
        # a list of one: scatter would split a dict or list into many futures
        kw = {k: self.client.scatter([v], broadcast=True, hash=False)[0]
              for k, v in shared.items()}
        futures = self.client.map(fn, items, pure=False, **kw)
        try:
            return self.client.gather(futures)
        finally:
            for f in futures:
                f.release()
            for f in kw.values():
                f.release()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
