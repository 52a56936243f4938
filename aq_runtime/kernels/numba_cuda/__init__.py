"""Numba CUDA backend (`numba-cuda`, `NumbaCudaOps`): one thread per output element for every
op of docs/SEMANTICS.md, activations kept on the device between ops. Runs on an NVIDIA GPU, or
on the CPU under Numba's CUDA simulator (`NUMBA_ENABLE_CUDASIM=1`, slow: for tests on small
graphs).

Importing this package does not import its kernels (nor numba's CUDA support): `unavailable()`
says why the backend cannot run here, `unlisted()` why "auto" and listings skip it,
`load(graph)` makes the ops object."""

from __future__ import annotations

import os

from ...ir.graph import Graph
from ...optional import installed


def unavailable() -> str | None:
    """Why the backend cannot run here (None if it can: a GPU, or the simulator)."""
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


def simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def unlisted() -> str | None:
    """Offered only on a GPU: under the CUDA simulator (for tests) it is never listed, only
    used when asked for by name."""
    return unavailable() or ("backend 'numba-cuda' runs on the CUDA simulator "
                             "(NUMBA_ENABLE_CUDASIM) only when asked for by name"
                             if simulated() else None)


def load(graph: Graph):
    from .ops import NumbaCudaOps
    return NumbaCudaOps(graph)
