"""The integer graph every part speaks: `graph` (tensors with per-channel quant params, nodes
with their integer arrays, the model digest), `validate` (every bound a graph must keep before
it is written or run) and `float_graph` (the BatchNorm-folded float model that export and
training start from). numpy and `quant` only."""
