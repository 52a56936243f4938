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


# Weight groups (`--weight-groups G`): within a channel of 2..5-bit codes, each run of G
# consecutive weights (along C/groups*kh*kw) has its own integer multiplier m in 1..8 under the
# channel's scale, so a group of small weights gets a finer step than the channel's largest:
# Q = code * m, |code| <= 2^(b-1)-1. Q is an ordinary integer weight of b+3 bits (at most 8
# for b <= 5: the kernels and the reference see nothing new); the file stores the b-bit codes
# and 3 bits per group.
GROUP_MULT_MAX = 8
GROUP_MULT_BITS = 3
GROUP_CODE_BITS = (2, 5)


def grouped_rows(bits: np.ndarray, k: int, group: int) -> np.ndarray:
    """Which channels of a conv with `k` weights per channel take group multipliers."""
    bits = np.asarray(bits, dtype=np.int64)
    lo, hi = GROUP_CODE_BITS
    return (group > 0) & (k >= 2 * group) & (bits >= lo) & (bits <= hi)


def n_groups(k: int, group: int) -> int:
    return (k + group - 1) // group


def expand_groups(mult: np.ndarray, k: int, group: int) -> np.ndarray:
    """(O, ng) multipliers of groups of `group` weights -> (O, k), one per weight."""
    return np.repeat(np.asarray(mult), group, axis=1)[:, :k]


def quantize_weights_grouped(we: np.ndarray, bits: np.ndarray, group: int,
                             min_scale: np.ndarray | float = 0.0,
                             range_scale: np.ndarray | float = 1.0
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """`quantize_weights` with group multipliers on the channels `grouped_rows` picks.

    Returns (Q int64 (O, K), scale (O,), mult int64 (O, ng) or None, effective bits (O,)):
    `we ~= scale[o] * Q[o]` with Q = code * mult on grouped channels, whose scale is the
    ungrouped one / 8 (floored at `min_scale`) and whose groups each take the multiplier with
    the least squared error (the smallest on ties); other channels as `quantize_weights`
    (multiplier 1, effective bits = their bits). mult is None when no channel is grouped."""
    we = np.asarray(we, dtype=np.float64)
    bits = np.asarray(bits, dtype=np.int64)
    q, scale = quantize_weights(we, bits, min_scale, range_scale)
    o, k = we.shape
    rows = np.nonzero(grouped_rows(bits, k, group))[0]
    if len(rows) == 0:
        return q, scale, None, bits.copy()
    ng = n_groups(k, group)
    mult = np.ones((o, ng), dtype=np.int64)
    ebits = bits.copy()
    floor = np.broadcast_to(np.asarray(min_scale, dtype=np.float64), (o,))
    alpha = np.broadcast_to(np.asarray(range_scale, dtype=np.float64), (o,))
    amax = np.abs(we).max(axis=1)
    w = np.pad(we, ((0, 0), (0, ng * group - k))).reshape(o, ng, group)
    for b in np.unique(bits[rows]):
        r = rows[bits[rows] == b]
        _, qmax = weight_code_range(int(b))
        s = np.maximum(alpha[r] * amax[r] / (qmax * GROUP_MULT_MAX), floor[r])
        s = np.where(s > 0, s, 1.0)
        best = np.full((len(r), ng), np.inf)
        bq = np.zeros((len(r), ng, group), dtype=np.int64)
        for m in range(1, GROUP_MULT_MAX + 1):
            st = (s * m)[:, None, None]
            c = np.clip(round_half_up(w[r] / st), -qmax, qmax)
            err = ((w[r] - c * st) ** 2).sum(axis=2)
            better = err < best * (1 - 1e-12)
            best = np.where(better, err, best)
            mult[r] = np.where(better, m, mult[r])
            bq = np.where(better[..., None], c.astype(np.int64) * m, bq)
        q[r] = bq.reshape(len(r), -1)[:, :k]
        scale[r] = s
        ebits[r] = b + GROUP_MULT_BITS
    return q, scale, mult, ebits


def code_bits(arrays: dict) -> np.ndarray:
    """A conv's stored code bits per channel (its weight bits unless it has `wcbits`)."""
    return np.asarray(arrays.get("wcbits", arrays["wbits"])).astype(np.int64)


def grouped_channels(arrays: dict) -> np.ndarray:
    """The channels of a conv that carry group multipliers: code bits below weight bits."""
    return code_bits(arrays) != np.asarray(arrays["wbits"]).astype(np.int64)


def stored_weight_bits(arrays: dict, attrs: dict) -> np.ndarray:
    """Per output channel of an IR conv, the bits one weight takes in the file: its code bits
    plus, on grouped channels, its share of the group multipliers' bits."""
    if "weight_group" not in attrs:
        return np.asarray(arrays["wbits"], dtype=np.float64)
    k = int(np.prod(arrays["weight"].shape[1:]))
    extra = GROUP_MULT_BITS * n_groups(k, attrs["weight_group"]) / k
    return code_bits(arrays) + np.where(grouped_channels(arrays), extra, 0.0)
