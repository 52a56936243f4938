"""Numba CPU backend: parallel int32-accumulating convolution kernels (pointwise GEMM,
depthwise, general direct conv) with the requantization of DESIGN §3 fused in the epilogue.
Residual adds run as a Numba kernel; gating multiplies, pools, ternary convs and LUTs use the
reference functions (cheap, already exact)."""

from .ops import add, avgpool, conv, gap, lut, maxpool, mul  # noqa: F401
