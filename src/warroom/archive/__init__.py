"""Report archives outside the store: Parquet datasets partitioned by force.

``warroom.archive.parquet``
    Write the store (or any reports) to a Parquet dataset partitioned by a hash of the force
    id, and read one back: as :class:`~warroom.domain.Report` s, or through the ingest
    validation into a store (bad rows quarantined).
``warroom.archive.bulk``
    Large synthetic archives generated column by column with NumPy (benchmarks, scale tests),
    in the same layout, plus a ``s_km`` column (km along the route) so that reading them needs
    no projection.
"""
