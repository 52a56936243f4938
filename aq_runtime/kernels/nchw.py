"""The NCHW Numba conv kernels, int32 codes in and out, with the requantization of
docs/SEMANTICS.md fused in each epilogue: `pointwise` (1x1 convs as a GEMM), `depthwise`,
`direct` (any grouped conv) on a copy padded with the input's zero points (`pad`), and `conv`,
which prepares a node's arrays once (`conv_arrays`) and picks among them. The numba backend
runs every conv on them (ternary convs on the reference); the tvm backend runs the convs its
own kernels do not take (grouped convs other than depthwise, int32 inputs). Accumulators are
int32, which the exporter's overflow proof (checked again at load) makes exact; the
requantization product is int64 with the same `rshift` rounding as `aq_runtime.quant`."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..ir.graph import Node
from ..quant.requant import requant_one
from . import reference

_requant = njit(inline="always", cache=True)(requant_one)  # the one definition, compiled


@njit(parallel=True, cache=True)
def pointwise(x, w, bias, mult, shift, z, lo, hi, out):
    """x (N, C, P) int32, w (O, C) int32 -> out (N, O, P) int32: per output channel, a row of
    int32 accumulators updated by every input row (vectorizes along P)."""
    nb, c, p = x.shape
    o = w.shape[0]
    for t in prange(nb * o):
        b = t // o
        oc = t % o
        acc = np.zeros(p, dtype=np.int32)
        for ci in range(c):
            wv = w[oc, ci]
            if wv != 0:
                for k in range(p):
                    acc[k] += wv * x[b, ci, k]
        bi, mi, si, zi, li, hv = bias[oc], mult[oc], shift[oc], z[oc], lo[oc], hi[oc]
        for k in range(p):
            out[b, oc, k] = _requant(acc[k], bi, mi, si, zi, li, hv)


@njit(parallel=True, cache=True)
def pad(x, pt, pb, pl, pr, zin):
    """Pad NCHW codes with each channel's zero point (real zero), as int32: borders filled,
    interior copied row by row."""
    n, c, h, w = x.shape
    hp, wp = h + pt + pb, w + pl + pr
    out = np.empty((n, c, hp, wp), dtype=np.int32)
    for t in prange(n * c):
        b = t // c
        ch = t % c
        zv = zin[ch]
        for y in range(hp):
            orow = out[b, ch, y]
            if y < pt or y >= pt + h:
                orow[:] = zv
                continue
            irow = x[b, ch, y - pt]
            for xx in range(pl):
                orow[xx] = zv
            for xx in range(w):
                orow[pl + xx] = irow[xx]
            for xx in range(pl + w, wp):
                orow[xx] = zv
    return out


@njit(parallel=True, cache=True)
def depthwise(xp, w, sh, sw, bias, mult, shift, z, lo, hi, out):
    """xp (N, C, Hp, Wp) padded int32, w (C, kh, kw) int32 -> out (N, C, Ho, Wo). One output
    row at a time in a small accumulator. At stride > 1 each channel's plane is first split
    once into its column phases (columns s, s + sw, ...), so every tap reads contiguous
    memory and the inner loop vectorizes."""
    nb, c, hp, wp = xp.shape
    kh, kw = w.shape[1], w.shape[2]
    ho, wo = out.shape[2], out.shape[3]
    wq = (wp + sw - 1) // sw
    for t in prange(nb * c):
        b = t // c
        ch = t % c
        bi, mi, si, zi, li, hv = bias[ch], mult[ch], shift[ch], z[ch], lo[ch], hi[ch]
        acc = np.empty(wo, dtype=np.int32)
        if sw == 1:
            for y in range(ho):
                acc[:] = 0
                for i in range(kh):
                    row = xp[b, ch, y * sh + i]
                    for j in range(kw):
                        wv = w[ch, i, j]
                        for xx in range(wo):
                            acc[xx] += wv * row[xx + j]
                for xx in range(wo):
                    out[b, ch, y, xx] = _requant(acc[xx], bi, mi, si, zi, li, hv)
            continue
        ph = np.zeros((sw, hp, wq), dtype=np.int32)
        for r in range(hp):
            for s in range(sw):
                n_s = (wp - s + sw - 1) // sw
                for col in range(n_s):
                    ph[s, r, col] = xp[b, ch, r, col * sw + s]
        for y in range(ho):
            acc[:] = 0
            for i in range(kh):
                rr = y * sh + i
                for j in range(kw):
                    wv = w[ch, i, j]
                    prow = ph[j % sw, rr]
                    off = j // sw
                    for xx in range(wo):
                        acc[xx] += wv * prow[xx + off]
            for xx in range(wo):
                out[b, ch, y, xx] = _requant(acc[xx], bi, mi, si, zi, li, hv)


@njit(parallel=True, cache=True)
def direct(xp, w, groups, sh, sw, bias, mult, shift, z, lo, hi, out):
    """General grouped conv: xp (N, C, Hp, Wp) padded, w (O, C/g, kh, kw) -> out (N, O, Ho, Wo)."""
    nb = xp.shape[0]
    o, cg, kh, kw = w.shape
    og = o // groups
    ho, wo = out.shape[2], out.shape[3]
    for t in prange(nb * o):
        b = t // o
        oc = t % o
        c0 = (oc // og) * cg
        acc = np.zeros((ho, wo), dtype=np.int32)
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    wv = w[oc, ci, i, j]
                    if wv == 0:
                        continue
                    for y in range(ho):
                        row = y * sh + i
                        for xx in range(wo):
                            acc[y, xx] += wv * xp[b, c0 + ci, row, xx * sw + j]
        bi, mi, si, zi, li, hv = bias[oc], mult[oc], shift[oc], z[oc], lo[oc], hi[oc]
        for y in range(ho):
            for xx in range(wo):
                out[b, oc, y, xx] = _requant(acc[y, xx], bi, mi, si, zi, li, hv)


def conv_arrays(node: Node, z_out: np.ndarray) -> tuple:
    """A conv node's arrays, widened and contiguous, in the kernels' argument order: weight
    (int32), bias, mult, shift, z (the output's zero points), lo, hi (int64)."""
    a = node.arrays
    i64 = lambda k: np.ascontiguousarray(a[k], dtype=np.int64)  # noqa: E731
    return (np.ascontiguousarray(a["weight"], dtype=np.int32), i64("bias"), i64("mult"),
            i64("shift"), np.ascontiguousarray(z_out, dtype=np.int64), i64("lo"), i64("hi"))


def is_pointwise(node: Node) -> bool:
    """A 1x1, one-group conv without padding (any stride): a GEMM on the input rows."""
    _, _, kh, kw = node.arrays["weight"].shape
    return kh == kw == 1 and node.attrs["groups"] == 1 and not any(node.attrs["pad"])


def is_depthwise(node: Node) -> bool:
    """One input channel per group and one output channel per input channel."""
    o, cg, _, _ = node.arrays["weight"].shape
    return cg == 1 and node.attrs["groups"] == o


def out_hw(node: Node, h: int, w: int) -> tuple[int, int]:
    _, _, kh, kw = node.arrays["weight"].shape
    (sh, sw), p = node.attrs["stride"], node.attrs["pad"]
    return (h + p[0] + p[1] - kh) // sh + 1, (w + p[2] + p[3] - kw) // sw + 1


def pointwise_input(node: Node, x: np.ndarray) -> np.ndarray:
    """A pointwise conv's input (N, C, H, W) -> the strided rows it reads, int32 (N, C, P)."""
    sh, sw = node.attrs["stride"]
    n, c, h, w = x.shape
    ho, wo = out_hw(node, h, w)
    return np.ascontiguousarray(x[:, :, ::sh, ::sw], dtype=np.int32).reshape(n, c, ho * wo)


def pointwise_conv(xs: np.ndarray, arrays: tuple) -> np.ndarray:
    """`pointwise` on rows from `pointwise_input` -> (N, O, P) int32."""
    w = arrays[0]
    o = w.shape[0]
    out = np.empty((xs.shape[0], o, xs.shape[2]), dtype=np.int32)
    pointwise(xs, w.reshape(o, -1), *arrays[1:], out)
    return out


def conv(node: Node, x: np.ndarray, z_in: np.ndarray, z_out: np.ndarray,
         arrays: tuple) -> np.ndarray:
    """One conv node on NCHW codes -> int32 NCHW codes: ternary convs on the reference,
    pointwise ones on `pointwise`, depthwise on `depthwise`, the rest on `direct`."""
    if node.attrs.get("mode", "int") == "ternary":
        return reference.conv(node, x, z_in, z_out).astype(np.int32)
    w, bias, mult, shift, z, lo, hi = arrays
    o, _, kh, kw = w.shape
    n, _, h, wd = x.shape
    ho, wo = out_hw(node, h, wd)
    if is_pointwise(node):
        return pointwise_conv(pointwise_input(node, x), arrays).reshape(n, o, ho, wo)
    (sh, sw), p, groups = node.attrs["stride"], node.attrs["pad"], node.attrs["groups"]
    xp = pad(np.ascontiguousarray(x, dtype=np.int32), p[0], p[1], p[2], p[3],
             np.ascontiguousarray(z_in, dtype=np.int32))
    out = np.empty((n, o, ho, wo), dtype=np.int32)
    if is_depthwise(node):
        depthwise(xp, w.reshape(o, kh, kw), sh, sw, bias, mult, shift, z, lo, hi, out)
    else:
        direct(xp, w, groups, sh, sw, bias, mult, shift, z, lo, hi, out)
    return out
