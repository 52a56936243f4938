"""Data movement of the tvm CPU backend as TIR kernels on NHWC uint8 rows (nhwc.Act), in TVM's
thread pool like the compute kernels: `pad` (a copy framed by the zero points, for the depthwise
kernel) and `im2col` (the rows of the GEMM for convs that are not 1x1 stride 1; column
(i*kw + j)*C + ch holds tap (i, j) of channel ch, the zero point outside the image, 0 in the
padding columns; pixels whose taps all lie inside the image copy without bounds checks).
The batch size is symbolic; every shape compiles once (compiled.py)."""

from __future__ import annotations

from typing import Any, Callable

from .compiled import kernel
from .depthwise import inner_range


def pad_fn(h: int, w: int, c16: int, pt: int, pb: int, pl: int, pr: int
           ) -> Callable[..., None]:
    """pad(a (M4, c16) uint8 rows, zp (c16,) uint8, x (N, h+pt+pb, w+pl+pr, c16) uint8)."""
    hp, wp = h + pt + pb, w + pl + pr

    def make() -> Any:
        from tvm.script import tirx as T

        @T.prim_func
        def main(a: T.handle, zp: T.handle, x: T.handle):
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            ma = T.int32()
            nb = T.int32()
            A = T.match_buffer(a, (ma, c16), "uint8")
            Z = T.match_buffer(zp, (c16,), "uint8")
            X = T.match_buffer(x, (nb, hp, wp, c16), "uint8")
            for t in T.parallel(nb * hp):
                for xx in range(wp):
                    for cb in range(c16 // 16):
                        iy = t % hp - pt
                        ix = xx - pl
                        X[t // hp, t % hp, xx, T.ramp(cb * 16, 1, 16)] = T.if_then_else(
                            0 <= iy and iy < h and 0 <= ix and ix < w,
                            A.vload([((t // hp) * h + iy) * w + ix, cb * 16], "uint8x16"),
                            Z.vload([cb * 16], "uint8x16"))
        return main
    return kernel(f"pad_h{h}w{w}c{c16}p{pt}.{pb}.{pl}.{pr}", make)


def im2col_fn(h: int, w: int, c: int, c16: int, kh: int, kw: int, sh: int, sw: int, pt: int,
              pl: int, ho: int, wo: int, kp: int) -> Callable[..., None]:
    """im2col(x (Mx, c16) uint8 rows, zp (c16,) uint8, a (Ma, kp) uint8, n: int32 images)."""
    k = kh * kw * c
    y0, y1 = inner_range(h, kh, sh, pt, ho)
    x0, x1 = inner_range(w, kw, sw, pl, wo)

    def make() -> Any:
        from tvm.script import tirx as T

        @T.prim_func
        def main(x: T.handle, zp: T.handle, a: T.handle, nb: T.int32):
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            mx = T.int32()
            ma = T.int32()
            X = T.match_buffer(x, (mx, c16), "uint8")
            Z = T.match_buffer(zp, (c16,), "uint8")
            A = T.match_buffer(a, (ma, kp), "uint8")
            for t in T.parallel(nb * ho):
                for xx in range(wo):
                    if y0 <= t % ho and t % ho < y1 and x0 <= xx and xx < x1:
                        for i in T.unroll(kh):
                            for j in T.unroll(kw):
                                for ch in range(c):
                                    A[t * wo + xx, (i * kw + j) * c + ch] = X[
                                        ((t // ho) * h + (t % ho) * sh + i - pt) * w
                                        + xx * sw + j - pl, ch]
                    else:
                        for i in range(kh):
                            for j in range(kw):
                                for ch in range(c):
                                    iy = (t % ho) * sh + i - pt
                                    ix = xx * sw + j - pl
                                    A[t * wo + xx, (i * kw + j) * c + ch] = T.if_then_else(
                                        0 <= iy and iy < h and 0 <= ix and ix < w,
                                        X[((t // ho) * h + iy) * w + ix, ch], Z[ch])
                    for col in range(k, kp):
                        A[t * wo + xx, col] = T.uint8(0)
        return main
    return kernel(f"im2col_h{h}w{w}c{c}.{c16}k{kh}x{kw}s{sh}x{sw}p{pt}.{pl}o{ho}x{wo}k{kp}",
                  make)
