"""Depthwise convs of the tvm CPU backend as TIR kernels on NHWC rows (nhwc.Act): on a copy of
the input padded with the zero points (layout.pad_fn), per output pixel and 16-channel vector the taps
summed in one register (int32, the bias as the start value) and requantized in registers
(vec_requant, float64) straight to uint8 codes: one pass, no int32 tensor through memory.
Every shape compiles once (compiled.py); the batch size is symbolic."""

from __future__ import annotations

from typing import Any, Callable

from .compiled import kernel
from .vec_requant import requant16


def depthwise_fn(hp: int, wp: int, kh: int, kw: int, sh: int, sw: int, c16: int
                 ) -> Callable[..., None]:
    """dw(x (N, hp, wp, c16) uint8 padded, w (kh, kw, c16) int32, b (c16,) int32,
    q, lh (vec_requant.float_params), o (M4, c16) uint8)."""
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1

    def make() -> Any:
        from tvm.script import tirx as T

        @T.prim_func
        def main(x: T.handle, w: T.handle, b: T.handle, q: T.handle, lh: T.handle,
                 o: T.handle):
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            nb = T.int32()
            mo = T.int32()
            X = T.match_buffer(x, (nb, hp, wp, c16), "uint8")
            W = T.match_buffer(w, (kh, kw, c16), "int32")
            B = T.match_buffer(b, (c16,), "int32")
            Q = T.match_buffer(q, (2, c16), "float64")
            L = T.match_buffer(lh, (2, c16), "int32")
            O = T.match_buffer(o, (mo, c16), "uint8")
            for t in T.parallel(nb * ho):
                acc = T.alloc_buffer((16,), "int32", scope="local")
                for cb in range(c16 // 16):
                    for xx in range(wo):
                        acc[T.ramp(0, 1, 16)] = B.vload([cb * 16], "int32x16")
                        for i in T.unroll(kh):
                            for j in T.unroll(kw):
                                acc[T.ramp(0, 1, 16)] = acc.vload([0], "int32x16") + W.vload(
                                    [i, j, cb * 16], "int32x16") * T.Cast("int32x16", X.vload(
                                        [t // ho, (t % ho) * sh + i, xx * sw + j, cb * 16],
                                        "uint8x16"))
                        O[t * wo + xx, T.ramp(cb * 16, 1, 16)] = requant16(
                            acc.vload([0], "int32x16"), Q, L, cb * 16)
        return main
    return kernel(f"dw_h{hp}w{wp}k{kh}x{kw}s{sh}x{sw}c{c16}", make)
