"""The gazetteer: named places of a scenario, looked up by name or by nearness.

Names match case- and accent-insensitively, and German transliterations match too
(``Küstrin`` = ``Kustrin`` = ``Kuestrin``); alternate names (``alt_names``) count as names.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable

import numpy as np

from warroom.domain import Feature
from warroom.geo import distance_km

_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe",
                           "Ü": "ue"})


def _strip(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().replace("-", " ").split())


def name_keys(name: str) -> set[str]:
    """Normalised keys of a name: accents stripped, and German umlauts transliterated."""
    keys = {_strip(name), _strip(name.translate(_TRANSLIT))}
    return {k for k in keys if k}


class Gazetteer:
    """Places (Point features) by name and by position."""

    def __init__(self, places: Iterable[Feature]) -> None:
        self.places: list[Feature] = list(places)
        self._by_key: dict[str, Feature] = {}
        for f in self.places:
            for n in (f.id, f.label, *f.alt_names):
                for k in name_keys(n):
                    self._by_key.setdefault(k, f)
        self._lat = np.array([f.coords[0][1] for f in self.places], dtype=float)
        self._lon = np.array([f.coords[0][0] for f in self.places], dtype=float)

    def lookup(self, name: str) -> Feature | None:
        """The place called ``name``, or None."""
        for k in name_keys(name):
            if k in self._by_key:
                return self._by_key[k]
        return None

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` place names closest in spelling to ``name``."""
        keys = sorted(name_keys(name))
        found: list[str] = []
        for k in keys:
            for m in difflib.get_close_matches(k, list(self._by_key), n=n, cutoff=0.6):
                label = self._by_key[m].label
                if label not in found:
                    found.append(label)
        return found[:n]

    def nearest(self, lat: float, lon: float) -> tuple[Feature, float] | None:
        """The nearest place and its geodesic distance in km, or None without places."""
        if not self.places:
            return None
        d = distance_km(self._lat, self._lon, lat, lon)
        i = int(np.argmin(d))
        return self.places[i], float(d[i])
