"""Interop with ONNX: import of float ONNX CNNs into the float graph (onnx_load, onnx_fold,
onnx_in), the integer-exact ONNX export of a .aqz (onnx_int: ONNX Runtime as an external oracle
for the semantics) and the standard QDQ export (onnx_qdq: close, not exact)."""
