"""Scores of probabilistic forecasts: pure NumPy functions, no warroom types.

Every function takes arrays and returns numbers (or arrays); units are whatever the caller's
are (the backtest uses days for ETAs and probabilities in [0, 1] for races).

CRPS (continuous ranked probability score) of a forecast given by samples ``x_1..x_n`` and an
outcome ``y``, by the energy form ``CRPS = E|X - y| - 1/2 E|X - X'|`` with ``X, X'`` drawn
independently from the samples' empirical distribution. This is the exact CRPS of that
empirical distribution. With the samples sorted, ``sum_ij |x_i - x_j| = 2 sum_i (2i - n + 1)
x_(i)`` (``i`` from 0), so the whole score costs one sort: ``O(n log n)``. The CRPS of a point
forecast is its absolute error; it is in the outcome's unit (lower is better).

Probability integral transform (PIT). The forecast's CDF at the outcome, ``F(y)``, is uniform
on [0, 1] when the forecast is calibrated. Where the forecast has a point mass at ``y`` (the
backtest's "beyond the horizon"), the PIT is spread uniformly over ``[F(y-), F(y)]`` (the
randomised PIT); :func:`interval_coverage` returns the *expected* share of that spread inside
a central interval, so no random numbers are drawn and the result is reproducible.

Brier score: the mean of ``(p - o)^2`` over binary events (``o`` in {0, 1}, or a share for a
tie). Reliability diagram: events grouped by forecast probability into equal-width bins; in a
calibrated forecast each bin's observed frequency matches its mean forecast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

_F = NDArray[np.float64]


def crps_samples(samples: ArrayLike, y: ArrayLike) -> _F | float:
    """CRPS of the empirical distribution of ``samples`` at outcome ``y``.

    ``samples`` has shape ``(n,)`` (one forecast; ``y`` a scalar) or ``(m, n)`` (``m``
    forecasts; ``y`` of shape ``(m,)``). Samples and outcome must be finite: cap them first
    (the backtest caps both at horizon + 1 day).
    """
    x = np.sort(np.asarray(samples, dtype=float), axis=-1)
    yy = np.asarray(y, dtype=float)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(yy))):
        raise ValueError("crps_samples needs finite samples and outcomes (cap them first)")
    n = x.shape[-1]
    if n == 0:
        raise ValueError("crps_samples needs at least one sample")
    w = (2.0 * np.arange(n) - n + 1.0) / n**2
    spread = np.sum(x * w, axis=-1)  # 1/2 E|X - X'|
    err = np.mean(np.abs(x - yy[..., None]), axis=-1)  # E|X - y|
    out = err - spread
    return float(out) if out.ndim == 0 else out


def pit_interval(samples: ArrayLike, y: float) -> tuple[float, float]:
    """``(F(y-), F(y))`` of the samples' empirical CDF: the share of samples below ``y`` and
    the share at or below it (equal unless samples sit exactly at ``y``; ``y`` may be inf)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("pit_interval needs at least one sample")
    return float(np.mean(x < y)), float(np.mean(x <= y))


def interval_coverage(lo: ArrayLike, hi: ArrayLike, a: float, b: float) -> _F | float:
    """Expected share of a PIT spread uniformly over ``[lo, hi]`` that falls in ``[a, b]``
    (1 or 0 when ``lo == hi``: the plain "is F(y) inside"). Vectorised over ``lo``/``hi``.

    With ``(a, b) = (0.1, 0.9)`` this is "the outcome fell inside the p10-p90 interval";
    with ``(0, 0.5)`` "the outcome was at or below the median"."""
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    width = hi - lo
    overlap = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)
    point = ((lo >= a) & (lo <= b)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(width > 0, overlap / np.where(width > 0, width, 1.0), point)
    return float(out) if out.ndim == 0 else out


def coverage(samples: ArrayLike, y: ArrayLike, a: float = 0.1, b: float = 0.9) -> float:
    """Mean of :func:`interval_coverage` over forecasts: rows of ``samples`` (shape (m, n))
    against outcomes ``y`` (shape (m,)). Near ``b - a`` for a calibrated forecast."""
    x = np.asarray(samples, dtype=float)
    yy = np.asarray(y, dtype=float)
    if x.ndim != 2 or yy.shape != (x.shape[0],):
        raise ValueError("coverage needs samples of shape (m, n) and outcomes of shape (m,)")
    lo = np.mean(x < yy[:, None], axis=1)
    hi = np.mean(x <= yy[:, None], axis=1)
    return float(np.mean(interval_coverage(lo, hi, a, b)))


def brier(p: ArrayLike, o: ArrayLike) -> float:
    """Mean squared difference between forecast probabilities and outcomes (0 best, 1 worst);
    nan when there are no events."""
    p = np.asarray(p, dtype=float)
    o = np.asarray(o, dtype=float)
    if p.shape != o.shape:
        raise ValueError("brier needs probabilities and outcomes of the same shape")
    if p.size == 0:
        return math.nan
    return float(np.mean((p - o) ** 2))


@dataclass(frozen=True)
class ReliabilityBin:
    lo: float
    hi: float
    n: int
    mean_forecast: float  # nan when empty
    observed: float       # nan when empty


def reliability_bins(p: ArrayLike, o: ArrayLike, bins: int = 10) -> list[ReliabilityBin]:
    """Events grouped into ``bins`` equal-width bins of forecast probability (the last bin
    holds 1.0): count, mean forecast and observed frequency per bin."""
    p = np.asarray(p, dtype=float)
    o = np.asarray(o, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1) if p.size else np.zeros(0, int)
    n = np.bincount(idx, minlength=bins)
    sp = np.bincount(idx, weights=p, minlength=bins)
    so = np.bincount(idx, weights=o, minlength=bins)
    out = []
    for k in range(bins):
        m = int(n[k])
        lo, hi = k / bins, (k + 1) / bins
        # the mean of forecasts in [lo, hi] lies in it; only rounding of the sum strays out
        mean = min(max(sp[k] / m, lo), hi) if m else math.nan
        out.append(ReliabilityBin(lo, hi, m, mean, so[k] / m if m else math.nan))
    return out


def lead_time(times: ArrayLike, p: ArrayLike, fact: float, threshold: float = 0.5
              ) -> tuple[float | None, float | None]:
    """How long before ``fact`` the forecast probability ``p`` (at ascending ``times``) first
    reached ``threshold`` and stayed at or above it until the fact.

    Only times before ``fact`` count. Returns ``(fact - t*, t*)`` with ``t*`` the start of the
    last unbroken run at or above the threshold that reaches up to the last time before the
    fact; ``(None, None)`` when the last forecast before the fact was below the threshold (the
    winner was never called) or there was no forecast before the fact."""
    t = np.asarray(times, dtype=float)
    pp = np.asarray(p, dtype=float)
    if t.shape != pp.shape:
        raise ValueError("lead_time needs times and probabilities of the same shape")
    before = t < fact
    t, pp = t[before], pp[before]
    if t.size == 0 or not pp[-1] >= threshold:
        return None, None
    below = np.flatnonzero(~(pp >= threshold))
    start = 0 if below.size == 0 else int(below[-1]) + 1
    return float(fact - t[start]), float(t[start])


def summary(values: Sequence[float]) -> float:
    """Mean of finite values, nan when there are none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan
