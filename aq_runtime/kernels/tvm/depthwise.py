"""Depthwise convs of the tvm CPU backend as TIR kernels on NHWC rows (nhwc.Act): per output
pixel and 16-channel vector the taps are summed in one register (int32, the bias as the start
value; on 256-bit vectors two taps per `vpmaddwd` on int16 weights, `pairs_pay`) and
requantized in registers (vec_requant, float64) straight to uint8 codes: one pass, no int32
tensor and no padded copy through memory. Shapes are compile-time constants, so the pixels
whose taps all lie inside the image are known: they run without bounds checks; border pixels
check each tap and add the zero point's contribution (w * z_in, precomputed) for taps in the
padding. `padded_fn` is the same kernel on a copy of the input framed by the zero points
(layout.pad_fn), where no pixel is a border pixel: on small images, where most pixels are
border pixels, it is the faster. `rows_fn` is the third form: per output row the input rows
it reads are widened to int16 once into a buffer (framed by the zero points), and every pixel
sums two kernel rows per `vpmaddwd` from it, with no widening per tap (AVX-512: 1.3-1.9x on
stride-1 layers, 8-12% of Lite0's whole run; AVX2, 8 channels at a time so their weights stay
in registers: 1.3-1.4x on stride-1 layers, 3-4% of the run; stride 2 about even). The backend
times all three per layer. Every shape compiles once (compiled.py)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .buffers import aligned_zeros
from .compiled import kernel
from .dot import dot_words, fits_int16, lanes
from .tasks import TASKS, task_span
from .vec_requant import requant16


def pairs_pay(isa: str) -> bool:
    """Whether inner pixels sum taps in pairs (`vpmaddwd`, 16 products per 256-bit
    instruction) rather than one int32 multiply per tap: on 256-bit vectors (AVX2, AVX-VNNI:
    15-20% less time over Lite0's depthwise convs, measured); with AVX-512 it was no faster."""
    return lanes(isa) == 8


def rows_pay(isa: str) -> bool:
    """Whether the widened-rows kernel (rows_fn) is a candidate: on x86, whose `vpmaddwd` it
    is built on; not on aarch64."""
    return isa != "neon_dot"


def pair_weights(wt: np.ndarray, c16: int) -> np.ndarray:
    """int32 weights (kh, kw, C) -> int16 (ceil(kh*kw / 2), 2*c16): row p holds taps 2p and
    2p + 1 (taps in row-major order; a missing last tap has weight 0) interleaved per channel,
    [w(2p, ch), w(2p+1, ch)] for ch = 0..c16-1: the operand of `vpmaddwd` in `_pair_sum`."""
    kh, kw, c = wt.shape
    if not fits_int16(wt):
        raise ValueError("pair_weights: weight codes beyond int16")
    taps = wt.reshape(kh * kw, c)
    np_ = -(-(kh * kw) // 2)
    t = np.zeros((2 * np_, c16), np.int16)
    t[:kh * kw, :c] = taps
    out = aligned_zeros((np_, 2 * c16), np.int16)
    out[...] = t.reshape(np_, 2, c16).transpose(0, 2, 1).reshape(np_, 2 * c16)
    return out


def _pair_sum(acc: Any, x0: Any, x1: Any, wp: Any) -> Any:
    """acc (int32x16) + x0 * w0 + x1 * w1 per channel: x0, x1 uint8x16 (two taps of 16
    channels), wp int16x32 (pair_weights' row), two `vpmaddwd` on the bytes interleaved and
    zero-extended (`_widen2`, `_madd16`; exact: 2 * 255 * 32768 < 2^31). 256-bit vectors."""
    return _madd16(acc, _widen2(x0, x1), wp, "avx2")


def _tap(acc: Any, w: Any, x: Any) -> Any:
    """acc + w * x on 16 int32 lanes: one tap of 16 channels (x uint8x16, w int32x16)."""
    from tvm import tirx
    return acc + w * tirx.Cast("int32x16", x)


def _pair_taps(p: Any, kw: int, ntap: int) -> tuple[Any, Any, Any, Any]:
    """(i0, j0, i1, j1): the kernel rows and columns of pair p's taps 2p and 2p + 1 (the last
    tap again for an odd count: pair_weights gives it weight 0)."""
    from tvm.script import tirx as T
    t1 = T.min(2 * p + 1, ntap - 1)
    return (2 * p) // kw, (2 * p) % kw, t1 // kw, t1 % kw


def inner_range(size: int, k: int, s: int, p: int, out: int) -> tuple[int, int]:
    """[lo, hi) of the output positions whose taps p.. all lie inside 0..size-1."""
    lo = min(out, -(-p // s))
    hi = max(lo, min(out, (size - k + p) // s + 1))
    return lo, hi


def depthwise_fn(h: int, w: int, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int,
                 ho: int, wo: int, c16: int, pairs: bool = False, full: bool = False
                 ) -> Callable[..., None]:
    """dw(x (Mx, c16) uint8 rows, w (kh, kw, c16) int32, wz (kh, kw, c16) int32 = w * z_in,
    wp (pair_weights) int16, b (c16,) int32, q, lh (vec_requant.float_params), o (Mo, c16)
    uint8, n: int32 images). `pairs`: inner pixels sum taps two at a time (`vpmaddwd` on wp)
    instead of one int32 multiply per tap (w); `full`: every channel's bounds are 0 and 255
    (vec_requant.full_range)."""
    y0, y1 = inner_range(h, kh, sh, pt, ho)
    x0, x1 = inner_range(w, kw, sw, pl, wo)
    ntap = kh * kw
    npair = -(-ntap // 2)

    def make() -> Any:
        from tvm.script import tirx as T

        @T.prim_func
        def main(x: T.handle, wt: T.handle, wzp: T.handle, wpp: T.handle, b: T.handle,
                 q: T.handle, lh: T.handle, o: T.handle, nb: T.int32):
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            mx = T.int32()
            mo = T.int32()
            X = T.match_buffer(x, (mx, c16), "uint8")
            W = T.match_buffer(wt, (kh, kw, c16), "int32")
            WZ = T.match_buffer(wzp, (kh, kw, c16), "int32")
            WP = T.match_buffer(wpp, (npair, 2 * c16), "int16")
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
                            if pairs:
                                for p in T.unroll(npair):
                                    i0, j0, i1, j1 = T.meta_var(_pair_taps(p, kw, ntap))
                                    r = T.meta_var((t // ho) * h + (t % ho) * sh - pt)
                                    acc[T.ramp(0, 1, 16)] = _pair_sum(
                                        acc.vload([0], "int32x16"),
                                        X.vload([(r + i0) * w + xx * sw + j0 - pl, cb * 16],
                                                "uint8x16"),
                                        X.vload([(r + i1) * w + xx * sw + j1 - pl, cb * 16],
                                                "uint8x16"),
                                        WP.vload([p, cb * 32], "int16x32"))
                            else:
                                for i in T.unroll(kh):
                                    for j in T.unroll(kw):
                                        acc[T.ramp(0, 1, 16)] = _tap(
                                            acc.vload([0], "int32x16"),
                                            W.vload([i, j, cb * 16], "int32x16"),
                                            X.vload([((t // ho) * h + (t % ho) * sh + i - pt) * w
                                                     + xx * sw + j - pl, cb * 16], "uint8x16"))
                        else:
                            for i in T.unroll(kh):
                                for j in T.unroll(kw):
                                    if (0 <= (t % ho) * sh + i - pt and (t % ho) * sh + i - pt < h
                                            and 0 <= xx * sw + j - pl and xx * sw + j - pl < w):
                                        acc[T.ramp(0, 1, 16)] = _tap(
                                            acc.vload([0], "int32x16"),
                                            W.vload([i, j, cb * 16], "int32x16"),
                                            X.vload([((t // ho) * h + (t % ho) * sh + i - pt) * w
                                                     + xx * sw + j - pl, cb * 16], "uint8x16"))
                                    else:
                                        acc[T.ramp(0, 1, 16)] = acc.vload(
                                            [0], "int32x16") + WZ.vload([i, j, cb * 16],
                                                                        "int32x16")
                        O[t * wo + xx, T.ramp(cb * 16, 1, 16)] = requant16(
                            acc.vload([0], "int32x16"), Q, L, cb * 16, full=full)
        return main
    return kernel(f"dw_h{h}w{w}k{kh}x{kw}s{sh}x{sw}p{pt}.{pl}o{ho}x{wo}c{c16}"
                  f"{'_pairs' * pairs}{'_full' * full}", make)


def padded_fn(hp: int, wp: int, kh: int, kw: int, sh: int, sw: int, c16: int,
              pairs: bool = False, full: bool = False) -> Callable[..., None]:
    """dw(x (N*hp*wp, c16) uint8 rows of the input padded by the zero points (layout.pad_fn),
    w, wz, wp, b, q, lh, o, n) as depthwise_fn: the same kernel on the padded image, where
    every pixel is an inner pixel (no bounds checks)."""
    return depthwise_fn(hp, wp, kh, kw, sh, sw, 0, 0, (hp - kh) // sh + 1, (wp - kw) // sw + 1,
                        c16, pairs, full)


def row_weights(wt: np.ndarray, c16: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 weights (kh, kw, C) -> the operands of rows_fn: int16 (max(1, kh // 2), kw, 2*c16)
    whose [p, j] holds kernel rows 2p and 2p + 1 of column j interleaved per channel
    ([w(2p, j, ch), w(2p+1, j, ch)]), and int32 (kw, c16), the odd last kernel row (zeros
    when kh is even)."""
    kh, kw, c = wt.shape
    if not fits_int16(wt):
        raise ValueError("row_weights: weight codes beyond int16")
    npr = kh // 2
    t = np.zeros((max(1, npr), 2, kw, c16), np.int16)
    t[:npr, :, :, :c] = wt[:2 * npr].reshape(npr, 2, kw, c)
    pairs = aligned_zeros((max(1, npr), kw, 2 * c16), np.int16)
    pairs[...] = t.transpose(0, 2, 3, 1).reshape(pairs.shape)
    last = aligned_zeros((kw, c16), np.int32)
    if kh % 2:
        last[:, :c] = wt[kh - 1]
    return pairs, last


def _madd16(acc: Any, a: Any, b: Any, isa_name: str) -> Any:
    """acc (int32x16) + a[2l] b[2l] + a[2l+1] b[2l+1] per lane l, a and b int16x32: one
    `vpmaddwd` zmm with AVX-512, two ymm otherwise (exact: |a| <= 255, |b| <= 32768)."""
    from tvm import tirx
    from tvm.script import tirx as T

    def idx(v: range) -> list:
        return [tirx.const(i, "int32") for i in v]

    if lanes(isa_name) == 16:
        return acc + T.call_llvm_pure_intrin("int32x16", "llvm.x86.avx512.pmaddw.d.512", a, b)
    halves = [T.call_llvm_pure_intrin("int32x8", "llvm.x86.avx2.pmadd.wd",
                                      tirx.Shuffle([a], idx(range(h, h + 16))),
                                      tirx.Shuffle([b], idx(range(h, h + 16))))
              for h in (0, 16)]
    return acc + tirx.Shuffle(halves, idx(range(16)))


def rows_fn(h: int, w: int, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, ho: int,
            wo: int, c16: int, full: bool = False) -> Callable[..., None]:
    """The depthwise conv by widened rows: dw(x (Mx, c16) uint8 rows, wpr, wl (row_weights),
    zp (c16,) uint8 zero points, b (c16,) int32, q, lh (vec_requant.float_params), o (Mo, c16)
    uint8, n: int32 images). Per output row and 16 channels the input rows it reads are first
    widened into a buffer, framed by the zero points where they lie in the padding: kernel rows
    2p and 2p + 1 as int16 pairs per channel, an odd last row zero-extended to int32; then every
    output pixel sums its taps two kernel rows at a time by `vpmaddwd` on that buffer (the odd
    row by `vpmaddwd` on its int32 lanes, whose upper halves are 0), with no bounds checks and
    no widening per tap: each input byte is widened once per output row that reads it, not
    once per tap; on 256-bit vectors 8 channels at a time into a row of int32 sums (their
    weights then fit the 16 ymm registers), requantized after. `full`: every channel's bounds
    are 0 and 255 (vec_requant.full_range)."""
    from .target import isa
    return kernel(f"dwrows_h{h}w{w}k{kh}x{kw}s{sh}x{sw}p{pt}.{pl}o{ho}x{wo}c{c16}"
                  f"{'_full' * full}",
                  lambda: _rows_func(h, w, kh, kw, sh, sw, pt, pl, ho, wo, c16, full, isa()))


def _rows_func(h: int, w: int, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, ho: int,
               wo: int, c16: int, full: bool, isa_name: str) -> Any:
    """rows_fn's PrimFunc for instruction set `isa_name`."""
    from tvm.script import tirx as T

    npr, odd = kh // 2, kh % 2 == 1
    wide = lanes(isa_name) == 16
    wpad = (wo - 1) * sw + kw  # input columns read per output row, from column -pl
    xa, xb = min(pl, wpad), max(min(pl, wpad), min(pl + w, wpad))  # [xa, xb): inside the image

    @T.prim_func
    def main(x: T.handle, wprp: T.handle, wlp: T.handle, zpp: T.handle, b: T.handle,
             q: T.handle, lh: T.handle, o: T.handle, nb: T.int32):
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        mx = T.int32()
        mo = T.int32()
        X = T.match_buffer(x, (mx, c16), "uint8")
        WPR = T.match_buffer(wprp, (max(1, npr), kw, 2 * c16), "int16")
        WL = T.match_buffer(wlp, (kw, c16), "int32")
        ZP = T.match_buffer(zpp, (c16,), "uint8")
        B = T.match_buffer(b, (c16,), "int32")
        Q = T.match_buffer(q, (2, c16), "float64")
        L = T.match_buffer(lh, (2, c16), "int32")
        O = T.match_buffer(o, (mo, c16), "uint8")
        for task in T.parallel(TASKS):
            prow = T.alloc_buffer((max(1, npr), wpad, 32), "int16", scope="local")
            srow = T.alloc_buffer((wpad, 16), "int32", scope="local")
            acc = T.alloc_buffer((16,), "int32", scope="local")
            arow = T.alloc_buffer((1 if wide else wo, 16), "int32", scope="local")  # 256-bit
            first, count = T.meta_var(task_span(task, nb * ho))  # output rows
            for ti in range(count):
                t = T.meta_var(first + ti)
                r = T.meta_var((t // ho) * h)  # the image's first row
                y = T.meta_var((t % ho) * sh - pt)  # input row of kernel row 0
                for cb in range(c16 // 16):
                    for p in range(npr):
                        if 0 <= y + 2 * p and y + 2 * p + 1 < h:  # both rows inside
                            for xi in range(xa):
                                prow[p, xi, T.ramp(0, 1, 32)] = _widen2(
                                    ZP.vload([cb * 16], "uint8x16"),
                                    ZP.vload([cb * 16], "uint8x16"))
                            for xi in range(xa, xb):
                                prow[p, xi, T.ramp(0, 1, 32)] = _widen2(
                                    X.vload([(r + y + 2 * p) * w + xi - pl, cb * 16],
                                            "uint8x16"),
                                    X.vload([(r + y + 2 * p + 1) * w + xi - pl, cb * 16],
                                            "uint8x16"))
                            for xi in range(xb, wpad):
                                prow[p, xi, T.ramp(0, 1, 32)] = _widen2(
                                    ZP.vload([cb * 16], "uint8x16"),
                                    ZP.vload([cb * 16], "uint8x16"))
                        else:
                            for xi in range(wpad):
                                prow[p, xi, T.ramp(0, 1, 32)] = _widen2(
                                    _row_vec(X, ZP, r, y + 2 * p, xi - pl, cb, h, w),
                                    _row_vec(X, ZP, r, y + 2 * p + 1, xi - pl, cb, h, w))
                    if odd:
                        if 0 <= y + kh - 1 and y + kh - 1 < h:
                            for xi in range(xa):
                                srow[xi, T.ramp(0, 1, 16)] = T.Cast(
                                    "int32x16", ZP.vload([cb * 16], "uint8x16"))
                            for xi in range(xa, xb):
                                srow[xi, T.ramp(0, 1, 16)] = T.Cast("int32x16", X.vload(
                                    [(r + y + kh - 1) * w + xi - pl, cb * 16], "uint8x16"))
                            for xi in range(xb, wpad):
                                srow[xi, T.ramp(0, 1, 16)] = T.Cast(
                                    "int32x16", ZP.vload([cb * 16], "uint8x16"))
                        else:
                            for xi in range(wpad):
                                srow[xi, T.ramp(0, 1, 16)] = T.Cast(
                                    "int32x16", ZP.vload([cb * 16], "uint8x16"))
                    if wide:
                        for xx in range(wo):
                            acc[T.ramp(0, 1, 16)] = B.vload([cb * 16], "int32x16")
                            for j in T.unroll(kw):
                                for p in T.unroll(npr):
                                    acc[T.ramp(0, 1, 16)] = _madd16(
                                        acc.vload([0], "int32x16"),
                                        prow.vload([p, xx * sw + j, 0], "int16x32"),
                                        WPR.vload([p, j, cb * 32], "int16x32"), isa_name)
                                if odd:
                                    acc[T.ramp(0, 1, 16)] = _madd16(
                                        acc.vload([0], "int32x16"),
                                        T.reinterpret(srow.vload([xx * sw + j, 0], "int32x16"),
                                                      dtype="int16x32"),
                                        T.reinterpret(WL.vload([j, cb * 16], "int32x16"),
                                                      dtype="int16x32"), isa_name)
                            O[t * wo + xx, T.ramp(cb * 16, 1, 16)] = requant16(
                                acc.vload([0], "int32x16"), Q, L, cb * 16, "uint8", isa_name,
                                full)
                    else:  # 8 channels at a time: their weights stay in the 16 ymm registers
                        for hh in T.unroll(2):
                            for xx in range(wo):
                                arow[xx, T.ramp(hh * 8, 1, 8)] = B.vload([cb * 16 + hh * 8],
                                                                         "int32x8")
                                for j in T.unroll(kw):
                                    for p in T.unroll(npr):
                                        arow[xx, T.ramp(hh * 8, 1, 8)] = dot_words(
                                            arow.vload([xx, hh * 8], "int32x8"),
                                            prow.vload([p, xx * sw + j, hh * 16], "int16x16"),
                                            WPR.vload([p, j, cb * 32 + hh * 16], "int16x16"))
                                    if odd:
                                        arow[xx, T.ramp(hh * 8, 1, 8)] = dot_words(
                                            arow.vload([xx, hh * 8], "int32x8"),
                                            T.reinterpret(srow.vload([xx * sw + j, hh * 8],
                                                                     "int32x8"), dtype="int16x16"),
                                            T.reinterpret(WL.vload([j, cb * 16 + hh * 8],
                                                                   "int32x8"), dtype="int16x16"))
                        for xx in range(wo):
                            O[t * wo + xx, T.ramp(cb * 16, 1, 16)] = requant16(
                                arow.vload([xx, 0], "int32x16"), Q, L, cb * 16, "uint8",
                                isa_name, full)
    return main


def _row_vec(X: Any, ZP: Any, r: Any, iy: Any, ix: Any, cb: Any, h: int, w: int) -> Any:
    """The 16 channels cb*16.. of input pixel (iy, ix) of the image starting at row r of X, or
    the zero points where (iy, ix) lies outside the image (a guarded load)."""
    from tvm import tirx
    from tvm.script import tirx as T
    return T.if_then_else(tirx.all(0 <= iy, iy < h, 0 <= ix, ix < w),
                          X.vload([(r + iy) * w + ix, cb * 16], "uint8x16"),
                          ZP.vload([cb * 16], "uint8x16"))


def _widen2(x0: Any, x1: Any) -> Any:
    """Two uint8x16 -> int16x32 [x0[ch], x1[ch]] per channel, zero-extended, built as two
    halves of 8 channels (`vpunpck[lh]bw` + `vpmovzxbw` each: as one 32-lane cast LLVM emitted
    a slower sequence, 15% on the pair depthwise kernel)."""
    from tvm import tirx

    def idx(v: Any) -> list:
        return [tirx.const(i, "int32") for i in v]

    halves = [tirx.Cast("int16x16", tirx.Shuffle(
        [x0, x1], idx([i for ch in range(h, h + 8) for i in (ch, 16 + ch)]))) for h in (0, 8)]
    return tirx.Shuffle(halves, idx(range(32)))
