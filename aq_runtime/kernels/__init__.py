"""Fast backends, one folder each: numba_cpu/ (parallel Numba CPU kernels, bit-serial for 1-3
bit pointwise convs), tvm/ (TIR kernels with a GEMM microkernel for the CPU at hand: AVX-512
VNNI, AVX-VNNI or AVX2), tvm_cuda/ (TVM tensor expressions for CUDA) and numba_cuda/
(numba-cuda kernels, also run under the CUDA simulator). Each registers in `runtime.backends`
and must give integers equal to `kernels.reference`, element for element."""
