"""Integerization (docs/SEMANTICS.md): float graph + calibrated ranges + bits -> integer IR.
Per-input-channel activation scales are folded into the weights, weights are quantized per
output channel at their own bits, zero-point corrections go into the int32 bias, and every
requantization gets its fixed-point (m, n). LUTs are built here, in float64."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import AqError
from ..quant import (
    act_params_from_range,
    quantize_multiplier,
    quantize_multiplier_pair,
    quantize_ternary,
    round_half_up,
)
from ..quant.bits import LOGIT_BITS, act_code_range, weight_code_max
from ..quant.cost import input_channel_map
from ..quant.weights import expand_groups, quantize_weights_grouped
from .calibrate import Ranges
from ..ir.float_graph import NONLINEAR, POOLS, FloatGraph, FloatNode, conv_out, node_act
from ..ir.graph import Graph, Node, TensorSpec, canonical
from ..ir.validate import validate_graph

LOGIT_RANGE_BITS = 20  # the largest calibrated |logit| maps to about 2^20
BIAS_CODE_LIMIT = float(1 << 24)  # |round(B/sw)| stays below this: room for the int32 proof


def nonlinear_fn(op: str, x: np.ndarray, attrs: dict | None = None) -> np.ndarray:
    """The float64 definition of each table-driven nonlinearity."""
    if op == "hsigmoid":
        return np.clip(attrs["alpha"] * x + attrs["beta"], 0.0, 1.0)
    if op == "swish":
        return x / (1.0 + np.exp(-x))
    if op == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if op == "hswish":
        return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0
    raise ValueError(op)


def tensor_shapes(fg: FloatGraph) -> dict[str, tuple[int, int, int]]:
    shapes = {fg.input: tuple(fg.input_shape)}
    for n in fg.nodes:
        s = shapes[n.inputs[0]]
        if n.op == "conv":
            o, _, kh, kw = n.weight.shape
            t, b, l, r = n.attrs["pad"]
            sh, sw = n.attrs["stride"]
            shapes[n.output] = (o, conv_out(s[1], kh, sh, t, b), conv_out(s[2], kw, sw, l, r))
        elif n.op == "gap":
            shapes[n.output] = (s[0], 1, 1)
        elif n.op in POOLS:
            (kh, kw), (sh, sw), (t, b, l, r) = n.attrs["kernel"], n.attrs["stride"], n.attrs["pad"]
            shapes[n.output] = (s[0], conv_out(s[1], kh, sh, t, b), conv_out(s[2], kw, sw, l, r))
        else:
            shapes[n.output] = s
    return shapes


def lut_inputs(fg: FloatGraph) -> set[str]:
    return {n.inputs[0] for n in fg.nodes if n.op in NONLINEAR}


def act_range(n: FloatNode, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The range node `n`'s output is quantized over: calibrated, within its activation's."""
    act = node_act(n)
    if act in ("relu", "relu6"):
        lo = np.zeros_like(lo)
        hi = np.minimum(hi, 6.0) if act == "relu6" else hi
    if n.op in ("sigmoid", "hsigmoid"):
        lo, hi = np.zeros_like(lo), np.minimum(hi, 1.0)
    return lo, hi


def _clamp_bounds(n: FloatNode, spec: TensorSpec) -> tuple[np.ndarray, np.ndarray]:
    rng = np.array([act_code_range(int(b)) for b in spec.bits], dtype=np.int64).reshape(-1, 2)
    lo, hi = rng[:, 0].copy(), rng[:, 1].copy()
    act = node_act(n)
    if act in ("relu", "relu6"):
        lo = np.maximum(lo, spec.zero_point)
    if act == "relu6":
        hi = np.minimum(hi, spec.zero_point + round_half_up(6.0 / spec.scale))
    return lo, hi


