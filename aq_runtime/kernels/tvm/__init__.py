"""TVM CPU backend (TVM 0.27): activations as NHWC uint8 rows between layers, every one-group
conv on a u8 x s8 GEMM microkernel written in TVMScript whose dot product is the CPU's (AVX-512
VNNI, AVX-VNNI, AVX2 or aarch64 `sdot`: target.py, dot.py), depthwise convs, adds, gating,
pooling and requantization as TIR kernels along the channels. Kernels are compiled on first use
(PyPI `apache-tvm`) or loaded from a kernels file compiled ahead (ahead.py, with apache-tvm-ffi
alone). Needs an x86 CPU with AVX2 and FMA or an aarch64 CPU with the dot-product extension
(detected at run time).

Importing this package does not import its kernels (nor TVM or its runtime): `unavailable()`
says why the backend cannot run here, `load(graph)` imports the kernels and makes the ops object
(`ops.TvmCpuOps`)."""

from __future__ import annotations

import sys

from ... import AqError
from ...ir.graph import Graph
from ...optional import installed, missing_message
from ..tvm_runtime import has_lib


def ahead_loaded() -> bool:
    """Whether this process loaded a kernels file (asked without importing the kernels: none
    is loaded unless their module is)."""
    compiled = sys.modules.get(f"{__name__}.compiled")
    return compiled is not None and compiled.ahead_loaded()


def unavailable() -> str | None:
    if ahead_loaded():
        return None
    if not has_lib("libtvm_compiler.so"):
        return missing_message("tvm", "backend 'tvm' (compiling its kernels here)")
    if not installed("numba"):
        return "backend 'tvm' needs the numba package"
    from .target import isa, missing_features
    miss = missing_features()
    if miss:
        return (f"backend 'tvm' needs an x86 CPU with AVX2 and FMA, or an aarch64 CPU with "
                f"the dot-product extension (missing: {', '.join(miss)})")
    try:
        isa()
    except AqError as e:  # AQ_TVM_ISA names an instruction set this CPU lacks
        return f"backend 'tvm': {e}"
    return None


def load(graph: Graph):
    from .ops import TvmCpuOps
    return TvmCpuOps(graph)


def use_kernels(path, graph: Graph) -> None:
    """Load kernels file `path` (aq-compile) of `graph`: the backend then runs them with the
    TVM runtime alone."""
    if not installed("tvm_ffi"):
        raise AqError(missing_message("tvm_ffi", "a kernels file"))
    if not installed("numba"):
        raise AqError("backend 'tvm' needs the numba package")
    from .ahead import load_kernels
    load_kernels(path, graph)
