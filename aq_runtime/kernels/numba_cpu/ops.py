"""The numba_cpu ops. Weights are unpacked int16 codes widened once per node to int32 and
cached; activations travel as int32 codes. Accumulators are int32, which the exporter's
overflow proof (checked again at load) makes exact; the requantization product is int64 with
the same `rshift` rounding as `aq_runtime.quant`."""

from __future__ import annotations

import weakref

import numpy as np
from numba import njit, prange

from ...ir.graph import Node
from ...quant.requant import requantize_product_one, requant_one
from .. import reference as _ref
from .. import choice
from . import bitserial

_cache: "weakref.WeakKeyDictionary[Node, tuple]" = weakref.WeakKeyDictionary()
_planes: "weakref.WeakKeyDictionary[Node, tuple]" = weakref.WeakKeyDictionary()


_requant = njit(inline="always", cache=True)(requant_one)  # the one definition, compiled
_requantize_product = njit(inline="always", cache=True)(requantize_product_one)


@njit(parallel=True, cache=True)
def _pointwise(x, w, bias, mult, shift, z, lo, hi, out):
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
def _pad(x, pt, pb, pl, pr, zin):
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
def _depthwise(xp, w, sh, sw, bias, mult, shift, z, lo, hi, out):
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
def _direct(xp, w, groups, sh, sw, bias, mult, shift, z, lo, hi, out):
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


def _params(node: Node, z_out: np.ndarray) -> tuple:
    """Widened, contiguous arrays of a conv node, prepared once and dropped with the node."""
    if node not in _cache:
        a = node.arrays
        i64 = lambda k: np.ascontiguousarray(a[k], dtype=np.int64)  # noqa: E731
        _cache[node] = (np.ascontiguousarray(a["weight"], dtype=np.int32), i64("bias"),
                        i64("mult"), i64("shift"), np.ascontiguousarray(z_out, dtype=np.int64),
                        i64("lo"), i64("hi"))
    return _cache[node]


def kernel_choice(node: Node) -> str:
    """The kernel this backend runs for a conv node: 'bitserial' or 'int8' for pointwise convs
    with small weight codes (whichever was faster when timed at plan time), 'int8' for other
    pointwise convs, 'depthwise' / 'direct' / 'ternary' otherwise."""
    o, cg, kh, kw = node.arrays["weight"].shape
    g = node.attrs["groups"]
    if node.attrs.get("mode", "int") == "ternary":
        return "ternary"
    if kh == kw == 1 and g == 1 and not any(node.attrs["pad"]):
        return choice.chosen("numba", node) or "int8"
    return "depthwise" if cg == 1 and g == o else "direct"


def conv(node: Node, x: np.ndarray, z_in: np.ndarray, z_out: np.ndarray) -> np.ndarray:
    if node.attrs.get("mode", "int") == "ternary":
        return _ref.conv(node, x, z_in, z_out).astype(np.int32)
    w, bias, mult, shift, z, lo, hi = _params(node, z_out)
    o, cg, kh, kw = w.shape
    sh, sw = node.attrs["stride"]
    groups = node.attrs["groups"]
    pad = node.attrs["pad"]
    n, c, h, wd = x.shape
    ho = (h + pad[0] + pad[1] - kh) // sh + 1
    wo = (wd + pad[2] + pad[3] - kw) // sw + 1
    if kh == 1 and kw == 1 and groups == 1 and not any(pad):
        xs = np.ascontiguousarray(x[:, :, ::sh, ::sw], dtype=np.int32).reshape(n, c, ho * wo)

        def int8():
            out = np.empty((n, o, ho * wo), dtype=np.int32)
            _pointwise(xs, w.reshape(o, c), bias, mult, shift, z, lo, hi, out)
            return out
        if not bitserial.eligible(w):
            return int8().reshape(n, o, ho, wo)
        if node not in _planes:
            _planes[node] = bitserial.weight_planes(w.reshape(o, c))
        planes, off = _planes[node]
        return choice.run_fastest("numba", node, xs.shape, {
            "int8": int8,
            "bitserial": lambda: bitserial.pointwise(xs, planes, off, bias, mult, shift, z, lo,
                                                     hi)}).reshape(n, o, ho, wo)
    xp = _pad(np.ascontiguousarray(x, dtype=np.int32), pad[0], pad[1], pad[2], pad[3],
              np.ascontiguousarray(z_in, dtype=np.int32))
    out = np.empty((n, o, ho, wo), dtype=np.int32)
    if groups == c and cg == 1 and o == c:
        _depthwise(xp, w.reshape(o, kh, kw), sh, sw, bias, mult, shift, z, lo, hi, out)
    else:
        _direct(xp, w, groups, sh, sw, bias, mult, shift, z, lo, hi, out)
    return out


@njit(parallel=True, cache=True)
def _add(x1, z1, x2, z2, ma, mb, shift, z, lo, hi, out):
    """Residual add of docs/SEMANTICS.md on int32 NCHW codes, one (image, channel) plane per
    task."""
    nb, c = x1.shape[0], x1.shape[1]
    for t in prange(nb * c):
        b = t // c
        ch = t % c
        a1, a2 = x1[b, ch].ravel(), x2[b, ch].ravel()
        o = out[b, ch].ravel()
        for k in range(a1.size):
            p = (np.int64(a1[k]) - z1[ch]) * ma[ch] + (np.int64(a2[k]) - z2[ch]) * mb[ch]
            o[k] = _requantize_product(p, shift[ch], z[ch], lo[ch], hi[ch])


def add(node, x1, z1, x2, z2, z_out):
    a = node.arrays
    x1 = np.ascontiguousarray(x1, dtype=np.int32)
    x2 = np.ascontiguousarray(x2, dtype=np.int32)
    out = np.empty_like(x1)
    i64 = lambda v: np.ascontiguousarray(v, dtype=np.int64)  # noqa: E731
    _add(x1, i64(z1), x2, i64(z2), i64(a["mult_a"]), i64(a["mult_b"]), i64(a["shift"]),
         i64(z_out), i64(a["lo"]), i64(a["hi"]), out)
    return out


def mul(node, x1, z1, x2, z2, z_out):
    return _ref.mul(node, x1, z1, x2, z2, z_out).astype(np.int32)


def gap(node, x, z_in, z_out):
    return _ref.gap(node, x, z_in, z_out).astype(np.int32)


def maxpool(node, x):
    return _ref.maxpool(node, x.astype(np.int64)).astype(np.int32)


def avgpool(node, x, z_in, z_out):
    return _ref.avgpool(node, x.astype(np.int64), z_in, z_out).astype(np.int32)


def lut(node, x):
    return _ref.lut(node, x.astype(np.int64)).astype(np.int32)

