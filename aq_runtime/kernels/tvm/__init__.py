"""TVM CPU backend (PyPI `apache-tvm`, TVM 0.27): an AVX-512 VNNI u8 x s8 GEMM microkernel in
TVMScript for pointwise convs, numba_cpu kernels for the rest. Needs AVX-512 VNNI (detected
from the CPU's flags at run time)."""

from .ops import add, avgpool, conv, gap, kernel_choice, lut, maxpool, mul  # noqa: F401
