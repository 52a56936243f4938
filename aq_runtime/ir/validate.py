"""Validation of an IR graph (run by the exporter before writing and by the reader before
running): references resolved, graph acyclic, shapes consistent, bits, zero points, multipliers
and shifts in range, and the int32 overflow proof for every convolution. Raises ValueError."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..quant.bits import LOGIT_BITS, act_code_range, weight_code_max, weight_code_range
from ..quant.cost import input_channel_map
from ..quant.requant import MAX_SHIFT, MULT_LIMIT
from ..quant.weights import (
    GROUP_CODE_BITS,
    GROUP_MULT_BITS,
    GROUP_MULT_MAX,
    code_bits,
    expand_groups,
    grouped_channels,
    n_groups,
)
from .graph import (
    GROUP_ARRAYS,
    OP_ARRAYS,
    TERNARY_ARRAYS,
    WEIGHT_CODINGS,
    Graph,
    Node,
    TensorSpec,
)


INT32_LIMIT = 1 << 31


def conv_out_hw(h: int, w: int, kh: int, kw: int, stride: list[int], pad: list[int]
                ) -> tuple[int, int]:
    return ((h + pad[0] + pad[1] - kh) // stride[0] + 1, (w + pad[2] + pad[3] - kw) // stride[1] + 1)


def conv_bounds(node: Node, t_in: TensorSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel: (max |acc|, max |acc + bias|) over every possible input, in exact
    Python-int-safe int64/float math. acc = sum Q*q_a with 0 <= q_a <= 2^b-1; acc + bias =
    sum Q*(q_a - z_a) + round(B/sw), so |acc + bias| <= sum |Q| * max(z_a, 2^b-1-z_a) + |bias0|.
    Ternary convs are bounded per branch (acc_p, acc_n), the larger taken."""
    w = node.arrays["weight"].astype(np.int64)
    o, cg, kh, kw = w.shape
    groups = node.attrs["groups"]
    top = (np.int64(1) << t_in.bits.astype(np.int64)) - 1
    z = t_in.zero_point.astype(np.int64)
    dev = np.maximum(z, top - z)
    ch = input_channel_map(o, cg, groups)
    absw = np.abs(w).reshape(o, cg, kh * kw)

    def branch(mask: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        aw = (absw * mask).sum(axis=2)  # (o, cg)
        acc = (aw * top[ch]).sum(axis=1)
        zq = ((w.reshape(o, cg, kh * kw) * mask).sum(axis=2) * z[ch]).sum(axis=1)
        bias0 = bias.astype(np.int64) + zq  # = round(B/sw)
        return acc, (aw * dev[ch]).sum(axis=1) + np.abs(bias0)

    if node.attrs.get("mode", "int") == "ternary":
        wr = w.reshape(o, cg, kh * kw)
        a1, b1 = branch((wr == 1), node.arrays["bias"])
        a2, b2 = branch((wr == -1), -node.arrays["bias_n"].astype(np.int64))
        return np.maximum(a1, a2), np.maximum(b1, b2)
    return branch(np.ones_like(absw), node.arrays["bias"])


def _check_requant(f: str, a: dict, out: TensorSpec, mults: tuple[str, ...]) -> None:
    for k in mults:
        m = a[k].astype(np.int64)
        if m.shape != (out.shape[0],) or m.min() <= 0 or m.max() >= MULT_LIMIT:
            raise ValueError(f"{f}.{k}: multipliers must be ({out.shape[0]},) in 1..2^31-1")
    sh = a["shift"].astype(np.int64)
    if sh.shape != (out.shape[0],) or sh.min() < 1 or sh.max() > MAX_SHIFT:
        raise ValueError(f"{f}.shift: shifts must be ({out.shape[0]},) in 1..{MAX_SHIFT}")
    lo, hi = a["lo"].astype(np.int64), a["hi"].astype(np.int64)
    rng = np.array([act_code_range(int(b)) for b in out.bits]).reshape(-1, 2)
    if lo.shape != sh.shape or hi.shape != sh.shape or np.any(lo > hi) or np.any(
            lo < rng[:, 0]) or np.any(hi > rng[:, 1]):
        raise ValueError(f"{f}.lo/hi: clamp bounds outside the output code range")


def _check_tensor(t: TensorSpec) -> None:
    c = t.shape[0]
    for k in ("scale", "zero_point", "bits"):
        if getattr(t, k).shape != (c,):
            raise ValueError(f"tensor {t.name!r}.{k}: shape must be ({c},)")
    if not np.all(np.isfinite(t.scale)) or np.any(t.scale <= 0):
        raise ValueError(f"tensor {t.name!r}.scale: must be finite and > 0")
    bits = t.bits.astype(np.int64)
    if np.any(((bits < 1) | (bits > 8)) & (bits != LOGIT_BITS)):
        raise ValueError(f"tensor {t.name!r}.bits: must be 1..8 (or 32 for logits)")
    top = np.where(bits == LOGIT_BITS, 0, (1 << np.minimum(bits, 8)) - 1)
    z = t.zero_point.astype(np.int64)
    if np.any(z < 0) or np.any(z > top):
        raise ValueError(f"tensor {t.name!r}.zero_point: outside 0..2^bits-1")


def validate_graph(g: Graph) -> None:
    """Raise ValueError naming the first problem found."""
    if g.input not in g.tensors:
        raise ValueError(f"input tensor {g.input!r} is not declared")
    if g.output not in g.tensors:
        raise ValueError(f"output tensor {g.output!r} is not declared")
    for t in g.tensors.values():
        _check_tensor(t)
    if np.any(g.tensors[g.input].bits.astype(np.int64) != 8):
        raise ValueError("input tensor must hold 8-bit pixels")
    produced = {g.input}
    names = set()
    for i, n in enumerate(g.nodes):
        f = f"nodes[{i}] ({n.name})"
        if n.name in names:
            raise ValueError(f"{f}: duplicate node name")
        names.add(n.name)
        if n.op not in OP_ARRAYS:
            raise ValueError(f"{f}.op: unknown op {n.op!r}")
        want_in = 2 if n.op in ("add", "mul") else 1
        if len(n.inputs) != want_in:
            raise ValueError(f"{f}.inputs: {n.op} takes {want_in} input(s)")
        for t in n.inputs:
            if t not in produced:
                raise ValueError(f"{f}.inputs: tensor {t!r} is not produced before this node "
                                 "(unresolved reference or cycle)")
        if n.output in produced or n.output not in g.tensors:
            raise ValueError(f"{f}.output: {n.output!r} undeclared or produced twice")
        need = OP_ARRAYS[n.op] + (TERNARY_ARRAYS if n.attrs.get("mode") == "ternary" else ())
        if n.op == "conv" and "weight_group" in n.attrs:
            need = need + GROUP_ARRAYS
        elif any(k in n.arrays for k in GROUP_ARRAYS):
            raise ValueError(f"{f}.arrays: wcbits/wmult without attrs.weight_group")
        for k in need:
            if k not in n.arrays:
                raise ValueError(f"{f}.arrays.{k}: missing")
        t_in = [g.tensors[t] for t in n.inputs]
        out = g.tensors[n.output]
        a = n.arrays
        if n.op == "conv":
            _validate_conv(f, n, t_in[0], out)
        elif n.op == "add":
            if t_in[0].shape != out.shape or t_in[1].shape != out.shape:
                raise ValueError(f"{f}: add needs equal input and output shapes")
            _check_requant(f, a, out, ("mult_a", "mult_b"))
        elif n.op == "mul":
            c, h, w = out.shape
            if t_in[0].shape != out.shape or t_in[1].shape != (c, 1, 1):
                raise ValueError(f"{f}: mul needs x (C,H,W) and gate (C,1,1)")
            _check_requant(f, a, out, ("mult",))
        elif n.op == "gap":
            if out.shape != (t_in[0].shape[0], 1, 1):
                raise ValueError(f"{f}: gap output must be (C,1,1)")
            _check_requant(f, a, out, ("mult",))
        elif n.op in ("maxpool", "avgpool"):
            at = n.attrs
            ok = all(isinstance(at.get(k), list) and len(at[k]) == ln and all(
                isinstance(v, int) and lo_ <= v <= 64 for v in at[k])
                for k, ln, lo_ in (("kernel", 2, 1), ("stride", 2, 1), ("pad", 4, 0)))
            if not ok or any(p >= k for p, k in zip(at["pad"], [at["kernel"][0]] * 2 + [at["kernel"][1]] * 2)):
                raise ValueError(f"{f}.attrs: invalid pooling kernel, stride or pad")
            ti = t_in[0]
            if conv_out_hw(ti.shape[1], ti.shape[2], *at["kernel"], at["stride"], at["pad"]) != out.shape[1:] \
                    or out.shape[0] != ti.shape[0]:
                raise ValueError(f"{f}: output shape does not follow from the pooling")
            if n.op == "maxpool":
                if not (np.array_equal(ti.scale, out.scale) and np.array_equal(
                        ti.zero_point, out.zero_point) and np.array_equal(ti.bits, out.bits)):
                    raise ValueError(f"{f}: maxpool must keep its input's quant params")
            else:
                _check_requant(f, a, out, ("mult",))
        elif n.op == "lut":
            tab = a["table"].astype(np.int64)
            c = out.shape[0]
            if t_in[0].shape != out.shape or tab.shape != (c, 256):
                raise ValueError(f"{f}.table: must be ({c}, 256) with equal in/out shapes")
            if np.any(t_in[0].bits > 8) or np.any(out.bits > 8):
                raise ValueError(f"{f}: lut needs codes of at most 8 bits")
            top = (1 << out.bits.astype(np.int64)) - 1
            if tab.min() < 0 or np.any(tab > top[:, None]):
                raise ValueError(f"{f}.table: entries outside the output code range")
        produced.add(n.output)
    if g.output not in produced:
        raise ValueError(f"output tensor {g.output!r} is never produced")


def _validate_groups(f: str, group: Any, a: dict, wi: np.ndarray, bits: np.ndarray) -> None:
    """Group multipliers (quant/weights.py): grouped rows (code bits below the weight bits)
    have code bits 2..5, weight bits 3 more, multipliers 1..8 that divide each weight, and
    codes within the code bits; the others equal bits and multipliers 1."""
    o, k = wi.shape
    if not isinstance(group, int) or not 2 <= group <= k // 2:
        raise ValueError(f"{f}.attrs.weight_group: invalid {group!r}")
    cb = code_bits(a)
    mult = a["wmult"].astype(np.int64)
    if cb.shape != (o,) or mult.shape != (o, n_groups(k, group)):
        raise ValueError(f"{f}.wcbits/wmult: shapes must be ({o},) and ({o}, {n_groups(k, group)})")
    grouped = grouped_channels(a)
    lo, hi = GROUP_CODE_BITS
    if (np.any(cb[grouped] < lo) or np.any(cb[grouped] > hi)
            or np.any(bits[grouped] != cb[grouped] + GROUP_MULT_BITS)):
        raise ValueError(f"{f}.wcbits: grouped channels need code bits {lo}..{hi}, "
                         f"weight bits {GROUP_MULT_BITS} more")
    if mult.min() < 1 or mult.max() > GROUP_MULT_MAX or np.any(mult[~grouped] != 1):
        raise ValueError(f"{f}.wmult: multipliers outside 1..{GROUP_MULT_MAX}")
    m = expand_groups(mult, k, group)
    code = wi // m
    if np.any(wi % m) or np.any(np.abs(code) > weight_code_max(cb)[:, None]):
        raise ValueError(f"{f}.weight: grouped weights are not code x multiplier within "
                         "their code bits")


def _validate_conv(f: str, n: Node, t_in: TensorSpec, out: TensorSpec) -> None:
    a = n.arrays
    w = a["weight"]
    o, cg, kh, kw = w.shape
    at = n.attrs
    groups, stride, pad = at.get("groups"), at.get("stride"), at.get("pad")
    if not isinstance(groups, int) or groups < 1 or t_in.shape[0] % groups or o % groups:
        raise ValueError(f"{f}.attrs.groups: invalid {groups!r}")
    if t_in.shape[0] // groups != cg or out.shape[0] != o:
        raise ValueError(f"{f}.weight: shape {list(w.shape)} does not match the tensors")
    if (not isinstance(stride, list) or len(stride) != 2 or not all(isinstance(s, int) and 1 <= s <= 16 for s in stride)):
        raise ValueError(f"{f}.attrs.stride: invalid {stride!r}")
    if (not isinstance(pad, list) or len(pad) != 4 or not all(isinstance(p, int) and 0 <= p <= 64 for p in pad)):
        raise ValueError(f"{f}.attrs.pad: invalid {pad!r}")
    if conv_out_hw(t_in.shape[1], t_in.shape[2], kh, kw, stride, pad) != out.shape[1:]:
        raise ValueError(f"{f}: output spatial shape does not follow from input, stride, pad")
    mode = at.get("mode", "int")
    if mode not in ("int", "ternary"):
        raise ValueError(f"{f}.attrs.mode: unknown {mode!r}")
    if at.get("weight_coding", "packed") not in WEIGHT_CODINGS:
        raise ValueError(f"{f}.attrs.weight_coding: unknown {at['weight_coding']!r}")
    bits = a["wbits"].astype(np.int64)
    for k in ("wbits", "bias"):
        if a[k].shape != (o,):
            raise ValueError(f"{f}.{k}: shape must be ({o},)")
    wi = w.astype(np.int64).reshape(o, -1)
    if mode == "ternary":
        if "weight_group" in at:
            raise ValueError(f"{f}.attrs.weight_group: ternary weights take no groups")
        if np.any(bits != 2) or np.any(np.abs(wi) > 1):
            raise ValueError(f"{f}.weight: ternary codes must be -1, 0, +1 at 2 bits")
        _check_requant(f, a, out, ("mult", "mult_n"))
    else:
        for b in np.unique(bits):
            lo, hi = weight_code_range(int(b))
            rows = wi[bits == b]
            if rows.min() < lo or rows.max() > hi or (b == 1 and np.any(rows == 0)):
                raise ValueError(f"{f}.weight: codes outside the {int(b)}-bit range")
        if "weight_group" in at:
            _validate_groups(f, at["weight_group"], a, wi, bits)
        _check_requant(f, a, out, ("mult",))
    acc, total = conv_bounds(n, t_in)
    if acc.max() >= INT32_LIMIT or total.max() >= INT32_LIMIT:
        worst = int(np.argmax(np.maximum(acc, total)))
        raise ValueError(f"{f}: int32 overflow possible in output channel {worst} "
                         f"(bound {int(max(acc[worst], total[worst]))} >= 2^31)")
