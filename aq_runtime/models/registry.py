"""Built-in models by name -> float graph (BN folded)."""

from __future__ import annotations

from .. import AqError
from ..ir.float_graph import FloatGraph

MODEL_NAMES = ("efficientnet-lite0", "efficientnet-b0", "digits-cnn")


def build_float_graph(name: str, input_size: int | None = None) -> FloatGraph:
    """Float graph of a built-in model; `input_size` overrides the square input side."""
    if name == "efficientnet-lite0":
        from .efficientnet import lite0_float_graph
        return lite0_float_graph((input_size or 224,) * 2)
    if name == "efficientnet-b0":
        from .efficientnet import b0_float_graph
        return b0_float_graph((input_size or 224,) * 2)
    if name == "digits-cnn":
        from .digits import train_digits_cnn
        return train_digits_cnn().to_float_graph()
    raise AqError(f"unknown model {name!r} (built-in: {', '.join(MODEL_NAMES)})")
