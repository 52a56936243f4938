"""The u8 x s8 -> s32 GEMM microkernel of DESIGN §5, written in TVMScript (TVM 0.27, `tirx`):
C[M, N] = A[M, K] @ B[K, N], M symbolic (a multiple of 4: the wrapper pads), K a multiple of 4,
N of 64. A `T.parallel` loop over blocks of 4 rows; each block keeps 4 rows x 4 vectors of 16
int32 accumulators and feeds `vpdpbusd` with int8x64 operands: 4 bytes of A broadcast, and the
weights pre-packed as [N/64][K/4][4][64] (16 output columns x 4 k per vector). Exact: the
exporter's overflow proof bounds every sum below 2^31. Compiled once per (K, N) and target,
kept in memory and on disk (`~/.cache/aq_runtime/tvm`, or $AQ_CACHE_DIR/tvm)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .runtime_lib import cache_dir, load_module, save_module, tvm_version
from .target import llvm_target, target_key

_mem: dict[tuple[int, int], Any] = {}


def _prim_func(k: int, n: int):
    from tvm.script import tirx as T

    kb_n, nb_n = k // 4, n // 64

    @T.prim_func
    def gemm(a: T.handle, b: T.handle, c: T.handle):
        T.func_attr({"global_symbol": "gemm", "tirx.noalias": True})
        m = T.int32()
        A = T.match_buffer(a, (m, k), "uint8")
        B = T.match_buffer(b, (nb_n, kb_n, 4, 64), "int8")
        C = T.match_buffer(c, (m, n), "int32")
        for mb in T.parallel(m // 4):
            for nb in range(nb_n):
                acc = T.alloc_buffer((4, 64), "int32", scope="local")
                for i in T.unroll(4):
                    for v in T.unroll(4):
                        acc[i, T.ramp(v * 16, 1, 16)] = T.broadcast(T.int32(0), 16)
                for kb in range(kb_n):
                    for i in T.unroll(4):
                        a4 = T.reinterpret(A.vload([mb * 4 + i, kb * 4], "uint8x4"),
                                           dtype="int32")
                        a64 = T.reinterpret(T.broadcast(a4, 16), dtype="int8x64")
                        for v in T.unroll(4):
                            acc[i, T.ramp(v * 16, 1, 16)] = T.call_llvm_pure_intrin(
                                "int32x16", "llvm.x86.avx512.vpdpbusd.512",
                                acc.vload([i, v * 16], "int32x16"), a64,
                                B.vload([nb, kb, v, 0], "int8x64"))
                for i in T.unroll(4):
                    for v in T.unroll(4):
                        C[mb * 4 + i, T.ramp(nb * 64 + v * 16, 1, 16)] = acc.vload(
                            [i, v * 16], "int32x16")
    return gemm


def kernel_path(k: int, n: int) -> Path:
    return cache_dir() / f"gemm_u8s8_k{k}_n{n}_{target_key()}_tvm{tvm_version()}.so"


def _load_or_build(k: int, n: int) -> Any:
    """The compiled kernel from the disk cache, else compiled (about 0.1 s) and cached."""
    path = kernel_path(k, n)
    if path.is_file():
        try:
            return load_module(path)
        except Exception:  # a stale or foreign file: rebuild it
            pass
    import tvm
    lib = tvm.compile(tvm.IRModule({"gemm": _prim_func(k, n)}), target=llvm_target())
    save_module(lib, path)
    return lib


def gemm_fn(k: int, n: int) -> Callable[[Any, Any, Any], None]:
    """The compiled kernel for (K, N) (multiples of 4 and 64)."""
    key = (k, n)
    if key not in _mem:
        _mem[key] = _load_or_build(k, n)
    return _mem[key]["gemm"]


ALIGN = 64  # TVM assumes 64-byte aligned buffers and emits aligned vector loads/stores


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A C-contiguous array whose data starts on a 64-byte boundary (numpy only guarantees
    16: an unaligned buffer makes the kernel fault at random)."""
    dt = np.dtype(dtype)
    nbytes = math.prod(shape) * dt.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    off = -raw.__array_interface__["data"][0] % ALIGN
    return raw[off:off + nbytes].view(dt).reshape(shape)


def aligned_zeros(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    out = aligned_empty(shape, dtype)
    out[...] = 0
    return out


def pack_weights(w: np.ndarray) -> np.ndarray:
    """int codes (N, K) -> int8 (Np/64, Kp/4, 4, 64), zero padded to N % 64 == K % 4 == 0."""
    n, k = w.shape
    npad, kpad = -n % 64, -k % 4
    wp = np.zeros((n + npad, k + kpad), np.int8)
    wp[:n, :k] = w
    t = wp.reshape((n + npad) // 64, 4, 16, (k + kpad) // 4, 4)  # nb, v, nn, kb, kk
    out = aligned_zeros(((n + npad) // 64, (k + kpad) // 4, 4, 64), np.int8)
    out[...] = t.transpose(0, 3, 1, 2, 4).reshape(out.shape)
    return out
