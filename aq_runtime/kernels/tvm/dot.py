"""The u8 x s8 -> s32 dot products of the GEMM microkernel, one builder per instruction set
(target.py). Every form computes, per int32 lane j, acc[j] + sum_{t<4} a[4j+t] * b[4j+t] with
a unsigned and b signed bytes, exactly:

- avx512_vnni: `vpdpbusd` zmm, 16 lanes;
- avx_vnni: VEX `vpdpbusd` ymm, 8 lanes;
- avx2: `vpmaddubsw` (pairs of products summed to int16, saturating: exact because |b| <= 64,
  so |a0 b0 + a1 b1| <= 2 * 255 * 64 = 32640) then `vpmaddwd` by ones (pairs of int16 to
  int32), 8 lanes;
- neon_dot: `sdot` (signed x signed, 4 lanes) on a - 128 (the top bit flipped): the sums lack
  128 * sum(b) per column, which `column_offsets` gives the callers to add back (the GEMM
  kernels take it in their bias).

On AVX2, layers whose codes lie within +-32 (+-16) sum 2 (4) groups of 4 k in int16 before
each `vpmaddwd` (`dot_grouped`, `group_size`): 1.2-1.25x on such layers.
AVX2 and AVX-VNNI take weight codes wider than one digit as int16 (`takes_words`):
`dot_words`, one `vpmaddwd` per 16 products on a pair of activations zero-extended to int16
and broadcast.

`lanes(isa)` is the int32 lanes of one instruction; the kernel loops 16 / lanes times."""

from __future__ import annotations

from typing import Any

import numpy as np

LANES = {"avx512_vnni": 16, "avx_vnni": 8, "avx2": 8, "neon_dot": 4}
# 16-column weight vectors a GEMM block of 4 rows keeps in registers: with 32 zmm, 4 (16
# accumulators); with 16 ymm (or NEON's 32 x 128 bits), 1 (8 accumulators, 16 on NEON): 2
# vectors spilled accumulators to the stack on AVX2 and AVX-VNNI (measured 1.1-2.5x slower)
BLOCK_VECTORS = {"avx512_vnni": 4, "avx_vnni": 1, "avx2": 1, "neon_dot": 1}


def lanes(isa: str) -> int:
    return LANES[isa]


def dot(isa: str, acc: Any, a: Any, b: Any) -> Any:
    """acc (int32 x L) + the 4-byte dot products of a (int8 x 4L, unsigned codes
    reinterpreted) and b (int8 x 4L), L = lanes(isa)."""
    from tvm import tirx
    from tvm.script import tirx as T

    n = LANES[isa]
    if isa == "avx512_vnni":
        return T.call_llvm_pure_intrin("int32x16", "llvm.x86.avx512.vpdpbusd.512", acc, a, b)
    if isa == "avx_vnni":
        return T.call_llvm_pure_intrin("int32x8", "llvm.x86.avx512.vpdpbusd.256", acc, a, b)
    if isa == "avx2":
        return dot_grouped(acc, [a], [b])
    if isa == "neon_dot":
        flip = tirx.Broadcast(tirx.const(-128, "int8"), 4 * n)
        return T.call_llvm_pure_intrin("int32x4", "llvm.aarch64.neon.sdot.v4i32.v16i8", acc,
                                       tirx.bitwise_xor(a, flip), b)
    raise ValueError(f"unknown instruction set {isa!r}")


def dot_grouped(acc: Any, a: list, b: list) -> Any:
    """AVX2's dot product over len(a) groups of 4 bytes at once: acc (int32x8) + sum_g
    (the u8 x s8 products of a[g] (int8x32, 4 activation bytes broadcast) and b[g]): one
    `vpmaddubsw` per group, the int16 pair sums added in int16 (`vpaddw`), then one
    `vpmaddwd` by ones. Exact when len(a) * max|b| <= 64 (`group_size`): every int16 sum
    stays within len(a) * 2 * 255 * max|b| <= 32640."""
    from tvm import tirx
    from tvm.script import tirx as T

    p = None
    for ag, bg in zip(a, b):
        t = T.call_llvm_pure_intrin("int16x16", "llvm.x86.avx2.pmadd.ub.sw", ag, bg)
        p = t if p is None else p + t
    ones = tirx.Broadcast(tirx.const(1, "int16"), 16)
    return acc + T.call_llvm_pure_intrin("int32x8", "llvm.x86.avx2.pmadd.wd", p, ones)


def group_size(isa: str, max_abs: int, kb_n: int) -> int:
    """How many 4-byte groups of k one `vpmaddwd` sums on AVX2 (dot_grouped): 4 for weight
    codes within +-16, 2 within +-32, else 1 (and a divisor of the kernel's kb_n); 1 on the
    VNNI instruction sets, whose one instruction already sums 4 products in int32."""
    if isa != "avx2":
        return 1
    return next(g for g in (4, 2, 1) if g * max(1, max_abs) <= 64 and kb_n % g == 0)


def block_vectors(isa: str) -> int:
    return BLOCK_VECTORS[isa]


def dot_words(acc: Any, a: Any, b: Any) -> Any:
    """The dot product of int16 weights (codes too wide for one byte digit) on 256-bit vectors:
    acc (int32x8) + a[2j] b[2j] + a[2j+1] b[2j+1] by `vpmaddwd` (AVX-VNNI's fused `vpdpwssd`
    measured no faster), exact: |a| <= 255 and |b| <= 32768, so a pair sums to at most
    2 * 255 * 32768 < 2^31."""
    from tvm.script import tirx as T
    return acc + T.call_llvm_pure_intrin("int32x8", "llvm.x86.avx2.pmadd.wd", a, b)


def fits_int16(w: np.ndarray) -> bool:
    """Whether integer codes `w` are int16 values (the operands of `vpmaddwd`)."""
    return not w.size or (int(w.min()) >= -2 ** 15 and int(w.max()) < 2 ** 15)


def takes_words(isa: str) -> bool:
    """Whether weight codes wider than one digit go to dot_words as int16 instead of base-128
    digits: on 256-bit vectors (AVX2: one vpmaddwd per 16 products against two digits' six
    instructions; AVX-VNNI: two digits' 4 rows x 2 digits x 2 halves spilled accumulators;
    measured 1.5-1.7x faster on both). AVX-512 keeps its digits (32 registers, no spill)."""
    return isa in ("avx2", "avx_vnni")


def column_offsets(isa: str, rows: np.ndarray) -> np.ndarray:
    """int64 per weight row (a GEMM output column) of `rows` (the dot product's operand:
    digit, word or 0/1 rows): what the instruction set's dot product leaves out of that
    column's sums and the caller must add (neon_dot: 128 * the row's sum; zero elsewhere)."""
    r = np.asarray(rows, np.int64)
    return 128 * r.sum(1) if isa == "neon_dot" else np.zeros(r.shape[0], np.int64)


def digit_limit(isa: str) -> int:
    """The largest |weight digit| the dot product takes exactly (ops.digit_rows)."""
    return 64 if isa == "avx2" else 127
