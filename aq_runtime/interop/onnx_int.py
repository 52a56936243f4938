"""Integer-exact ONNX export: every op of docs/SEMANTICS.md as ONNX integer ops, so that ONNX
Runtime reproduces the reference's int32 logits `==`.
- conv: explicit padding with each channel's zero point (ConvInteger pads with 0), then
  ConvInteger on raw uint8 codes with zero points 0 (per-channel zero points are not supported
  at run time); the zero-point correction stays in the int32 bias. Codes wider than 8 bits are
  split into base-128 digits (d0, d1 in 0..127, d2 signed), one ConvInteger each, combined in
  int64. Ternary convs run two ConvIntegers on the +1 and -1 masks.
- rshift: ONNX integer Div truncates toward zero, so `rshift(v, n)` is computed as
  Div(v + 2^(n-1) + 2^48, 2^n) - 2^(48-n), exact while |v| < 2^48 and n <= 48 (checked).
- clamps: Max/Min with per-channel bounds; LUT: Gather on the flattened tables.
Sub-byte weights are stored unpacked (int8) here: the ONNX file is larger than the .aqz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import AqError
from ..ir.graph import Graph, Node
from ..ir.validate import conv_bounds

OFFSET_BITS = 48


class _B:
    def __init__(self):
        import onnx
        from onnx import helper, numpy_helper
        self.onnx, self.h, self.nh = onnx, helper, numpy_helper
        self.nodes, self.inits, self.k = [], [], 0

    def name(self, base: str) -> str:
        self.k += 1
        return f"{base}_{self.k}"

    def const(self, a: np.ndarray, base: str = "c") -> str:
        n = self.name(base)
        self.inits.append(self.nh.from_array(np.array(a, order="C"), n))  # keeps 0-d scalars
        return n

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(self.h.make_node(op, inputs, [out], **attrs))
        return out

    def ch(self, a: np.ndarray, dtype=np.int64) -> str:
        return self.const(np.asarray(a, dtype).reshape(1, -1, 1, 1))


def _requantize_product(b: _B, p: str, shift: np.ndarray, z: np.ndarray, lo: np.ndarray,
                        hi: np.ndarray, out_dtype) -> str:
    """clamp(z + rshift(p, n), lo, hi) on int64 p, then cast to the tensor's storage type."""
    n = shift.astype(np.int64)
    if n.max() > OFFSET_BITS:
        raise AqError(f"onnx-int export needs shifts <= {OFFSET_BITS}")
    off = np.int64(1) << OFFSET_BITS
    q = b.op("Div", [b.op("Add", [p, b.ch((np.int64(1) << (n - 1)) + off)]), b.ch(np.int64(1) << n)])
    q = b.op("Add", [q, b.ch(np.asarray(z, np.int64) - (off >> n))])
    q = b.op("Min", [b.op("Max", [q, b.ch(lo)]), b.ch(hi)])
    import onnx
    return b.op("Cast", [q], to=onnx.TensorProto.UINT8 if out_dtype == np.uint8 else onnx.TensorProto.INT32)


def _conv_int(b: _B, x: str, w: np.ndarray, node: Node) -> str:
    """int64 sum of ConvInteger over base-128 digits of the codes."""
    w = w.astype(np.int64)
    digits = []
    rest = w
    for i in range(3):
        if i == 2 or (rest >= -128).all() and (rest <= 127).all():
            digits.append(rest)
            break
        d = np.mod(rest, 128)
        digits.append(d)
        rest = (rest - d) // 128
    zx = b.const(np.array(0, np.uint8))
    zw = b.const(np.array(0, np.int8))
    total = None
    for i, d in enumerate(digits):
        if (d > 127).any() or (d < -128).any():
            raise AqError("onnx-int export: weight code does not split into int8 digits")
        if not d.any():
            continue
        acc = b.op("ConvInteger", [x, b.const(d.astype(np.int8)), zx, zw],
                   strides=node.attrs["stride"], group=node.attrs["groups"])
        acc = b.op("Cast", [acc], to=b.onnx.TensorProto.INT64)
        if i:
            acc = b.op("Mul", [acc, b.const(np.array(128 ** i, np.int64))])
        total = acc if total is None else b.op("Add", [total, acc])
    if total is None:  # all-zero weights
        total = b.op("Mul", [b.op("Cast", [b.op("ConvInteger", [x, b.const(np.zeros_like(w, np.int8)), zx, zw],
                                                strides=node.attrs["stride"], group=node.attrs["groups"])],
                                  to=b.onnx.TensorProto.INT64), b.const(np.array(0, np.int64))])
    return total


def _pad(b: _B, x: str, pad: list[int], z: np.ndarray, shape: tuple[int, int, int]) -> str:
    t, bo, l, r = pad
    if not any(pad):
        return x
    xp = b.op("Pad", [x, b.const(np.array([0, 0, t, l, 0, 0, bo, r], np.int64))], mode="constant")
    if not np.any(z):
        return xp
    c, h, w = shape
    mask = np.ones((1, 1, h + t + bo, w + l + r), np.int32)
    mask[:, :, t:t + h, l:l + w] = 0
    border = b.op("Mul", [b.const(mask), b.ch(z, np.int32)])
    y = b.op("Add", [b.op("Cast", [xp], to=b.onnx.TensorProto.INT32), border])
    return b.op("Cast", [y], to=b.onnx.TensorProto.UINT8)


