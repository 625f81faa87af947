"""Geodesy on the WGS-84 ellipsoid: routes, projection onto a route, crossings.

A :class:`Route` is a polyline whose edges are geodesics between its vertices. Its arc length
``s`` (km from the first vertex) is the coordinate the whole engine works in.

How projection works. The route is sampled every ``step_km`` (1 km by default) with points lying
exactly on its geodesics (``Geod.fwd``). A query is compared with every sub-segment between
consecutive samples by the chord between geodetic unit normals (n-vectors): the distance to
each piece, which is exact in ranking up to the ellipsoid's flattening and has no trouble at the
poles or across 180 degrees. The chosen piece is then solved in its local tangent plane
(sub-kilometre pieces, so the planar error is millimetres), and the cross-track distance is the
geodesic distance from the foot point to the query (``Geod.inv``).

Where a route passes close to itself (an out-and-back road, a hairpin) a report may sit near
several parts of it: every piece nearer than both its neighbours (a local minimum of the
distance along the route) and within ``tol_km`` of the best is a candidate, and with
``near_km`` (the estimator's predicted ``s``) the candidate whose foot is nearest that ``s``
wins. Pieces, not samples: a branch that passes between two samples has a nearest piece there
even when neither sample is nearer than its neighbours (one on another branch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import Geod

GEOD = Geod(ellps="WGS84")
EARTH_RADIUS_KM = 6371.0088  # mean radius: only used to turn chord ranks into rough km

_F = NDArray[np.float64]
# project_many looks for repeated points from this many on (a few points: not worth a sort)
_DEDUPE_FROM = 32
# squared distance (unit sphere) below which Route._segment_distances recomputes a piece's
# distance from vector differences: (6.4 m)^2, far above the ~1e-16 noise of the fast formula
_NEAR = 1e-12


def nvec(lat: ArrayLike, lon: ArrayLike) -> _F:
    """Geodetic unit normal vectors, shape (..., 3), of latitudes/longitudes in degrees."""
    la = np.radians(np.asarray(lat, dtype=float))
    lo = np.radians(np.asarray(lon, dtype=float))
    cl = np.cos(la)
    return np.stack([cl * np.cos(lo), cl * np.sin(lo), np.sin(la)], axis=-1)


def distance_km(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> _F:
    """Geodesic distance in km on WGS-84 (broadcasts)."""
    a, b, c, d = np.broadcast_arrays(
        np.asarray(lon1, float), np.asarray(lat1, float), np.asarray(lon2, float),
        np.asarray(lat2, float),
    )
    _, _, m = GEOD.inv(a.ravel(), b.ravel(), c.ravel(), d.ravel())
    return np.asarray(m, dtype=float).reshape(a.shape) / 1000.0


class Route:
    """A polyline of (lon, lat) vertices with cumulative geodesic length in km.

    Consecutive duplicate vertices are dropped. Raises ValueError for fewer than two distinct
    vertices or coordinates off the globe.
    """

    def __init__(self, coords: Sequence[Sequence[float]], step_km: float = 1.0) -> None:
        arr = np.asarray(coords, dtype=float)
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise ValueError("a route needs a list of [lon, lat] pairs")
        lon, lat = arr[:, 0], arr[:, 1]
        if not (np.all(np.isfinite(arr[:, :2])) and np.all(np.abs(lat) <= 90)
                and np.all(np.abs(lon) <= 540)):
            raise ValueError("route coordinates must be finite lon/lat in degrees")
        az, _, dist = GEOD.inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
        keep = np.concatenate([[True], np.asarray(dist) > 1e-3])  # drop repeats (< 1 mm)
        lon, lat = lon[keep], lat[keep]
        if len(lon) < 2:
            raise ValueError("a route needs at least two distinct vertices")
        az, _, dist = GEOD.inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
        self.lon: _F = lon
        self.lat: _F = lat
        self._az: _F = np.asarray(az, dtype=float)
        self.seg_km: _F = np.asarray(dist, dtype=float) / 1000.0
        self.cum_km: _F = np.concatenate([[0.0], np.cumsum(self.seg_km)])
        self.length_km: float = float(self.cum_km[-1])
        step = max(step_km, self.length_km / 200_000)  # bounded sample count for huge routes
        grid = np.arange(0.0, self.length_km, step)
        self.s_dense: _F = np.unique(np.concatenate([grid, self.cum_km]))
        dlat, dlon = self.point_at(self.s_dense)
        self.lat_dense: _F = dlat
        self.lon_dense: _F = dlon
        self._n_dense: _F = nvec(dlat, dlon)
        # squared chord of each sub-segment between consecutive samples (unit-sphere units)
        self._seg2: _F = np.sum(np.diff(self._n_dense, axis=0) ** 2, axis=-1)
        with np.errstate(divide="ignore"):  # (0 for a piece of no length: its foot is its start)
            self._inv_seg2: _F = np.where(self._seg2 > 0.0, 1.0 / self._seg2, 0.0)
        self._ds: _F = np.diff(self.s_dense)  # km along each sub-segment
        self._crossings: dict[tuple[tuple[float, float], ...], tuple[float, ...]] = {}

    # -- along the route ---------------------------------------------------------------------
    def point_at(self, s_km: ArrayLike) -> tuple[_F, _F] | tuple[float, float]:
        """(lat, lon) in degrees at ``s_km`` along the route (clamped to [0, length])."""
        s = np.clip(np.asarray(s_km, dtype=float), 0.0, self.length_km)
        i = np.clip(np.searchsorted(self.cum_km, s, side="right") - 1, 0, len(self.seg_km) - 1)
        lon, lat, _ = GEOD.fwd(self.lon[i], self.lat[i], self._az[i], (s - self.cum_km[i]) * 1e3)
        lon = (np.asarray(lon, dtype=float) + 180.0) % 360.0 - 180.0
        lat = np.asarray(lat, dtype=float)
        if np.ndim(s) == 0:
            return float(lat), float(lon)
        return lat, lon

    # -- projection ----------------------------------------------------------------------------
    def project(
        self, lat: float, lon: float, near_km: float | None = None, tol_km: float = 10.0
    ) -> tuple[float, float]:
        """Nearest point of the route to (lat, lon): ``(s_km, cross_track_km)``.

        ``near_km`` picks, among local nearest candidates no more than ``tol_km`` further away
        than the best, the one whose ``s`` is closest to ``near_km``.
        """
        s, x = self.project_many(np.array([lat]), np.array([lon]),
                                 None if near_km is None else np.array([near_km]), tol_km)
        return float(s[0]), float(x[0])

    def project_many(
        self, lat: ArrayLike, lon: ArrayLike, near_km: ArrayLike | None = None,
        tol_km: float = 10.0,
    ) -> tuple[_F, _F]:
        """Vectorised :meth:`project`: arrays of ``s_km`` and ``cross_track_km``.

        Each distinct ``(lat, lon[, near_km])`` is projected once: reports often repeat a
        position (a gazetteer place, a unit that has not moved), and a projection costs a
        distance to every dense sample of the route."""
        lat = np.atleast_1d(np.asarray(lat, dtype=float))
        lon = np.atleast_1d(np.asarray(lon, dtype=float))
        near = None if near_km is None else np.broadcast_to(
            np.asarray(near_km, dtype=float), lat.shape)
        if lat.size > _DEDUPE_FROM:
            keys = np.stack([lat, lon] if near is None else [lat, lon, near], axis=1)
            uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
            if len(uniq) < lat.size:
                s, x = self._project(uniq[:, 0], uniq[:, 1],
                                     None if near is None else uniq[:, 2], tol_km)
                inverse = inverse.reshape(-1)
                return s[inverse], x[inverse]
        return self._project(lat, lon, near, tol_km)

    def _project(self, lat: _F, lon: _F, near: _F | None, tol_km: float) -> tuple[_F, _F]:
        """:meth:`project_many` of every point as given (1-D float arrays)."""
        q = nvec(lat, lon)
        seg = np.empty(len(lat), dtype=np.intp)
        # queries a chunk: each temporary (chunk x pieces) of ~2 MB stays in cache
        chunk = max(1, 262_144 // len(self._seg2))
        for a in range(0, len(lat), chunk):
            b = min(a + chunk, len(lat))
            d2, t = self._segment_distances(q[a:b], q[a:b] @ self._n_dense.T)
            if near is None:
                seg[a:b] = np.argmin(d2, axis=1)
                continue
            # candidates: pieces no farther than either neighbour, and within tol_km (rough
            # km on the sphere: enough for a tolerance) of the nearest
            reach = np.sqrt(d2.min(axis=1, keepdims=True)) + tol_km / EARTH_RADIUS_KM
            cand = d2 <= reach * reach
            cand[:, 1:] &= d2[:, 1:] <= d2[:, :-1]
            cand[:, :-1] &= d2[:, :-1] <= d2[:, 1:]
            foot = self.s_dense[:-1] + t * self._ds
            score = np.where(cand, np.abs(foot - near[a:b, None]), np.inf)
            seg[a:b] = np.argmin(score, axis=1)
        s = self._refine(q, seg)
        flat, flon = self.point_at(s)
        return s, distance_km(flat, flon, lat, lon)

    def _segment_distances(self, q: _F, g: _F) -> tuple[_F, _F]:
        """Squared distances (unit-sphere units) from queries ``q`` (n-vectors) to every
        sub-segment, and the foot's fraction ``t`` along it, from ``g = q @ n.T`` (the queries
        against every sample's n-vector).

        Sub-segment ``j`` is the chord from ``a = n_j`` to ``b = n_{j+1}``. With ``|a| = 1``
        and ``L = |b - a|^2`` (so ``1 - a.b = L / 2``): ``(q - a).(b - a) = g_{j+1} - g_j +
        L / 2`` and ``|q - a|^2 = 2 - 2 g_j``; ``t = clip((q - a).(b - a) / L, 0, 1)`` and the
        distance is ``|q - a|^2 - 2 t (q - a).(b - a) + t^2 L``. A chord differs from its
        geodesic by parts per billion over a sub-kilometre piece: the ranking is exact enough,
        and :meth:`_refine` solves the chosen piece precisely.

        Dot products of unit vectors keep ~1e-16 of ``g``, so these distances are noise below
        ~0.1 m; pieces within ``_NEAR`` of a query are computed again from differences of the
        vectors, which keep their digits (where two branches lie centimetres apart, the right
        one must still be the nearer)."""
        seg2, inv = self._seg2, self._inv_seg2
        ga = g[:, :-1]
        along = g[:, 1:] - ga  # (in place from here: these are the hot arrays)
        along += 0.5 * seg2
        t = along * inv
        np.clip(t, 0.0, 1.0, out=t)
        d2 = t * seg2
        d2 -= along
        d2 -= along
        d2 *= t  # t^2 L - 2 t (q - a).(b - a)
        d2 -= ga
        d2 -= ga
        d2 += 2.0
        np.maximum(d2, 0.0, out=d2)
        i, j = np.nonzero(d2 < _NEAR)
        if i.size:
            qa = q[i] - self._n_dense[j]
            ab = self._n_dense[j + 1] - self._n_dense[j]
            tj = np.clip(np.sum(qa * ab, -1) * inv[j], 0.0, 1.0)
            t[i, j] = tj
            d2[i, j] = np.sum((qa - tj[:, None] * ab) ** 2, -1)
        return d2, t

    def _refine(self, q: _F, seg: NDArray[np.intp]) -> _F:
        """``s`` (km) of the foot point on sub-segment ``seg`` (samples ``seg`` and ``seg + 1``),
        solved in the tangent plane at sample ``seg`` (sub-kilometre pieces: millimetres of
        planar error; differences of nearby vectors keep the digits that dot products of
        unit vectors lose)."""
        pk = self._n_dense[seg]
        lat = np.radians(self.lat_dense[seg])
        lon = np.radians(self.lon_dense[seg])
        east = np.stack([-np.sin(lon), np.cos(lon), np.zeros_like(lon)], axis=-1)
        north = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)],
                         axis=-1)

        def plane(v: _F) -> _F:
            d = v - pk
            return np.stack([np.sum(d * east, -1), np.sum(d * north, -1)], axis=-1)

        qp = plane(q)
        ab = plane(self._n_dense[seg + 1])  # (a, sample ``seg``, is the plane's origin)
        len2 = np.sum(ab * ab, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.clip(np.where(len2 > 0, np.sum(qp * ab, -1) / len2, 0.0), 0.0, 1.0)
        return self.s_dense[seg] + t * (self.s_dense[seg + 1] - self.s_dense[seg])  # type: ignore[no-any-return]

    # -- objectives and crossings ---------------------------------------------------------------
    def first_within(self, lat: float, lon: float, radius_km: float) -> float | None:
        """The first ``s`` (km) at which the route comes within ``radius_km`` of (lat, lon),
        or None if it never does. Refined by bisection to about 1 m."""
        d = distance_km(self.lat_dense, self.lon_dense, lat, lon)
        inside = np.flatnonzero(d <= radius_km)
        if inside.size == 0:
            return None
        k = int(inside[0])
        if k == 0:
            return 0.0
        lo, hi = float(self.s_dense[k - 1]), float(self.s_dense[k])
        while hi - lo > 1e-3:
            mid = 0.5 * (lo + hi)
            plat, plon = self.point_at(mid)
            if float(distance_km(plat, plon, lat, lon)) <= radius_km:
                hi = mid
            else:
                lo = mid
        return hi

    def crossings(self, line: Sequence[Sequence[float]] | Route) -> list[float]:
        """Sorted ``s`` (km) where the route crosses ``line`` ((lon, lat) vertices or a Route).

        Both are sampled on their geodesics; the sub-segments are intersected as great-circle
        arcs between n-vectors (exact for the sub-kilometre pieces, at any latitude or
        longitude).
        """
        key = None
        if not isinstance(line, Route):
            key = tuple((float(c[0]), float(c[1])) for c in line)
            if key in self._crossings:  # scenario lines are asked about again and again
                return list(self._crossings[key])
        hits = self._crossings_of(line if isinstance(line, Route) else Route(line))
        if key is not None:
            self._crossings[key] = tuple(hits)
        return hits

    def _crossings_of(self, other: Route) -> list[float]:
        a, b = self._n_dense[:-1], self._n_dense[1:]
        c, d = other._n_dense[:-1], other._n_dense[1:]
        # Candidate pairs: sub-segments whose sample points are within a few steps of each other.
        reach = 2.0 * (np.max(np.diff(self.s_dense)) + np.max(np.diff(other.s_dense))) + 1e-6
        pairs_i: list[NDArray[np.intp]] = []
        pairs_j: list[NDArray[np.intp]] = []
        pts = other._n_dense
        chunk = max(1, 4_000_000 // len(self.s_dense))
        for lo in range(0, len(pts), chunk):
            hi = min(lo + chunk, len(pts))
            dist = np.sqrt(np.maximum(2.0 - 2.0 * (pts[lo:hi] @ self._n_dense.T), 0.0))
            dist *= EARTH_RADIUS_KM
            jj, kk = np.nonzero(dist <= reach)
            jj = jj + lo
            for dj in (-1, 0):
                for dk in (-1, 0):
                    j2, k2 = jj + dj, kk + dk
                    ok = (j2 >= 0) & (j2 < len(c)) & (k2 >= 0) & (k2 < len(a))
                    pairs_j.append(j2[ok])
                    pairs_i.append(k2[ok])
        if not pairs_i:
            return []
        ii = np.concatenate(pairs_i)
        jj = np.concatenate(pairs_j)
        if ii.size == 0:
            return []
        uniq = np.unique(np.stack([ii, jj], axis=1), axis=0)
        ii, jj = uniq[:, 0], uniq[:, 1]
        na = np.cross(a[ii], b[ii])
        nc = np.cross(c[jj], d[jj])
        x = np.cross(na, nc)
        norm = np.linalg.norm(x, axis=1)
        ok = norm > 1e-15
        x = np.where(ok[:, None], x / np.where(ok, norm, 1.0)[:, None], 0.0)
        x = np.where((np.sum(x * (a[ii] + b[ii]), axis=1) < 0)[:, None], -x, x)

        def between(p: _F, q: _F, n: _F, v: _F) -> NDArray[np.bool_]:
            tol = -1e-12
            return (np.sum(np.cross(p, v) * n, 1) >= tol) & (np.sum(np.cross(v, q) * n, 1) >= tol)

        hit = ok & between(a[ii], b[ii], na, x) & between(c[jj], d[jj], nc, x)
        if not np.any(hit):
            return []
        ii, x = ii[hit], x[hit]
        ang_ab = np.arctan2(np.linalg.norm(np.cross(a[ii], b[ii]), axis=1),
                            np.sum(a[ii] * b[ii], axis=1))
        ang_ax = np.arctan2(np.linalg.norm(np.cross(a[ii], x), axis=1),
                            np.sum(a[ii] * x, axis=1))
        frac = np.where(ang_ab > 0, ang_ax / np.where(ang_ab > 0, ang_ab, 1.0), 0.0)
        s = self.s_dense[ii] + frac * (self.s_dense[ii + 1] - self.s_dense[ii])
        s = np.sort(s)
        merged = [float(s[0])]
        for v in s[1:]:
            if v - merged[-1] > 0.01:  # one crossing seen from two adjacent pieces
                merged.append(float(v))
        return merged
