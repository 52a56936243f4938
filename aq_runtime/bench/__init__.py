"""Measurement: fidelity of integer models against their float model (the four numbers of runtime/fidelity.py) and the
comparison tables and size-vs-fidelity plot built on it, the latency harness with ONNX Runtime
int8 and PyTorch fp32 baselines in the same run, per-layer profiles, per-block errors (where a
low-bit model's noise arises, on calibration and held-out images), the reader fuzzer and the
demo."""
