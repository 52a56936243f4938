"""TVM CUDA backend (`tvm-cuda`): every op of docs/SEMANTICS.md as a TVM tensor expression
(compute.py), scheduled one thread per output (schedule.py), compiled per model into one module
and cached on disk (build.py); the CUDA C is turned into a cubin for the GPU at load by nvcc
(nvcc.py). Compiling needs the full apache-tvm package but no GPU; running needs a GPU, nvcc,
torch, and TVM's runtime libraries only."""

from .ops import TvmCudaOps  # noqa: F401
