"""TVM CPU backend (PyPI `apache-tvm`, TVM 0.27): activations as NHWC uint8 rows between
layers, every one-group conv on a u8 x s8 GEMM microkernel written in TVMScript whose dot
product is the CPU's (AVX-512 VNNI, AVX-VNNI or AVX2: target.py, dot.py), depthwise convs,
adds, gating, pooling and requantization as TIR kernels along the channels. Needs an x86 CPU
with AVX2 and FMA (detected from the CPU's flags at run time)."""

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
