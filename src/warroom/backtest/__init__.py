"""Backtest: how good were the forecasts? Forecast at each cut-off from the reports received
by then (the bitemporal rule), score against what the full record shows happened.

- :mod:`~warroom.backtest.cutoffs`: the cut-off times;
- :mod:`~warroom.backtest.actuals`: the arrivals the full record shows;
- :mod:`~warroom.backtest.scoring`: CRPS, PIT coverage, Brier, reliability, lead time (pure
  NumPy);
- :mod:`~warroom.backtest.run`: :func:`~warroom.backtest.run.forecast_at` (one cut-off, pure and
  picklable) and :func:`~warroom.backtest.run.run_backtest` (all cut-offs through any ``map``);
- :mod:`~warroom.backtest.report`: the terminal tables and the self-contained HTML report.
"""
