"""Where an integer model's error comes from, block by block: the relative squared error of
each reconstruction block's output (export/learned_rounding.py's `blocks`), the graph's
fake-quant model against its float model, both run from the images (so each block's figure
holds every error that reached it). Measured on the calibration crops and on held-out crops,
it shows which blocks' rounding carries over to images the export never saw and which fits
the calibration photos only (docs/LOWBIT.md)."""

from __future__ import annotations

import numpy as np
import torch

from ..export.fakequant import FakeQuantGraph
from ..export.float_exec import run_float_graph
from ..ir.float_graph import FloatGraph
from ..ir.graph import Graph
from ..export.learned_rounding import blocks


def block_errors(fg: FloatGraph, g: Graph, images: np.ndarray, batch: int = 32
                 ) -> list[tuple[str, float]]:
    """(first node of the block, sum (q - f)^2 / sum f^2 over `images`) per block of `fg`, in
    order: q the output of integer graph `g`'s fake-quant model, f the float model's."""
    parts = blocks(fg)
    outs = [p[-1].output for p in parts]
    noise = np.zeros(len(outs))
    power = np.zeros(len(outs))
    fq = FakeQuantGraph(g)
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        got: dict[str, dict[str, torch.Tensor]] = {"ref": {}, "q": {}}

        def keep(which: str):
            def hook(name: str, t: torch.Tensor) -> None:
                if name in outs:
                    got[which][name] = t.double().reshape(len(x), -1)
            return hook

        run_float_graph(fg, x, hook=keep("ref"), batch=batch)
        fq(x, batch=batch, hook=keep("q"))
        for j, o in enumerate(outs):
            r, q = got["ref"][o], got["q"][o]
            noise[j] += float(((q - r) ** 2).sum())
            power[j] += float((r ** 2).sum())
    return [(p[0].name, float(e / max(s, 1e-300))) for p, e, s in zip(parts, noise, power)]
