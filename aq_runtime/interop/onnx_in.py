"""ONNX in: a float ONNX CNN -> the float graph the exporter takes.

Shape and pad subgraphs fold to constants first (`onnx_fold`); what is left must be image ops:
Conv (+ BatchNormalization, + Relu / Clip(0, 6) / Clip(0, inf), + Add or Mul of a constant),
Pad into the next Conv or AveragePool, residual Add (+ Relu), x*Sigmoid(x) (swish), Sigmoid /
HardSigmoid gates times a tensor (squeeze-excite), HardSwish, MaxPool (ceil_mode as extra
padding), AveragePool, GlobalAveragePool / ReduceMean over H, W, GlobalMaxPool / ReduceMax over H, W, Gemm / MatMul
after a pool (a 1x1 conv), Flatten / Reshape / Squeeze / Unsqueeze of a pooled vector, Identity,
Dropout, and a Softmax at the end (dropped: the file gives logits, same ranking). Sub / Add /
Mul / Div of a constant on the image input fold into the pixel normalization. The batch may be
symbolic (torch's dynamic_axes); the graph is imported for one image.
Anything else is one AqError line naming the op, the node and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import AqError
from ..ir.float_graph import FloatGraph, FloatNode, conv_out, fold_bn, node_act, same_pad
from .onnx_fold import SHAPE_OPS, fold, is_foldable, shape_value
from .onnx_load import check_order, first_line, image_input, load_model, opset_of, read_constants


def _layer_name(node, weight: str | None, fallback: str) -> str:
    """A torch module path for a layer: from the node name ('/_blocks.0/_depthwise_conv/Conv'
    -> '_blocks.0._depthwise_conv', TorchScript exporter), else from its weight
    ('_conv_stem.weight' -> '_conv_stem', dynamo exporter), else the output name."""
    parts = [p for p in node.name.split("/") if p]
    if len(parts) >= 2:
        return ".".join(parts[:-1])
    if weight and weight.endswith(".weight"):
        return weight[: -len(".weight")]
    return fallback


def _own_pads(auto_pad: str, pads: list[int], h: int, w: int, kh: int, kw: int,
              stride: list[int]) -> list[int]:
    """A Conv's or pool's own padding as [top, bottom, left, right]: ONNX `pads` ([t, l, b, r])
    or, for auto_pad SAME_UPPER / SAME_LOWER, TF-SAME (the odd pixel after / before), VALID 0."""
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        (t0, t1), (l0, l1) = same_pad(h, kh, stride[0]), same_pad(w, kw, stride[1])
        return [t0, t1, l0, l1] if auto_pad == "SAME_UPPER" else [t1, t0, l1, l0]
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    return [pads[0], pads[2], pads[1], pads[3]]


def _attr(a):
    import onnx
    v = onnx.helper.get_attribute_value(a)
    return v.decode() if isinstance(v, bytes) else v


class _Importer:
    def __init__(self, p: Path, g, consts: dict[str, np.ndarray], opset: int, x: str,
                 chw: tuple[int, int, int], mean: list[float], std: list[float]):
        self.p, self.g, self.consts, self.opset = p, g, consts, opset
        self.input = x
        self.mean = np.asarray(mean, np.float64)
        self.std = np.asarray(std, np.float64)
        self.shapes: dict[str, tuple[int, ...]] = {x: (1, *chw)}  # ONNX shapes, batch 1
        self.consumers: dict[str, int] = {}
        for n in g.node:  # readers of values (Shape, Size, CastLike's model read types only)
            ins = [] if n.op_type in SHAPE_OPS else n.input[:1] if n.op_type == "CastLike" \
                else n.input
            for i in ins:
                self.consumers[i] = self.consumers.get(i, 0) + 1
        self.alias: dict[str, str] = {}
        self.pads: dict[str, tuple[str, list[int]]] = {}  # Pad output -> (input, [t, b, l, r])
        self.producer: dict[str, FloatNode] = {}
        self.nodes: list[FloatNode] = []
        self.used: set[str] = set()
        self.notes: list[str] = []

    # ---- helpers --------------------------------------------------------------------------
    def fail(self, msg: str):
        raise AqError(f"{self.p}: node {self.where}: {msg}")

    def unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def src(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def const(self, t: str) -> np.ndarray:
        if t not in self.consts:
            self.fail(f"input {t!r} must be a constant")
        return self.consts[t]

    def chw(self, t: str) -> tuple[int, int, int]:
        """The (C, H, W) of an image tensor (a pooled vector (1, C) is C x 1 x 1)."""
        s = self.shapes[t]
        if len(s) == 4:
            return s[1], s[2], s[3]
        if len(s) == 2:
            return s[1], 1, 1
        self.fail(f"tensor {t!r} of shape {list(s)} is not N x C x H x W or N x C")

    def add(self, op: str, name: str, ins: list[str], out: str, shape: tuple[int, ...],
            attrs: dict | None = None, weight=None, bias=None) -> FloatNode:
        fn = FloatNode(op, self.unique(name), ins, out, attrs or {}, weight, bias)
        self.nodes.append(fn)
        self.producer[out] = fn
        self.shapes[out] = shape
        return fn

    def sole_producer(self, t: str, ops: tuple[str, ...]) -> FloatNode | None:
        """The node that produced `t` if it is one of `ops` and `t` has no other reader."""
        fn = self.producer.get(self.src(t))
        if fn is None or fn.op not in ops or self.consumers.get(t, 0) != 1 or fn.output != self.src(t):
            return None
        return fn

    # ---- the walk -------------------------------------------------------------------------
    def run(self) -> None:
        for k, n in enumerate(self.g.node):
            self.where = f"{n.name or k} ({n.op_type})"
            try:
                attrs = {a.name: _attr(a) for a in n.attribute}
                if n.op_type in SHAPE_OPS and n.input and n.input[0] not in self.consts:
                    self.consts[n.output[0]] = shape_value(n, attrs, self.shapes[n.input[0]])
                    continue
                if n.op_type == "CastLike" and n.input[0] in self.consts:
                    # a constant cast like an image tensor (float): dynamo's bias and clip bounds
                    self.consts[n.output[0]] = np.asarray(self.consts[n.input[0]], np.float64)
                    continue
                if is_foldable(n, self.consts):
                    for o, v in zip(n.output, fold(n, self.consts, self.opset, self.where)):
                        self.consts[o] = v.astype(np.float64) if v.dtype.kind == "f" else v
                    continue
                handler = getattr(self, f"op_{n.op_type}", None)
                if handler is None or n.domain not in ("", "ai.onnx"):
                    op = f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
                    raise AqError(f"{self.p}: unsupported ONNX op {op} (node {n.name or k})")
                for t in n.input:
                    if t in self.pads and n.op_type not in ("Conv", "AveragePool", "Pad"):
                        self.fail("a Pad may only feed a Conv or an AveragePool")
                handler(n, attrs)
            except AqError as e:
                msg = str(e)
                raise AqError(msg if msg.startswith(str(self.p)) else f"{self.p}: {msg}") from None
            except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
                raise AqError(f"{self.p}: node {self.where}: malformed ({e.__class__.__name__}: "
                              f"{first_line(e)})") from None

    # ---- pass-through and vector reshapes ---------------------------------------------------
    def _alias(self, out: str, t: str) -> None:
        """`out` is `t` (same values, same shape)."""
        self.alias[out] = t
        self.shapes[out] = self.shapes[t]

    def op_Identity(self, n, attrs):
        self._alias(n.output[0], n.input[0])

    op_Dropout = op_Identity

    def op_Cast(self, n, attrs):
        import onnx
        if int(attrs.get("to", 0)) not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                           onnx.TensorProto.FLOAT16):
            self.fail("casts an image tensor to a non-float type")
        self.op_Identity(n, attrs)

    def _vector(self, n, attrs):
        """Flatten / Reshape / Squeeze / Unsqueeze: only between (1, C) and (1, C, 1, 1)."""
        x = n.input[0]
        c, h, w = self.chw(x)
        if (h, w) != (1, 1):
            self.fail(f"{n.op_type} of a {c} x {h} x {w} tensor (only pooled 1 x 1 vectors)")
        probe = dict(self.consts)
        probe[x] = np.zeros(self.shapes[x], np.float32)
        out = fold(n, probe, self.opset, self.where)[0]
        if out.ndim not in (2, 4) or out.shape[0] != 1 or out.shape[1] != c or out.size != c:
            self.fail(f"{n.op_type} gives shape {list(out.shape)}; only (N, {c}) or "
                      f"(N, {c}, 1, 1) keep the channels")
        self.alias[n.output[0]] = x
        self.shapes[n.output[0]] = tuple(out.shape)

    op_Flatten = op_Reshape = op_Squeeze = op_Unsqueeze = _vector

    def op_Softmax(self, n, attrs):
        fn = self.producer.get(self.src(n.input[0]))
        if n.output[0] != self.g.output[0].name or fn is None or fn.op != "conv":
            self.fail("only a Softmax on the logits at the end of the graph is supported")
        self.notes.append(f"the final {n.op_type} is dropped: the model gives logits "
                          "(same ranking)")
        self.op_Identity(n, attrs)

    op_LogSoftmax = op_Softmax

    # ---- convolutions and what fuses into them ---------------------------------------------
    def op_Pad(self, n, attrs):
        x = n.input[0]
        if len(self.shapes[x]) != 4:
            self.fail("Pad of a non-image tensor")
        if attrs.get("mode", "constant") != "constant":
            self.fail(f"{attrs['mode']} padding is not supported (only constant zeros)")
        pv = [int(v) for v in self.const(n.input[1]).reshape(-1)] if len(n.input) > 1 \
            else list(attrs.get("pads", []))
        val = float(np.asarray(self.const(n.input[2])).reshape(-1)[0]) \
            if len(n.input) > 2 and n.input[2] else float(attrs.get("value", 0.0))
        axes = [int(a) % 4 for a in self.const(n.input[3]).reshape(-1)] \
            if len(n.input) > 3 and n.input[3] else [0, 1, 2, 3]
        if len(pv) != 2 * len(axes):
            self.fail("pads do not match the axes")
        full = [0] * 8
        for i, a in enumerate(axes):
            full[a], full[a + 4] = pv[i], pv[i + len(axes)]
        if val != 0.0 or full[0] or full[1] or full[4] or full[5] or min(full) < 0:
            self.fail("only zero padding (>= 0) of H and W is supported")
        inner, pre = x, [0, 0, 0, 0]
        if x in self.pads:  # Pad after Pad: add them up
            inner, pre = self.pads[x]
        pad = [pre[0] + full[2], pre[1] + full[6], pre[2] + full[3], pre[3] + full[7]]
        self.pads[n.output[0]] = (inner, pad)
        _, c, hh, ww = self.shapes[x]
        self.shapes[n.output[0]] = (1, c, hh + full[2] + full[6], ww + full[3] + full[7])

    def _take_pad(self, t: str) -> tuple[str, list[int]]:
        if t in self.pads:
            x, pre = self.pads[t]
            return self.src(x), pre
        return self.src(t), [0, 0, 0, 0]

    def op_Conv(self, n, attrs):
        x, pre = self._take_pad(n.input[0])
        wt = np.asarray(self.const(n.input[1]), np.float64)
        if wt.ndim != 4:
            self.fail(f"only 2-D convolutions (weight rank {wt.ndim})")
        o = wt.shape[0]
        b = np.asarray(self.const(n.input[2]), np.float64).reshape(-1) \
            if len(n.input) > 2 and n.input[2] else np.zeros(o)
        if b.shape != (o,):
            self.fail(f"bias has {b.size} values for {o} output channels")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            self.fail("dilated convolutions are not supported")
        kh, kw = wt.shape[2:]
        if list(attrs.get("kernel_shape", [kh, kw])) != [kh, kw]:
            self.fail("kernel_shape does not match the weight")
        groups = int(attrs.get("group", 1))
        c, hh, ww = self.chw(x)
        if groups < 1 or c % groups or o % groups or wt.shape[1] * groups != c:
            self.fail(f"weight {list(wt.shape)} with group={groups} does not fit {c} input "
                      "channels")
        st = [int(s) for s in attrs.get("strides", [1, 1])]
        cp = [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
        ap = attrs.get("auto_pad", "NOTSET")
        if len(st) != 2 or len(cp) != 4 or min(st) < 1 or min(cp) < 0:
            self.fail("strides / pads are not 2-D or are negative")
        pad = [a + b for a, b in zip(pre, _own_pads(ap, cp, hh, ww, kh, kw, st))]
        oh, ow = conv_out(hh, kh, st[0], pad[0], pad[1]), conv_out(ww, kw, st[1], pad[2], pad[3])
        if oh < 1 or ow < 1:
            self.fail(f"a {kh} x {kw} kernel does not fit the {hh} x {ww} input")
        if not np.all(np.isfinite(wt)) or not np.all(np.isfinite(b)):
            self.fail("weights or bias hold NaN or infinity")
        self.add("conv", _layer_name(n, n.input[1], n.output[0]), [x], n.output[0],
                 (1, o, oh, ow), dict(stride=st, pad=pad, groups=groups, act="none"), wt, b)

    def op_BatchNormalization(self, n, attrs):
        fn = self.sole_producer(n.input[0], ("conv",))
        if fn is None or fn.attrs["act"] != "none":
            self.fail("BatchNormalization must follow a Conv directly (its only reader)")
        gam, bet, mu, var = (np.asarray(self.const(t), np.float64).reshape(-1)
                             for t in n.input[1:5])
        if any(v.shape != fn.bias.shape for v in (gam, bet, mu, var)):
            self.fail("BatchNormalization statistics do not match the channels")
        fn.weight, fn.bias, fn.bn = fold_bn(fn.weight, fn.bias, gam, bet, mu, var,
                                            float(attrs.get("epsilon", 1e-5)))
        if not np.all(np.isfinite(fn.weight)) or not np.all(np.isfinite(fn.bias)):
            self.fail("folding BatchNormalization gives NaN or infinity (variance + eps <= 0?)")
        self.op_Identity(n, attrs)

    def _activation(self, n, act: str):
        fn = self.sole_producer(n.input[0], ("conv", "add"))
        if fn is None or node_act(fn) != "none":
            self.fail(f"{n.op_type} must follow a Conv or a residual Add (its only reader)")
        fn.attrs["act"] = act
        self.op_Identity(n, {})

    def op_Relu(self, n, attrs):
        self._activation(n, "relu")

    def op_Clip(self, n, attrs):
        lo = float(np.asarray(self.const(n.input[1])).reshape(-1)[0]) \
            if len(n.input) > 1 and n.input[1] else attrs.get("min")
        hi = float(np.asarray(self.const(n.input[2])).reshape(-1)[0]) \
            if len(n.input) > 2 and n.input[2] else attrs.get("max")
        if hi is not None and hi >= 3.0e38:
            hi = None
        act = "relu" if (lo == 0 and hi is None) else "relu6" if (lo == 0 and hi == 6) else None
        if act is None:
            self.fail(f"Clip({lo}, {hi}): only Clip(0, 6) and Clip(0, inf) are supported")
        self._activation(n, act)

    # ---- elementwise ------------------------------------------------------------------------
    def _per_channel(self, t: str, c: np.ndarray) -> np.ndarray:
        """A constant operand of tensor t as one value per channel (a scalar broadcasts)."""
        shape = self.shapes[t]
        c = np.asarray(c, np.float64)
        try:
            full = np.broadcast_to(c, np.broadcast_shapes(c.shape, shape))
        except ValueError:
            full = None
        if full is None or full.shape != shape:
            self.fail(f"a constant of shape {list(c.shape)} does not broadcast to {list(shape)}")
        v = full[(0, slice(None)) + (0,) * (len(shape) - 2)]
        if not np.array_equal(full, np.broadcast_to(v.reshape((1, -1) + (1,) * (len(shape) - 2)),
                                                    shape)):
            self.fail(f"a constant of shape {list(c.shape)} varies over H or W")
        if not np.all(np.isfinite(v)):
            self.fail("the constant holds NaN or infinity")
        return np.array(v, np.float64)

    def _only_reader_of_input(self, t: str) -> bool:
        """t is the image input (through aliases), and nothing else reads it on the way."""
        while True:
            if self.consumers.get(t, 0) != 1:
                return False
            if t == self.input:
                return True
            if t not in self.alias:
                return False
            t = self.alias[t]

    def _scale_const(self, n, t: str, c: np.ndarray):
        """Sub / Add / Mul / Div of a constant: into the pixel normalization (on the image
        input) or into the Conv/Gemm before it."""
        v = self._per_channel(t, c)
        op = n.op_type
        if op in ("Mul", "Div") and np.any(v == 0):
            self.fail(f"{op} by zero")
        if self._only_reader_of_input(t):
            # x = (p - mean) / std; x - c = (p - (mean + c std)) / std; x * c = (p - mean) / (std / c)
            if op in ("Sub", "Add"):
                self.mean = self.mean + (v if op == "Sub" else -v) * self.std
            else:
                self.std = self.std / v if op == "Mul" else self.std * v
            if np.any(self.std <= 0):
                self.fail("scales the image by a negative number (unsupported)")
            return self._alias(n.output[0], t)
        fn = self.sole_producer(t, ("conv",))
        if fn is None or node_act(fn) != "none":
            self.fail(f"{op} of a constant must follow the image input or a Conv/Gemm "
                      "(its only reader, before any activation)")
        if op in ("Add", "Sub"):
            fn.bias = fn.bias + (v if op == "Add" else -v)
        else:
            f = v if op == "Mul" else 1.0 / v
            fn.weight = fn.weight * f[:, None, None, None]
            fn.bias = fn.bias * f
        self._alias(n.output[0], t)

    def _operands(self, n) -> tuple[str, str | None, np.ndarray | None]:
        a, b = n.input[0], n.input[1]
        if a in self.consts and b not in self.consts and n.op_type in ("Add", "Mul"):
            a, b = b, a
        if b in self.consts:
            return a, None, self.consts[b]
        if a in self.consts:
            self.fail(f"{n.op_type} of a constant by an image tensor is not supported")
        return a, b, None

    def op_Sub(self, n, attrs):
        a, b, c = self._operands(n)
        if c is None:
            self.fail(f"{n.op_type} of two image tensors is not supported")
        self._scale_const(n, a, c)

    op_Div = op_Sub

    def op_Add(self, n, attrs):
        a, b, c = self._operands(n)
        if c is not None:
            return self._scale_const(n, a, c)
        x, y = self.src(a), self.src(b)
        if self.shapes[x] != self.shapes[y] or len(self.shapes[x]) != 4:
            self.fail(f"Add of shapes {list(self.shapes[x])} and {list(self.shapes[y])} "
                      "(only equal N x C x H x W)")
        self.add("add", _layer_name(n, None, n.output[0]), [x, y], n.output[0], self.shapes[x])

    def op_Mul(self, n, attrs):
        a, b, c = self._operands(n)
        if c is not None:
            return self._scale_const(n, a, c)
        a, b = self.src(a), self.src(b)
        sig = next((f for f in (self.producer.get(b), self.producer.get(a))
                    if f is not None and f.op == "sigmoid"), None)
        if sig is not None and {a, b} == {sig.inputs[0], sig.output} \
                and self.consumers.get(sig.output, 0) == 1:
            self.nodes.remove(sig)
            self.add("swish", sig.name.replace(".sigmoid", ".swish"), [sig.inputs[0]],
                     n.output[0], self.shapes[sig.inputs[0]])
            return
        if self.chw(a)[1:] == (1, 1) and self.chw(b)[1:] != (1, 1):
            a, b = b, a
        if self.chw(b) != (self.chw(a)[0], 1, 1) or len(self.shapes[a]) != 4:
            self.fail("Mul of two tensors must gate N x C x H x W by N x C x 1 x 1")
        self.add("mul", _layer_name(n, None, n.output[0]), [a, b], n.output[0], self.shapes[a])

    def _elementwise(self, n, op: str, attrs: dict | None = None):
        x = self.src(n.input[0])
        self.add(op, _layer_name(n, None, n.output[0]) + "." + op, [x], n.output[0],
                 self.shapes[x], attrs)

    def op_Sigmoid(self, n, attrs):
        self._elementwise(n, "sigmoid")

    def op_HardSwish(self, n, attrs):
        self._elementwise(n, "hswish")

    def op_HardSigmoid(self, n, attrs):
        self._elementwise(n, "hsigmoid", dict(alpha=float(attrs.get("alpha", 0.2)),
                                              beta=float(attrs.get("beta", 0.5))))

    # ---- pooling and the head ---------------------------------------------------------------
    def _pool(self, n, attrs, op: str):
        x, pre = self._take_pad(n.input[0]) if op == "avgpool" else (self.src(n.input[0]), [0] * 4)
        c, hh, ww = self.chw(x)
        ks = [int(k) for k in attrs.get("kernel_shape", [])]
        st = [int(s) for s in attrs.get("strides", [1, 1])]
        cp = [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
        ap = attrs.get("auto_pad", "NOTSET")
        if len(ks) != 2 or len(st) != 2 or len(cp) != 4 or min(ks + st) < 1 or min(cp) < 0 \
                or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            self.fail("only 2-D pools without dilation")
        if ap not in ("NOTSET", "VALID") and op == "avgpool":
            self.fail(f"auto_pad={ap} on an AveragePool (the divisor is ambiguous): refused")
        if ap not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            self.fail(f"auto_pad={ap} is not an ONNX padding mode")
        own = _own_pads(ap, cp, hh, ww, ks[0], ks[1], st)
        pad = [a + b for a, b in zip(pre, own)]
        if attrs.get("ceil_mode", 0):
            if op == "avgpool":
                self.fail("AveragePool with ceil_mode=1 (partial windows change the divisor): "
                          "refused")
            pad[1] += self._ceil_extra(hh, ks[0], st[0], pad[0], pad[1])
            pad[3] += self._ceil_extra(ww, ks[1], st[1], pad[2], pad[3])
        if op == "avgpool" and any(own) and not attrs.get("count_include_pad", 0):
            self.fail("padded AveragePool needs count_include_pad=1")
        if max(pad[0], pad[1]) >= ks[0] or max(pad[2], pad[3]) >= ks[1]:
            self.fail("pool padding as large as the kernel")
        oh, ow = conv_out(hh, ks[0], st[0], pad[0], pad[1]), conv_out(ww, ks[1], st[1], pad[2], pad[3])
        if oh < 1 or ow < 1:
            self.fail(f"a {ks} pool does not fit the {hh} x {ww} input")
        self.add(op, _layer_name(n, None, n.output[0]), [x], n.output[0], (1, c, oh, ow),
                 dict(kernel=ks, stride=st, pad=pad))

    @staticmethod
    def _ceil_extra(size: int, k: int, s: int, before: int, after: int) -> int:
        """Extra bottom/right padding that makes floor division give ceil_mode's size (a last
        window starting in the trailing padding is dropped, as ONNX and PyTorch do)."""
        out = -(-(size + before + after - k) // s) + 1
        if (out - 1) * s >= size + before:
            out -= 1
        return max((out - 1) * s + k - (size + before + after), 0)

    def op_MaxPool(self, n, attrs):
        if len(n.output) > 1 and n.output[1]:
            self.fail("MaxPool's Indices output is not supported")
        self._pool(n, attrs, "maxpool")

    def op_AveragePool(self, n, attrs):
        self._pool(n, attrs, "avgpool")

    def op_GlobalMaxPool(self, n, attrs):
        c, hh, ww = self.chw(self.src(n.input[0]))
        if max(hh, ww) > 64:
            self.fail(f"GlobalMaxPool over {hh} x {ww} (at most 64 x 64)")
        self._pool(n, dict(kernel_shape=[hh, ww], strides=[1, 1]), "maxpool")

    def op_GlobalAveragePool(self, n, attrs):
        x = self.src(n.input[0])
        if len(self.shapes[x]) != 4:
            self.fail("GlobalAveragePool of a non-image tensor")
        self.add("gap", _layer_name(n, None, n.output[0]), [x], n.output[0],
                 (1, self.chw(x)[0], 1, 1))

    def _spatial_reduce(self, n, attrs) -> tuple[str, tuple[int, ...]]:
        """ReduceMean / ReduceMax over H and W: the input and the output shape."""
        x = self.src(n.input[0])
        axes = attrs.get("axes")
        if axes is None and len(n.input) > 1 and n.input[1]:
            axes = self.const(n.input[1]).reshape(-1).tolist()
        if len(self.shapes[x]) != 4 or sorted(int(a) % 4 for a in (axes or [])) != [2, 3]:
            self.fail(f"only {n.op_type} over H and W is supported")
        c = self.chw(x)[0]
        return x, ((1, c, 1, 1) if int(attrs.get("keepdims", 1)) else (1, c))

    def op_ReduceMean(self, n, attrs):
        x, shape = self._spatial_reduce(n, attrs)
        self.add("gap", _layer_name(n, None, n.output[0]), [x], n.output[0], shape)

    def op_ReduceMax(self, n, attrs):
        x, shape = self._spatial_reduce(n, attrs)
        self.op_GlobalMaxPool(n, {})
        self.shapes[n.output[0]] = shape

    def _dense(self, n, wt: np.ndarray, b: np.ndarray):
        x = self.src(n.input[0])
        c, hh, ww = self.chw(x)
        if (hh, ww) != (1, 1) or wt.shape[1] != c:
            self.fail(f"{n.op_type} must follow a global pool (weight {list(wt.shape)}, "
                      f"input {c} x {hh} x {ww})")
        if b.shape != (wt.shape[0],) or not np.all(np.isfinite(wt)) or not np.all(np.isfinite(b)):
            self.fail("bias does not match the weight, or NaN / infinity in them")
        self.add("conv", _layer_name(n, n.input[1], n.output[0]), [x], n.output[0],
                 (1, wt.shape[0]), dict(stride=[1, 1], pad=[0, 0, 0, 0], groups=1, act="none"),
                 wt[:, :, None, None], b)

    def op_Gemm(self, n, attrs):
        wt = np.asarray(self.const(n.input[1]), np.float64)
        if attrs.get("transA", 0) or wt.ndim != 2:
            self.fail("Gemm with transA or a non-matrix weight is not supported")
        wt = wt if attrs.get("transB", 0) else wt.T
        wt = wt * float(attrs.get("alpha", 1.0))
        b = np.zeros(wt.shape[0])
        if len(n.input) > 2 and n.input[2]:
            b = float(attrs.get("beta", 1.0)) * np.broadcast_to(
                np.asarray(self.const(n.input[2]), np.float64).reshape(-1), (wt.shape[0],))
        self._dense(n, wt, np.array(b, np.float64))

    def op_MatMul(self, n, attrs):
        wt = np.asarray(self.const(n.input[1]), np.float64)
        if wt.ndim != 2:
            self.fail("MatMul by a non-matrix constant is not supported")
        self._dense(n, wt.T, np.zeros(wt.shape[1]))


def float_graph_from_onnx(path: str | Path, pixel_mean: list[float], pixel_std: list[float],
                          labels: list[str] | None = None, name: str | None = None,
                          input_hw: tuple[int, int] | None = None) -> FloatGraph:
    """The float graph of an ONNX classifier; pixels normalize as `(p - mean) / std` (one value
    or one per channel) before the graph's first op."""
    p = Path(path)
    model = load_model(p)
    g = model.graph
    consts = read_constants(g, p)
    check_order(g, consts, p)
    x, (c, h, w) = image_input(g, consts, p, input_hw)
    mean, std = (list(v) * c if len(v) == 1 else list(v) for v in (pixel_mean, pixel_std))
    if len(mean) != c or len(std) != c or min(std) <= 0:
        raise AqError(f"{p}: --mean/--std need 1 or {c} values (std > 0), got "
                      f"{len(pixel_mean)} and {len(pixel_std)}")
    im = _Importer(p, g, consts, opset_of(model), x, (c, h, w), mean, std)
    im.run()
    final = im.src(g.output[0].name)
    if not im.nodes or im.nodes[-1].output != final or im.nodes[-1].op != "conv" \
            or im.chw(final)[1:] != (1, 1):
        raise AqError(f"{p}: the graph must end in a Conv/Gemm producing the logits")
    k = im.chw(final)[0]
    fg = FloatGraph(name or p.stem, x, final, (c, h, w), [float(v) for v in im.mean],
                    [float(v) for v in im.std], im.nodes, labels or [str(i) for i in range(k)])
    fg.preprocess = {"resize": int(round(h * 256 / 224)), "crop": [h, w]}
    fg.notes = im.notes
    return fg
