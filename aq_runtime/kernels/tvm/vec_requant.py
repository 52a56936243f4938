"""The requantization of docs/SEMANTICS.md on 16 int32 lanes inside TIR kernels, in float64:
quant.requant.requant_float, exact where quant.requant.float_exact holds (the callers check it
per layer at plan time, else they take the int64 path). Per channel: float64 (2, C) constants
m 2^-n and z + 1/2, int32 (2, C) clamp bounds lo, hi (`float_params`). Per 8 lanes one
convert, one fused multiply-add and one convert rounding toward -inf (AVX-512 embedded
rounding: the floor comes free; other instruction sets truncate where the codes are uint8, so
lo >= 0 and trunc and floor clamp alike, else round down, then convert), then an int32 clamp.
Where every channel's bounds are 0 and 255 (`full_range`, the usual uint8 activation) the clamp
is the saturating packs' own (int32 -> int16 -> uint8: on 256-bit vectors two `vpackssdw` and
one `vpackuswb` of the four converted quarters): no bounds loaded, 17 instructions per 16
outputs instead of 27 on AVX2."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...quant.requant import float_factors
from .buffers import aligned_zeros
from .target import isa

ROUND_DOWN = 9  # _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC


def float_params(mult: np.ndarray, shift: np.ndarray, z: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(q float64 (2, cols), lh int32 (2, cols)); padding channels requantize to 0."""
    c = len(mult)
    q = aligned_zeros((2, cols), np.float64)
    q[0, :c], q[1, :c] = float_factors(mult, shift, z)
    lh = aligned_zeros((2, cols), np.int32)
    lh[0, :c], lh[1, :c] = lo, hi
    return q, lh


def full_range(lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether every channel clamps its codes to exactly 0..255 (uint8 outputs): requant16's
    `full` form, where the saturating packs are the clamp."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    return bool(lo.size) and bool(np.all(lo == 0)) and bool(np.all(hi == 255))


def requant16(acc: Any, q: Any, lh: Any, col: Any, dtype: str = "uint8",
              isa_name: str | None = None, full: bool = False) -> Any:
    """The codes (uint8x16, or int32x16 for dtype "int32") of 16 int32 sums (bias already
    added) for channels col..col+15: clamp(floor(v * m 2^-n + z + 1/2), lo, hi)
    (quant.requant.requant_float). `full` (uint8 only): every lo is 0 and every hi 255
    (`full_range`): lh is not read."""
    from tvm import tirx
    from tvm.script import tirx as T

    def lanes(a: int, b: int) -> list:
        return [tirx.const(i, "int32") for i in range(a, b)]

    name = isa_name or isa()
    wide = name == "avx512_vnni"
    if full and dtype == "uint8" and name in ("avx2", "avx_vnni"):  # trunc (see below), then
        # x86's saturating packs
        quarters = []
        for h in range(0, 16, 4):
            f = tirx.Cast("float64x4", tirx.Shuffle([acc], lanes(h, h + 4)))
            f = T.call_llvm_pure_intrin("float64x4", "llvm.fma.v4f64", f,
                                        q.vload([0, col + h], "float64x4"),
                                        q.vload([1, col + h], "float64x4"))
            quarters.append(tirx.Cast("int32x4", f))
        w = [T.call_llvm_pure_intrin("int16x8", "llvm.x86.sse2.packssdw.128", *quarters[i:i + 2])
             for i in (0, 2)]
        return T.call_llvm_pure_intrin("uint8x16", "llvm.x86.sse2.packuswb.128", *w)
    halves = []
    for h in (0, 8):
        f = tirx.Cast("float64x8", tirx.Shuffle([acc], lanes(h, h + 8)))
        f = T.call_llvm_pure_intrin("float64x8", "llvm.fma.v8f64", f,
                                    q.vload([0, col + h], "float64x8"),
                                    q.vload([1, col + h], "float64x8"))
        if wide:
            halves.append(T.call_llvm_pure_intrin(
                "int32x8", "llvm.x86.avx512.mask.cvtpd2dq.512", f,
                tirx.Broadcast(tirx.const(0, "int32"), 8), tirx.const(-1, "int8"),
                tirx.const(ROUND_DOWN, "int32")))
        elif dtype == "uint8":  # truncate (vcvttpd2dq): below 0 it rounds up, not down, but
            # there every code clamps to lo >= 0 either way (uint8 outputs: nhwc.out_dtype)
            halves.append(tirx.Cast("int32x8", f))
        else:  # round down (vroundpd), then an exact conversion of an integral value
            halves.append(tirx.Cast("int32x8", tirx.floor(f)))
    r = tirx.Shuffle(halves, lanes(0, 16))
    if full and dtype == "uint8":  # LLVM turns the constant clamp into saturating packs
        r = tirx.min(tirx.max(r, tirx.Broadcast(tirx.const(0, "int32"), 16)),
                     tirx.Broadcast(tirx.const(255, "int32"), 16))
        return tirx.Cast("uint8x16", r)
    r = tirx.min(tirx.max(r, lh.vload([0, col], "int32x16")), lh.vload([1, col], "int32x16"))
    return r if dtype == "int32" else tirx.Cast("uint8x16", r)
