"""The integer ops: `reference` (numpy int64, the definition), `executor` (walks a graph through
a backend's ops), `choice` (times a layer's exact candidates, keeps the fastest) and `cache`
(compile and choice caches on disk); then one folder per fast backend: numba_cpu/ (parallel
Numba CPU kernels, bit-serial for 1-3 bit pointwise convs), tvm/ (TIR kernels with a GEMM
microkernel for the CPU at hand: AVX-512 VNNI, AVX-VNNI, AVX2 or aarch64 `sdot`; also loaded
from kernels compiled ahead), tvm_cuda/ (TVM tensor expressions for CUDA) and numba_cuda/
(numba-cuda kernels, also run under the CUDA simulator). `runtime.backends` registers each;
each must give integers equal to `reference`, element for element."""
