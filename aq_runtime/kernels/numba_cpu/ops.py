"""The numba backend's ops (`NumbaOps`): every conv on the NCHW Numba kernels of
`kernels.nchw` (their arrays widened once per node), and pointwise convs with 1- to 3-bit weight
codes also on the bit-serial kernel (bitserial.py), whichever was faster when timed at plan
time; residual adds on a Numba kernel; gating, pooling and tables on the reference functions
(cheap, already exact). Activations travel as int32 NCHW codes."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...ir.graph import Graph, Node
from ...quant.requant import requantize_product_one
from .. import nchw
from ..choice import Chooser
from ..ops import Ops
from . import bitserial

_requantize_product = njit(inline="always", cache=True)(requantize_product_one)


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


class NumbaOps(Ops):
    name = "numba"

    def __init__(self, graph: Graph):
        super().__init__(graph)
        self.choice = Chooser("numba")
        self._arrays: dict[Node, tuple] = {}  # conv node -> nchw.conv_arrays
        self._planes: dict[Node, tuple] = {}  # pointwise node -> bit-planes of its weights

    def _conv_arrays(self, node: Node, z_out: np.ndarray) -> tuple:
        if node not in self._arrays:
            self._arrays[node] = nchw.conv_arrays(node, z_out)
        return self._arrays[node]

    def kernel_choice(self, node: Node) -> str:
        """The kernel this backend runs for a conv node: 'bitserial' or 'int8' for pointwise
        convs with small weight codes (whichever was faster when timed at plan time), 'int8'
        for other pointwise convs, 'depthwise' / 'direct' / 'ternary' otherwise."""
        if node.attrs.get("mode", "int") == "ternary":
            return "ternary"
        if nchw.is_pointwise(node):
            return self.choice.chosen(node) or "int8"
        return "depthwise" if nchw.is_depthwise(node) else "direct"

    def conv(self, node: Node, x: np.ndarray, z_in: np.ndarray, z_out: np.ndarray
             ) -> np.ndarray:
        arrays = self._conv_arrays(node, z_out)
        w = arrays[0]
        ternary = node.attrs.get("mode", "int") == "ternary"  # nchw.conv runs the reference
        if ternary or not (nchw.is_pointwise(node) and bitserial.eligible(w)):
            return nchw.conv(node, x, z_in, z_out, arrays)
        o = w.shape[0]
        n, _, h, wd = x.shape
        ho, wo = nchw.out_hw(node, h, wd)
        xs = nchw.pointwise_input(node, x)
        if node not in self._planes:
            self._planes[node] = bitserial.weight_planes(w.reshape(o, -1))
        planes, off = self._planes[node]
        return self.choice.run_fastest(node, xs.shape, {
            "int8": lambda: nchw.pointwise_conv(xs, arrays),
            "bitserial": lambda: bitserial.pointwise(xs, planes, off, *arrays[1:])
        }).reshape(n, o, ho, wo)

    def add(self, node, x1, z1, x2, z2, z_out):
        a = node.arrays
        x1 = np.ascontiguousarray(x1, dtype=np.int32)
        x2 = np.ascontiguousarray(x2, dtype=np.int32)
        out = np.empty_like(x1)
        i64 = lambda v: np.ascontiguousarray(v, dtype=np.int64)  # noqa: E731
        _add(x1, i64(z1), x2, i64(z2), i64(a["mult_a"]), i64(a["mult_b"]), i64(a["shift"]),
             i64(z_out), i64(a["lo"]), i64(a["hi"]), out)
        return out

    def mul(self, node, x1, z1, x2, z2, z_out):
        return super().mul(node, x1, z1, x2, z2, z_out).astype(np.int32)

    def gap(self, node, x, z_in, z_out):
        return super().gap(node, x, z_in, z_out).astype(np.int32)

    def maxpool(self, node, x):
        return super().maxpool(node, x.astype(np.int64)).astype(np.int32)

    def avgpool(self, node, x, z_in, z_out):
        return super().avgpool(node, x.astype(np.int64), z_in, z_out).astype(np.int32)

    def lut(self, node, x):
        return super().lut(node, x.astype(np.int64)).astype(np.int32)
