"""ONNX in: a float ONNX CNN -> the float graph the exporter takes. Constant subgraphs (shape
arithmetic, pad amounts) are folded with onnx's reference evaluator; Pad folds into the next
Conv; BatchNormalization folds into the Conv before it; Relu/Clip(0,6) fuse into that Conv;
x*Sigmoid(x) becomes swish; Gemm/MatMul(+Add) after a global pool becomes a 1x1 conv.
Unsupported ops give one line naming the op and the node."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import AqError
from ..export.float_graph import FloatGraph, FloatNode, conv_out, fold_bn, same_pad

DYNAMIC = {"Conv", "BatchNormalization", "Relu", "Clip", "Add", "Mul", "Sigmoid", "HardSwish",
           "HardSigmoid", "MaxPool", "AveragePool",
           "GlobalAveragePool", "ReduceMean", "Flatten", "Reshape", "Squeeze", "Gemm", "MatMul",
           "Pad", "Identity", "Dropout"}


def _layer_name(node, fallback: str) -> str:
    """'/_blocks.0/_depthwise_conv/Conv' -> '_blocks.0._depthwise_conv' (torch module path)."""
    parts = [p for p in node.name.split("/") if p]
    if len(parts) >= 2:
        return ".".join(parts[:-1])
    return fallback


def float_graph_from_onnx(path: str | Path, pixel_mean: list[float], pixel_std: list[float],
                          labels: list[str] | None = None, name: str | None = None,
                          input_hw: tuple[int, int] | None = None) -> FloatGraph:
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    p = Path(path)
    try:
        model = onnx.load(str(p))
    except Exception as e:
        raise AqError(f"{p}: not a readable ONNX model ({e.__class__.__name__})") from None
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) if numpy_helper.to_array(t).dtype.kind == "f"
              else numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise AqError(f"{p}: expected one image input, found {len(inputs)}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise AqError(f"{p}: the input must be N x C x H x W")
    c, h, w = dims[1], *(input_hw or (dims[2], dims[3]))
    if not (c and h and w):
        raise AqError(f"{p}: the input needs static C, H, W (pass an input size)")
    shapes = {inputs[0].name: (c, h, w)}
    consumers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    alias: dict[str, str] = {}  # onnx tensor -> our tensor
    pads: dict[str, tuple[str, list[int]]] = {}
    producer: dict[str, FloatNode] = {}
    nodes: list[FloatNode] = []

    used: set[str] = set()

    def unique(base: str) -> str:
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        return name

    def src(t: str) -> str:
        while t in alias:
            t = alias[t]
        return t

    def const(t: str, where: str) -> np.ndarray:
        if t not in consts:
            raise AqError(f"{p}: node {where}: input {t!r} must be a constant")
        return consts[t]

    for k, n in enumerate(g.node):
        where = f"{n.name or k} ({n.op_type})"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Constant" or (n.input and all(i in consts or i == "" for i in n.input)
                                       and n.op_type not in ("Conv", "Gemm", "MatMul")):
            try:
                outs = ReferenceEvaluator(n).run(None, {i: consts[i] for i in n.input if i})
            except Exception as e:
                raise AqError(f"{p}: cannot fold constant node {where} ({e.__class__.__name__})") from None
            for o, v in zip(n.output, outs):
                consts[o] = np.asarray(v)
            continue
        if n.op_type not in DYNAMIC:
            raise AqError(f"{p}: unsupported ONNX op {n.op_type} (node {n.name or k})")
        x = src(n.input[0])
        out = n.output[0]
        if n.op_type in ("Identity", "Dropout", "Flatten", "Reshape", "Squeeze"):
            if n.op_type in ("Flatten", "Reshape", "Squeeze") and shapes[x][1:] != (1, 1):
                raise AqError(f"{p}: {where} reshapes a spatial tensor (unsupported)")
            alias[out] = x
        elif n.op_type == "Pad":
            pv = const(n.input[1], where).astype(np.int64).tolist()
            val = float(const(n.input[2], where)) if len(n.input) > 2 and n.input[2] else 0.0
            if attrs.get("mode", b"constant") not in (b"constant", "constant") or val != 0.0 \
                    or pv[0] or pv[1] or pv[4] or pv[5]:
                raise AqError(f"{p}: {where}: only zero padding of H and W is supported")
            pads[out] = (x, [pv[2], pv[6], pv[3], pv[7]])
            shapes[out] = (shapes[x][0], shapes[x][1] + pv[2] + pv[6], shapes[x][2] + pv[3] + pv[7])
            alias[out] = x
        elif n.op_type == "Conv":
            pre = [0, 0, 0, 0]
            if n.input[0] in pads:
                x, pre = pads[n.input[0]]
                x = src(x)
            wt = const(n.input[1], where).astype(np.float64)
            b = const(n.input[2], where).astype(np.float64) if len(n.input) > 2 and n.input[2] else np.zeros(wt.shape[0])
            if any(d != 1 for d in attrs.get("dilations", [1, 1])):
                raise AqError(f"{p}: {where}: dilated convolutions are not supported")
            kh, kw = wt.shape[2:]
            st = list(attrs.get("strides", [1, 1]))
            cp = list(attrs.get("pads", [0, 0, 0, 0]))
            ap = attrs.get("auto_pad", b"NOTSET")
            ap = ap.decode() if isinstance(ap, bytes) else ap
            _, hh, ww = shapes[x]
            if ap in ("SAME_UPPER", "SAME_LOWER"):
                (t0, t1), (l0, l1) = same_pad(hh, kh, st[0]), same_pad(ww, kw, st[1])
                if ap == "SAME_LOWER":
                    t0, t1, l0, l1 = t1, t0, l1, l0
                cp = [t0, l0, t1, l1]
            pad = [pre[0] + cp[0], pre[1] + cp[2], pre[2] + cp[1], pre[3] + cp[3]]
            fn = FloatNode("conv", unique(_layer_name(n, out)), [x], out, dict(
                stride=st, pad=pad, groups=int(attrs.get("group", 1)), act="none"), wt, b)
            nodes.append(fn)
            producer[out] = fn
            shapes[out] = (wt.shape[0], conv_out(hh, kh, st[0], pad[0], pad[1]),
                           conv_out(ww, kw, st[1], pad[2], pad[3]))
        elif n.op_type == "BatchNormalization":
            fn = producer.get(x)
            if fn is None or consumers.get(n.input[0], 0) != 1 or fn.attrs["act"] != "none":
                raise AqError(f"{p}: {where}: BatchNormalization must follow a Conv directly")
            gam, bet, mu, var = (const(t, where) for t in n.input[1:5])
            fn.weight, fn.bias = fold_bn(fn.weight, fn.bias, gam, bet, mu, var,
                                         float(attrs.get("epsilon", 1e-5)))
            alias[out] = x
        elif n.op_type in ("Relu", "Clip"):
            fn = producer.get(x)
            lo = hi = None
            if n.op_type == "Clip":
                lo = float(const(n.input[1], where)) if len(n.input) > 1 and n.input[1] else attrs.get("min")
                hi = float(const(n.input[2], where)) if len(n.input) > 2 and n.input[2] else attrs.get("max")
            act = "relu" if n.op_type == "Relu" or (lo == 0 and hi is None) else (
                "relu6" if (lo == 0 and hi == 6) else None)
            if act is None:
                raise AqError(f"{p}: {where}: only Clip(0, 6) and Clip(0, inf) are supported")
            if fn is None or fn.op != "conv" or fn.attrs["act"] != "none" or consumers.get(x, 0) != 1:
                raise AqError(f"{p}: {where}: {n.op_type} must follow a Conv (only user)")
            fn.attrs["act"] = act
            alias[out] = x
        elif n.op_type in ("MaxPool", "AveragePool"):
            ks = list(attrs.get("kernel_shape", []))
            st = list(attrs.get("strides", [1, 1]))
            cp = list(attrs.get("pads", [0, 0, 0, 0]))
            ap = attrs.get("auto_pad", b"NOTSET")
            if len(ks) != 2 or attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])) \
                    or (ap.decode() if isinstance(ap, bytes) else ap) != "NOTSET":
                raise AqError(f"{p}: {where}: only 2-D pools without ceil_mode, dilation or auto_pad")
            pad = [cp[0], cp[2], cp[1], cp[3]]
            op = "maxpool" if n.op_type == "MaxPool" else "avgpool"
            if op == "avgpool" and any(pad) and not attrs.get("count_include_pad", 0):
                raise AqError(f"{p}: {where}: padded AveragePool needs count_include_pad=1")
            fn = FloatNode(op, unique(_layer_name(n, out)), [x], out,
                           dict(kernel=ks, stride=st, pad=pad))
            nodes.append(fn)
            producer[out] = fn
            _, hh, ww = shapes[x]
            shapes[out] = (shapes[x][0], conv_out(hh, ks[0], st[0], pad[0], pad[1]),
                           conv_out(ww, ks[1], st[1], pad[2], pad[3]))
        elif n.op_type == "HardSigmoid":
            fn = FloatNode("hsigmoid", unique(_layer_name(n, out) + ".hsigmoid"), [x], out,
                           dict(alpha=float(attrs.get("alpha", 0.2)), beta=float(attrs.get("beta", 0.5))))
            nodes.append(fn)
            producer[out] = fn
            shapes[out] = shapes[x]
        elif n.op_type in ("Sigmoid", "HardSwish"):
            op = "sigmoid" if n.op_type == "Sigmoid" else "hswish"
            fn = FloatNode(op, unique(_layer_name(n, out) + "." + op), [x], out)
            nodes.append(fn)
            producer[out] = fn
            shapes[out] = shapes[x]
        elif n.op_type == "Mul":
            a, b = x, src(n.input[1])
            sig = producer.get(b) if producer.get(b) and producer[b].op == "sigmoid" else producer.get(a)
            if sig is not None and sig.op == "sigmoid" and {a, b} == {sig.inputs[0], sig.output} \
                    and consumers.get(sig.output, 0) == 1:
                nodes.remove(sig)
                fn = FloatNode("swish", unique(sig.name.replace(".sigmoid", ".swish")),
                               [sig.inputs[0]], out)
            else:
                if shapes[a][1:] == (1, 1) and shapes[b][1:] != (1, 1):
                    a, b = b, a
                if shapes[b] != (shapes[a][0], 1, 1):
                    raise AqError(f"{p}: {where}: Mul must gate N x C x H x W by N x C x 1 x 1")
                fn = FloatNode("mul", unique(_layer_name(n, out)), [a, b], out)
            nodes.append(fn)
            producer[out] = fn
            shapes[out] = shapes[a]
        elif n.op_type == "Add":
            b = n.input[1]
            fn = producer.get(x)
            if b in consts:
                if fn is None or fn.op != "conv" or consumers.get(n.input[0], 0) != 1:
                    raise AqError(f"{p}: {where}: a constant Add must follow MatMul/Conv")
                fn.bias = fn.bias + const(b, where).astype(np.float64).reshape(-1)
                alias[out] = x
            else:
                b = src(b)
                if shapes[x] != shapes[b]:
                    raise AqError(f"{p}: {where}: Add of different shapes is not supported")
                fn = FloatNode("add", unique(_layer_name(n, out)), [x, b], out)
                nodes.append(fn)
                producer[out] = fn
                shapes[out] = shapes[x]
        elif n.op_type in ("GlobalAveragePool", "ReduceMean"):
            if n.op_type == "ReduceMean":
                axes = attrs.get("axes") or (const(n.input[1], where).tolist() if len(n.input) > 1 else None)
                if sorted(axes or []) != [2, 3]:
                    raise AqError(f"{p}: {where}: only ReduceMean over H and W is supported")
            fn = FloatNode("gap", unique(_layer_name(n, out)), [x], out)
            nodes.append(fn)
            producer[out] = fn
            shapes[out] = (shapes[x][0], 1, 1)
        elif n.op_type in ("Gemm", "MatMul"):
            wt = const(n.input[1], where).astype(np.float64)
            if n.op_type == "Gemm":
                if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                    raise AqError(f"{p}: {where}: Gemm with transA/alpha/beta is not supported")
                if not attrs.get("transB", 0):
                    wt = wt.T
                b = const(n.input[2], where).astype(np.float64) if len(n.input) > 2 and n.input[2] else np.zeros(wt.shape[0])
            else:
                wt, b = wt.T, np.zeros(wt.shape[1])
            if shapes[x][1:] != (1, 1) or wt.shape[1] != shapes[x][0]:
                raise AqError(f"{p}: {where}: {n.op_type} must follow a global pool")
            fn = FloatNode("conv", unique(_layer_name(n, out)), [x], out, dict(
                stride=[1, 1], pad=[0, 0, 0, 0], groups=1, act="none"), wt[:, :, None, None], b)
            nodes.append(fn)
            producer[out] = fn
            shapes[out] = (wt.shape[0], 1, 1)
    final = src(g.output[0].name)
    if not nodes or nodes[-1].output != final or nodes[-1].op != "conv":
        raise AqError(f"{p}: the graph must end in a Conv/Gemm producing the logits")
    k = shapes[final][0]
    fg = FloatGraph(name or p.stem, inputs[0].name, final, (c, h, w), list(pixel_mean),
                    list(pixel_std), nodes, labels or [str(i) for i in range(k)])
    fg.preprocess = {"resize": int(round(h * 256 / 224)), "crop": [h, w]}
    return fg
