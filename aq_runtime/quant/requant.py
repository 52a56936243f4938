"""Fixed-point requantization: `q = clamp(z + rshift(v * m, n), lo, hi)` and the search for
the multiplier pair (m, n) that approximates a positive real factor, with 0 < m < 2^31 and
1 <= n <= MAX_SHIFT. v is an int32-bounded accumulator, so v*m + 2^(n-1) fits int64."""

from __future__ import annotations

import numpy as np

from .rounding import round_half_up, rshift

MAX_SHIFT = 62
MULT_LIMIT = 1 << 31  # any valid m is < 2^31
MULT_BITS = 16  # the exporter's multipliers: m in [2^15, 2^16), relative error <= 2^-16


def quantize_multiplier(real: np.ndarray | float, bits: int = MULT_BITS
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Return (m, n) int64 arrays with m / 2^n closest to `real` (> 0), m in
    [2^(bits-1), 2^bits) when the shift range allows it (bits <= 31). A 16-bit multiplier's
    relative error (<= 2^-16) is far below any activation step; it halves the stored bytes.
    Raises ValueError when the factor cannot be represented."""
    if not 1 <= bits <= 31:
        raise ValueError("multiplier bits must be in 1..31")
    limit = 1 << bits
    r = np.atleast_1d(np.asarray(real, dtype=np.float64))
    if not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError("requantization factor must be finite and > 0")
    mant, exp = np.frexp(r)  # r = mant * 2^exp, mant in [0.5, 1)
    n = (bits - exp).astype(np.int64)  # m = mant * 2^bits in [2^(bits-1), 2^bits)
    n = np.clip(n, 1, MAX_SHIFT)
    m = round_half_up(np.ldexp(r, n))
    over = m >= limit  # mant rounded up to 1.0: one bit less of shift
    if np.any(over):
        n = np.where(over & (n > 1), n - 1, n)
        m = round_half_up(np.ldexp(r, n))
    if np.any(m >= MULT_LIMIT):
        raise ValueError("requantization factor too large (needs m >= 2^31 at shift 1)")
    if np.any(m <= 0):
        raise ValueError("requantization factor too small (rounds to 0 at shift 62)")
    return m.astype(np.int64), n.astype(np.int64)


def quantize_multiplier_pair(r1: np.ndarray, r2: np.ndarray, bits: int = MULT_BITS
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two factors sharing one shift (residual add): (m1, m2, n) with m_i / 2^n ~= r_i."""
    r1 = np.atleast_1d(np.asarray(r1, dtype=np.float64))
    r2 = np.atleast_1d(np.asarray(r2, dtype=np.float64))
    _, n = quantize_multiplier(np.maximum(r1, r2), bits)
    m1 = round_half_up(np.ldexp(r1, n))
    m2 = round_half_up(np.ldexp(r2, n))
    if np.any(np.minimum(m1, m2) <= 0):
        raise ValueError("requantization factor too small for a shared shift")
    return m1, m2, n


def requantize_product(p: np.ndarray, n: np.ndarray, z: np.ndarray, lo: np.ndarray,
                       hi: np.ndarray) -> np.ndarray:
    """`clamp(z + rshift(p, n), lo, hi)` where p is the already-multiplied int64 product."""
    out = rshift(p, n)
    out += np.asarray(z, dtype=np.int64)
    return np.clip(out, lo, hi, out=out)


def implied_scale(mult: np.ndarray, shift: np.ndarray, out_scale: np.ndarray) -> np.ndarray:
    """The real factor a fixed-point (m, n) stands for, times the output scale: for a conv,
    the weight scale the integer path actually applies (m / 2^n * s_out)."""
    return np.asarray(mult, np.float64) / np.exp2(np.asarray(shift, np.float64)) * out_scale


def requantize_product_one(p, n, z, lo, hi):
    """`requantize_product` for one value (p already multiplied), written so Numba (CPU and
    CUDA) can compile it unchanged: clamp(z + rshift(p, n), lo, hi)."""
    q = z + ((np.int64(p) + (np.int64(1) << (n - 1))) >> n)
    return min(max(q, lo), hi)


def requant_one(acc, bias, m, n, z, lo, hi):
    """`requantize` for one value, written so Numba can compile it unchanged (kernels njit
    this very function instead of restating the rule): clamp(z + rshift((acc+bias)*m, n)).
    (Self-contained, not a call of requantize_product_one, so that one decorator compiles it.)"""
    v = (np.int64(acc) + np.int64(bias)) * np.int64(m)
    q = z + ((v + (np.int64(1) << (n - 1))) >> n)
    return min(max(q, lo), hi)


F64_EXACT = 1 << 53  # integers below this are exact in float64


def float_exact(vmax: np.ndarray, m: np.ndarray, n: np.ndarray, z: np.ndarray = 0) -> bool:
    """Whether `requant_float` equals `requantize` for every |v| <= vmax (per channel): v*m and
    v*m + z*2^n + 2^(n-1) must be integers below 2^53 (float64 holds them exactly), v must
    fit int32 (kernels add the bias in int32 lanes) and so must the result before its clamp
    (kernels convert it to int32 lanes, where a value beyond them becomes -2^31)."""
    vmax = np.asarray(vmax, np.int64)
    if vmax.size and vmax.max() >= 1 << 31:
        return False
    n = np.asarray(n, np.int64)
    if n.size and n.max() > 52:
        return False
    lim = (vmax * np.asarray(m, np.int64) + np.abs(np.asarray(z, np.int64)) * (np.int64(1) << n)
           + (np.int64(1) << (n - 1)))
    top = (vmax * np.asarray(m, np.int64) >> n) + np.abs(np.asarray(z, np.int64)) + 1
    return bool(np.all(lim < F64_EXACT) and np.all(top < 1 << 31))


def float_factors(m: np.ndarray, n: np.ndarray, z: np.ndarray = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(m * 2^-n, z + 1/2) as float64, the two constants of `requant_float`."""
    return (np.ldexp(np.asarray(m, np.float64), -np.asarray(n, np.int64)),
            np.asarray(z, np.float64) + 0.5)


def requant_float(v: np.ndarray, m: np.ndarray, n: np.ndarray, z: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray) -> np.ndarray:
    """`requantize` as the vector kernels compute it, in float64 (fewer, cheaper lanes than
    int64): clamp(floor(v * (m 2^-n) + (z + 1/2)), lo, hi). While `float_exact` holds this is
    exact: v * m 2^-n = v*m / 2^n and the sum (v*m + z 2^n + 2^(n-1)) / 2^n are multiples of
    2^-n below 2^(53-n), so float64 holds them without rounding (with or without a fused
    multiply-add), and floor is the arithmetic shift's rounding toward -inf:
    floor((v*m + 2^(n-1)) / 2^n) + z = z + rshift(v*m, n). Returns int64."""
    s, zh = float_factors(m, n, z)
    q = np.floor(np.asarray(v, np.float64) * s + zh)
    return np.clip(q, lo, hi).astype(np.int64)


def requantize(v: np.ndarray, m: np.ndarray, n: np.ndarray, z: np.ndarray,
               lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """`clamp(z + rshift(v * m, n), lo, hi)` on int64; per-channel arrays broadcast against v."""
    p = np.asarray(v, dtype=np.int64) * np.asarray(m, dtype=np.int64)
    return requantize_product(p, n, z, lo, hi)
