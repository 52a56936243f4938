"""The integer graph (IR): activation tensors with per-channel quant params, and nodes whose
integer arrays follow docs/SEMANTICS.md. Layout-free (NCHW shapes are logical, not a memory layout).

Ops and their arrays (O = output channels, C = input channels):
  conv   weight (O, C/groups, kh, kw) int codes, wbits (O,), bias (O,), mult (O,), shift (O,),
         lo (O,), hi (O,); ternary mode adds bias_n (O,), mult_n (O,).
         attrs: stride [sh, sw], pad [top, bottom, left, right], groups, mode "int"|"ternary".
  add    mult_a (C,), mult_b (C,), shift (C,), lo (C,), hi (C,)
  mul    mult (C,), shift (C,), lo (C,), hi (C,)           (second input is N x C x 1 x 1)
  gap    mult (C,), shift (C,), lo (C,), hi (C,)           (global average pool)
  lut    table (C, 256) codes indexed by the input code
  maxpool  (no arrays) max of codes over windows; output quant params = input's; pads never win
  avgpool  mult (C,), shift (C,), lo (C,), hi (C,): windows summed (padding = zero point,
           counted in the divisor), requantized like gap; attrs kernel, stride, pad
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OPS = ("conv", "add", "mul", "gap", "lut", "maxpool", "avgpool")

# Canonical dtype of every array key, in memory and on disk (weights are packed on disk).
ARRAY_DTYPES: dict[str, str] = {
    "weight": "int16", "wbits": "uint8",
    "bias": "int32", "bias_n": "int32", "mult": "int32", "mult_n": "int32",
    "mult_a": "int32", "mult_b": "int32", "shift": "uint8", "lo": "int32", "hi": "int32",
    "table": "int16", "wcbits": "uint8", "wmult": "uint8",
}
TENSOR_DTYPES: dict[str, str] = {"scale": "float64", "zero_point": "int32", "bits": "uint8"}
OP_ARRAYS: dict[str, tuple[str, ...]] = {
    "conv": ("weight", "wbits", "bias", "mult", "shift", "lo", "hi"),
    "add": ("mult_a", "mult_b", "shift", "lo", "hi"),
    "mul": ("mult", "shift", "lo", "hi"),
    "gap": ("mult", "shift", "lo", "hi"),
    "lut": ("table",),
    "maxpool": (),
    "avgpool": ("mult", "shift", "lo", "hi"),
}
TERNARY_ARRAYS = ("bias_n", "mult_n")
STORAGE_ATTRS = ("weight_coding",)  # how a file stores a conv's codes: not the model's integers
WEIGHT_CODINGS = ("packed", "entropy")  # the values of attrs["weight_coding"]
GROUP_ARRAYS = ("wcbits", "wmult")  # a conv with attrs["weight_group"]: quant/weights.py


def canonical(key: str, a: np.ndarray) -> np.ndarray:
    """Cast an IR array to its canonical dtype, refusing values that do not fit."""
    dt = np.dtype(ARRAY_DTYPES.get(key) or TENSOR_DTYPES[key])
    a = np.asarray(a)
    if dt.kind in "iu" and a.size:
        info = np.iinfo(dt)
        if a.min() < info.min or a.max() > info.max:
            raise ValueError(f"array {key!r} has values outside {dt}")
    return np.ascontiguousarray(a.astype(dt))


@dataclass
class TensorSpec:
    """Quant params of one activation tensor: real = scale[c] * (q - zero_point[c])."""
    name: str
    shape: tuple[int, int, int]  # (C, H, W)
    scale: np.ndarray  # float64 (C,)
    zero_point: np.ndarray  # int64 (C,)
    bits: np.ndarray  # int64 (C,), 1..8, or 32 for int32 logits


@dataclass(eq=False)  # identity semantics: backends cache prepared weights per node
class Node:
    op: str
    name: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Graph:
    input: str
    output: str
    tensors: dict[str, TensorSpec]
    nodes: list[Node]
    meta: dict[str, Any] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def weight_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "conv"]

    def store_weights_as(self, coding: str) -> None:
        """Mark every conv for the writer: its codes bit-packed ('packed', the default) or
        rANS-coded where that is smaller ('entropy'); the integers are the same either way."""
        if coding != "packed":
            for n in self.weight_nodes():
                n.attrs["weight_coding"] = coding

    def digest(self) -> str:
        """SHA-256 over node structure and every integer array: identifies a model."""
        h = hashlib.sha256()
        for n in self.nodes:
            attrs = sorted((k, v) for k, v in n.attrs.items() if k not in STORAGE_ATTRS)
            h.update(f"{n.op}|{n.name}|{n.inputs}|{n.output}|{attrs}".encode())
            for k in sorted(n.arrays):
                h.update(k.encode())
                h.update(np.ascontiguousarray(n.arrays[k]).tobytes())
        for t in sorted(self.tensors):
            s = self.tensors[t]
            for a in (s.scale, s.zero_point, s.bits):
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()