def integerize(fg: FloatGraph, ranges: Ranges, wbits: dict[str, np.ndarray],
               abits: dict[str, np.ndarray], ternary: dict[str, Any] | None = None,
               meta: dict | None = None, wrange: dict[str, np.ndarray] | None = None,
               bias_bits: int = 32, codes: dict[str, np.ndarray] | None = None,
               group: int = 0) -> Graph:
    """Build the integer graph. `wbits[node]` (O,), `abits[tensor]` (C,) per channel;
    `ternary[node] = threshold` (or {"threshold", "wp", "wn"} with trained scales, per channel,
    relative to max|We[o]|) makes that conv TTQ-ternary; `wrange[node]` (O,) scales each channel's weight
    range (AQ's alpha; 1 = max|w|); `bias_bits` < 32 clamps the bias codes round(B/sw) to
    that many signed bits before the zero-point correction; `codes[node]` (O, K) int replaces
    the nearest-rounded weight codes of that conv (learned rounding: same scales,
    codes inside their bits' range); `group` > 0 gives channels of 2..5 code bits a
    multiplier per `group` weights (quant/weights.py, `--weight-groups`). Raises AqError on
    refusal."""
    ternary = ternary or {}
    wrange = wrange or {}
    codes = codes or {}
    if not 2 <= bias_bits <= 32:
        raise AqError(f"bias bits must be in 2..32, got {bias_bits}")
    shapes = tensor_shapes(fg)
    luts = lut_inputs(fg)
    tensors: dict[str, TensorSpec] = {}
    c_in = fg.input_shape[0]
    tensors[fg.input] = TensorSpec(
        fg.input, shapes[fg.input], 1.0 / np.asarray(fg.pixel_std, np.float64),
        round_half_up(np.asarray(fg.pixel_mean, np.float64)), np.full(c_in, 8, np.int64))
    logit_lo, logit_hi = ranges[fg.output]
    s_logit = max(float(np.abs(logit_lo).max()), float(np.abs(logit_hi).max()), 1e-6) / (
        1 << LOGIT_RANGE_BITS)
    nodes: list[Node] = []
    for n in fg.nodes:
        c = shapes[n.output][0]
        if n.op == "maxpool":  # max commutes with the monotone code map: same quant params
            t_in = tensors[n.inputs[0]]
            spec = TensorSpec(n.output, shapes[n.output], t_in.scale, t_in.zero_point, t_in.bits)
        elif n.output == fg.output:
            spec = TensorSpec(n.output, shapes[n.output], np.full(c, s_logit),
                              np.zeros(c, np.int64), np.full(c, LOGIT_BITS, np.int64))
        else:
            bits = np.asarray(abits.get(n.output, np.full(c, 8)), np.int64)
            if n.output in luts:
                bits = np.full(c, 8, np.int64)  # table inputs are 8-bit codes
            if bits.shape != (c,):
                raise AqError(f"activation bits of {n.output!r}: expected {c} channels, "
                              f"got {bits.shape[0] if bits.ndim else 1}")
            lo, hi = act_range(n, *ranges[n.output])
            s, z = act_params_from_range(lo, hi, bits)
            spec = TensorSpec(n.output, shapes[n.output], s, z, bits)
        tensors[n.output] = spec
        ins = [tensors[t] for t in n.inputs]
        try:
            nodes.append(_int_node(n, ins, spec, wbits, ternary, wrange, bias_bits,
                                    codes.get(n.name), group))
        except (ValueError, KeyError) as e:
            raise AqError(f"cannot integerize {n.name!r}: {e}") from None
    graph = Graph(fg.input, fg.output, tensors, nodes, dict(meta or {}))
    graph.meta.setdefault("model", fg.name)
    graph.meta["labels"] = list(fg.labels)
    graph.meta["input"] = {"layout": "NHWC", "dtype": "uint8",
                           "shape": [fg.input_shape[1], fg.input_shape[2], fg.input_shape[0]],
                           "pixel_mean": list(fg.pixel_mean), "pixel_std": list(fg.pixel_std),
                           **fg.preprocess}
    graph.meta["logit_scale"] = s_logit
    try:
        validate_graph(graph)
    except ValueError as e:
        raise AqError(f"exporter refuses the model: {e}") from None
    return graph


