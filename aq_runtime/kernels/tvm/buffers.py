"""64-byte aligned numpy buffers for the TIR kernels (TVM assumes 64-byte aligned buffers and
emits aligned vector loads/stores; numpy only guarantees 16)."""

from __future__ import annotations

import math

import numpy as np

ALIGN = 64


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A C-contiguous array whose data starts on a 64-byte boundary (an unaligned buffer makes
    the kernel fault at random)."""
    dt = np.dtype(dtype)
    nbytes = math.prod(shape) * dt.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    off = -raw.__array_interface__["data"][0] % ALIGN
    return raw[off:off + nbytes].view(dt).reshape(shape)


def aligned_zeros(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    out = aligned_empty(shape, dtype)
    out[...] = 0
    return out
