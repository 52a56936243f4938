"""Rounding rules: round half up for floats (exporter side) and `rshift` for integers (run time).

`rshift(v, n) = (v + 2^(n-1)) >> n` with an arithmetic shift on int64: round half up, so
-2.5 -> -2 and 2.5 -> 3. Every backend must implement exactly this."""

from __future__ import annotations

import numpy as np


def round_half_up(x: np.ndarray | float) -> np.ndarray:
    """Round float64 values to the nearest integer, ties toward +inf; returns int64."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)


def rshift(v: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Rounding right shift of int64 values by n >= 1 bits (broadcasting), docs/SEMANTICS.md."""
    v = np.asarray(v, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    if np.any(n < 1) or np.any(n > 62):
        raise ValueError("rshift needs 1 <= n <= 62")
    out = v + (np.int64(1) << (n - 1))
    out >>= n
    return out
