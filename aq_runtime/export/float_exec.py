"""Run a float graph in PyTorch (float32 by default) on uint8 NHWC images, with a hook that
sees every tensor (calibration) and optional per-node weight overrides (sensitivity)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..ir.float_graph import NONLINEAR, FloatGraph, FloatNode, node_act

Hook = Callable[[str, torch.Tensor], None]


def normalize_input(images: np.ndarray, fg: FloatGraph, dtype=torch.float32) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(dtype)
    m = torch.tensor(fg.pixel_mean, dtype=dtype).view(1, -1, 1, 1)
    s = torch.tensor(fg.pixel_std, dtype=dtype).view(1, -1, 1, 1)
    return (x - m) / s


def torch_nonlinear(op: str, x: torch.Tensor, attrs: dict) -> torch.Tensor:
    """The table nonlinearities in torch (integerize.nonlinear_fn is their float64 form)."""
    if op == "swish":
        return F.silu(x)
    if op == "sigmoid":
        return torch.sigmoid(x)
    if op == "hswish":
        return F.hardswish(x)
    if op == "hsigmoid":
        return torch.clamp(attrs["alpha"] * x + attrs["beta"], 0.0, 1.0)
    raise ValueError(f"unknown nonlinearity {op!r}")


def torch_act(y: torch.Tensor, act: str) -> torch.Tensor:
    """A fused activation ("none", "relu", "relu6") applied in torch."""
    return F.relu6(y) if act == "relu6" else F.relu(y) if act == "relu" else y


def conv_pre(n: FloatNode, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
             ) -> torch.Tensor:
    """A conv node's output before its fused activation (zero padding: real zero)."""
    t, b, l, r = n.attrs["pad"]
    x = F.pad(x, (l, r, t, b)) if (t or b or l or r) else x
    return F.conv2d(x, weight, bias, stride=n.attrs["stride"], groups=n.attrs["groups"])


def apply_node(n: FloatNode, ins: list[torch.Tensor], weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """One float op; conv pads with zeros (real zero), ReLU/ReLU6 fused."""
    if n.op == "conv":
        return torch_act(conv_pre(n, ins[0], weight, bias), node_act(n))
    if n.op == "add":
        return torch_act(ins[0] + ins[1], node_act(n))
    if n.op == "mul":
        return ins[0] * ins[1]
    if n.op == "gap":
        return ins[0].mean(dim=(2, 3), keepdim=True)
    if n.op in NONLINEAR:
        return torch_nonlinear(n.op, ins[0], n.attrs)
    if n.op in ("maxpool", "avgpool"):
        t, b, l, r = n.attrs["pad"]
        if n.op == "maxpool":
            x = F.pad(ins[0], (l, r, t, b), value=float("-inf"))
            return F.max_pool2d(x, n.attrs["kernel"], n.attrs["stride"])
        x = F.pad(ins[0], (l, r, t, b))  # zero padding counted (count_include_pad)
        return F.avg_pool2d(x, n.attrs["kernel"], n.attrs["stride"])
    raise ValueError(f"unknown float op {n.op!r}")


@torch.no_grad()
def run_float_graph(fg: FloatGraph, images: np.ndarray, hook: Hook | None = None,
                    weights: dict[str, np.ndarray] | None = None, batch: int = 32,
                    dtype=torch.float32, biases: dict[str, np.ndarray] | None = None
                    ) -> np.ndarray:
    """Float logits (N, classes) as float64 numpy; `weights` and `biases` override conv
    parameters by name."""
    params = {}
    for n in fg.conv_nodes():
        w = (weights or {}).get(n.name, n.weight)
        b = (biases or {}).get(n.name, n.bias)
        params[n.name] = (torch.from_numpy(np.asarray(w)).to(dtype),
                          torch.from_numpy(np.asarray(b)).to(dtype))
    outs = []
    for i in range(0, len(images), batch):
        env = {fg.input: normalize_input(images[i:i + batch], fg, dtype)}
        if hook:
            hook(fg.input, env[fg.input])
        for n in fg.nodes:
            w, b = params.get(n.name, (None, None))
            env[n.output] = apply_node(n, [env[t] for t in n.inputs], w, b)
            if hook:
                hook(n.output, env[n.output])
        outs.append(env[fg.output].reshape(env[fg.output].shape[0], -1).double().numpy())
    return np.concatenate(outs)
