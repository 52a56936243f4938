"""Float graphs from state dicts of the built-in architectures (strict key matching)."""

from __future__ import annotations

from typing import Any

from .. import AqError
from ..ir.float_graph import FloatGraph


def structure_graph(model: str, input_size: int | None = None) -> FloatGraph:
    """The float graph of an untrained built-in architecture: the structure a training
    checkpoint's weights are put back into."""
    return float_graph_from_state(model, None, input_size)


def float_graph_from_state(model: str, sd: Any, input_size: int | None = None) -> FloatGraph:
    """`sd` None keeps the architecture's initial weights."""
    if sd is not None and not isinstance(sd, dict):
        raise AqError(f"the checkpoint is not a state dict (got {type(sd).__name__})")
    if model in ("efficientnet-lite0", "efficientnet-b0"):
        from .efficientnet import (
            IMAGENET_MEAN,
            IMAGENET_STD,
            LITE_MEAN,
            LITE_STD,
            EfficientNet,
            imagenet_labels,
        )
        lite = model == "efficientnet-lite0"
        m = EfficientNet(lite=lite)
        _load(m, sd, model)
        hw = (input_size or 224,) * 2
        g = m.eval().to_float_graph(model, hw, LITE_MEAN if lite else IMAGENET_MEAN,
                                    LITE_STD if lite else IMAGENET_STD, imagenet_labels())
        g.preprocess = {"resize": 256 * hw[0] // 224, "crop": list(hw)}
        return g
    if model == "digits-cnn":
        from .digits import DigitsCNN
        m = DigitsCNN()
        _load(m, sd, model)
        return m.eval().to_float_graph()
    raise AqError(f"unknown model {model!r}")


def _load(m, sd, model: str) -> None:
    if sd is None:
        return
    try:
        m.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "keys or shapes differ"
        raise AqError(f"the checkpoint does not match {model}: {first}") from None
