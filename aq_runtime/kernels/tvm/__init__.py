"""TVM CPU backend (TVM 0.27): activations as NHWC uint8 rows between layers, every one-group
conv on a u8 x s8 GEMM microkernel written in TVMScript whose dot product is the CPU's (AVX-512
VNNI, AVX-VNNI, AVX2 or aarch64 `sdot`: target.py, dot.py), depthwise convs, adds, gating,
pooling and requantization as TIR kernels along the channels. Kernels are compiled on first use
(PyPI `apache-tvm`) or loaded from a kernels file compiled ahead (ahead.py, with apache-tvm-ffi
alone). Needs an x86 CPU with AVX2 and FMA or an aarch64 CPU with the dot-product extension
(detected at run time). `TvmCpuOps` is its ops object."""

from .ops import TvmCpuOps  # noqa: F401
