"""Reference backend: every op of docs/SEMANTICS.md as plain numpy int64 math, one function per op.
Tensors are NCHW int64 codes. This is the definition every other backend is compared to.

Convolution sums are exact: GEMMs run in float64 BLAS only when the bound
max|x| * max|w| * K < 2^53 holds (every partial sum is then an exactly representable integer),
otherwise in int64. The exporter proves the tighter int32 bound for every conv anyway."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..ir.graph import Node
from ..quant import requantize_product, requantize

_EXACT_F64 = float(1 << 53)


def pad_with_zero_points(x: np.ndarray, pad: list[int], zp: np.ndarray) -> np.ndarray:
    """Pad NCHW codes by (top, bottom, left, right) with each channel's zero point (real 0)."""
    t, b, l, r = pad
    if not (t or b or l or r):
        return x
    n, c, h, w = x.shape
    out = np.empty((n, c, h + t + b, w + l + r), dtype=np.int64)
    out[...] = np.asarray(zp, dtype=np.int64)[None, :, None, None]
    out[:, :, t:t + h, l:l + w] = x
    return out


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact int64 a @ b (broadcasting like np.matmul); float64 BLAS when no partial sum can
    exceed 2^53."""
    if a.size == 0 or b.size == 0:
        return np.zeros(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]),
                        dtype=np.int64)
    amax = max(abs(float(a.max())), abs(float(a.min())))
    bmax = max(abs(float(b.max())), abs(float(b.min())))
    if amax * bmax * a.shape[-1] < _EXACT_F64:  # every partial sum is an exact float64 integer
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


def conv_sum(x: np.ndarray, w: np.ndarray, stride: list[int], groups: int) -> np.ndarray:
    """acc[n,o,y,x] = sum_{c,i,j} w[o,c,i,j] * x[n, g*Cg + c, y*sh + i, x*sw + j] (padded x)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    w = w.astype(np.int64)
    if kh == 1 and kw == 1:  # pointwise / dense: a GEMM over channels, no window copies
        xs = x[:, :, ::sh, ::sw]
        ho, wo = xs.shape[2], xs.shape[3]
        cols = xs.reshape(n, c, ho * wo)
    else:
        win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # N,C,Ho,Wo,kh,kw
        ho, wo = win.shape[2], win.shape[3]
        if groups == c and cg == 1 and o == c:  # depthwise: a sum over kh*kw taps per channel
            acc = np.zeros((n, c, ho, wo), dtype=np.int64)
            for i in range(kh):
                for j in range(kw):
                    acc += win[..., i, j] * w[:, 0, i, j][None, :, None, None]
            return acc
        cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)
    og = o // groups
    k = cg * kh * kw
    acc = np.empty((n, o, ho * wo), dtype=np.int64)
    for g in range(groups):
        acc[:, g * og:(g + 1) * og] = int_matmul(w[g * og:(g + 1) * og].reshape(og, k),
                                                 cols[:, g * k:(g + 1) * k])
    return acc.reshape(n, o, ho, wo)


def _ch(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)[None, :, None, None]


def conv(node: Node, x: np.ndarray, z_in: np.ndarray, z_out: np.ndarray) -> np.ndarray:
    """Conv / depthwise / dense with the zero-point-corrected bias and fused requantization."""
    a = node.arrays
    xp = pad_with_zero_points(x, node.attrs["pad"], z_in)
    stride, groups = node.attrs["stride"], node.attrs["groups"]
    w = a["weight"].astype(np.int64)
    if node.attrs.get("mode", "int") == "ternary":
        acc_p = conv_sum(xp, (w == 1).astype(np.int64), stride, groups)
        acc_n = conv_sum(xp, (w == -1).astype(np.int64), stride, groups)
        p = (acc_p + _ch(a["bias"])) * _ch(a["mult"]) - (acc_n + _ch(a["bias_n"])) * _ch(a["mult_n"])
        return requantize_product(p, _ch(a["shift"]), _ch(z_out), _ch(a["lo"]), _ch(a["hi"]))
    acc = conv_sum(xp, w, stride, groups)
    return requantize(acc + _ch(a["bias"]), _ch(a["mult"]), _ch(a["shift"]), _ch(z_out),
                      _ch(a["lo"]), _ch(a["hi"]))


def add(node: Node, x1: np.ndarray, z1: np.ndarray, x2: np.ndarray, z2: np.ndarray,
        z_out: np.ndarray) -> np.ndarray:
    """Residual add: clamp(z3 + rshift((q1-z1)*m1 + (q2-z2)*m2, n), lo, hi)."""
    a = node.arrays
    p = (x1 - _ch(z1)) * _ch(a["mult_a"]) + (x2 - _ch(z2)) * _ch(a["mult_b"])
    return requantize_product(p, _ch(a["shift"]), _ch(z_out), _ch(a["lo"]), _ch(a["hi"]))


def mul(node: Node, x1: np.ndarray, z1: np.ndarray, x2: np.ndarray, z2: np.ndarray,
        z_out: np.ndarray) -> np.ndarray:
    """Gating multiply (x2 is N x C x 1 x 1): clamp(z3 + rshift((q1-z1)*(q2-z2)*m, n), lo, hi)."""
    a = node.arrays
    return requantize((x1 - _ch(z1)) * (x2 - _ch(z2)), _ch(a["mult"]), _ch(a["shift"]),
                      _ch(z_out), _ch(a["lo"]), _ch(a["hi"]))


def gap(node: Node, x: np.ndarray, z_in: np.ndarray, z_out: np.ndarray) -> np.ndarray:
    """Global average pool: clamp(z + rshift(sum_hw(q - z_in) * m, n), lo, hi), N x C x 1 x 1."""
    a = node.arrays
    s = (x - _ch(z_in)).sum(axis=(2, 3), keepdims=True)
    return requantize(s, _ch(a["mult"]), _ch(a["shift"]), _ch(z_out), _ch(a["lo"]), _ch(a["hi"]))


def lut(node: Node, x: np.ndarray) -> np.ndarray:
    """Per-channel table lookup T[c][q_in] -> q_out on 8-bit codes."""
    table = node.arrays["table"].astype(np.int64)
    c = table.shape[0]
    idx = x + (np.arange(c, dtype=np.int64) * table.shape[1])[None, :, None, None]
    return table.reshape(-1)[idx]


def _windows(x: np.ndarray, attrs: dict) -> np.ndarray:
    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def maxpool(node: Node, x: np.ndarray) -> np.ndarray:
    """Max of codes over windows; padding holds code 0, the smallest, so it never wins while
    every window keeps one real cell (pad < kernel is validated)."""
    xp = pad_with_zero_points(x, node.attrs["pad"], np.zeros(x.shape[1], np.int64))
    return _windows(xp, node.attrs).max(axis=(4, 5))


def avgpool(node: Node, x: np.ndarray, z_in: np.ndarray, z_out: np.ndarray) -> np.ndarray:
    """Average pool: clamp(z + rshift(sum_window(q - z_in) * m, n), lo, hi); padding holds the
    zero point (real 0) and counts in the divisor (m / 2^n ~= s_in / (s_out * kh * kw))."""
    a = node.arrays
    xp = pad_with_zero_points(x, node.attrs["pad"], z_in)
    s = _windows(xp - _ch(z_in), node.attrs).sum(axis=(4, 5))
    return requantize(s, _ch(a["mult"]), _ch(a["shift"]), _ch(z_out), _ch(a["lo"]), _ch(a["hi"]))
