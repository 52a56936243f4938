"""Activation quantization parameters from a calibrated float range: unsigned codes
0..2^b-1, scale s and integer zero point z, real value = s * (q - z). Real zero is exact."""

from __future__ import annotations

import numpy as np

from .rounding import round_half_up


def act_params_from_range(lo: np.ndarray, hi: np.ndarray, bits: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale float64, zero_point int64) covering [min(lo,0), max(hi,0)]."""
    lo = np.minimum(np.asarray(lo, dtype=np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, dtype=np.float64), 0.0)
    levels = (np.int64(1) << np.asarray(bits, dtype=np.int64)) - 1
    span = hi - lo
    s = np.where(span > 0, span / levels, 1.0 / levels)
    z = np.clip(round_half_up(-lo / s), 0, levels)
    return s, z.astype(np.int64)
