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

from ..export.integerize import nonlinear_fn
from ..export.ir import Graph, Node
from ..quant.cost import input_channel_map
from ..quant.requant import implied_scale


def _t(a: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, np.float64)).to(dtype)


def _implied(node: Node, key: str, out_scale: np.ndarray) -> np.ndarray:
    return implied_scale(node.arrays[key], node.arrays["shift"], out_scale)


class FakeQuantGraph:
    """Callable: uint8 N x H x W x C images -> float64 logits (real units)."""

    def __init__(self, graph: Graph, dtype: torch.dtype = torch.float32):
        self.g = graph
        self.dtype = dtype
        self.params: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for n in graph.weight_nodes():
            t_in, out = graph.tensors[n.inputs[0]], graph.tensors[n.output]
            w = n.arrays["weight"].astype(np.float64)
            o, cg = w.shape[:2]
            ch = input_channel_map(o, cg, n.attrs["groups"])
            sa = t_in.scale[ch][:, :, None, None]
            zq = (w * t_in.zero_point[ch][:, :, None, None]).reshape(o, -1)
            sw = _implied(n, "mult", out.scale)
            if n.attrs.get("mode") == "ternary":
                sn = _implied(n, "mult_n", out.scale)
                wf = (sw[:, None, None, None] * (w == 1) - sn[:, None, None, None] * (w == -1)) / sa
                bf = sw * (n.arrays["bias"] + (zq * (w.reshape(o, -1) == 1)).sum(1))
            else:
                wf = sw[:, None, None, None] * w / sa
                bf = sw * (n.arrays["bias"] + zq.sum(1))
            self.params[n.name] = (_t(wf, dtype), _t(bf, dtype))

    def _fq(self, y: torch.Tensor, n: Node) -> torch.Tensor:
        out = self.g.tensors[n.output]
        d = self.dtype
        s = _t(out.scale, d).view(1, -1, 1, 1)
        z = _t(out.zero_point, d).view(1, -1, 1, 1)
        lo = _t(n.arrays["lo"], d).view(1, -1, 1, 1) if "lo" in n.arrays else 0 * z
        hi = _t(n.arrays["hi"], d).view(1, -1, 1, 1) if "hi" in n.arrays else z * 0 + (
            2.0 ** _t(out.bits, d).view(1, -1, 1, 1) - 1)
        q = torch.clamp(torch.floor(y / s + 0.5) + z, lo, hi)
        return s * (q - z)

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch: int = 32) -> np.ndarray:
        g = self.g
        t_in = g.tensors[g.input]
        outs = []
        for i in range(0, len(images), batch):
            d = self.dtype
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).permute(0, 3, 1, 2).to(d)
            env = {g.input: _t(t_in.scale, d).view(1, -1, 1, 1) * (
                x - _t(t_in.zero_point, d).view(1, -1, 1, 1))}
            for n in g.nodes:
                ins = [env[t] for t in n.inputs]
                if n.op == "conv":
                    w, b = self.params[n.name]
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
                        env[n.output] = y
                        continue
                else:
                    y = torch.from_numpy(nonlinear_fn(n.attrs["fn"], ins[0].double().numpy(),
                                                      n.attrs)).to(d)
                env[n.output] = self._fq(y, n)
            outs.append(env[g.output].reshape(env[g.output].shape[0], -1).double().numpy())
        return np.concatenate(outs)
