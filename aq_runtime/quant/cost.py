"""MicroNet-style cost of an integer graph, following the challenge rules literally:
parameters: a b-bit value counts b/32 (everything stored for inference: weights, biases,
multipliers, shifts, clamp bounds, zero points, tables); operations: multiplies and additions
count separately, each max(bits of its inputs)/16 (capped at 1: 16 bits and more count 1);
nonlinear functions, shifts, compares and table lookups count 1 each.
score = params / 6.9M + ops / 1170M (MobileNetV2-1.4). Per-layer rows show the calculation."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

REF_PARAMS = 6.9e6
REF_OPS = 1170e6
REQUANT_OPS = 7  # + bias, * m, + round, >> n, + z, two clamps (all on 32-bit values)


@dataclass
class LayerCost:
    name: str
    op: str
    params: float
    ops: float
    weight_bits_mean: float
    act_bits_mean: float


def _op_cost(bits: np.ndarray | float) -> np.ndarray:
    return np.minimum(np.asarray(bits, np.float64), 16.0) / 16.0


def layer_costs(graph) -> list[LayerCost]:
    """One row per node of an IR graph (duck-typed: nodes, tensors)."""
    rows = []
    for n in graph.nodes:
        out = graph.tensors[n.output]
        tin = graph.tensors[n.inputs[0]]
        c, h, w = out.shape
        pix = h * w
        ob = np.minimum(out.bits.astype(np.float64), 32)
        clamp_params = 2 * ob.sum() / 32 + ob.sum() / 32  # lo, hi, zero point
        in_bits = float(tin.bits.max())
        if n.op == "conv":
            wb = n.arrays["wbits"].astype(np.float64)
            k = int(np.prod(n.arrays["weight"].shape[1:]))
            params = (k * wb.sum() + c * (32 + 16 + 8)) / 32 + clamp_params
            if n.attrs.get("mode") == "ternary":
                params += c * (32 + 16) / 32
            mults = k * _op_cost(np.maximum(wb, in_bits)).sum() * pix
            ops = mults + k * c * pix + REQUANT_OPS * c * pix
            rows.append(LayerCost(n.name, n.op, params, ops, float(wb.mean()), float(ob.mean())))
            continue
        if n.op == "add":
            params = c * (16 + 16 + 8) / 32 + clamp_params
            ops = (2 + 2 + 1 + REQUANT_OPS - 1) * c * pix
        elif n.op == "mul":
            params = c * (16 + 8) / 32 + clamp_params
            ops = (2 + float(_op_cost(in_bits)) + REQUANT_OPS) * c * pix
        elif n.op == "maxpool":
            kh, kw = n.attrs["kernel"]
            params, ops = 0.0, (kh * kw - 1) * c * pix  # compares
        elif n.op == "avgpool":
            kh, kw = n.attrs["kernel"]
            params = c * (16 + 8) / 32 + clamp_params
            ops = 2 * kh * kw * c * pix + REQUANT_OPS * c * pix
        elif n.op == "gap":
            _, hi, wi = tin.shape
            params = c * (16 + 8) / 32 + clamp_params
            ops = 2 * c * hi * wi + REQUANT_OPS * c
        else:  # lut
            params = n.arrays["table"].size * float(ob.max()) / 32
            ops = c * pix
        rows.append(LayerCost(n.name, n.op, float(params), float(ops), 0.0, float(ob.mean())))
    return rows


def micronet_score(graph) -> dict:
    """Totals and the score, with the per-layer rows."""
    rows = layer_costs(graph)
    p = sum(r.params for r in rows)
    o = sum(r.ops for r in rows)
    return {"params": p, "ops": o, "score": p / REF_PARAMS + o / REF_OPS,
            "layers": [asdict(r) for r in rows]}