def _int_node(n: FloatNode, ins: list[TensorSpec], out: TensorSpec,
              wbits: dict[str, np.ndarray], ternary: dict[str, Any],
              wrange: dict[str, np.ndarray], bias_bits: int, codes: np.ndarray | None,
              group: int = 0) -> Node:
    if n.op == "conv":
        return _int_conv(n, ins[0], out, wbits, ternary, wrange, bias_bits, codes, group)
    if n.op == "maxpool":
        return Node("maxpool", n.name, list(n.inputs), n.output, {
            k: list(n.attrs[k]) for k in ("kernel", "stride", "pad")}, {})
    lo, hi = _clamp_bounds(n, out)
    if n.op == "add":
        m1, m2, sh = quantize_multiplier_pair(ins[0].scale / out.scale, ins[1].scale / out.scale)
        arrays = dict(mult_a=m1, mult_b=m2, shift=sh)
    elif n.op == "mul":
        m, sh = quantize_multiplier(ins[0].scale * ins[1].scale / out.scale)
        arrays = dict(mult=m, shift=sh)
    elif n.op == "gap":
        _, h, w = ins[0].shape
        m, sh = quantize_multiplier(ins[0].scale / (out.scale * h * w))
        arrays = dict(mult=m, shift=sh)
    elif n.op == "avgpool":
        kh, kw = n.attrs["kernel"]
        m, sh = quantize_multiplier(ins[0].scale / (out.scale * kh * kw))
        arrays = dict(mult=m, shift=sh)
        attrs = {k: list(n.attrs[k]) for k in ("kernel", "stride", "pad")}
        arrays.update(lo=lo, hi=hi)
        return Node("avgpool", n.name, list(n.inputs), n.output, attrs,
                    {k: canonical(k, v) for k, v in arrays.items()})
    elif n.op in NONLINEAR:
        q = np.arange(256, dtype=np.float64)[None, :]
        x = ins[0].scale[:, None] * (q - ins[0].zero_point[:, None])
        y = nonlinear_fn(n.op, x, n.attrs)
        table = np.clip(round_half_up(y / out.scale[:, None]) + out.zero_point[:, None],
                        0, ((1 << out.bits) - 1)[:, None])
        fn_attrs = {"fn": n.op, **{k: float(v) for k, v in n.attrs.items()}}
        return Node("lut", n.name, list(n.inputs), n.output, fn_attrs,
                    {"table": canonical("table", table)})
    else:
        raise ValueError(f"unsupported op {n.op!r}")
    arrays.update(lo=lo, hi=hi)
    return Node(n.op, n.name, list(n.inputs), n.output, {},
                {k: canonical(k, v) for k, v in arrays.items()})


def bias_codes(b: np.ndarray, scale: np.ndarray, bias_bits: int = 32) -> np.ndarray:
    """round(B / scale), clamped to `bias_bits` signed bits below 32."""
    q = round_half_up(np.asarray(b, np.float64) / scale)
    if bias_bits < 32:
        lim = (1 << (bias_bits - 1)) - 1
        q = np.clip(q, -lim, lim)
    return q


def effective_weights(n: FloatNode, s_in: np.ndarray) -> np.ndarray:
    """We (O, K): the conv's float weights with its input's per-channel scales folded in."""
    o, cg = n.weight.shape[:2]
    ch = input_channel_map(o, cg, n.attrs["groups"])
    return (n.weight * s_in[ch][:, :, None, None]).reshape(o, -1)


