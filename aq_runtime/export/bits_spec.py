"""Bit-width specifications for export: a uniform int (`--bits 8`), a JSON file of per-layer
and per-channel bits, or the result of `auto_bits`. Resolved against a float graph into
per-node weight bits, per-tensor activation bits and ternary layers.

JSON format (every key optional):
  {"weight": 8, "act": 8,
   "layers": {"_blocks.0._depthwise_conv": {"weight": 16, "act": [8, 6, ...]},
              "_fc": {"weight": 6}, "_blocks.3._project_conv": {"ternary": 0.05}}}
"weight" is the bits of that layer's weights (int, or a list with one entry per output
channel); "act" the bits of the tensor the layer produces (int or per-channel list);
"ternary" makes the conv TTQ-ternary with that threshold."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import AqError
from ..quant.bits import ACT_BITS_MAX, WEIGHT_BITS_MAX
from ..ir.float_graph import FloatGraph
from .integerize import tensor_shapes

@dataclass
class BitsPlan:
    """The widths an export integerizes with."""
    weight: dict[str, np.ndarray]  # conv name -> weight bits per output channel
    act: dict[str, np.ndarray]  # tensor name -> activation bits per channel
    ternary: dict[str, float] = field(default_factory=dict)  # conv name -> TTQ threshold
    report: dict[str, Any] = field(default_factory=dict)  # how `auto` chose (empty otherwise)


def load_bits_json(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise AqError(f"{p}: no such bits file")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AqError(f"{p}: not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise AqError(f"{p}: the bits file must hold a JSON object")
    return doc


def _expand(v: Any, n: int, lo: int, hi: int, where: str) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype.kind not in "iu" or a.ndim > 1:
        raise AqError(f"{where}: bits must be an integer or a list of integers")
    if a.ndim == 1 and a.shape[0] != n:
        raise AqError(f"{where}: {a.shape[0]} per-channel bits given, the layer has {n} channels")
    if a.size and (a.min() < lo or a.max() > hi):
        raise AqError(f"{where}: bits must lie in {lo}..{hi}")
    return np.broadcast_to(a.astype(np.int64), (n,)).copy()


def resolve_bits(fg: FloatGraph, spec: int | dict[str, Any]) -> BitsPlan:
    """Weight bits per conv node, activation bits per produced tensor, ternary layers."""
    if isinstance(spec, (int, np.integer)):
        spec = {"weight": int(spec), "act": min(int(spec), ACT_BITS_MAX)}
    shapes = tensor_shapes(fg)
    w_def, a_def = spec.get("weight", 8), spec.get("act", 8)
    layers = spec.get("layers", {})
    if not isinstance(layers, dict):
        raise AqError("bits: 'layers' must be an object")
    known = {n.name: n for n in fg.nodes}
    for name in layers:
        if name not in known:
            raise AqError(f"bits: unknown layer {name!r} (e.g. {next(iter(known))!r})")
    wbits, abits, tern = {}, {}, {}
    for n in fg.nodes:
        entry = layers.get(n.name, {})
        if not isinstance(entry, dict):
            raise AqError(f"bits: layers.{n.name} must be an object")
        c = shapes[n.output][0]
        if n.op == "conv":
            wbits[n.name] = _expand(entry.get("weight", w_def), c, 1, WEIGHT_BITS_MAX,
                                    f"bits: layers.{n.name}.weight")
            if "ternary" in entry:
                t = entry["ternary"]
                if not isinstance(t, (int, float)) or not 0 <= t < 1:
                    raise AqError(f"bits: layers.{n.name}.ternary must be a threshold in [0, 1)")
                tern[n.name] = float(t)
        if n.output != fg.output:
            abits[n.output] = _expand(entry.get("act", a_def), c, 1, ACT_BITS_MAX,
                                      f"bits: layers.{n.name}.act")
    return BitsPlan(wbits, abits, tern)
