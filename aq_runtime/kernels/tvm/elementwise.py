"""Channel-wise ops of the tvm CPU backend as TIR kernels on uint8 NHWC rows (nhwc.Act), 16
channels per vector, rows in parallel: residual add (p = (x1 - z1) m1 + (x2 - z2) m2 in int32
lanes, requantized in registers by vec_requant with the multiplier 1: clamp(z + rshift(p, n),
lo, hi)), gating (SE: (x1 - z1)(x2 - z2) requantized), global average pooling (sum - p z_in
requantized) and per-channel tables (a gather). The requantizing ones are used where
quant.requant.float_exact proves the float64 form exact."""

from __future__ import annotations

from typing import Any, Callable

from .compiled import kernel
from .vec_requant import requant16


def add_fn(c16: int, full: bool = False) -> Callable[..., None]:
    """add(x1, x2 (M4, c16) uint8, zm (4, c16) int32: z1, z2, m1, m2, q, lh, o (M4, c16));
    `full`: every channel's bounds are 0 and 255 (vec_requant.full_range)."""

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
                            Q, L, cb * 16, full=full)
        return main
    return kernel(f"add_c{c16}{'_full' * full}", make)


def gap_fn(p: int, c16: int) -> Callable[..., None]:
    """Global average pool of p pixels per image: gap(x (Mx, c16) uint8, zpp (c16,) int32 = p
    * z_in, q, lh, o (Mo, c16) uint8, n: int32 images); sum - p z_in requantized."""

    def make() -> Any:
        from tvm.script import tirx as T

        @T.prim_func
        def main(x: T.handle, zpp: T.handle, q: T.handle, lh: T.handle, o: T.handle,
                 nb: T.int32):
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            mx = T.int32()
            mo = T.int32()
            X = T.match_buffer(x, (mx, c16), "uint8")
            ZP = T.match_buffer(zpp, (c16,), "int32")
            Q = T.match_buffer(q, (2, c16), "float64")
            L = T.match_buffer(lh, (2, c16), "int32")
            O = T.match_buffer(o, (mo, c16), "uint8")
            for t in T.parallel(nb * (c16 // 16)):
                acc = T.alloc_buffer((16,), "int32", scope="local")
                acc[T.ramp(0, 1, 16)] = T.broadcast(T.int32(0), 16)
                for r in range(p):
                    acc[T.ramp(0, 1, 16)] = acc.vload([0], "int32x16") + T.Cast(
                        "int32x16", X.vload([(t // (c16 // 16)) * p + r, (t % (c16 // 16)) * 16],
                                            "uint8x16"))
                O[t // (c16 // 16), T.ramp((t % (c16 // 16)) * 16, 1, 16)] = requant16(
                    acc.vload([0], "int32x16") - ZP.vload([(t % (c16 // 16)) * 16], "int32x16"),
                    Q, L, (t % (c16 // 16)) * 16)
        return main
    return kernel(f"gap_p{p}c{c16}", make)


def mul_fn(p: int, c16: int) -> Callable[..., None]:
    """Gating (SE): mul(x1 (M, c16) uint8 rows, p per image, x2 (Mg, c16) uint8, one row per
    image, zz (2, c16) int32: z1, z2, q, lh, o (M, c16) uint8, n: int32 images):
    requant((x1 - z1) * (x2 - z2)), 16 rows per parallel task."""

    def make() -> Any:
        from tvm.script import tirx as T

        @T.prim_func
        def main(x1: T.handle, x2: T.handle, zz: T.handle, q: T.handle, lh: T.handle,
                 o: T.handle, nb: T.int32):
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            m1 = T.int32()
            m2 = T.int32()
            X1 = T.match_buffer(x1, (m1, c16), "uint8")
            X2 = T.match_buffer(x2, (m2, c16), "uint8")
            ZZ = T.match_buffer(zz, (2, c16), "int32")
            Q = T.match_buffer(q, (2, c16), "float64")
            L = T.match_buffer(lh, (2, c16), "int32")
            O = T.match_buffer(o, (m1, c16), "uint8")
            for rb in T.parallel((nb * p + 15) // 16):
                for r in range(rb * 16, T.min(nb * p, rb * 16 + 16)):
                    for cb in range(c16 // 16):
                        O[r, T.ramp(cb * 16, 1, 16)] = requant16(
                            (T.Cast("int32x16", X1.vload([r, cb * 16], "uint8x16"))
                             - ZZ.vload([0, cb * 16], "int32x16"))
                            * (T.Cast("int32x16", X2.vload([r // p, cb * 16], "uint8x16"))
                               - ZZ.vload([1, cb * 16], "int32x16")),
                            Q, L, cb * 16)
        return main
    return kernel(f"mul_p{p}c{c16}", make)


def lut_fn(c: int, c16: int, co16: int, dtype: str) -> Callable[..., None]:
    """Per-channel tables: lut(x (M, c16) uint8 rows, t (c, 256) int32, o (M, co16) dtype,
    m: int32 rows): o[r, ch] = t[ch, x[r, ch]]."""

    def make() -> Any:
        from tvm.script import tirx as T

        @T.prim_func
        def main(x: T.handle, t: T.handle, o: T.handle, rows: T.int32):
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            mx = T.int32()
            X = T.match_buffer(x, (mx, c16), "uint8")
            Tb = T.match_buffer(t, (c, 256), "int32")
            O = T.match_buffer(o, (mx, co16), dtype)
            for rb in T.parallel((rows + 15) // 16):
                for r in range(rb * 16, T.min(rows, rb * 16 + 16)):
                    for ch in range(c):
                        O[r, ch] = T.Cast(dtype, Tb[ch, T.Cast("int32", X[r, ch])])
        return main
    return kernel(f"lut_c{c}.{c16}.{co16}_{dtype}", make)
