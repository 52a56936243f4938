"""QDQ ONNX export, for tools that only take QuantizeLinear/DequantizeLinear graphs: float ops
between Q/DQ pairs that reproduce each tensor's scale, zero point and clamp bounds. It cannot be
bit-exact: convolutions accumulate in float, requantization uses float scales instead of our
fixed-point (m, n), and ONNX Runtime may fuse Q/DQ into its own int8 kernels with their own
rounding. Weights of up to 8 bits are int8 (or, `weights="u8"`, uint8 with zero point 128:
ONNX Runtime's u8 x s8 kernels saturate int16 pair sums on CPUs without VNNI, its u8 x u8
kernels are exact everywhere) with per-output-channel DequantizeLinear; wider
channels' layers are stored as float (QDQ has no int16 weight path in opset 17). Activations
must be per tensor, as QDQ consumers (ONNX Runtime's QLinearConv among them) require: a model
exported with per-channel activation ranges (aq-export's default `--granularity mixed`) is
refused with a one-line error naming the remedy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import AqError
from ..ir.graph import Graph
from ..quant.cost import input_channel_map
from ..quant.requant import implied_scale
from .onnx_int import _B


def _check_per_tensor(graph: Graph) -> None:
    for t in graph.tensors.values():
        if t.name in (graph.input, graph.output):
            continue
        if not (np.all(t.scale == t.scale[0]) and np.all(t.zero_point == t.zero_point[0])):
            raise AqError(f"onnx-qdq export: tensor {t.name!r} has per-channel activation scales "
                          "(aq-export's default --granularity mixed, or per-channel bits); QDQ "
                          "takes per-tensor activations: export with --granularity tensor, or "
                          "use --to onnx-int (exact)")


def to_onnx_qdq(graph: Graph, path: str | Path, weights: str = "s8") -> None:
    import onnx
    if weights not in ("s8", "u8"):
        raise AqError(f"onnx-qdq export: weights must be s8 or u8, not {weights!r}")
    _check_per_tensor(graph)
    b = _B()
    T = graph.tensors
    F = onnx.TensorProto.FLOAT

    def qdq(x: str, t, lo=None, hi=None) -> str:
        s = t.scale.astype(np.float32)
        if lo is not None:  # clamp bounds narrower than the uint8 range (ReLU6, sub-8-bit codes)
            c = lambda v: b.ch(v, np.float32)  # noqa: E731
            x = b.op("Min", [b.op("Max", [x, c(s * (lo - t.zero_point))]), c(s * (hi - t.zero_point))])
        s, z = s[:1].reshape(()), t.zero_point.astype(np.uint8)[:1].reshape(())  # per tensor
        q = b.op("QuantizeLinear", [x, b.const(s), b.const(z)])
        return b.op("DequantizeLinear", [q, b.const(s), b.const(z)])

    c_in, h, w = T[graph.input].shape
    tin = T[graph.input]
    x0 = b.op("Transpose", ["images"], perm=[0, 3, 1, 2])
    env = {graph.input: b.op("DequantizeLinear", [x0, b.const(tin.scale.astype(np.float32)),
                                                   b.const(tin.zero_point.astype(np.uint8))], axis=1)}
    for n in graph.nodes:
        out, a = T[n.output], n.arrays
        ins = [env[t] for t in n.inputs]
        logits = n.output == graph.output
        if n.op == "conv":
            t_in = T[n.inputs[0]]
            q = a["weight"].astype(np.int64)
            o, cg = q.shape[:2]
            ch = input_channel_map(o, cg, n.attrs["groups"])
            sa = t_in.scale[ch]
            if not np.allclose(sa, sa[:, :1]):
                raise AqError(f"onnx-qdq export: {n.name} has per-channel input scales within a "
                              "group, which QDQ weights cannot carry")
            sw = implied_scale(n.arrays["mult"], n.arrays["shift"], out.scale) / sa[:, 0]
            zq = (q * t_in.zero_point[ch][:, :, None, None]).reshape(o, -1).sum(1)
            if n.attrs.get("mode") == "ternary":
                sn = implied_scale(n.arrays["mult_n"], n.arrays["shift"], out.scale) / sa[:, 0]
                wf = sw[:, None, None, None] * (q == 1) - sn[:, None, None, None] * (q == -1)
                bias = sw * sa[:, 0] * (a["bias"] + ((q == 1).reshape(o, -1) * t_in.zero_point[ch].repeat(
                    q.shape[2] * q.shape[3], axis=1)).sum(1))
                wname = b.const(wf.astype(np.float32))
            else:
                bias = sw * sa[:, 0] * (a["bias"] + zq)
                if a["wbits"].max() <= 8:
                    wq, zw = (q.astype(np.int8), np.zeros(o, np.int8)) if weights == "s8" else \
                        ((q + 128).astype(np.uint8), np.full(o, 128, np.uint8))
                    wname = b.op("DequantizeLinear", [b.const(wq), b.const(sw.astype(np.float32)),
                                                      b.const(zw)], axis=0)
                else:
                    wname = b.const((sw[:, None, None, None] * q).astype(np.float32))
            t, bo, l, r = n.attrs["pad"]
            y = b.op("Conv", [ins[0], wname, b.const(bias.astype(np.float32))],
                     strides=n.attrs["stride"], pads=[t, l, bo, r], group=n.attrs["groups"])
        elif n.op == "add":
            y = b.op("Add", ins)
        elif n.op == "mul":
            y = b.op("Mul", ins)
        elif n.op == "gap":
            y = b.op("GlobalAveragePool", ins)
        elif n.op in ("maxpool", "avgpool"):
            t, bo, l, r = n.attrs["pad"]
            kw_ = dict(kernel_shape=n.attrs["kernel"], strides=n.attrs["stride"], pads=[t, l, bo, r])
            if n.op == "maxpool":  # stays on its input's grid: no requantization
                env[n.output] = b.op("MaxPool", ins, **kw_)
                continue
            y = b.op("AveragePool", ins, count_include_pad=1, **kw_)
        else:  # lut: the float function the table was built from
            fn = n.attrs["fn"]
            if fn == "sigmoid":
                y = b.op("Sigmoid", ins)
            elif fn == "hsigmoid":
                y = b.op("HardSigmoid", ins, alpha=n.attrs["alpha"], beta=n.attrs["beta"])
            elif fn == "swish":
                y = b.op("Mul", [ins[0], b.op("Sigmoid", ins)])
            else:
                y = b.op("HardSwish", ins)
        if logits:
            env[n.output] = y
        else:
            lo = a["lo"].astype(np.int64) if "lo" in a else np.zeros(out.shape[0], np.int64)
            hi = a["hi"].astype(np.int64) if "hi" in a else (1 << out.bits.astype(np.int64)) - 1
            full = (lo == 0).all() and (hi == 255).all()
            env[n.output] = qdq(y, out) if full else qdq(y, out, lo, hi)
    k = T[graph.output].shape[0]
    b.nodes.append(b.h.make_node("Reshape", [env[graph.output], b.const(np.array([-1, k], np.int64))],
                                 ["logits"]))
    g = b.h.make_graph(b.nodes, "aq_qdq", [b.h.make_tensor_value_info(
        "images", onnx.TensorProto.UINT8, ["N", h, w, c_in])],
        [b.h.make_tensor_value_info("logits", F, ["N", k])], b.inits)
    model = b.h.make_model(g, opset_imports=[b.h.make_opsetid("", 17)], producer_name="aq_runtime")
    model.ir_version = 8
    onnx.checker.check_model(model)
    from ..files import write_atomic_bytes
    write_atomic_bytes(path, model.SerializeToString())
