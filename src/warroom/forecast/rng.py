"""Counter-based random numbers: every draw is a hash of (seed, force, sample, event, purpose).

Nothing is stored or drawn ahead: a sample's n-th regime switch or its k-th river crossing
gets the same number whichever forces are simulated with it, in whatever order or chunk. The
hash is SplitMix64's finaliser (Steele, Lea & Flood 2014), which passes BigCrush as a counter
RNG; uniforms take its top 53 bits.
"""

from __future__ import annotations

import zlib

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_SCALE = 2.0**-53


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def sample_keys(seed: int, force: str, n: int) -> np.ndarray:
    """One 64-bit key per sample of a force."""
    with np.errstate(over="ignore"):
        base = _mix(np.array([(seed * 0x9E3779B1) ^ (zlib.crc32(force.encode()) << 32)],
                             dtype=np.uint64) % np.uint64(2**63) + _GOLDEN)
        return _mix(base + np.arange(n, dtype=np.uint64) * _GOLDEN)


def uniform(keys: np.ndarray, counter: np.ndarray | int, stream: int) -> np.ndarray:
    """Uniforms in (0, 1), one per key, for this counter (event number) and stream (purpose)."""
    c = np.asarray(counter, dtype=np.uint64) * np.uint64(64) + np.uint64(stream)
    with np.errstate(over="ignore"):
        x = _mix(keys ^ _mix(c * _GOLDEN + _GOLDEN))
    return ((x >> _S11).astype(np.float64) + 0.5) * _SCALE


def normal(keys: np.ndarray, counter: np.ndarray | int, stream: int) -> np.ndarray:
    """Standard normals (Box-Muller on streams ``stream`` and ``stream + 1``)."""
    u1 = uniform(keys, counter, stream)
    u2 = uniform(keys, counter, stream + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def exponential(keys: np.ndarray, counter: np.ndarray | int, stream: int) -> np.ndarray:
    """Standard exponentials."""
    return -np.log(uniform(keys, counter, stream))
