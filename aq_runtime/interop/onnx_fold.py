"""Constant folding for ONNX import: the subgraphs exporters write to compute shapes and pad
amounts (Shape, Gather, Slice, Concat, ConstantOfShape, Cast, Unsqueeze, Range, arithmetic...).
`Shape` and `Size` of an image tensor read the shape the importer tracks (batch 1: every op the
importer keeps works on one image, so a batch dimension only ever flows into a Reshape that
flattens a pooled vector). Everything else whose inputs are constant is evaluated by onnx's
reference evaluator, so each op means what the ONNX spec says at the file's opset."""

from __future__ import annotations

import numpy as np

from .. import AqError
from .onnx_load import MAX_CONST_ELEMENTS, first_line

SHAPE_OPS = ("Shape", "Size")
# ops whose output size is chosen by an input value, checked before they run
_SIZED_BY_VALUE = {"ConstantOfShape": 0, "Expand": 1}


def is_foldable(node, consts: dict[str, np.ndarray]) -> bool:
    """A node computed from constants only (or a Constant): folded, never imported."""
    if node.op_type == "Constant":
        return True
    return bool(node.input) and all(i in consts or i == "" for i in node.input) \
        and node.op_type not in ("Conv", "Gemm", "MatMul")


def shape_value(node, attrs: dict, shape: tuple[int, ...]) -> np.ndarray:
    """Shape (with its start/end attributes) or Size of a tensor of `shape`."""
    if node.op_type == "Size":
        return np.array(int(np.prod(shape)), np.int64)
    r = len(shape)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    start = min(max(start + r if start < 0 else start, 0), r)
    end = r if end is None else min(max(int(end) + r if int(end) < 0 else int(end), 0), r)
    return np.array(shape[start:end], np.int64)


def fold(node, consts: dict[str, np.ndarray], opset: int, where: str) -> list[np.ndarray]:
    """The outputs of a node whose inputs are constants, by the ONNX reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    k = _SIZED_BY_VALUE.get(node.op_type)
    if k is not None and len(node.input) > k and node.input[k] in consts:
        n = np.prod(np.asarray(consts[node.input[k]], np.float64))
        if not np.isfinite(n) or n > MAX_CONST_ELEMENTS:
            raise AqError(f"node {where}: asks for a constant of {n:.3g} elements (too large)")
    try:
        outs = ReferenceEvaluator(node, opsets={"": opset}).run(
            None, {i: consts[i] for i in node.input if i})
    except AqError:
        raise
    except Exception as e:
        raise AqError(f"node {where}: cannot fold this constant subgraph "
                      f"({e.__class__.__name__}: {first_line(e)})") from None
    return [np.asarray(v) for v in outs]
