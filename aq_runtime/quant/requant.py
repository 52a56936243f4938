"""Fixed-point requantization: `q = clamp(z + rshift(v * m, n), lo, hi)` and the search for
the multiplier pair (m, n) that approximates a positive real factor, with 0 < m < 2^31 and
1 <= n <= MAX_SHIFT. v is an int32-bounded accumulator, so v*m + 2^(n-1) fits int64."""

from __future__ import annotations

import numpy as np

from .rounding import round_half_up, rshift

MAX_SHIFT = 62
MULT_LIMIT = 1 << 31  # m < 2^31


def quantize_multiplier(real: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Return (m, n) int64 arrays with m / 2^n closest to `real` (> 0), m in [2^30, 2^31) when the
    shift range allows it. Raises ValueError when the factor cannot be represented."""
    r = np.atleast_1d(np.asarray(real, dtype=np.float64))
    if not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError("requantization factor must be finite and > 0")
    mant, exp = np.frexp(r)  # r = mant * 2^exp, mant in [0.5, 1)
    n = (31 - exp).astype(np.int64)  # m = mant * 2^31 in [2^30, 2^31)
    n = np.clip(n, 1, MAX_SHIFT)
    m = round_half_up(np.ldexp(r, n))
    over = m >= MULT_LIMIT  # mant rounded up to 1.0: one bit less of shift
    if np.any(over):
        n = np.where(over & (n > 1), n - 1, n)
        m = round_half_up(np.ldexp(r, n))
    if np.any(m >= MULT_LIMIT):
        raise ValueError("requantization factor too large (needs m >= 2^31 at shift 1)")
    if np.any(m <= 0):
        raise ValueError("requantization factor too small (rounds to 0 at shift 62)")
    return m.astype(np.int64), n.astype(np.int64)


def quantize_multiplier_pair(r1: np.ndarray, r2: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two factors sharing one shift (residual add): (m1, m2, n) with m_i / 2^n ~= r_i."""
    r1 = np.atleast_1d(np.asarray(r1, dtype=np.float64))
    r2 = np.atleast_1d(np.asarray(r2, dtype=np.float64))
    _, n = quantize_multiplier(np.maximum(r1, r2))
    m1 = round_half_up(np.ldexp(r1, n))
    m2 = round_half_up(np.ldexp(r2, n))
    if np.any(np.minimum(m1, m2) <= 0):
        raise ValueError("requantization factor too small for a shared shift")
    return m1, m2, n


def finish(p: np.ndarray, n: np.ndarray, z: np.ndarray, lo: np.ndarray, hi: np.ndarray
           ) -> np.ndarray:
    """`clamp(z + rshift(p, n), lo, hi)` where p is the already-multiplied int64 product."""
    return np.clip(np.asarray(z, dtype=np.int64) + rshift(p, n), lo, hi)


def requantize(v: np.ndarray, m: np.ndarray, n: np.ndarray, z: np.ndarray,
               lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """`clamp(z + rshift(v * m, n), lo, hi)` on int64; per-channel arrays broadcast against v."""
    return finish(np.asarray(v, dtype=np.int64) * np.asarray(m, dtype=np.int64), n, z, lo, hi)
