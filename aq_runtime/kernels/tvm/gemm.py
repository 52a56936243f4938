"""The u8 x s8 -> s32 GEMM microkernel (docs/BACKENDS.md), written in TVMScript (TVM 0.27, `tirx`):
C[M, N] = requant(A[M, K] @ B[K, N] + bias), M symbolic (a multiple of 4: the rows are padded),
K a multiple of 4. Parallel tasks over blocks of 4 rows (or, `cols_outer`, over column blocks);
each block keeps 4 rows x the vectors of 16 int32 accumulators its instruction set has
registers for (dot.block_vectors: 4 with AVX-512, 1 with 256-bit vectors) and feeds the
instruction set's u8 x s8 dot product (dot.py: `vpdpbusd` on 64 bytes with AVX-512 VNNI, on 32
with AVX-VNNI, `vpmaddubsw` + `vpmaddwd` with AVX2) with 4 bytes of A broadcast and the weights
pre-packed as [blocks][K/4][vectors][64] (16 output columns x 4 k per vector; 4 consecutive
bytes per int32 lane on every instruction set). Weight codes wider than the dot product takes
(int8; |w| <= 64 on AVX2) come as base-128 digits in neighbouring vectors, summed in registers
(AVX-512), or, on 256-bit vectors (`word`), as int16 weights for `vpmaddwd` on pairs of
activations (dot.dot_words; each row block's 4 rows are zero-extended to int16 once, into a
per-task buffer): on AVX2 about 1.3x the time of one vpmaddubsw digit, against 2x for two.
On AVX2, codes within +-32 or +-16 (6 or 5 bits) sum 2 or 4 `vpmaddubsw` in int16 before one
`vpmaddwd` (`group`, dot.dot_grouped). The sums are requantized in registers (vec_requant) and
stored as uint8 codes or int32 logits. `gemm_fn` is the same kernel with the identity
requantization: plain int32 sums, for the int64 epilogues. Exact: the exporter's overflow
proof bounds every sum below 2^31. Compiled once per shape (compiled.py)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .buffers import aligned_zeros
from .compiled import kernel
from .dot import block_vectors, dot, dot_grouped, dot_words, lanes
from .target import isa as target_isa
from .tasks import TASKS, task_span
from .vec_requant import float_params, requant16


def gemm_fn(k: int, n: int, word: bool = False, offsets: np.ndarray | None = None
            ) -> Callable[[Any, Any, Any], None]:
    """C = A @ W, int32 sums (K, N multiples of 4 and 64; W from pack_weights, int16 with
    `word`): the requantizing kernel below with the identity as its requantization
    (floor(v * 1 + 1/2) = v, no clamp), `offsets` (dot.column_offsets of W's rows) as its
    bias, so the sums are exact on every instruction set."""
    f = fused_fn(k, n, 1, n, "int32", word=word)
    bias = aligned_zeros((n,), np.int32)
    if offsets is not None:
        bias[:len(offsets)] = offsets
    q, lh = float_params(np.full(n, 2), np.ones(n), np.zeros(n), np.full(n, -2 ** 31),
                         np.full(n, 2 ** 31 - 1), n)
    return lambda a, b, c: f(a, b, bias, q, lh, c)


def pack_weights(w: np.ndarray, k_multiple: int = 4) -> np.ndarray:
    """int codes (N, K) -> int8 (int16 if w is) (blocks, Kp/4, vectors, 64) for gemm_fn
    (pack_fused's layout with one digit), zero padded to N % 64 == 0 (`packed_columns` of
    them) and K to a multiple of `k_multiple` (4, or 16 to match activation rows)."""
    n = w.shape[0]
    wp = np.zeros((n + (-n % 64), w.shape[1]), np.int16 if w.dtype == np.int16 else np.int8)
    wp[:n] = w
    return pack_fused(wp, wp.shape[0], 1, k_multiple)


def packed_columns(packed: np.ndarray) -> int:
    """The output columns of weights from pack_weights (blocks x vectors x 16)."""
    return packed.shape[0] * packed.shape[2] * 16


def _digit_sum(acc: Any, i: Any, u: Any, ndig: int) -> Any:
    """sum_j 128^j acc[i, vector u*ndig + j]: a channel vector's sum from its digit sums."""
    from tvm import tirx
    s = acc.vload([i, u * ndig * 16], "int32x16")
    for j in range(1, ndig):
        s = s + acc.vload([i, (u * ndig + j) * 16], "int32x16") * tirx.Broadcast(
            tirx.const(128 ** j, "int32"), 16)
    return s


def _a_bytes(A: Any, row: Any, kb: Any, ln: int) -> Any:
    """A's 4 bytes k = 4kb..4kb+3 of `row`, broadcast to every int32 lane of ln (int8 x 4ln):
    the activation operand of the byte dot products."""
    from tvm.script import tirx as T
    a4 = T.reinterpret(A.vload([row, kb * 4], "uint8x4"), dtype="int32")
    return T.reinterpret(T.broadcast(a4, ln), dtype=f"int8x{4 * ln}")


def _grouped(acc: Any, A: Any, B: Any, row: Any, kg: Any, group: int, nb: Any, v: Any,
             h: Any) -> Any:
    """dot.dot_grouped on groups kg*group .. kg*group + group-1 of 4 k (AVX2, 8 columns)."""
    ks = [kg * group + g for g in range(group)]
    return dot_grouped(acc, [_a_bytes(A, row, kb, 8) for kb in ks],
                       [B.vload([nb, kb, v, h * 32], "int8x32") for kb in ks])


def _fused_func(k: int, nbn: int, cv: int, ndig: int, c16: int, dtype: str,
                cols_outer: bool = False, isa: str | None = None, word: bool = False,
                group: int = 1, full: bool = False):
    """The kernel's PrimFunc for instruction set `isa` (default: this process's); `word`:
    int16 weights (pack_fused of int16 rows, dot.dot_words) instead of byte digits; `group`
    (AVX2, dot.group_size): groups of 4 k summed in int16 before each `vpmaddwd`; `full`:
    every channel's bounds are 0 and 255 (vec_requant.full_range)."""
    from tvm.script import tirx as T

    isa = isa or target_isa()
    ln = lanes(isa)
    acc_t, bytes_t = f"int32x{ln}", f"int8x{4 * ln}"
    kb_n, nv = k // 4, cv * ndig
    ncol = nbn * cv * 16
    b_t = "int16" if word else "int8"
    wv = 16 if k % 16 == 0 else 4  # bytes widened per instruction

    @T.prim_func
    def main(a: T.handle, b: T.handle, bias: T.handle, q: T.handle, lh: T.handle, o: T.handle):
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        m = T.int32()
        A = T.match_buffer(a, (m, k), "uint8")
        B = T.match_buffer(b, (nbn, kb_n, nv, 64), b_t)
        Bi = T.match_buffer(bias, (ncol,), "int32")
        Q = T.match_buffer(q, (2, ncol), "float64")
        L = T.match_buffer(lh, (2, ncol), "int32")
        O = T.match_buffer(o, (m, c16), dtype)
        for task in T.parallel(TASKS if not cols_outer else nbn):
            acc = T.alloc_buffer((4, nv * 16), "int32", scope="local")
            a16 = T.alloc_buffer((4, k if word else 4), "int16", scope="local")
            first, count = T.meta_var(task_span(task, m // 4))  # rows outer: row blocks
            for mbi, nbi in T.grid(count if not cols_outer else m // 4,
                                   nbn if not cols_outer else 1):
                mb = first + mbi if not cols_outer else mbi
                nb = nbi if not cols_outer else task
                for i in T.unroll(4):
                    for v in T.unroll(nv):
                        acc[i, T.ramp(v * 16, 1, 16)] = T.broadcast(T.int32(0), 16)
                if word and nbi == 0:  # the 4 rows zero-extended to int16 (vpmovzxbw), once
                    for i in T.unroll(4):  # per row block (each column block reuses them)
                        for kq in range(k // wv):
                            a16[i, T.ramp(kq * wv, 1, wv)] = T.Cast(
                                f"int16x{wv}", A.vload([mb * 4 + i, kq * wv], f"uint8x{wv}"))
                for kb in range(kb_n // group):  # group > 1: kb counts groups of 4 k
                    for i in T.unroll(4):
                        if group > 1:
                            for v in T.unroll(nv):
                                for h in T.unroll(2):
                                    acc[i, T.ramp(v * 16 + h * 8, 1, 8)] = _grouped(
                                        acc.vload([i, v * 16 + h * 8], "int32x8"), A, B,
                                        mb * 4 + i, kb, group, nb, v, h)
                        elif word:  # k pairs (kb*4 + 2p, +1) x 8 columns per vpmaddwd
                            for p in T.unroll(2):
                                for v in T.unroll(nv):
                                    for h in T.unroll(2):
                                        acc[i, T.ramp(v * 16 + h * 8, 1, 8)] = dot_words(
                                            acc.vload([i, v * 16 + h * 8], "int32x8"),
                                            T.reinterpret(T.broadcast(T.reinterpret(
                                                a16.vload([i, kb * 4 + p * 2], "int16x2"),
                                                dtype="int32"), 8), dtype="int16x16"),
                                            B.vload([nb, kb, v, p * 32 + h * 16], "int16x16"))
                        else:
                            for v in T.unroll(nv):
                                for h in T.unroll(16 // ln):
                                    acc[i, T.ramp(v * 16 + h * ln, 1, ln)] = dot(
                                        isa, acc.vload([i, v * 16 + h * ln], acc_t),
                                        _a_bytes(A, mb * 4 + i, kb, ln),
                                        B.vload([nb, kb, v, h * ln * 4], bytes_t))
                for u in T.unroll(cv):
                    if (nb * cv + u) * 16 < c16:
                        for i in T.unroll(4):
                            O[mb * 4 + i, T.ramp((nb * cv + u) * 16, 1, 16)] = requant16(
                                _digit_sum(acc, i, u, ndig) + Bi.vload([(nb * cv + u) * 16],
                                                                       "int32x16"),
                                Q, L, (nb * cv + u) * 16, dtype, isa, full)
    return main


def fused_shape(o: int, ndig: int) -> tuple[int, int]:
    """(channel vectors per column block, column blocks) of the requantizing GEMM: as many
    weight vectors per block as the instruction set keeps in registers (dot.block_vectors: 4
    with AVX-512, 1 with 256-bit vectors), the digits of a channel vector side by side."""
    cvec = -(-o // 16)
    cv = max(1, min(block_vectors(target_isa()) // ndig, cvec))
    return cv, -(-cvec // cv)


def fused_fn(k: int, o: int, ndig: int, c16: int, dtype: str = "uint8",
             cols_outer: bool = False, word: bool = False, group: int = 1,
             full: bool = False) -> Callable[..., None]:
    """C = requant(A @ W + bias) straight to codes: fused(a (M4, K) u8, b (pack_fused), bias
    (ncol,) int32, q, lh (vec_requant.float_params), o (M4, c16) uint8, or int32 (logits)).
    Row blocks are the outer, parallel loop; with `cols_outer` the column blocks are, each
    task sweeping all rows with its weights in cache (for few rows and many weights).
    `word`: the weights are int16 (pack_fused of int16 rows; 256-bit vectors only,
    dot.takes_words); `group`: dot.group_size of the weights (AVX2); `full`: uint8 codes
    clamped to 0..255 on every channel (vec_requant.full_range)."""
    cv, nbn = fused_shape(o, ndig)
    order = ("c" if cols_outer else "r") + ("w" if word else "") + f"g{group}" + "f" * full
    return kernel(f"gemmq_k{k}_b{nbn}_v{cv}_d{ndig}_c{c16}_{dtype}_{order}",
                  lambda: _fused_func(k, nbn, cv, ndig, c16, dtype, cols_outer, word=word,
                                      group=group, full=full))


def pack_fused(digits: np.ndarray, o: int, ndig: int, k_multiple: int = 4) -> np.ndarray:
    """Digit rows (ndig*O, K) (ops.digit_rows: block j holds digit j) -> int8
    (blocks, Kp/4, cv*ndig, 64): vector u*ndig + j of a block is digit j of its channel vector
    u, 4 consecutive k per int32 lane. int16 rows (one digit: `word`) -> int16
    (blocks, Kp/4, cv, 64): per vector, for k pair p and column half h, 8 lanes of 2 k at
    p*32 + h*16 (the operands of dot_words)."""
    cv, nbn = fused_shape(o, ndig)
    k = digits.shape[1]
    kp = k + (-k % k_multiple)
    ch = nbn * cv * 16
    w = np.zeros((ndig, ch, kp), digits.dtype)
    w[:, :o, :k] = digits.reshape(ndig, o, k)
    out = aligned_zeros((nbn, kp // 4, cv * ndig, 64), digits.dtype)
    if digits.dtype == np.int16:
        assert ndig == 1
        t = w.reshape(nbn, cv, 2, 8, kp // 4, 2, 2)  # nb, u, h, lane, kb, p, t
        out[...] = t.transpose(0, 4, 1, 5, 2, 3, 6).reshape(out.shape)
    else:
        t = w.reshape(ndig, nbn, cv, 16, kp // 4, 4)  # j, nb, u, lane, kb, kk
        out[...] = t.transpose(1, 4, 2, 0, 3, 5).reshape(out.shape)
    return out
