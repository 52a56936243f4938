"""Weight quantization per output channel: symmetric codes at each channel's own bit-width
(1-bit binary {-1,+1}), and TTQ ternary codes {-1,0,+1} with two scales (Wp, Wn)."""

from __future__ import annotations

import numpy as np

from .bits import weight_code_range
from .rounding import round_half_up


def quantize_weights(we: np.ndarray, bits: np.ndarray, min_scale: np.ndarray | float = 0.0,
                     range_scale: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Quantize effective weights `we` (O, K) with per-channel `bits` (O,).

    Returns (codes int64 (O, K), scale float64 (O,)): `we ~= scale[o] * codes[o]`.
    b >= 2: scale = max|we[o]| / (2^(b-1)-1), codes = clamp(round(we/scale)).
    b == 1: codes = sign(we) (0 -> +1), scale = mean|we[o]| (the L2-optimal binary scale).
    `range_scale` (per channel, AQ's trainable alpha) multiplies the scale before the floor:
    S = alpha * T / qmax with T = max|we[o]| (mean|we[o]| at 1 bit).
    Scales never go below `min_scale` (per channel): a near-dead channel with a large bias
    would otherwise need a bias code beyond int32."""
    we = np.asarray(we, dtype=np.float64)
    bits = np.asarray(bits, dtype=np.int64)
    if we.ndim != 2 or bits.shape != (we.shape[0],):
        raise ValueError("quantize_weights expects we (O, K) and bits (O,)")
    codes = np.zeros(we.shape, dtype=np.int64)
    scale = np.ones(we.shape[0], dtype=np.float64)
    amax = np.abs(we).max(axis=1) if we.shape[1] else np.zeros(we.shape[0])
    floor = np.broadcast_to(np.asarray(min_scale, dtype=np.float64), (we.shape[0],))
    alpha = np.broadcast_to(np.asarray(range_scale, dtype=np.float64), (we.shape[0],))
    for b in np.unique(bits):
        rows = np.nonzero(bits == b)[0]
        w = we[rows]
        if b == 1:
            s = np.maximum(alpha[rows] * np.abs(w).mean(axis=1), floor[rows])
            codes[rows] = np.where(w >= 0, 1, -1)
        else:
            _, qmax = weight_code_range(int(b))
            s = np.maximum(alpha[rows] * amax[rows] / qmax, floor[rows])
            safe = np.where(s > 0, s, 1.0)
            codes[rows] = np.clip(round_half_up(w / safe[:, None]), -qmax, qmax)
        scale[rows] = np.where(s > 0, s, 1.0)
    return codes, scale


def quantize_ternary(we: np.ndarray, threshold: float = 0.05, wp: np.ndarray | None = None,
                     wn: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TTQ-style ternary codes per output channel: +1 where we > t, -1 where we < -t, else 0,
    t = threshold * max|we[o]|. Returns (codes, wp, wn): with trained `wp`, `wn` (relative
    to each channel's max|we[o]|, as training learns them) the scales are wp * max|we[o]|;
    otherwise the mean magnitudes of the positive/negative parts (1.0 where a part is empty)."""
    we = np.asarray(we, dtype=np.float64)
    amax = np.abs(we).max(axis=1)
    t = threshold * amax[:, None]
    codes = np.where(we > t, 1, np.where(we < -t, -1, 0)).astype(np.int64)
    if wp is not None and wn is not None:
        return (codes, np.maximum(np.asarray(wp, np.float64) * amax, 1e-12),
                np.maximum(np.asarray(wn, np.float64) * amax, 1e-12))
    pos = codes == 1
    neg = codes == -1
    wp = np.where(pos.any(1), (we * pos).sum(1) / np.maximum(pos.sum(1), 1), 1.0)
    wn = np.where(neg.any(1), (-we * neg).sum(1) / np.maximum(neg.sum(1), 1), 1.0)
    return codes, np.maximum(wp, 1e-12), np.maximum(wn, 1e-12)
