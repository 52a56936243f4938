"""Residual adds of the tvm CPU backend as TIR kernels on uint8 NHWC rows (nhwc.Act):
p = (x1 - z1) * m1 + (x2 - z2) * m2 in int32 lanes, requantized in registers (vec_requant with
the multiplier 1: clamp(z + rshift(p, n), lo, hi)), 16 channels per vector, rows in parallel.
Used where quant.requant.float_exact proves the float64 form exact and p fits int32."""

from __future__ import annotations

from typing import Any, Callable

from .compiled import kernel
from .vec_requant import requant16


def add_fn(c16: int) -> Callable[..., None]:
    """add(x1, x2 (M4, c16) uint8, zm (4, c16) int32: z1, z2, m1, m2, q, lh, o (M4, c16))."""

    def make() -> Any:
        from tvm.script import tirx as T

        @T.prim_func
        def main(x1: T.handle, x2: T.handle, zm: T.handle, q: T.handle, lh: T.handle,
                 o: T.handle):
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            m = T.int32()
            X1 = T.match_buffer(x1, (m, c16), "uint8")
            X2 = T.match_buffer(x2, (m, c16), "uint8")
            ZM = T.match_buffer(zm, (4, c16), "int32")
            Q = T.match_buffer(q, (2, c16), "float64")
            L = T.match_buffer(lh, (2, c16), "int32")
            O = T.match_buffer(o, (m, c16), "uint8")
            for rb in T.parallel((m + 15) // 16):
                for r in range(rb * 16, T.min(m, rb * 16 + 16)):
                    for cb in range(c16 // 16):
                        O[r, T.ramp(cb * 16, 1, 16)] = requant16(
                            (T.Cast("int32x16", X1.vload([r, cb * 16], "uint8x16"))
                             - ZM.vload([0, cb * 16], "int32x16")) * ZM.vload([2, cb * 16],
                                                                               "int32x16")
                            + (T.Cast("int32x16", X2.vload([r, cb * 16], "uint8x16"))
                               - ZM.vload([1, cb * 16], "int32x16")) * ZM.vload([3, cb * 16],
                                                                                 "int32x16"),
                            Q, L, cb * 16)
        return main
    return kernel(f"add_c{c16}", make)
