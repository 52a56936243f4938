"""MicroNet-style cost of an integer graph, following the challenge rules literally:
parameters: a b-bit value counts b/32 (everything stored for inference: weights, biases,
multipliers, shifts, clamp bounds, zero points, tables); operations: multiplies and additions
count separately, each max(bits of its inputs)/16 (capped at 1: 16 bits and more count 1);
nonlinear functions, shifts, compares and table lookups count 1 each.
score = params / 6.9M + ops / 1170M (MobileNetV2-1.4). Per-layer rows show the calculation.

A conv multiply w[o,c,k] * a[c,...] is priced by max(bits of w[o], bits of a[c]): per pair of
output and input channel, so per-channel bits lower the count exactly where they are used.
The per-op functions take bits as numpy arrays or torch tensors (only +, -, *, /, abs() and
.sum() are used), so training's differentiable metric is this very code."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .weights import stored_weight_bits

REF_PARAMS = 6.9e6
REF_OPS = 1170e6
REQUANT_OPS = 7  # + bias, * m, + round, >> n, + z, two clamps (all on 32-bit values)
CONV_CHANNEL_PARAM_BITS = 32 + 16 + 8  # int32 bias, 16-bit multiplier, shift
TERNARY_EXTRA_BITS = 32 + 16  # second bias and second multiplier


@dataclass
class LayerCost:
    name: str
    op: str
    params: float
    ops: float
    weight_bits_mean: float
    act_bits_mean: float


def _max(a: Any, b: Any) -> Any:
    return (a + b + abs(a - b)) / 2


def op_cost(bits: Any) -> Any:
    """Price of one operation whose widest input has `bits` bits: min(bits, 16) / 16."""
    return (bits + 16 - abs(bits - 16)) / 2 / 16


def clamp_params(out_bits: Any) -> Any:
    """lo, hi and zero point of each output channel, at the output's bits (logits: 32)."""
    return 3 * ((out_bits + 32 - abs(out_bits - 32)) / 2).sum() / 32


def conv_cost(wbits: Any, in_bits_pairs: Any, out_bits: Any, ksize: int, pix: int,
              ternary: bool = False, stored_bits: Any = None) -> tuple[Any, Any]:
    """(params, ops) of a conv: `wbits` (O,) the weights' bits as multiplied, `stored_bits`
    (O,) as stored per weight (default: the same; group multipliers store fewer),
    `in_bits_pairs` (O, C/groups) the bits of the input channel each output channel reads,
    `ksize` = kh*kw, `pix` = output pixels."""
    o, cg = in_bits_pairs.shape
    sb = wbits if stored_bits is None else stored_bits
    params = (cg * ksize * sb.sum() + o * CONV_CHANNEL_PARAM_BITS) / 32 + clamp_params(out_bits)
    if ternary:
        params = params + o * TERNARY_EXTRA_BITS / 32
    mults = ksize * pix * op_cost(_max(wbits[:, None], in_bits_pairs)).sum()
    adds = o * cg * ksize * pix  # int32 accumulation: 32-bit inputs count 1
    return params, mults + adds + REQUANT_OPS * o * pix


def elementwise_cost(op: str, out_bits: Any, c: int, pix: int, in_bits_max: float = 8.0,
                     in_pix: int = 0, kernel: int = 1, table_size: int = 0) -> tuple[Any, Any]:
    """(params, ops) of add, mul, gap, maxpool, avgpool and lut nodes."""
    cp = clamp_params(out_bits)
    if op == "add":
        return c * (16 + 16 + 8) / 32 + cp, (2 + 2 + 1 + REQUANT_OPS - 1) * c * pix
    if op == "mul":
        return c * (16 + 8) / 32 + cp, (2 + float(op_cost(in_bits_max)) + REQUANT_OPS) * c * pix
    if op == "maxpool":
        return 0.0, (kernel - 1) * c * pix  # compares
    if op == "avgpool":
        return c * (16 + 8) / 32 + cp, 2 * kernel * c * pix + REQUANT_OPS * c * pix
    if op == "gap":
        return c * (16 + 8) / 32 + cp, 2 * c * in_pix + REQUANT_OPS * c
    if op == "lut":
        return table_size * ((out_bits + 32 - abs(out_bits - 32)) / 2).max() / 32, c * pix
    raise ValueError(f"no cost rule for op {op!r}")


def input_channel_map(o: int, cg: int, groups: int) -> np.ndarray:
    """(O, C/groups) index of the input channel that output channel o reads at position c."""
    og = o // groups
    return (np.arange(o) // og)[:, None] * cg + np.arange(cg)[None, :]


def layer_costs(graph) -> list[LayerCost]:
    """One row per node of an IR graph (duck-typed: nodes, tensors)."""
    rows = []
    for n in graph.nodes:
        out = graph.tensors[n.output]
        tin = graph.tensors[n.inputs[0]]
        c, h, w = out.shape
        ob = out.bits.astype(np.float64)
        ob_mean = float(np.minimum(ob, 32).mean())
        if n.op == "conv":
            wb = n.arrays["wbits"].astype(np.float64)
            sb = stored_weight_bits(n.arrays, n.attrs)
            o, cg, kh, kw = n.arrays["weight"].shape
            pairs = tin.bits.astype(np.float64)[input_channel_map(o, cg, n.attrs["groups"])]
            p, q = conv_cost(wb, pairs, ob, kh * kw, h * w, n.attrs.get("mode") == "ternary", sb)
            rows.append(LayerCost(n.name, n.op, float(p), float(q), float(sb.mean()), ob_mean))
            continue
        kernel = int(np.prod(n.attrs["kernel"])) if n.op in ("maxpool", "avgpool") else 1
        table = n.arrays["table"].size if n.op == "lut" else 0
        p, q = elementwise_cost(n.op, ob, c, h * w, float(tin.bits.max()),
                                tin.shape[1] * tin.shape[2], kernel, table)
        rows.append(LayerCost(n.name, n.op, float(p), float(q), 0.0, ob_mean))
    return rows


def micronet_score(graph) -> dict:
    """Totals and the score, with the per-layer rows."""
    rows = layer_costs(graph)
    p = sum(r.params for r in rows)
    o = sum(r.ops for r in rows)
    return {"params": p, "ops": o, "score": p / REF_PARAMS + o / REF_OPS,
            "layers": [asdict(r) for r in rows]}
