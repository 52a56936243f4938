"""The tvm CPU backend: pointwise convs (1x1, one group, weight codes of at most 8 bits, not
ternary) run as the VNNI GEMM microkernel (kernels/tvm/gemm.py) with a Numba requantization
epilogue (quant.requant's `requant_one`); every other op is the numba_cpu kernel. Activations
are transposed once per pointwise layer to rows of uint8 codes (pixels x channels)."""

from __future__ import annotations

import weakref

import numpy as np
from numba import njit, prange

from ...export.ir import Node
from ...quant.requant import requant_one
from ..numba_cpu import ops as _nb
from ..numba_cpu.ops import add, avgpool, gap, lut, maxpool, mul  # noqa: F401
from .gemm import aligned_zeros, gemm_fn, pack_weights

_requant = njit(inline="always", cache=True)(requant_one)
_cache: "weakref.WeakKeyDictionary[Node, tuple]" = weakref.WeakKeyDictionary()


@njit(parallel=True, cache=True)
def _to_rows(x, a):
    """x (N, C, P) int32 codes in 0..255 -> a[n*P + p, c] uint8 (a pre-zeroed, padded)."""
    nb, c, p = x.shape
    for t in prange(nb * p):
        b = t // p
        q = t % p
        for ci in range(c):
            a[t, ci] = x[b, ci, q]


@njit(parallel=True, cache=True)
def _epilogue(cm, bias, mult, shift, z, lo, hi, out):
    """cm[n*P + p, o] int32 accumulators -> out (N, O, P) requantized codes."""
    nb, o, p = out.shape
    for t in prange(nb * o):
        b = t // o
        oc = t % o
        bi, mi, si, zi, li, hv = bias[oc], mult[oc], shift[oc], z[oc], lo[oc], hi[oc]
        for q in range(p):
            out[b, oc, q] = _requant(cm[b * p + q, oc], bi, mi, si, zi, li, hv)


def gemm_eligible(node: Node) -> bool:
    w = node.arrays["weight"]
    return (w.shape[2:] == (1, 1) and node.attrs["groups"] == 1 and not any(node.attrs["pad"])
            and node.attrs.get("mode", "int") == "int" and int(node.arrays["wbits"].max()) <= 8)


def prepare(node: Node, z_out: np.ndarray) -> tuple:
    """Packed int8 weights, the compiled kernel and the epilogue arrays of one node (cached)."""
    if node not in _cache:
        a = node.arrays
        w = a["weight"].reshape(a["weight"].shape[0], -1)
        packed = pack_weights(w)
        kpad, npad = packed.shape[1] * 4, packed.shape[0] * 64
        i64 = lambda k: np.ascontiguousarray(a[k], dtype=np.int64)  # noqa: E731
        _cache[node] = (packed, gemm_fn(kpad, npad), kpad, npad, i64("bias"), i64("mult"),
                        i64("shift"), np.ascontiguousarray(z_out, dtype=np.int64), i64("lo"),
                        i64("hi"))
    return _cache[node]


def conv(node: Node, x: np.ndarray, z_in: np.ndarray, z_out: np.ndarray) -> np.ndarray:
    if not gemm_eligible(node):
        return _nb.conv(node, x, z_in, z_out)
    packed, fn, kpad, npad, bias, mult, shift, z, lo, hi = prepare(node, z_out)
    sh, sw = node.attrs["stride"]
    xs = x[:, :, ::sh, ::sw] if (sh, sw) != (1, 1) else x
    n, c, ho, wo = xs.shape
    p = ho * wo
    m = n * p
    a = aligned_zeros((m + (-m % 4), kpad), np.uint8)
    _to_rows(np.ascontiguousarray(xs, dtype=np.int32).reshape(n, c, p), a)
    cm = aligned_zeros((a.shape[0], npad), np.int32)
    fn(a, packed, cm)
    o = node.arrays["weight"].shape[0]
    out = np.empty((n, o, p), np.int32)
    _epilogue(cm, bias, mult, shift, z, lo, hi, out)
    return out.reshape(n, o, ho, wo)
