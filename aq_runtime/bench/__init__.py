"""Measurement and the demo: comparison tables of exports on held-out images (runtime.fidelity's
four numbers) and the size-vs-fidelity plot, the latency harness with ONNX Runtime int8 and
PyTorch fp32 baselines in the same run, per-layer profiles, per-block errors (where a low-bit
model's noise arises), the reader fuzzer, generated image folders for scale runs, and the graphs
and ONNX test models the tests and benchmarks share."""
