"""The numba_cuda ops (`NumbaCudaOps`): one CUDA thread per output element, int32 codes on the
device between ops, per-node parameters uploaded once. The requantization is quant.requant's
`requant_one` / `requantize_product_one` compiled as device functions (the one definition).
Padding positions read the input's zero point (real zero), as docs/SEMANTICS.md says; maxpool
pads with code 0."""

from __future__ import annotations

import numpy as np
from numba import cuda

from ...ir.graph import Graph, Node
from ...quant.requant import requantize_product_one, requant_one
from ..ops import Ops

_requant = cuda.jit(device=True)(requant_one)
_requantize_product = cuda.jit(device=True)(requantize_product_one)
THREADS = 128


def _dev(a):
    """Device array as is; host arrays copied over as int32 codes."""
    return cuda.to_device(np.ascontiguousarray(a, np.int32)) if isinstance(a, np.ndarray) else a


@cuda.jit(device=True)
def _nchw(i, shape):
    """Flat output index -> (n, c, y, x) of an NCHW tensor of `shape`."""
    w, h, c = shape[3], shape[2], shape[1]
    return i // (w * h * c), (i // (w * h)) % c, (i // w) % h, i % w


def _grid(n: int) -> tuple[int, int]:
    return (max(1, (n + THREADS - 1) // THREADS), THREADS)


@cuda.jit
def _conv_k(x, w, zin, groups, sh, sw, pt, pl, ternary, bias, bias_n, mult, mult_n, shift,
            z, lo, hi, out):
    i = cuda.grid(1)
    if i >= out.size:
        return
    b, oc, y, xx = _nchw(i, out.shape)
    o = out.shape[1]
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    h, wd = x.shape[2], x.shape[3]
    c0 = (oc // (o // groups)) * cg
    acc = 0
    acc_n = 0
    for ci in range(cg):
        c = c0 + ci
        for ki in range(kh):
            iy = y * sh + ki - pt
            for kj in range(kw):
                ix = xx * sw + kj - pl
                if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                    v = zin[c]
                else:
                    v = x[b, c, iy, ix]
                wv = w[oc, ci, ki, kj]
                if ternary and wv < 0:
                    acc_n += v
                else:
                    acc += wv * v
    if ternary:
        p = (acc + bias[oc]) * mult[oc] - (acc_n + bias_n[oc]) * mult_n[oc]
        out[b, oc, y, xx] = _requantize_product(p, shift[oc], z[oc], lo[oc], hi[oc])
    else:
        out[b, oc, y, xx] = _requant(acc, bias[oc], mult[oc], shift[oc], z[oc], lo[oc], hi[oc])


@cuda.jit
def _add_k(x1, z1, x2, z2, ma, mb, shift, z, lo, hi, out):
    i = cuda.grid(1)
    if i >= out.size:
        return
    b, ch, y, xx = _nchw(i, out.shape)
    p = (np.int64(x1[b, ch, y, xx]) - z1[ch]) * ma[ch] + (np.int64(x2[b, ch, y, xx]) - z2[ch]) * mb[ch]
    out[b, ch, y, xx] = _requantize_product(p, shift[ch], z[ch], lo[ch], hi[ch])


@cuda.jit
def _mul_k(x1, z1, x2, z2, m, shift, z, lo, hi, out):
    i = cuda.grid(1)
    if i >= out.size:
        return
    b, ch, y, xx = _nchw(i, out.shape)
    v = (np.int64(x1[b, ch, y, xx]) - z1[ch]) * (np.int64(x2[b, ch, 0, 0]) - z2[ch])
    out[b, ch, y, xx] = _requant(v, 0, m[ch], shift[ch], z[ch], lo[ch], hi[ch])


@cuda.jit
def _gap_k(x, zin, m, shift, z, lo, hi, out):
    i = cuda.grid(1)
    nb, c = out.shape[0], out.shape[1]
    if i >= nb * c:
        return
    ch = i % c
    b = i // c
    s = 0
    for y in range(x.shape[2]):
        for xx in range(x.shape[3]):
            s += np.int64(x[b, ch, y, xx]) - zin[ch]
    out[b, ch, 0, 0] = _requant(s, 0, m[ch], shift[ch], z[ch], lo[ch], hi[ch])


@cuda.jit
def _lut_k(x, table, out):
    i = cuda.grid(1)
    if i >= out.size:
        return
    b, ch, y, xx = _nchw(i, out.shape)
    out[b, ch, y, xx] = table[ch, x[b, ch, y, xx]]


@cuda.jit
def _pool_k(x, zin, is_max, kh, kw, sh, sw, pt, pl, m, shift, z, lo, hi, out):
    i = cuda.grid(1)
    if i >= out.size:
        return
    b, ch, y, xx = _nchw(i, out.shape)
    best = 0
    s = 0
    for ki in range(kh):
        iy = y * sh + ki - pt
        for kj in range(kw):
            ix = xx * sw + kj - pl
            inside = iy >= 0 and iy < x.shape[2] and ix >= 0 and ix < x.shape[3]
            if is_max:
                v = x[b, ch, iy, ix] if inside else 0
                if v > best:
                    best = v
            elif inside:
                s += np.int64(x[b, ch, iy, ix]) - zin[ch]
    if is_max:
        out[b, ch, y, xx] = best
    else:
        out[b, ch, y, xx] = _requant(s, 0, m[ch], shift[ch], z[ch], lo[ch], hi[ch])


class NumbaCudaOps(Ops):
    name = "numba-cuda"

    def __init__(self, graph: Graph):
        super().__init__(graph)
        self._cache: dict[Node, dict] = {}  # per node: its parameters on the device

    def _params(self, node: Node, z_out: np.ndarray, z_in: np.ndarray | None = None) -> dict:
        if node not in self._cache:
            d = {k: cuda.to_device(np.ascontiguousarray(v, np.int64))
                 for k, v in node.arrays.items() if k != "table"}
            if "table" in node.arrays:
                d["table"] = cuda.to_device(np.ascontiguousarray(node.arrays["table"], np.int32))
            d["z_out"] = cuda.to_device(np.ascontiguousarray(z_out, np.int64))
            if z_in is not None:
                d["z_in"] = cuda.to_device(np.ascontiguousarray(z_in, np.int64))
            self._cache[node] = d
        return self._cache[node]

    def conv(self, node: Node, x, z_in: np.ndarray, z_out: np.ndarray):
        p = self._params(node, z_out, z_in)
        if "w32" not in p:
            p["w32"] = cuda.to_device(np.ascontiguousarray(node.arrays["weight"], np.int32))
        x = _dev(x)
        o, _, kh, kw = node.arrays["weight"].shape
        sh, sw = node.attrs["stride"]
        t, bo, l, r = node.attrs["pad"]
        n, _, h, wd = x.shape
        ho, wo = (h + t + bo - kh) // sh + 1, (wd + l + r - kw) // sw + 1
        out = cuda.device_array((n, o, ho, wo), np.int32)
        tern = node.attrs.get("mode", "int") == "ternary"
        g, th = _grid(out.size)
        _conv_k[g, th](x, p["w32"], p["z_in"], node.attrs["groups"], sh, sw, t, l, tern,
                       p["bias"], p["bias_n"] if tern else p["bias"], p["mult"],
                       p["mult_n"] if tern else p["mult"], p["shift"], p["z_out"], p["lo"], p["hi"],
                       out)
        return out

    def _binary(self, kernel, keys: tuple[str, ...], node: Node, x1, z1: np.ndarray, x2,
                z2: np.ndarray, z_out: np.ndarray):
        """Launch a two-input kernel (add, mul): the inputs' zero points are uploaded once per
        node with its other parameters."""
        p = self._params(node, z_out)
        if "z1" not in p:
            p["z1"] = cuda.to_device(np.ascontiguousarray(z1, np.int64))
            p["z2"] = cuda.to_device(np.ascontiguousarray(z2, np.int64))
        x1, x2 = _dev(x1), _dev(x2)
        out = cuda.device_array(x1.shape, np.int32)
        g, th = _grid(out.size)
        kernel[g, th](x1, p["z1"], x2, p["z2"], *(p[k] for k in keys), p["z_out"], p["lo"], p["hi"],
                      out)
        return out

    def add(self, node: Node, x1, z1: np.ndarray, x2, z2: np.ndarray, z_out: np.ndarray):
        return self._binary(_add_k, ("mult_a", "mult_b", "shift"), node, x1, z1, x2, z2,
                            z_out)

    def mul(self, node: Node, x1, z1: np.ndarray, x2, z2: np.ndarray, z_out: np.ndarray):
        return self._binary(_mul_k, ("mult", "shift"), node, x1, z1, x2, z2, z_out)

    def gap(self, node: Node, x, z_in: np.ndarray, z_out: np.ndarray):
        p = self._params(node, z_out, z_in)
        x = _dev(x)
        out = cuda.device_array((x.shape[0], x.shape[1], 1, 1), np.int32)
        g, th = _grid(out.size)
        _gap_k[g, th](x, p["z_in"], p["mult"], p["shift"], p["z_out"], p["lo"], p["hi"], out)
        return out

    def lut(self, node: Node, x):
        p = self._params(node, np.zeros(0))
        x = _dev(x)
        out = cuda.device_array(x.shape, np.int32)
        g, th = _grid(out.size)
        _lut_k[g, th](x, p["table"], out)
        return out

    def _pool(self, node: Node, x, z_in, z_out, is_max: bool):
        x = _dev(x)
        (kh, kw), (sh, sw), (t, bo, l, r) = (node.attrs["kernel"], node.attrs["stride"],
                                             node.attrs["pad"])
        n, c, h, w = x.shape
        out = cuda.device_array((n, c, (h + t + bo - kh) // sh + 1, (w + l + r - kw) // sw + 1),
                                np.int32)
        if is_max:
            one = cuda.to_device(np.zeros(c, np.int64))
            args = (one, one, one, one, one, one)
        else:
            p = self._params(node, z_out, z_in)
            args = (p["z_in"], p["mult"], p["shift"], p["z_out"], p["lo"], p["hi"])
        g, th = _grid(out.size)
        _pool_k[g, th](x, args[0], is_max, kh, kw, sh, sw, t, l, *args[1:], out)
        return out

    def maxpool(self, node: Node, x):
        return self._pool(node, x, None, None, True)

    def avgpool(self, node: Node, x, z_in: np.ndarray, z_out: np.ndarray):
        return self._pool(node, x, z_in, z_out, False)

    def to_host(self, x) -> np.ndarray:
        return x.copy_to_host() if hasattr(x, "copy_to_host") else np.asarray(x)
