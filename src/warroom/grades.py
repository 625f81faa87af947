"""Admiralty grades: source reliability A-F x information credibility 1-6.

=====  ===========================  =====  =============================
code   reliability of the source    code   credibility of the information
=====  ===========================  =====  =============================
A      completely reliable          1      confirmed by other sources
B      usually reliable             2      probably true
C      fairly reliable              3      possibly true
D      not usually reliable         4      doubtful
E      unreliable                   5      improbable
F      cannot be judged             6      truth cannot be judged
=====  ===========================  =====  =============================

``F6`` is the default for a report that carries no grade.
"""

from __future__ import annotations

import re

GRADE_RE = re.compile(r"^[A-F][1-6]$")
DEFAULT_GRADE = "F6"

RELIABILITY = {
    "A": "completely reliable",
    "B": "usually reliable",
    "C": "fairly reliable",
    "D": "not usually reliable",
    "E": "unreliable",
    "F": "reliability cannot be judged",
}
CREDIBILITY = {
    "1": "confirmed",
    "2": "probably true",
    "3": "possibly true",
    "4": "doubtful",
    "5": "improbable",
    "6": "truth cannot be judged",
}

# 1-sigma position error (km) of a report that states no uncertainty_km, by grade. The better the
# source and the information, the tighter; E5 is barely evidence; F6 (unknown) sits in between
# because "cannot be judged" is not "bad". Reliability sets the base, credibility scales it.
_BASE_KM = {"A": 2.0, "B": 4.0, "C": 8.0, "D": 15.0, "E": 25.0, "F": 12.5}
_SCALE = {"1": 1.0, "2": 1.25, "3": 1.5, "4": 1.75, "5": 2.0, "6": 2.0}


def normalise_grade(text: str | None) -> str:
    """Upper-case a grade, default ``F6``; raise ValueError when it is not A-F followed by 1-6."""
    if text is None or not str(text).strip():
        return DEFAULT_GRADE
    g = str(text).strip().upper()
    if not GRADE_RE.match(g):
        raise ValueError(f"{text!r} is not an Admiralty grade (A-F then 1-6, e.g. B2)")
    return g


def sigma_km(grade: str) -> float:
    """Default 1-sigma position error (km) of a grade: A1 2 km ... E5 50 km, F6 25 km."""
    return _BASE_KM[grade[0]] * _SCALE[grade[1]]


def describe(grade: str) -> str:
    """``B2`` -> ``usually reliable, probably true``."""
    return f"{RELIABILITY[grade[0]]}, {CREDIBILITY[grade[1]]}"
