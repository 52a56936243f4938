"""TVM CUDA backend (`tvm-cuda`): every op of docs/SEMANTICS.md as a TVM tensor expression
(compute.py), scheduled one thread per output (schedule.py), compiled per model into one module
and cached on disk (build.py); the CUDA C is turned into a cubin for the GPU at load by nvcc
(nvcc.py). Compiling needs the full apache-tvm package but no GPU; running needs a GPU, nvcc,
torch, and TVM's runtime libraries only.

Importing this package does not import its kernels (nor TVM, its runtime or torch):
`unavailable()` says why the backend cannot run here, `load(graph)` compiles or loads the
graph's module and makes the ops object."""

from __future__ import annotations

from functools import lru_cache

from ... import AqError
from ...ir.graph import Graph
from ...optional import installed, missing_message
from ..tvm_runtime import has_lib


@lru_cache(maxsize=1)
def gpu_present() -> bool:
    """A CUDA driver with at least one device (asked through libcuda once per process: no
    torch import)."""
    import ctypes
    try:
        cu = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return cu.cuInit(0) == 0 and cu.cuDeviceGetCount(ctypes.byref(count)) == 0 \
            and count.value > 0
    except OSError:  # no driver library
        return False


def unavailable() -> str | None:
    if not has_lib("libtvm_runtime_cuda.so"):
        return missing_message("tvm", "backend 'tvm-cuda'")
    if not gpu_present():
        return "backend 'tvm-cuda' needs an NVIDIA GPU with a CUDA driver (none found)"
    if not installed("torch"):
        return missing_message("torch", "backend 'tvm-cuda' (it holds the tensors on the GPU)")
    return None


def load(graph: Graph):
    from .ops import TvmCudaOps
    try:
        return TvmCudaOps(graph, gpu=True)
    except (RuntimeError, OSError, ImportError) as e:
        raise AqError(f"backend 'tvm-cuda': {str(e).splitlines()[0]}") from None
