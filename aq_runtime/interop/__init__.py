"""Interop with ONNX: an integer-exact ONNX export of a .aqz (ONNX Runtime as an external
oracle for our semantics)."""
