"""A fake-quant PyTorch model built from an integer graph's own parameters: weights are the
codes times the scale the integer multiplier implies (m / 2^n * s_out), activations are
rounded to each tensor's codes and clamped like the integer ops (float32 by default, as
training runs; float64 on request). It differs from
the integer path only in where rounding happens, so its top-1 agreement with the integer
model measures how faithful the float simulation is."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .dequant import dequantized_conv
from .float_exec import Hook, torch_nonlinear
from .integerize import nonlinear_fn
from ..ir.graph import Graph, Node


def _t(a: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, np.float64)).to(dtype)


def fake_quantize(y: torch.Tensor, s: torch.Tensor, z: torch.Tensor, lo: torch.Tensor,
                  hi: torch.Tensor, ste: bool = False) -> torch.Tensor:
    """Real values `y` rounded (half up) to codes of scale `s` and zero point `z`, clamped to
    codes [lo, hi], back in real units: what an integer op leaves (all broadcast per channel);
    with `ste` the rounding passes gradients straight through."""
    v = y / s
    r = torch.floor(v + 0.5)
    if ste:
        r = v + (r - v).detach()
    return s * (torch.clamp(r + z, lo, hi) - z)


class FakeQuantGraph:
    """Callable: uint8 N x H x W x C images -> float64 logits (real units)."""

    def __init__(self, graph: Graph, dtype: torch.dtype = torch.float32):
        self.g = graph
        self.dtype = dtype
        self.params: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for n in graph.weight_nodes():
            wf, bf = dequantized_conv(graph, n)
            self.params[n.name] = (_t(wf, dtype), _t(bf, dtype))

    def quantize_output(self, y: torch.Tensor, n: Node, ste: bool = False) -> torch.Tensor:
        """`y` (real values of node `n`'s output) rounded to its codes, clamped as the integer
        op clamps, and mapped back to real values; with `ste` the rounding passes gradients
        straight through (learned rounding trains through it)."""
        out = self.g.tensors[n.output]
        d = self.dtype
        z = _t(out.zero_point, d).view(1, -1, 1, 1)
        lo = _t(n.arrays["lo"], d).view(1, -1, 1, 1) if "lo" in n.arrays else 0 * z
        hi = _t(n.arrays["hi"], d).view(1, -1, 1, 1) if "hi" in n.arrays else z * 0 + (
            2.0 ** _t(out.bits, d).view(1, -1, 1, 1) - 1)
        return fake_quantize(y, _t(out.scale, d).view(1, -1, 1, 1), z, lo, hi, ste)

    def input_values(self, images: np.ndarray) -> torch.Tensor:
        """uint8 N x H x W x C images -> the network input's real values, N x C x H x W."""
        t_in = self.g.tensors[self.g.input]
        d = self.dtype
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(d)
        return _t(t_in.scale, d).view(1, -1, 1, 1) * (x - _t(t_in.zero_point, d).view(1, -1, 1, 1))

    def node(self, n: Node, ins: list[torch.Tensor],
             params: tuple[torch.Tensor, torch.Tensor] | None = None, ste: bool = False
             ) -> torch.Tensor:
        """One node on real-valued inputs, its output quantized as the integer op leaves it;
        `params` (weight, bias) override a conv's own."""
        if n.op == "conv":
            w, b = params or self.params[n.name]
            t, bo, l, r = n.attrs["pad"]
            y = F.conv2d(F.pad(ins[0], (l, r, t, bo)), w, b, stride=n.attrs["stride"],
                         groups=n.attrs["groups"])
        elif n.op == "add":
            y = ins[0] + ins[1]
        elif n.op == "mul":
            y = ins[0] * ins[1]
        elif n.op == "gap":
            y = ins[0].mean(dim=(2, 3), keepdim=True)
        elif n.op in ("maxpool", "avgpool"):
            t, bo, l, r = n.attrs["pad"]
            xp = F.pad(ins[0], (l, r, t, bo), value=float("-inf") if n.op == "maxpool" else 0.0)
            pool = F.max_pool2d if n.op == "maxpool" else F.avg_pool2d
            y = pool(xp, n.attrs["kernel"], n.attrs["stride"])
            if n.op == "maxpool":
                return y
        elif ste:  # tables: the float function, differentiable
            y = torch_nonlinear(n.attrs["fn"], ins[0], n.attrs)
        else:
            y = torch.from_numpy(nonlinear_fn(n.attrs["fn"], ins[0].double().numpy(),
                                              n.attrs)).to(self.dtype)
        return self.quantize_output(y, n, ste)

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch: int = 32, hook: Hook | None = None
                 ) -> np.ndarray:
        """Logits (N, classes) as float64 numpy; `hook(name, tensor)` sees every node's
        output, batch by batch (as `run_float_graph`'s hook does)."""
        g = self.g
        outs = []
        for i in range(0, len(images), batch):
            env = {g.input: self.input_values(images[i:i + batch])}
            for n in g.nodes:
                env[n.output] = self.node(n, [env[t] for t in n.inputs])
                if hook:
                    hook(n.output, env[n.output])
            outs.append(env[g.output].reshape(env[g.output].shape[0], -1).double().numpy())
        return np.concatenate(outs)
