"""The real-valued weights and bias an integer conv node stands for: codes times the weight
scale its fixed-point multiplier implies (m / 2^n * s_out), unfolded from the input's
activation scale, with the zero-point corrections taken back out of the bias. Used by the
fake-quant model and by bias correction, so both see exactly the exported codes."""

from __future__ import annotations

import numpy as np

from ..quant.cost import input_channel_map
from ..quant.requant import implied_scale
from ..ir.graph import Graph, Node


def dequantized_conv(graph: Graph, n: Node) -> tuple[np.ndarray, np.ndarray]:
    """(weight (O, C/groups, kh, kw), bias (O,)) float64 of conv node `n` in real units."""
    t_in, out = graph.tensors[n.inputs[0]], graph.tensors[n.output]
    w = n.arrays["weight"].astype(np.float64)
    o, cg = w.shape[:2]
    ch = input_channel_map(o, cg, n.attrs["groups"])
    sa = t_in.scale[ch][:, :, None, None]
    zq = (w * t_in.zero_point[ch][:, :, None, None]).reshape(o, -1)
    sw = implied_scale(n.arrays["mult"], n.arrays["shift"], out.scale)
    if n.attrs.get("mode") == "ternary":
        sn = implied_scale(n.arrays["mult_n"], n.arrays["shift"], out.scale)
        wf = (sw[:, None, None, None] * (w == 1) - sn[:, None, None, None] * (w == -1)) / sa
        bf = sw * (n.arrays["bias"] + (zq * (w.reshape(o, -1) == 1)).sum(1))
    else:
        wf = sw[:, None, None, None] * w / sa
        bf = sw * (n.arrays["bias"] + zq.sum(1))
    return wf, bf
