"""Training side: fake-quant models built from the same quant parameters as the integer graph
(so training sees the quantization the exporter produces). Strategies (AQ, TTQ, progressive)
build on this."""
