"""TVM CPU backend (PyPI `apache-tvm`, TVM 0.27): activations as NHWC uint8 rows between
layers, every one-group conv on an AVX-512 VNNI u8 x s8 GEMM microkernel written in TVMScript,
requantization and the other ops as vectorized Numba kernels along the channels. Needs AVX-512
VNNI (detected from the CPU's flags at run time)."""

from .ops import (  # noqa: F401
    add,
    avgpool,
    conv,
    from_images,
    gap,
    kernel_choice,
    lut,
    maxpool,
    mul,
    to_host,
)
