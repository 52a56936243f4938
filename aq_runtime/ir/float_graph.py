"""The float graph: a model after BatchNorm folding, as a list of nodes over named tensors
(conv with fused ReLU/ReLU6, add, mul, gap, and elementwise nonlinearities). Models build it;
calibration, the fake-quant model and integerization consume it. No torch here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

ACTIVATIONS = ("none", "relu", "relu6")
NONLINEAR = ("swish", "sigmoid", "hswish", "hsigmoid")  # hsigmoid attrs: alpha, beta
POOLS = ("maxpool", "avgpool")  # attrs: kernel [kh, kw], stride [sh, sw], pad [t, b, l, r]


@dataclass
class FloatNode:
    op: str  # conv | add | mul | gap | maxpool | avgpool | swish | sigmoid | hswish | hsigmoid
    name: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)  # conv: stride, pad, groups, act; add: act
    weight: np.ndarray | None = None  # float64 (O, C/groups, kh, kw), BN folded
    bias: np.ndarray | None = None  # float64 (O,)
    bn: tuple[np.ndarray, np.ndarray] | None = None  # folded BN: output (mean, std) it trained


@dataclass
class FloatGraph:
    name: str
    input: str
    output: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    pixel_mean: list[float]  # per channel, in pixel units: x = (p - mean) / std
    pixel_std: list[float]
    nodes: list[FloatNode]
    labels: list[str] = field(default_factory=list)
    preprocess: dict[str, Any] = field(default_factory=dict)  # resize / crop for files
    notes: list[str] = field(default_factory=list)  # what an importer changed (told the user)

    def conv_nodes(self) -> list[FloatNode]:
        return [n for n in self.nodes if n.op == "conv"]

    def with_biases(self, biases: dict[str, np.ndarray]) -> FloatGraph:
        """A copy whose convs named in `biases` have those biases (weights shared)."""
        return replace(self, nodes=[replace(n, bias=np.asarray(biases[n.name], np.float64))
                                    if n.name in biases else n for n in self.nodes])


def node_act(n: FloatNode) -> str:
    """The activation fused into a node's output: convs and residual adds may carry ReLU/ReLU6
    (a ResNet's add is followed by ReLU), every other op carries none."""
    return n.attrs.get("act", "none") if n.op in ("conv", "add") else "none"


def fold_bn(w: np.ndarray, b: np.ndarray | None, gamma: np.ndarray, beta: np.ndarray,
            mean: np.ndarray, var: np.ndarray, eps: float
            ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Fold y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta into (w', b'), in float64,
    and give the per-channel (mean, std) y has on the data the BatchNorm was trained on,
    (beta, |gamma| * sqrt(var / (var + eps))): what the folded conv's pre-activation output
    should look like on real images (`FloatNode.bn`; data-free calibration matches it).
    eps is taken as the float32 value frameworks store and add (PyTorch's float32 BN, ONNX's
    float attribute), so every route to the same model folds to the same numbers."""
    eps = float(np.float32(eps))
    g, v = np.asarray(gamma, np.float64), np.asarray(var, np.float64)
    f = g / np.sqrt(v + eps)
    w2 = np.asarray(w, np.float64) * f.reshape(-1, *([1] * (w.ndim - 1)))
    b0 = np.zeros_like(f) if b is None else np.asarray(b, np.float64)
    bn_out = np.asarray(beta, np.float64)
    return w2, (b0 - np.asarray(mean, np.float64)) * f + bn_out, \
        (bn_out.copy(), np.abs(g) * np.sqrt(v / (v + eps)))


def same_pad(size: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) along one axis: asymmetric at stride 2."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def conv_out(size: int, k: int, stride: int, before: int, after: int) -> int:
    return (size + before + after - k) // stride + 1
