"""The requantization of DESIGN §3 on 16 int32 lanes inside TIR kernels, in float64:
quant.requant.requant_float, exact where quant.requant.float_exact holds (the callers check it
per layer at plan time, else they take the int64 path). Per-channel constants travel as one
float64 (4, C16) array: m 2^-n, z + 1/2, lo, hi (`float_params`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...quant.requant import float_factors
from .gemm import aligned_zeros


def float_params(mult: np.ndarray, shift: np.ndarray, z: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, c16: int) -> np.ndarray:
    """The (4, c16) constants; padding channels requantize to 0 (all constants 0)."""
    c = len(mult)
    q = aligned_zeros((4, c16), np.float64)
    q[0, :c], q[1, :c] = float_factors(mult, shift, z)
    q[2, :c], q[3, :c] = lo, hi
    return q


def requant16(acc: Any, q: Any, col: Any) -> Any:
    """uint8x16 codes of 16 int32 sums (bias already added) for channels col..col+15:
    clamp(floor(v * m 2^-n + z + 1/2), lo, hi) (quant.requant.requant_float), q the
    float_params buffer."""
    from tvm import tirx
    f64 = "float64x16"
    r = tirx.Cast(f64, acc) * q.vload([0, col], f64) + q.vload([1, col], f64)
    r = tirx.min(tirx.max(r, q.vload([2, col], f64)), q.vload([3, col], f64))
    return tirx.Cast("uint8x16", tirx.Cast("int32x16", tirx.floor(r)))
