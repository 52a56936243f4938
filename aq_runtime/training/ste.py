"""Straight-through estimators for quantization-aware training: rounding half up (the rule of
`aq_runtime.quant.rounding`, gradient 1), bit-widths from AQ's precision scale, and TTQ's
ternary projection with its own gradients."""

from __future__ import annotations

import torch


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """floor(x + 0.5) forward (round half up, as quant.rounding), identity backward."""
    return x + (torch.floor(x + 0.5) - x).detach()


def bits_ste(beta: torch.Tensor, n: int, lo: int, hi: int) -> torch.Tensor:
    """AQ's bit-width round(beta * n), clamped to lo..hi, straight through."""
    return torch.clamp(round_ste(beta * n), lo, hi)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """Binary codes {-1, +1} (0 -> +1, as quant.weights), identity gradient."""
    return x + (torch.where(x >= 0, 1.0, -1.0).to(x.dtype) - x).detach()


class _Ternary(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, wp, wn, pos, neg, amax):  # type: ignore[override]
        ctx.save_for_backward(wp, wn, pos, neg, amax)
        return (wp * pos - wn * neg) * amax

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        wp, wn, pos, neg, amax = ctx.saved_tensors
        mid = 1.0 - pos - neg
        gw = g * (wp * pos + mid + wn * neg)  # TTQ: scaled gradients for the latent weights
        return (gw, (g * pos * amax).sum().reshape(wp.shape),
                -(g * neg * amax).sum().reshape(wn.shape), None, None, None)


def ternary_ste(w: torch.Tensor, wp: torch.Tensor, wn: torch.Tensor, threshold: float
                ) -> torch.Tensor:
    """TTQ: {-wn, 0, +wp} * max|w[o]| per element, zero where |w| <= threshold * max|w[o]|.
    wp, wn are trained per layer, relative to each output channel's max|w[o]| (so the same
    values work whatever input scale is folded into w)."""
    amax = w.detach().abs().reshape(w.shape[0], -1).max(dim=1).values
    amax = amax.view(-1, *([1] * (w.dim() - 1)))
    pos = (w.detach() > threshold * amax).to(w.dtype)
    neg = (w.detach() < -threshold * amax).to(w.dtype)
    return _Ternary.apply(w, wp, wn, pos, neg, amax)
