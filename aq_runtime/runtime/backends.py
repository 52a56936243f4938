"""The backend registry: one `Backend` record per backend (its name, why it cannot run here,
and how to make its ops object for a graph), in the order "auto" prefers. Every backend's ops
object is a `kernels.ops.Ops` made for one graph (`kernels.executor` calls its op methods).
Adding a backend (kernels/<name>/, an `Ops` subclass) adds its availability check and one
record here."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from .. import AqError
from ..ir.graph import Graph
from ..kernels.ops import Ops
from ..optional import installed, missing_message


def _ops_class(module: str, cls: str) -> Callable[[Graph], Ops]:
    """A loader: the ops class `cls` of backend package `module`, imported on first use (a
    backend's dependencies are imported only when it runs)."""
    def load(graph: Graph) -> Ops:
        return getattr(importlib.import_module(f"aq_runtime.kernels.{module}"), cls)(graph)
    return load


def _ahead_loaded() -> bool:
    """Whether this process loaded a kernels file (asked without importing the tvm backend:
    no kernels file is loaded unless its module is)."""
    compiled = sys.modules.get("aq_runtime.kernels.tvm.compiled")
    return compiled is not None and compiled.ahead_loaded()


def use_kernels(path: Any, graph: Graph, backend: str) -> str:
    """Load kernels file `path` (aq-compile) of `graph` for the tvm backend; returns the
    backend to run ('auto' becomes 'tvm')."""
    if backend not in ("auto", "tvm"):
        raise AqError(f"a kernels file is for backend 'tvm', not {backend!r}")
    if not installed("tvm_ffi"):
        raise AqError(missing_message("tvm_ffi", "a kernels file"))
    if not installed("numba"):
        raise AqError("backend 'tvm' needs the numba package")
    from ..kernels.tvm.ahead import load_kernels
    load_kernels(path, graph)
    return "tvm"


def tvm_unavailable() -> str | None:
    """Why the tvm backend cannot run here (None if it can)."""
    if _ahead_loaded():
        return None
    if not _tvm_lib("libtvm_compiler.so"):
        return missing_message("tvm", "backend 'tvm' (compiling its kernels here)")
    if not installed("numba"):
        return "backend 'tvm' needs the numba package"
    from ..kernels.tvm.target import isa, missing_features
    miss = missing_features()
    if miss:
        return (f"backend 'tvm' needs an x86 CPU with AVX2 and FMA, or an aarch64 CPU with "
                f"the dot-product extension (missing: {', '.join(miss)})")
    try:
        isa()
    except AqError as e:  # AQ_TVM_ISA names an instruction set this CPU lacks
        return f"backend 'tvm': {e}"
    return None


def _tvm_lib(name: str) -> bool:
    """Whether apache-tvm's library `name` is installed (checked without importing tvm)."""
    if not installed("tvm"):
        return False
    from ..kernels.tvm_runtime import lib_dir
    return (lib_dir() / name).is_file()


@lru_cache(maxsize=1)
def _gpu_present() -> bool:
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


def tvm_cuda_unavailable() -> str | None:
    """Why the tvm-cuda backend cannot run here (None if it can)."""
    if not _tvm_lib("libtvm_runtime_cuda.so"):
        return missing_message("tvm", "backend 'tvm-cuda'")
    if not _gpu_present():
        return "backend 'tvm-cuda' needs an NVIDIA GPU with a CUDA driver (none found)"
    if not installed("torch"):
        return missing_message("torch", "backend 'tvm-cuda' (it holds the tensors on the GPU)")
    return None


def _tvm_cuda(graph: Graph) -> Ops:
    from ..kernels.tvm_cuda import TvmCudaOps
    try:
        return TvmCudaOps(graph, gpu=True)
    except (RuntimeError, OSError, ImportError) as e:
        raise AqError(f"backend 'tvm-cuda': {str(e).splitlines()[0]}") from None


def cuda_unavailable() -> str | None:
    """Why the numba-cuda backend cannot run here (None if it can: a GPU, or the simulator)."""
    if not installed("numba"):
        return "backend 'numba-cuda' needs the numba and numba-cuda packages"
    try:
        from numba import cuda
        if cuda.is_available():
            return None
    except Exception:  # a broken driver or toolkit: report it as unavailable
        pass
    return ("backend 'numba-cuda' needs an NVIDIA GPU with a CUDA driver "
            "(or NUMBA_ENABLE_CUDASIM=1 to simulate it on the CPU)")


def _simulated() -> bool:
    import os
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def numba_unavailable() -> str | None:
    return None if installed("numba") else "backend 'numba' needs the numba package"


def numba_cuda_unlisted() -> str | None:
    """numba-cuda is offered only on a GPU: under the CUDA simulator (for tests) it is never
    listed, only used when asked for by name."""
    return cuda_unavailable() or ("backend 'numba-cuda' runs on the CUDA simulator "
                                  "(NUMBA_ENABLE_CUDASIM) only when asked for by name"
                                  if _simulated() else None)


@dataclass(frozen=True)
class Backend:
    name: str
    unavailable: Callable[[], str | None]  # why it cannot run here (None: it can)
    load: Callable[[Graph], Ops]  # the ops object for a graph
    unlisted: Callable[[], str | None] | None = None  # why "auto" and listings skip it

    def why_not_offered(self) -> str | None:
        return (self.unlisted or self.unavailable)()

    def ops(self, graph: Graph) -> Ops:
        why = self.unavailable()
        if why:
            raise AqError(why)
        return self.load(graph)


# the order "auto" prefers (fastest first)
BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("tvm-cuda", tvm_cuda_unavailable, _tvm_cuda),
    Backend("numba-cuda", cuda_unavailable, _ops_class("numba_cuda", "NumbaCudaOps"),
            numba_cuda_unlisted),
    Backend("tvm", tvm_unavailable, _ops_class("tvm", "TvmCpuOps")),
    Backend("numba", numba_unavailable, _ops_class("numba_cpu", "NumbaOps")),
    Backend("reference", lambda: None, Ops),
)}


def backend_unavailable(name: str) -> str | None:
    """Why backend `name` is not offered here (None: it is)."""
    return BACKENDS[name].why_not_offered()


def available_backends() -> list[str]:
    """Backends whose dependencies import here."""
    return [name for name in BACKENDS if backend_unavailable(name) is None]


def backend_report() -> list[str]:
    """One line per backend: available (tvm: with which instruction set) or why not."""
    lines = []
    for name in BACKENDS:
        reason = backend_unavailable(name)
        if reason:
            lines.append(f"{name}: not available: {reason.removeprefix(f'backend {name!r} ')}")
        elif name == "tvm":
            from ..kernels.tvm.target import isa
            lines.append(f"tvm: available ({isa()} kernels)")
        else:
            lines.append(f"{name}: available")
    return lines


def get_backend(name: str, graph: Graph, batch: int = 16) -> tuple[str, Ops]:
    """Resolve a backend name to (name, ops). 'auto': the backend aq-bench measured fastest for
    this model on this machine (runtime/fastest.py), if available, else the first available."""
    if name == "auto":
        avail = available_backends()
        name = avail[0]
        if graph is not None:
            from .fastest import lookup
            measured = lookup(graph, batch)
            if measured in avail:
                name = measured
    if name not in BACKENDS:
        raise AqError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
    return name, BACKENDS[name].ops(graph)
