"""Data-free calibration images, for users with no images at all: inputs optimised so that
every folded BatchNorm's output has the per-channel mean and std that BatchNorm was trained
with (ZeroQ, Cai et al. 2020), under random shifts and flips (DeepInversion, Yin et al. 2020),
starting from noise and kept inside the pixel range. They need only the float model; the
models record the statistics when they fold BatchNorm (`FloatNode.bn`). What they are worth
against real photos is measured in docs/BENCHMARKS.md ("Data-free calibration")."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from .. import AqError
from .float_exec import apply_node, conv_pre, torch_act
from ..ir.float_graph import FloatGraph, node_act

ITERS = 200
BATCH = 32
LR = 0.1
SHIFT = 1 / 16  # random shifts up to this fraction of the side


def bn_loss(fg: FloatGraph, x: torch.Tensor, params: dict[str, tuple[torch.Tensor, ...]]
            ) -> torch.Tensor:
    """Sum over BatchNorm-folded convs of the squared distance between the batch's
    per-channel (mean, std) before the activation and the trained ones, relative to the
    trained power. `params`: name -> (weight, bias[, bn mean, bn std])."""
    env = {fg.input: x}
    loss = x.new_zeros(())
    for n in fg.nodes:
        ins = [env[t] for t in n.inputs]
        p = params.get(n.name)
        if n.op == "conv" and p is not None and len(p) == 4:
            y = conv_pre(n, ins[0], p[0], p[1])
            mu, sd = y.mean((0, 2, 3)), y.std((0, 2, 3), unbiased=False)
            loss = loss + (((mu - p[2]) ** 2).sum() + ((sd - p[3]) ** 2).sum()) / (
                p[3] ** 2).sum().clamp(min=1e-12)
            env[n.output] = torch_act(y, node_act(n))
        else:
            env[n.output] = apply_node(n, ins, *(p[:2] if p else ()))
    return loss


def bn_params(fg: FloatGraph) -> dict[str, tuple[torch.Tensor, ...]]:
    """`bn_loss`'s parameters: per conv, float32 (weight, bias[, bn mean, bn std])."""
    return {n.name: tuple(torch.from_numpy(np.asarray(a, np.float64)).float()
                          for a in (n.weight, n.bias, *(n.bn or ()))) for n in fg.conv_nodes()}


def synthesize(fg: FloatGraph, n: int, iters: int = ITERS, batch: int = BATCH, seed: int = 0,
               progress: bool = True) -> np.ndarray:
    """`n` uint8 N x H x W x C images synthesized from `fg`'s BatchNorm statistics
    (deterministic for a seed); `iters` Adam steps per batch of `batch` images."""
    if n < 1 or iters < 1:
        raise AqError("synthetic images: the count and the steps must be positive")
    if not any(nd.bn is not None for nd in fg.conv_nodes()):
        raise AqError(f"{fg.name}: the model has no BatchNorm statistics to synthesize "
                      "images from (pass calibration images)")
    f32 = torch.float32
    params = bn_params(fg)
    c, h, w = fg.input_shape
    mean = torch.tensor(fg.pixel_mean, dtype=f32).view(1, -1, 1, 1)
    std = torch.tensor(fg.pixel_std, dtype=f32).view(1, -1, 1, 1)
    lo, hi = (0 - mean) / std, (255 - mean) / std
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    sh, sw = max(1, int(h * SHIFT)), max(1, int(w * SHIFT))
    out = []
    bar = tqdm(total=-(-n // batch) * iters, desc="synthesizing calibration images",
               disable=not progress)
    for start in range(0, n, batch):
        k = min(batch, n - start)
        x = torch.max(torch.min(torch.randn(k, c, h, w, generator=gen), hi), lo)
        x.requires_grad_(True)
        opt = torch.optim.Adam([x], lr=LR)
        for _ in range(iters):
            dy, dx = int(rng.integers(-sh, sh + 1)), int(rng.integers(-sw, sw + 1))
            xi = torch.roll(x, (dy, dx), (2, 3))
            if rng.random() < 0.5:
                xi = xi.flip(3)
            loss = bn_loss(fg, xi, params)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.copy_(torch.max(torch.min(x, hi), lo))
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        pix = torch.round(x.detach() * std + mean).clamp(0, 255)
        out.append(pix.permute(0, 2, 3, 1).to(torch.uint8).numpy())
    bar.close()
    return np.concatenate(out)
