"""NumPy's ``default_rng(entropy).integers(0, pop, size)`` for many generators at once, bit
for bit.

The forecast's silence rule (:func:`warroom.forecast.engine.silence_index`) redraws a force's
contradicted samples with the force's own generator,
``np.random.default_rng([seed, crc32(force), 1]).choice(good, size=k)``: one generator per
force, whose construction alone costs tens of microseconds, more than the force's simulation.
Here the same arithmetic runs on arrays, one element per generator:

- ``SeedSequence``: the entropy words hashed into a pool of four 32-bit words and the pool
  hashed into the state words (O'Neill's ``seed_seq`` alternative, as NumPy implements it);
- ``PCG64``: seeded with state and increment from those words, a 128-bit LCG (held as two
  uint64 halves) with the XSL-RR output;
- ``Generator.integers(0, pop, size)`` for ``pop <= 2**32`` (what ``choice`` draws for a
  population of ``pop``): Lemire's bounded method on 32-bit draws, each 64-bit output giving
  its low half then its high half (NumPy's ``next_uint32``).

``tests/test_scale.py`` compares the results with NumPy's own generators.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_M32 = 0xFFFFFFFF
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_POOL = 4
_U16 = np.uint32(16)
# PCG64's 128-bit multiplier, as high and low 64-bit halves
_MUL_HI, _MUL_LO = np.uint64(2549297995355413924), np.uint64(4865540595714422341)
_LO32 = np.uint64(_M32)
_S32, _S58, _S63, _ONE = np.uint64(32), np.uint64(58), np.uint64(63), np.uint64(1)


def int_words(n: int) -> list[int]:
    """The 32-bit words NumPy's ``SeedSequence`` makes of a non-negative int (least
    significant first; 0 is one word)."""
    if n < 0:
        raise ValueError(f"entropy must be non-negative, got {n}")
    words = [n & _M32] if n == 0 else []
    while n > 0:
        words.append(n & _M32)
        n >>= 32
    return words


class _Hash:
    """SeedSequence's hash constant: it evolves the same way for every generator."""

    def __init__(self, init: int, mult: int) -> None:
        self.const, self.mult = init, mult

    def __call__(self, value: np.ndarray) -> np.ndarray:
        value = value ^ np.uint32(self.const)
        self.const = (self.const * self.mult) & _M32
        value *= np.uint32(self.const)
        value ^= value >> _U16
        return value


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = _MIX_L * x - _MIX_R * y
    r ^= r >> _U16
    return r


def seed_state(words: Sequence[np.ndarray]) -> np.ndarray:
    """``SeedSequence(entropy).generate_state(4, np.uint64)`` of each generator: ``words``
    are its entropy words in order, each a ``(G,)`` uint32 array; returns ``(4, G)`` uint64."""
    hashmix = _Hash(_INIT_A, _MULT_A)
    g = len(words[0])
    zero = np.zeros(g, dtype=np.uint32)
    pool = [hashmix(words[i] if i < len(words) else zero) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = _mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, len(words)):
        for dst in range(_POOL):
            pool[dst] = _mix(pool[dst], hashmix(words[src]))
    out = _Hash(_INIT_B, _MULT_B)
    halves = [out(pool[i % _POOL]).astype(np.uint64) for i in range(8)]
    return np.stack([halves[2 * k] | (halves[2 * k + 1] << _S32) for k in range(4)])


def _step(hi: np.ndarray, lo: np.ndarray, inc_hi: np.ndarray, inc_lo: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """PCG64's state step: ``state * multiplier + increment`` (mod 2**128) on (hi, lo)
    halves."""
    a0, a1 = lo & _LO32, lo >> _S32
    b0, b1 = _MUL_LO & _LO32, _MUL_LO >> _S32
    p00, p01, p10 = a0 * b0, a0 * b1, a1 * b0
    mid = (p00 >> _S32) + (p01 & _LO32) + (p10 & _LO32)
    new_hi = a1 * b1 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)  # high half of lo * b
    new_hi += lo * _MUL_HI + hi * _MUL_LO
    new_lo = lo * _MUL_LO
    lo2 = new_lo + inc_lo
    new_hi += inc_hi + (lo2 < new_lo)
    return new_hi, lo2


def _output(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """XSL-RR: the two halves xor-ed, rotated right by the state's top 6 bits."""
    x = hi ^ lo
    rot = hi >> _S58
    return (x >> rot) | (x << ((np.uint64(64) - rot) & _S63))


class PCG64s:
    """Many PCG64 generators, seeded as ``Generator(PCG64(SeedSequence(entropy)))``."""

    def __init__(self, words: Sequence[np.ndarray]) -> None:
        s = seed_state(words)
        # increment: (s2:s3) << 1 | 1; state: 0, step, += (s0:s1), step
        self.inc_hi = (s[2] << _ONE) | (s[3] >> _S63)
        self.inc_lo = (s[3] << _ONE) | _ONE
        lo = self.inc_lo + s[1]
        hi = self.inc_hi + s[0] + (lo < self.inc_lo)
        self.hi, self.lo = _step(hi, lo, self.inc_hi, self.inc_lo)
        self.has32 = np.zeros(len(self.lo), dtype=bool)   # a high half waiting
        self.buf32 = np.zeros(len(self.lo), dtype=np.uint64)

    def next64(self, at: np.ndarray) -> np.ndarray:
        """The next 64-bit output of the generators ``at`` (XSL-RR of the stepped state)."""
        hi, lo = _step(self.hi[at], self.lo[at], self.inc_hi[at], self.inc_lo[at])
        self.hi[at], self.lo[at] = hi, lo
        return _output(hi, lo)

    def next32(self, at: np.ndarray) -> np.ndarray:
        """The next 32-bit draw (as uint64) of the generators ``at``: a waiting high half, else
        the low half of a new output (whose high half then waits)."""
        out = np.empty(len(at), dtype=np.uint64)
        has = self.has32[at]
        old = at[has]
        out[has] = self.buf32[old]
        self.has32[old] = False
        new = at[~has]
        if new.size:
            x = self.next64(new)
            out[~has] = x & _LO32
            self.buf32[new] = x >> _S32
            self.has32[new] = True
        return out

    def integers(self, pop: np.ndarray, count: np.ndarray) -> np.ndarray:
        """``integers(0, pop[g], size=count[g])`` of each generator ``g`` (``1 <= pop <=
        2**32``): ``(G, max(count))`` int64, -1 beyond a generator's count. Lemire's method:
        a draw whose ``draw * pop`` has a low half below ``(2**32 - pop) % pop`` is rejected
        and drawn again."""
        pop = np.asarray(pop, dtype=np.uint64)
        count = np.asarray(count)
        width = int(count.max(initial=0))
        out = np.full((len(pop), width), -1, dtype=np.int64)
        threshold = (np.uint64(_M32) - (pop - _ONE)) % pop
        for j in range(width):
            at = np.flatnonzero(count > j)
            m = self.next32(at) * pop[at]
            bad = np.flatnonzero((m & _LO32) < threshold[at])
            while bad.size:
                m[bad] = self.next32(at[bad]) * pop[at[bad]]
                bad = bad[(m[bad] & _LO32) < threshold[at[bad]]]
            out[at, j] = (m >> _S32).astype(np.int64)
        return out
