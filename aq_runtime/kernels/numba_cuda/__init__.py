"""Numba CUDA backend (`numba-cuda`, `NumbaCudaOps`): one thread per output element for every
op of docs/SEMANTICS.md, activations kept on the device between ops. Runs on an NVIDIA GPU, or
on the CPU under Numba's CUDA simulator (`NUMBA_ENABLE_CUDASIM=1`, slow: for tests on small
graphs)."""

from .ops import NumbaCudaOps  # noqa: F401
