"""Depthwise convs of the tvm CPU backend as TIR kernels on NHWC rows (nhwc.Act): per output
pixel and 16-channel vector the taps are summed in one register (int32, the bias as the start
value) and requantized in registers (vec_requant, float64) straight to uint8 codes: one pass,
no int32 tensor and no padded copy through memory. Shapes are compile-time constants, so the
pixels whose taps all lie inside the image are known: they run without bounds checks; border
pixels check each tap and add the zero point's contribution (w * z_in, precomputed) for taps
in the padding. `padded_fn` is the same sum on a copy of the input framed by the zero points
(layout.pad_fn), no checks at all: on small images, where most pixels are border pixels, it
is the faster (the backend times both). Every shape compiles once (compiled.py)."""

from __future__ import annotations

from typing import Any, Callable

from .compiled import kernel
from .vec_requant import requant16


def inner_range(size: int, k: int, s: int, p: int, out: int) -> tuple[int, int]:
    """[lo, hi) of the output positions whose taps p.. all lie inside 0..size-1."""
    lo = min(out, -(-p // s))
    hi = max(lo, min(out, (size - k + p) // s + 1))
    return lo, hi


def depthwise_fn(h: int, w: int, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int,
                 ho: int, wo: int, c16: int) -> Callable[..., None]:
    """dw(x (Mx, c16) uint8 rows, w (kh, kw, c16) int32, wz (kh, kw, c16) int32 = w * z_in,
    b (c16,) int32, q, lh (vec_requant.float_params), o (Mo, c16) uint8, n: int32 images)."""
    y0, y1 = inner_range(h, kh, sh, pt, ho)
    x0, x1 = inner_range(w, kw, sw, pl, wo)

    def make() -> Any:
        from tvm.script import tirx as T

        @T.prim_func
        def main(x: T.handle, wt: T.handle, wzp: T.handle, b: T.handle, q: T.handle,
                 lh: T.handle, o: T.handle, nb: T.int32):
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            mx = T.int32()
            mo = T.int32()
            X = T.match_buffer(x, (mx, c16), "uint8")
            W = T.match_buffer(wt, (kh, kw, c16), "int32")
            WZ = T.match_buffer(wzp, (kh, kw, c16), "int32")
            B = T.match_buffer(b, (c16,), "int32")
            Q = T.match_buffer(q, (2, c16), "float64")
            L = T.match_buffer(lh, (2, c16), "int32")
            O = T.match_buffer(o, (mo, c16), "uint8")
            for t in T.parallel(nb * ho):
                acc = T.alloc_buffer((16,), "int32", scope="local")
                for cb in range(c16 // 16):
                    for xx in range(wo):
                        acc[T.ramp(0, 1, 16)] = B.vload([cb * 16], "int32x16")
                        if y0 <= t % ho and t % ho < y1 and x0 <= xx and xx < x1:
                            for i in T.unroll(kh):
                                for j in T.unroll(kw):
                                    acc[T.ramp(0, 1, 16)] = acc.vload([0], "int32x16") + W.vload(
                                        [i, j, cb * 16], "int32x16") * T.Cast(
                                            "int32x16", X.vload(
                                                [((t // ho) * h + (t % ho) * sh + i - pt) * w
                                                 + xx * sw + j - pl, cb * 16], "uint8x16"))
                        else:
                            for i in T.unroll(kh):
                                for j in T.unroll(kw):
                                    if (0 <= (t % ho) * sh + i - pt and (t % ho) * sh + i - pt < h
                                            and 0 <= xx * sw + j - pl and xx * sw + j - pl < w):
                                        acc[T.ramp(0, 1, 16)] = acc.vload(
                                            [0], "int32x16") + W.vload(
                                            [i, j, cb * 16], "int32x16") * T.Cast(
                                                "int32x16", X.vload(
                                                    [((t // ho) * h + (t % ho) * sh + i - pt) * w
                                                     + xx * sw + j - pl, cb * 16], "uint8x16"))
                                    else:
                                        acc[T.ramp(0, 1, 16)] = acc.vload(
                                            [0], "int32x16") + WZ.vload([i, j, cb * 16],
                                                                        "int32x16")
                        O[t * wo + xx, T.ramp(cb * 16, 1, 16)] = requant16(
                            acc.vload([0], "int32x16"), Q, L, cb * 16)
        return main
    return kernel(f"dw_h{h}w{w}k{kh}x{kw}s{sh}x{sw}p{pt}.{pl}o{ho}x{wo}c{c16}", make)


def padded_fn(hp: int, wp: int, kh: int, kw: int, sh: int, sw: int, c16: int
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
    return kernel(f"dwpad_h{hp}w{wp}k{kh}x{kw}s{sh}x{sw}c{c16}", make)
