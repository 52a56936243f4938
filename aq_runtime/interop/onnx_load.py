"""Reading a user's ONNX file without trusting it: load (external data included), check that
the graph is one DAG in order with one float N x C x H x W image input and one output, and
read its constants. Everything a malformed file can cause is an AqError line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import AqError

MAX_SIDE = 4096  # input height/width the importer accepts
MAX_CHANNELS = 64  # image channels
MAX_CONST_ELEMENTS = 1 << 28  # one initializer (1 GiB of float32)
FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def load_model(p: Path):
    """The ModelProto of `p`, its external data (torch's dynamo exporter writes `.onnx.data`)
    loaded from beside it."""
    import onnx

    try:
        model = onnx.load(str(p))
    except Exception as e:
        raise AqError(f"{p}: not a readable ONNX model ({e.__class__.__name__})") from None
    g = model.graph
    if not g.node:
        raise AqError(f"{p}: the ONNX graph has no nodes")
    if len(g.output) != 1:
        raise AqError(f"{p}: expected one graph output (the logits), found {len(g.output)}")
    return model


def opset_of(model) -> int:
    """The default-domain opset the file declares."""
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    raise AqError("the ONNX model declares no default-domain opset")


def read_constants(g, p: Path) -> dict[str, np.ndarray]:
    """Initializers as numpy arrays (floats as float64)."""
    from onnx import numpy_helper

    consts: dict[str, np.ndarray] = {}
    for t in g.initializer:
        if int(np.prod(t.dims, dtype=np.float64)) > MAX_CONST_ELEMENTS:
            raise AqError(f"{p}: initializer {t.name!r} has {list(t.dims)} elements (too large)")
        try:
            a = numpy_helper.to_array(t)
        except Exception as e:
            raise AqError(f"{p}: initializer {t.name!r} is unreadable ({e.__class__.__name__}: "
                          f"{first_line(e)})") from None
        consts[t.name] = a.astype(np.float64) if a.dtype.kind == "f" else a
    return consts


def check_order(g, consts: dict[str, np.ndarray], p: Path) -> None:
    """Every node's inputs exist before it (the ONNX spec's topological order): a cycle, a
    dangling reference or a dropped initializer is named here, not met later as a KeyError."""
    known = set(consts) | {i.name for i in g.input}
    for k, n in enumerate(g.node):
        for t in n.input:
            if t and t not in known:
                raise AqError(f"{p}: node {n.name or k} ({n.op_type}) reads {t!r}, which nothing "
                              "produces before it (missing initializer, cycle or unsorted graph)")
        for t in n.output:
            if t in known and t:
                raise AqError(f"{p}: node {n.name or k} ({n.op_type}) writes {t!r}, which "
                              "already exists")
            known.add(t)
    if g.output[0].name not in known:
        raise AqError(f"{p}: the graph output {g.output[0].name!r} is never produced")


def image_input(g, consts: dict[str, np.ndarray], p: Path,
                input_hw: tuple[int, int] | None) -> tuple[str, tuple[int, int, int]]:
    """The one image input and its static (C, H, W); the batch may be symbolic. `input_hw`
    sets H and W where the file leaves them symbolic."""
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise AqError(f"{p}: expected one image input, found {len(inputs)}")
    tt = inputs[0].type.tensor_type
    if tt.elem_type not in FLOAT_TYPES:
        raise AqError(f"{p}: the input {inputs[0].name!r} must be a float tensor")
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim]
    if len(dims) != 4:
        raise AqError(f"{p}: the input must be N x C x H x W, found rank {len(dims)}")
    c, h, w = dims[1], *(input_hw or (dims[2], dims[3]))
    if not (c and h and w):
        raise AqError(f"{p}: the input needs static C, H, W (pass an input size)")
    if not (0 < c <= MAX_CHANNELS and 0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise AqError(f"{p}: input C x H x W = {c} x {h} x {w} is out of range "
                      f"(C <= {MAX_CHANNELS}, H, W <= {MAX_SIDE})")
    return inputs[0].name, (int(c), int(h), int(w))


def first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else ""
