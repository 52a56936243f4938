"""Measurement: fidelity of an integer model against its float model (DESIGN §7) and, later,
the latency harness with ONNX Runtime and PyTorch baselines."""
