"""Training: fake-quant models built from the same quant parameters as the integer graph (so
training sees the quantization the exporter produces; qgraph.py), the strategies (AQ, TTQ,
uniform, progressive search), distillation from the float model, SWA finetuning, resumable
checkpoints, and the integer evaluation of what was trained."""
