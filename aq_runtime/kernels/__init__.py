"""Fast backends, one folder each (numba_cpu/, later tvm/ and numba_cuda/). Each exposes the
same op functions as `runtime.reference` and must give identical integers."""
