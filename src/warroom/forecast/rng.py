"""Counter-based random numbers: every draw is a hash of (seed, force, sample, event, purpose).

Nothing is stored or drawn ahead: a sample's n-th regime switch or its k-th river crossing
gets the same number whichever forces are simulated with it, in whatever order or chunk. The
hash is SplitMix64's finaliser (Steele, Lea & Flood 2014), which passes BigCrush as a counter
RNG.

Each sample has a 64-bit key (:func:`sample_keys`: a hash of the seed, the force id and the
sample number) and reads its own stream: word ``w`` of the stream is
``mix(key + w * golden)``, i.e. SplitMix64's output sequence seeded with the key. The engine
reads words 0 and 1 at the start (regime, first holding time, posterior draw, pace) and word
``2 + j`` at the sample's ``j``-th event (a regime switch or a barrier), so a draw is fixed by
(seed, force, sample, event, purpose). Each word gives three float32 uniforms
(:func:`unit_triple`): two of 23 bits (the smallest is 2^-24, so Box-Muller normals reach
5.8 sd and exponentials 16.6 means) and an angle of 18 bits.

:func:`uniform`, :func:`normal` and :func:`exponential` are the float64 one-draw-per-hash
forms, for callers that want single draws.
"""

from __future__ import annotations

import zlib

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_GOLDEN = GOLDEN
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_S23, _S41 = np.uint64(23), np.uint64(41)
_SCALE = 2.0**-53
_ONE_BITS = np.uint32(0x3F800000)          # float32 1.0
_MANT23 = np.uint32(0x7FFFFF)              # a float32 mantissa
_LOW18 = np.uint32(0x3FFFF)
_OPEN23 = np.float32(1.0 - 2.0**-24)       # [1, 2) - _OPEN23 = (0, 1), exactly


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def mix_into(x: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of ``x`` into ``out`` (uint64 arrays; ``tmp`` scratch; ``out``
    may be ``x``)."""
    with np.errstate(over="ignore"):
        np.right_shift(x, _S30, out=tmp)
        np.bitwise_xor(x, tmp, out=out)
        np.multiply(out, _M1, out=out)
        np.right_shift(out, _S27, out=tmp)
        np.bitwise_xor(out, tmp, out=out)
        np.multiply(out, _M2, out=out)
        np.right_shift(out, _S31, out=tmp)
        np.bitwise_xor(out, tmp, out=out)
    return out


def unit_triple(h: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
                tmp: np.ndarray, b_scale: float = 1.0) -> None:
    """Three float32 uniforms from each 64-bit hash ``h`` (``tmp``: uint64 scratch):

    - ``a`` from bits 0-22 and ``c`` from bits 41-63: ``(m + 1/2) / 2^23`` in (0, 1), made by
      putting the 23 bits ``m`` in the mantissa of a float in [1, 2) and subtracting
      ``1 - 2^-24`` (exact; never 0 or 1, so their logarithms are finite);
    - ``b`` from bits 23-40: ``b_scale * m / 2^18`` in [0, b_scale) (an angle, say).
    """
    abits, cbits = a.view(np.uint32), c.view(np.uint32)
    np.right_shift(h, _S23, out=tmp)
    np.copyto(cbits, tmp, casting="unsafe")              # c's memory as scratch for b
    np.bitwise_and(cbits, _LOW18, out=cbits)
    np.copyto(b, cbits, casting="unsafe")
    np.multiply(b, np.float32(b_scale * 2.0**-18), out=b)
    np.copyto(abits, h, casting="unsafe")                 # the low 32 bits
    np.bitwise_and(abits, _MANT23, out=abits)
    np.right_shift(h, _S41, out=tmp)
    np.copyto(cbits, tmp, casting="unsafe")
    for out, bits in ((a, abits), (c, cbits)):
        np.bitwise_or(bits, _ONE_BITS, out=bits)
        np.subtract(out, _OPEN23, out=out)


def force_bases(seed: int, forces: list[str]) -> np.ndarray:
    """The base of each force's sample keys: sample ``i`` has key ``mix(base + i * golden)``."""
    with np.errstate(over="ignore"):
        return _mix(np.array([(seed * 0x9E3779B1) ^ (zlib.crc32(f.encode()) << 32)
                              for f in forces], dtype=np.uint64).reshape(-1)
                    % np.uint64(2**63) + _GOLDEN)


def force_base(seed: int, force: str) -> np.uint64:
    """The base of one force's sample keys (see :func:`force_bases`)."""
    return force_bases(seed, [force])[0]


def sample_keys(seed: int, force: str, n: int) -> np.ndarray:
    """One 64-bit key per sample of a force."""
    with np.errstate(over="ignore"):
        return _mix(force_base(seed, force) + np.arange(n, dtype=np.uint64) * _GOLDEN)


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
