"""The backend registry: one line per backend, name -> loader returning an ops object.
Adding a backend (kernels/<name>/) adds one line here."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable

from .. import AqError
from ..export.ir import Graph


def _reference(graph: Graph) -> Any:
    return importlib.import_module("aq_runtime.runtime.reference")


def _numba(graph: Graph) -> Any:
    try:
        return importlib.import_module("aq_runtime.kernels.numba_cpu")
    except ImportError as e:
        raise AqError(f"backend 'numba' needs the numba package ({e.name} is missing)") from None


def tvm_unavailable() -> str | None:
    """Why the tvm backend cannot run here (None if it can)."""
    if importlib.util.find_spec("tvm") is None:
        return "backend 'tvm' needs the apache-tvm package (pip install apache-tvm)"
    if importlib.util.find_spec("numba") is None:
        return "backend 'tvm' needs the numba package"
    from ..kernels.tvm.target import missing_features
    miss = missing_features()
    if miss:
        return f"backend 'tvm' needs a CPU with AVX-512 VNNI (missing: {', '.join(miss)})"
    return None


def _tvm(graph: Graph) -> Any:
    why = tvm_unavailable()
    if why:
        raise AqError(why)
    return importlib.import_module("aq_runtime.kernels.tvm")


def cuda_unavailable() -> str | None:
    """Why the numba-cuda backend cannot run here (None if it can: a GPU, or the simulator)."""
    if importlib.util.find_spec("numba") is None:
        return "backend 'numba-cuda' needs the numba and numba-cuda packages"
    try:
        from numba import cuda
        if cuda.is_available():
            return None
    except Exception:  # a broken driver or toolkit: report it as unavailable
        pass
    return ("backend 'numba-cuda' needs an NVIDIA GPU with a CUDA driver "
            "(or NUMBA_ENABLE_CUDASIM=1 to simulate it on the CPU)")


def _numba_cuda(graph: Graph) -> Any:
    why = cuda_unavailable()
    if why:
        raise AqError(why)
    return importlib.import_module("aq_runtime.kernels.numba_cuda")


def _simulated() -> bool:
    import os
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


# name -> loader. Order = preference of "auto" (fastest first).
BACKENDS: dict[str, Callable[[Graph], Any]] = {
    "tvm": _tvm,
    "numba": _numba,
    "numba-cuda": _numba_cuda,
    "reference": _reference,
}
PLANNED = ("tvm-cuda",)


def available_backends() -> list[str]:
    """Backends whose dependencies import here."""
    out = []
    for name in BACKENDS:
        if name == "numba" and importlib.util.find_spec("numba") is None:
            continue
        if name == "tvm" and tvm_unavailable():
            continue
        if name == "numba-cuda" and (cuda_unavailable() or _simulated()):
            continue  # the simulator is for tests: never listed, only asked for by name
        out.append(name)
    return out


def get_backend(name: str, graph: Graph) -> tuple[str, Any]:
    """Resolve a backend name ('auto' = the first available) to (name, ops)."""
    if name == "auto":
        name = available_backends()[0]
    if name not in BACKENDS:
        if name in PLANNED:
            raise AqError(f"backend {name!r} is not available in this build "
                          f"(available: {', '.join(BACKENDS)})")
        raise AqError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
    return name, BACKENDS[name](graph)
