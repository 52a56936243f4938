"""Post-training calibration: per-channel ranges of every tensor of a float graph on
calibration images, by min/max or by a percentile of |values| per side (subsampled), and the
granularity they are used at: per tensor, per channel, or mixed (per channel only where no
activation bounds the values)."""

from __future__ import annotations

import numpy as np
import torch

from .float_exec import run_float_graph
from ..ir.float_graph import FloatGraph, node_act
from .options import DEFAULT_GRANULARITY, check_granularity  # noqa: F401 (re-exported)

Ranges = dict[str, tuple[np.ndarray, np.ndarray]]


def calibrate(fg: FloatGraph, images: np.ndarray, method: str = "minmax",
              percentile: float = 99.99, max_samples: int = 4096, seed: int = 0) -> Ranges:
    """Per-channel (lo, hi) float64 of every tensor. `percentile` clips both tails per channel
    using up to `max_samples` values per channel and batch, the ranges then averaged over
    batches weighted by size (min/max are exact over all images)."""
    if method not in ("minmax", "percentile"):
        raise ValueError(f"unknown calibration method {method!r}")
    stats: dict[str, list] = {}
    gen = torch.Generator().manual_seed(seed)

    def hook(name: str, t: torch.Tensor) -> None:
        c = t.shape[1]
        flat = t.detach().transpose(0, 1).reshape(c, -1).double()
        if method == "minmax":
            lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
        else:
            if flat.shape[1] > max_samples:
                idx = torch.randint(flat.shape[1], (max_samples,), generator=gen)
                flat = flat[:, idx]
            q = torch.tensor([1 - percentile / 100, percentile / 100], dtype=torch.float64)
            lo, hi = torch.quantile(flat, q, dim=1)
        stats.setdefault(name, []).append((lo.numpy(), hi.numpy(), t.shape[0]))

    run_float_graph(fg, images, hook=hook)
    out: Ranges = {}
    for name, items in stats.items():
        los = np.stack([a for a, _, _ in items])
        his = np.stack([b for _, b, _ in items])
        if method == "minmax":
            out[name] = (los.min(axis=0), his.max(axis=0))
        else:
            w = np.array([n for _, _, n in items], np.float64)[:, None]
            out[name] = ((los * w).sum(0) / w.sum(), (his * w).sum(0) / w.sum())
    return out


def per_tensor(ranges: Ranges) -> Ranges:
    """One range per tensor (the union over its channels), broadcast back to every channel."""
    return {k: (np.full_like(lo, lo.min()), np.full_like(hi, hi.max()))
            for k, (lo, hi) in ranges.items()}


def unbounded_tensors(fg: FloatGraph) -> set[str]:
    """Tensors no activation bounds: outputs of convs and residual adds without ReLU/ReLU6
    (projections, the inputs of table nonlinearities, MobileNet/EfficientNet adds)."""
    return {n.output for n in fg.nodes
            if n.op in ("add", "conv") and node_act(n) == "none"}


def at_granularity(fg: FloatGraph, ranges: Ranges, granularity: str) -> Ranges:
    """Per-channel `ranges` used per tensor, per channel, or mixed: per channel on the
    unbounded tensors, where channels differ by an order of magnitude and the calibrated range
    is the real one, per tensor elsewhere (a bounded channel that stayed small on the
    calibration images would clip unseen images)."""
    check_granularity(granularity)
    if granularity == "channel":
        return dict(ranges)
    out = per_tensor(ranges)
    if granularity == "mixed":
        out.update({k: ranges[k] for k in unbounded_tensors(fg) if k in ranges})
    return out
