"""Bias correction (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and
Bias Correction"; Finkelstein et al. 2019, "Fighting Quantization Bias With Bias"): quantized
weights W + dW shift a layer's output by conv(x, dW), whose mean over images and positions is a
systematic error wherever the inputs' mean is far from zero (depthwise layers fed by ReLU6 most
of all). That mean, measured per output channel on calibration images with float inputs, is
taken out of the float bias before integerization, so it lands in the int32 bias codes."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .dequant import dequantized_conv
from .float_exec import run_float_graph
from ..ir.float_graph import FloatGraph
from ..ir.graph import Graph

MAX_IMAGES = 128  # evenly spaced calibration images; the means settle long before


def output_shifts(fg: FloatGraph, images: np.ndarray, deltas: dict[str, np.ndarray]
                  ) -> dict[str, np.ndarray]:
    """Per conv named in `deltas` (weight changes, the conv's weight shape): the mean over
    `images` and output positions of conv(x, delta), x its float input; float64 (O,)."""
    by_input: dict[str, list] = {}
    for n in fg.conv_nodes():
        if n.name in deltas:
            by_input.setdefault(n.inputs[0], []).append(n)
    sums = {k: np.zeros(d.shape[0]) for k, d in deltas.items()}
    counts = dict.fromkeys(deltas, 0)

    def hook(name: str, x: torch.Tensor) -> None:
        for n in by_input.get(name, ()):
            t, b, l, r = n.attrs["pad"]
            dw = torch.from_numpy(np.asarray(deltas[n.name])).to(x.dtype)
            y = F.conv2d(F.pad(x, (l, r, t, b)), dw, stride=n.attrs["stride"],
                         groups=n.attrs["groups"])
            sums[n.name] += y.double().sum(dim=(0, 2, 3)).numpy()
            counts[n.name] += y.shape[0] * y.shape[2] * y.shape[3]

    run_float_graph(fg, images, hook=hook)
    return {k: sums[k] / max(counts[k], 1) for k in deltas}


def sample(images: np.ndarray, limit: int = MAX_IMAGES) -> np.ndarray:
    """At most `limit` images, evenly spaced (crops of one photo are adjacent)."""
    if len(images) <= limit:
        return images
    return images[np.linspace(0, len(images) - 1, limit).astype(int)]


def corrected_biases(fg: FloatGraph, graph: Graph, images: np.ndarray) -> dict[str, np.ndarray]:
    """Float bias per conv of `fg` with the mean output error of `graph`'s quantized weights
    (as its codes and multipliers imply them) on `images` taken out."""
    nodes = {n.name: n for n in graph.weight_nodes()}
    deltas = {n.name: dequantized_conv(graph, nodes[n.name])[0] - n.weight
              for n in fg.conv_nodes() if n.name in nodes}
    shifts = output_shifts(fg, sample(images), deltas)
    return {n.name: n.bias - shifts[n.name] for n in fg.conv_nodes() if n.name in shifts}
