"""Numba CPU backend (`NumbaOps`): parallel int32-accumulating convolution kernels (pointwise
GEMM, depthwise, general direct conv: kernels/nchw.py) with the requantization of
docs/SEMANTICS.md fused in the epilogue, and for pointwise convs with 1- to 3-bit weight codes a
bit-serial kernel (AND + popcount on bit-planes), picked per layer by timing at plan time
(kernels/choice.py). Residual adds run as a Numba kernel; gating multiplies, pools, ternary
convs and LUTs use the reference functions (cheap, already exact).

Importing this package does not import its kernels: `unavailable()` says why the backend cannot
run here, `load(graph)` imports the kernels and makes the ops object."""

from __future__ import annotations

from ...ir.graph import Graph
from ...optional import installed


def unavailable() -> str | None:
    return None if installed("numba") else "backend 'numba' needs the numba package"


def load(graph: Graph):
    from .ops import NumbaOps
    return NumbaOps(graph)
