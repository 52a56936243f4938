"""The integer ops. Shared by every backend: `reference` (numpy int64, the definition), `ops`
(`Ops`, the one shape of a backend: an object per graph; itself the reference backend),
`executor` (walks a graph through an ops object), `choice` (times a layer's exact candidates,
keeps the fastest), `cache` (compile and choice caches on disk), `nchw` (NCHW Numba conv
kernels: the numba backend's, and the tvm backend's fallback) and `tvm_runtime` (loading and
saving TVM modules). Then one folder per fast backend, none importing another: numba_cpu/
(parallel Numba CPU kernels, bit-serial for 1-3 bit pointwise convs), tvm/ (TIR kernels with a
GEMM microkernel for the CPU at hand: AVX-512 VNNI, AVX-VNNI, AVX2 or aarch64 `sdot`; also
loaded from kernels compiled ahead), tvm_cuda/ (TVM tensor expressions for CUDA) and
numba_cuda/ (numba-cuda kernels, also run under the CUDA simulator). `runtime.backends`
registers each; each must give integers equal to `reference`, element for element."""