def to_onnx_int(graph: Graph, path: str | Path) -> None:
    """Write the integer-exact ONNX model (input uint8 NHWC 'images', output int32 'logits')."""
    import onnx
    b = _B()
    T = graph.tensors
    c, h, w = T[graph.input].shape
    env = {graph.input: b.op("Transpose", ["images"], perm=[0, 3, 1, 2])}
    for n in graph.nodes:
        out = T[n.output]
        odt = np.int32 if out.bits.max() > 8 else np.uint8
        a = n.arrays
        if n.op == "conv":
            t_in = T[n.inputs[0]]
            acc_b, tot_b = conv_bounds(n, t_in)
            mult = a["mult"].astype(np.int64)
            if (tot_b * mult).max() >= 1 << (OFFSET_BITS - 1):
                raise AqError(f"onnx-int export: {n.name} products exceed 2^47")
            x = _pad(b, env[n.inputs[0]], n.attrs["pad"], t_in.zero_point, t_in.shape)
            wq = a["weight"].astype(np.int64)
            if n.attrs.get("mode") == "ternary":
                ap = _conv_int(b, x, (wq == 1).astype(np.int64), n)
                an = _conv_int(b, x, (wq == -1).astype(np.int64), n)
                p = b.op("Sub", [b.op("Mul", [b.op("Add", [ap, b.ch(a["bias"])]), b.ch(a["mult"])]),
                                 b.op("Mul", [b.op("Add", [an, b.ch(a["bias_n"])]), b.ch(a["mult_n"])])])
            else:
                acc = _conv_int(b, x, wq, n)
                p = b.op("Mul", [b.op("Add", [acc, b.ch(a["bias"])]), b.ch(a["mult"])])
            y = _requantize_product(b, p, a["shift"], out.zero_point, a["lo"], a["hi"], odt)
        elif n.op in ("add", "mul"):
            q = [b.op("Sub", [b.op("Cast", [env[t]], to=onnx.TensorProto.INT64), b.ch(T[t].zero_point)])
                 for t in n.inputs]
            if n.op == "add":
                p = b.op("Add", [b.op("Mul", [q[0], b.ch(a["mult_a"])]), b.op("Mul", [q[1], b.ch(a["mult_b"])])])
            else:
                p = b.op("Mul", [b.op("Mul", [q[0], q[1]]), b.ch(a["mult"])])
            y = _requantize_product(b, p, a["shift"], out.zero_point, a["lo"], a["hi"], odt)
        elif n.op == "gap":
            q = b.op("Sub", [b.op("Cast", [env[n.inputs[0]]], to=onnx.TensorProto.INT64),
                             b.ch(T[n.inputs[0]].zero_point)])
            s = b.op("ReduceSum", [q, b.const(np.array([2, 3], np.int64))], keepdims=1)
            y = _requantize_product(b, b.op("Mul", [s, b.ch(a["mult"])]), a["shift"],
                                    out.zero_point, a["lo"], a["hi"], odt)
        elif n.op == "maxpool":
            x = _pad(b, env[n.inputs[0]], n.attrs["pad"], np.zeros(1, np.int64), T[n.inputs[0]].shape)
            y = b.op("MaxPool", [x], kernel_shape=n.attrs["kernel"], strides=n.attrs["stride"])
        elif n.op == "avgpool":
            t_in = T[n.inputs[0]]
            x = _pad(b, env[n.inputs[0]], n.attrs["pad"], t_in.zero_point, t_in.shape)
            kh, kw = n.attrs["kernel"]
            cc = t_in.shape[0]
            s = b.op("ConvInteger", [x, b.const(np.ones((cc, 1, kh, kw), np.int8)),
                                     b.const(np.array(0, np.uint8)), b.const(np.array(0, np.int8))],
                     strides=n.attrs["stride"], group=cc)
            s = b.op("Sub", [b.op("Cast", [s], to=onnx.TensorProto.INT64), b.ch(t_in.zero_point * kh * kw)])
            y = _requantize_product(b, b.op("Mul", [s, b.ch(a["mult"])]), a["shift"],
                                    out.zero_point, a["lo"], a["hi"], odt)
        elif n.op == "lut":
            cc = a["table"].shape[0]
            idx = b.op("Add", [b.op("Cast", [env[n.inputs[0]]], to=onnx.TensorProto.INT64),
                               b.ch(np.arange(cc) * 256)])
            y = b.op("Gather", [b.const(a["table"].reshape(-1).astype(np.uint8)), idx], axis=0)
        else:
            raise AqError(f"onnx-int export: unsupported op {n.op!r}")
        env[n.output] = y
    k = T[graph.output].shape[0]
    b.nodes.append(b.h.make_node("Reshape", [env[graph.output], b.const(np.array([-1, k], np.int64))],
                                 ["logits"]))
    g = b.h.make_graph(b.nodes, "aq_int", [b.h.make_tensor_value_info(
        "images", onnx.TensorProto.UINT8, ["N", h, w, c])],
        [b.h.make_tensor_value_info("logits", onnx.TensorProto.INT32, ["N", k])], b.inits)
    model = b.h.make_model(g, opset_imports=[b.h.make_opsetid("", 17)], producer_name="aq_runtime")
    model.ir_version = 8
    onnx.checker.check_model(model)
    from ..files import write_atomic_bytes
    write_atomic_bytes(path, model.SerializeToString())
