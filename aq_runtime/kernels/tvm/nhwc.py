"""Activations of the tvm CPU backend: NHWC rows of codes, `Act`, and the Numba kernels that work
on them. A tensor of N x H x W pixels and C channels is one 64-byte aligned (M4, C16) array,
M4 = N*H*W and C16 = C rounded up to multiples of 16 (whole vectors), row = pixel: uint8 for
activation codes (0..255, docs/SEMANTICS.md), int32 for wider outputs (logits). That is already the
A operand of the VNNI GEMM (gemm.py) for a pointwise conv, so no transposes between layers; the
rows beyond M and the columns beyond C are never read as values (the packed weights are zero
there). The Numba kernels here are the int64 paths of the backend (epilogues after int32 GEMM
sums, depthwise, add, gating, pooling, tables), taken where the TIR kernels' float64
requantization is not proved exact; every requantization is quant.requant's `requant_one` /
`requantize_product_one`, compiled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ...quant.requant import requantize_product_one, requant_one
from .buffers import aligned_empty

_requant = njit(inline="always", cache=True)(requant_one)
_requantize_product = njit(inline="always", cache=True)(requantize_product_one)
ROWS = 64  # rows per parallel task of the row-wise kernels
CPAD = 16  # channels padded to whole 16-lane vectors


@dataclass
class Act:
    data: np.ndarray  # (M4, C16) uint8 or int32, 64-byte aligned (the images: (M4, C))
    n: int
    h: int
    w: int
    c: int

    @property
    def m(self) -> int:
        return self.n * self.h * self.w


def width(c: int) -> int:
    """The row width of C channels: C rounded up to whole 16-lane vectors."""
    return c + (-c % CPAD)


def new_act(n: int, h: int, w: int, c: int, dtype) -> Act:
    m = n * h * w
    return Act(aligned_empty((m + (-m % 4), width(c)), dtype), n, h, w, c)


def from_nchw(x: np.ndarray, dtype) -> Act:
    n, c, h, w = x.shape
    a = new_act(n, h, w, c, dtype)
    a.data[:a.m, :c] = np.asarray(x).transpose(0, 2, 3, 1).reshape(a.m, c)
    return a


def to_nchw(a: Act) -> np.ndarray:
    """int32 (N, C, H, W) codes."""
    return np.ascontiguousarray(a.data[:a.m, :a.c].reshape(a.n, a.h, a.w, a.c)
                                .transpose(0, 3, 1, 2), dtype=np.int32)


def out_dtype(lo: np.ndarray, hi: np.ndarray):
    """uint8 when every code of the output fits it, else int32 (logits)."""
    return np.uint8 if lo.min() >= 0 and hi.max() <= 255 else np.int32


@njit(parallel=True, cache=True)
def epilogue(cm, m, o, ndig, bias, mult, shift, z, lo, hi, out):
    """GEMM sums cm (M4, >= ndig*o) int32 -> requantized out[:m, :o]. With weights in base-128
    digits (ndig 2 or 3), column block j holds the sums of digit j: acc = sum_j 128^j cm[., j*o+oc]."""
    for t in prange((m + ROWS - 1) // ROWS):
        for r in range(t * ROWS, min(m, t * ROWS + ROWS)):
            if ndig == 1:
                for oc in range(o):
                    out[r, oc] = _requant(cm[r, oc], bias[oc], mult[oc], shift[oc], z[oc],
                                          lo[oc], hi[oc])
            else:
                for oc in range(o):
                    acc = np.int64(cm[r, oc]) + np.int64(128) * cm[r, o + oc]
                    if ndig == 3:
                        acc += np.int64(16384) * cm[r, 2 * o + oc]
                    out[r, oc] = _requant(acc, bias[oc], mult[oc], shift[oc], z[oc], lo[oc],
                                          hi[oc])


@njit(parallel=True, cache=True)
def pointwise_rows(x, m, wt, bias, mult, shift, z, lo, hi, out):
    """out[r, :o] = requant(sum_k x[r, k] * wt[k, :]) with int32 weights wt (K, O) of any
    width: four rows at a time (each weight vector loaded once for four rows of int32
    accumulators), updated an output-channel vector at a time: no base-128 digits, no int32
    matrix through memory. Rows come in fours (the row count is padded to a multiple of 4; the
    padding rows compute garbage nobody reads)."""
    k, o = wt.shape
    m4 = m + (-m % 4)
    for t in prange((m4 + ROWS - 1) // ROWS):
        acc = np.empty((4, o), np.int32)
        for rb in range(t * ROWS, min(m4, t * ROWS + ROWS), 4):
            acc[:, :] = 0
            for kk in range(k):
                x0, x1 = np.int32(x[rb, kk]), np.int32(x[rb + 1, kk])
                x2, x3 = np.int32(x[rb + 2, kk]), np.int32(x[rb + 3, kk])
                for oc in range(o):
                    wv = wt[kk, oc]
                    acc[0, oc] += x0 * wv
                    acc[1, oc] += x1 * wv
                    acc[2, oc] += x2 * wv
                    acc[3, oc] += x3 * wv
            for i in range(4):
                for oc in range(o):
                    out[rb + i, oc] = _requant(acc[i, oc], bias[oc], mult[oc], shift[oc], z[oc],
                                               lo[oc], hi[oc])


@njit(parallel=True, cache=True)
def epilogue_ternary(cm, m, o, bias, bias_n, mult, mult_n, shift, z, lo, hi, out):
    """Ternary conv: column oc sums the inputs under +1 weights, column o + oc under -1."""
    for t in prange((m + ROWS - 1) // ROWS):
        for r in range(t * ROWS, min(m, t * ROWS + ROWS)):
            for oc in range(o):
                p = ((np.int64(cm[r, oc]) + bias[oc]) * mult[oc]
                     - (np.int64(cm[r, o + oc]) + bias_n[oc]) * mult_n[oc])
                out[r, oc] = _requantize_product(p, shift[oc], z[oc], lo[oc], hi[oc])


@njit(parallel=True, cache=True)
def depthwise(x, n, h, w, c, wt, wz, sh, sw, pt, pl, ho, wo, bias, mult, shift, z, lo, hi, out):
    """Depthwise conv on rows: wt (kh, kw, c) int32 weights, wz = wt * zin (a padded tap's
    contribution). One output row per task, int32 accumulators (Wo, c); for each tap the output
    columns whose input lies inside the image form one range, so the inner loops run along the
    channels without bounds checks."""
    kh, kw = wt.shape[0], wt.shape[1]
    for t in prange(n * ho):
        b = t // ho
        y = t % ho
        acc = np.zeros((wo, c), np.int32)
        for i in range(kh):
            iy = y * sh + i - pt
            inside_row = 0 <= iy < h
            for j in range(kw):
                x0, x1 = 0, 0
                if inside_row:  # xx*sw + j - pl in [0, w)
                    x0 = min(wo, max(0, (pl - j + sw - 1) // sw))
                    x1 = max(x0, min(wo, (w - 1 - j + pl) // sw + 1))
                for xx in range(x0):
                    for ch in range(c):
                        acc[xx, ch] += wz[i, j, ch]
                for xx in range(x1, wo):
                    for ch in range(c):
                        acc[xx, ch] += wz[i, j, ch]
                base = (b * h + iy) * w + j - pl
                for xx in range(x0, x1):
                    src = base + xx * sw
                    for ch in range(c):
                        acc[xx, ch] += wt[i, j, ch] * np.int32(x[src, ch])
        for xx in range(wo):
            r = t * wo + xx
            for ch in range(c):
                out[r, ch] = _requant(acc[xx, ch], bias[ch], mult[ch], shift[ch], z[ch], lo[ch],
                                      hi[ch])


@njit(parallel=True, cache=True)
def add(x1, z1, x2, z2, ma, mb, shift, z, lo, hi, m, c, out):
    for t in prange((m + ROWS - 1) // ROWS):
        for r in range(t * ROWS, min(m, t * ROWS + ROWS)):
            for ch in range(c):
                p = ((np.int64(x1[r, ch]) - z1[ch]) * ma[ch]
                     + (np.int64(x2[r, ch]) - z2[ch]) * mb[ch])
                out[r, ch] = _requantize_product(p, shift[ch], z[ch], lo[ch], hi[ch])


@njit(parallel=True, cache=True)
def mul(x1, z1, x2, z2, mult, shift, z, lo, hi, n, p, c, out):
    """Gating: x2 holds one row per image (N x C x 1 x 1)."""
    for t in prange(n):
        for r in range(t * p, t * p + p):
            for ch in range(c):
                v = (np.int64(x1[r, ch]) - z1[ch]) * (np.int64(x2[t, ch]) - z2[ch])
                out[r, ch] = _requant(v, 0, mult[ch], shift[ch], z[ch], lo[ch], hi[ch])


@njit(parallel=True, cache=True)
def gap(x, zin, mult, shift, z, lo, hi, n, p, c, out):
    for t in prange(n):
        s = np.zeros(c, np.int64)
        for r in range(t * p, t * p + p):
            for ch in range(c):
                s[ch] += x[r, ch]
        for ch in range(c):
            out[t, ch] = _requant(s[ch] - zin[ch] * p, 0, mult[ch], shift[ch], z[ch], lo[ch],
                                  hi[ch])


@njit(parallel=True, cache=True)
def lut(x, table, m, c, out):
    for t in prange((m + ROWS - 1) // ROWS):
        for r in range(t * ROWS, min(m, t * ROWS + ROWS)):
            for ch in range(c):
                out[r, ch] = table[ch, x[r, ch]]