def grouped_weight_codes(we: np.ndarray, bits: np.ndarray, bias: np.ndarray,
                         wrange: np.ndarray | float = 1.0, group: int = 0
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """(nearest weights Q (O, K), scales (O,), group multipliers (O, ng) or None, weight
    bits (O,)) of a conv's effective weights as the exporter quantizes them at code `bits`,
    with multipliers on groups of `group` weights where quant.weights.grouped_rows says:
    scales floored so that the bias codes stay below BIAS_CODE_LIMIT."""
    return quantize_weights_grouped(we, bits, group, np.abs(bias) / BIAS_CODE_LIMIT, wrange)


def weight_codes(we: np.ndarray, bits: np.ndarray, bias: np.ndarray,
                 wrange: np.ndarray | float = 1.0, group: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(nearest weights Q (O, K), scales (O,)): `grouped_weight_codes` without the rest."""
    return grouped_weight_codes(we, bits, bias, wrange, group)[:2]


def _checked_codes(codes: np.ndarray, nearest: np.ndarray, bits: np.ndarray,
                   mult: np.ndarray | None, group: int) -> np.ndarray:
    """Given weights (learned rounding), refused unless integer, of the weights' shape and
    inside each channel's code range (1-bit rows: +-1); with group multipliers, each weight
    a multiple of its group's, its code inside the code bits' range."""
    q = np.asarray(codes)
    if q.shape != nearest.shape or q.dtype.kind not in "iu":
        raise ValueError(f"given codes: expected int {nearest.shape}, got {q.dtype} {q.shape}")
    q = q.astype(np.int64)
    one = bits == 1
    m = 1 if mult is None else expand_groups(mult, q.shape[1], group)
    qmax = weight_code_max(bits)[:, None]
    if np.any(q % m) or (np.abs(q // m) > qmax).any() or (q[one] == 0).any():
        raise ValueError("given codes outside their bits' range")
    return q


def _int_conv(n: FloatNode, t_in: TensorSpec, out: TensorSpec, wbits: dict[str, np.ndarray],
              ternary: dict[str, Any], wrange: dict[str, np.ndarray], bias_bits: int,
              codes: np.ndarray | None = None, group: int = 0) -> Node:
    w = n.weight
    o, cg, kh, kw = w.shape
    groups = n.attrs["groups"]
    ch = input_channel_map(o, cg, groups)
    we = effective_weights(n, t_in.scale)
    zk = np.repeat(t_in.zero_point[ch].astype(np.int64), kh * kw, axis=1)  # z_a per (o, c, k)
    lo, hi = _clamp_bounds(n, out)
    attrs = dict(stride=list(n.attrs["stride"]), pad=list(n.attrs["pad"]), groups=groups,
                 weight_shape=[o, cg, kh, kw])
    if n.name in ternary:
        t = ternary[n.name]
        t = t if isinstance(t, dict) else {"threshold": t}
        q, wp, wn = quantize_ternary(we, t["threshold"], t.get("wp"), t.get("wn"))
        m_p, m_n, sh = quantize_multiplier_pair(wp / out.scale, wn / out.scale)
        arrays = dict(weight=q.reshape(w.shape), wbits=np.full(o, 2),
                      bias=bias_codes(n.bias, wp, bias_bits) - (zk * (q == 1)).sum(1),
                      bias_n=-(zk * (q == -1)).sum(1), mult=m_p, mult_n=m_n, shift=sh)
        attrs["mode"] = "ternary"
    else:
        bits = np.asarray(wbits.get(n.name, np.full(o, 8)), np.int64)
        if bits.shape != (o,):
            raise ValueError(f"weight bits: expected {o} channels")
        q, sw, gm, ebits = grouped_weight_codes(we, bits, n.bias, wrange.get(n.name, 1.0), group)
        if codes is not None:
            q = _checked_codes(codes, q, bits, gm, group)
        m, sh = quantize_multiplier(sw / out.scale)
        arrays = dict(weight=q.reshape(w.shape), wbits=ebits,
                      bias=bias_codes(n.bias, sw, bias_bits) - (zk * q).sum(1), mult=m, shift=sh)
        attrs["mode"] = "int"
        if gm is not None:
            arrays.update(wcbits=bits, wmult=gm)
            attrs["weight_group"] = group
    arrays.update(lo=lo, hi=hi)
    return Node("conv", n.name, list(n.inputs), n.output, attrs,
                {k: canonical(k, v) for k, v in arrays.items()})
