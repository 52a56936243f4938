"""Code ranges per bit-width. Weights: symmetric signed codes, 1-bit = {-1, +1}, ternary =
{-1, 0, +1}; activations: unsigned codes 0..2^b-1 with a zero point; logits: int32."""

from __future__ import annotations

from typing import Iterable

import numpy as np

WEIGHT_BITS_MAX = 16
ACT_BITS_MAX = 8
LOGIT_BITS = 32
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def weight_code_range(bits: int) -> tuple[int, int]:
    """(qmin, qmax) of a weight code with `bits` bits; 1 bit is binary {-1, +1}."""
    if not 1 <= bits <= WEIGHT_BITS_MAX:
        raise ValueError(f"weight bits must be in 1..{WEIGHT_BITS_MAX}, got {bits}")
    if bits == 1:
        return -1, 1
    q = (1 << (bits - 1)) - 1
    return -q, q


def weight_code_max(bits: np.ndarray) -> np.ndarray:
    """Per channel the largest |code| of weights with `bits` bits (1 for binary)."""
    bits = np.asarray(bits, dtype=np.int64)
    return np.where(bits <= 1, 1, (np.int64(1) << np.maximum(bits - 1, 1)) - 1)


def mean_bits(parts: Iterable[tuple[np.ndarray, int]]) -> float:
    """The one definition of "average bits" (weights and activations alike): bits per value.
    `parts` holds (per-channel bits, values per channel) pairs: a conv's weight widths with
    the weights of one output channel (in x kh x kw), an activation tensor's widths with its
    pixels (H x W), so a 112 x 112 channel weighs as its 12,544 values do."""
    total = count = 0.0
    for bits, per_channel in parts:
        total += float(np.sum(bits)) * per_channel
        count += np.size(bits) * per_channel
    return total / max(count, 1.0)


def act_code_range(bits: int) -> tuple[int, int]:
    """(lo, hi) of an unsigned activation code with `bits` bits; 32 means an int32 logit."""
    if bits == LOGIT_BITS:
        return INT32_MIN, INT32_MAX
    if not 1 <= bits <= ACT_BITS_MAX:
        raise ValueError(f"activation bits must be in 1..{ACT_BITS_MAX}, got {bits}")
    return 0, (1 << bits) - 1
