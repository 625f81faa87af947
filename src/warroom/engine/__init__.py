"""Where batched work runs: in this process, or on a Dask cluster.

An engine maps a function over items (partitions of forces) and gives back the results in
order (:class:`~warroom.engine.base.Engine`). The estimator and the forecast are batched over
forces and a force's numbers depend only on its own reports and the seed (the forecast's
random numbers are counter-based, keyed by seed, force and sample), so running partitions of
forces anywhere and putting the results together gives the same numbers as one batch.

``local``  the builtin ``map`` in this process (the default);
``dask``   a ``dask.distributed`` cluster: an existing one (``--address tcp://host:8786``) or a
           ``LocalCluster`` started for the run.

``warroom.engine.forecast``  the forecast, partitioned by force (races summarised once over
all partitions' arrival samples); ``warroom.engine.columnar`` estimation and forecast of
large columnar archives (arrays of reports, no per-report Python objects).
"""

from __future__ import annotations

from warroom.engine.base import ENGINES, Engine, EngineError, open_engine

__all__ = ["ENGINES", "Engine", "EngineError", "open_engine"]
