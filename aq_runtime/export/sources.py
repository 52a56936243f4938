"""Where an export starts: a float graph from a built-in model name, a float ONNX file or a
state dict, and the calibration images (a folder, or the bundled photos / digits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import AqError
from ..ir.float_graph import FloatGraph


def load_source(source: str, model: str | None = None, input_size: int | None = None,
                mean: list[float] | None = None, std: list[float] | None = None) -> FloatGraph:
    """A float graph from a built-in name, a float ONNX file (normalization `(p - mean) / std`
    in pixel units, ImageNet's by default) or a state dict (`torch.load(weights_only=True)`)."""
    from ..models.registry import MODEL_NAMES, build_float_graph

    if source in MODEL_NAMES:
        return build_float_graph(source, input_size)
    p = Path(source)
    if p.suffix.lower() == ".onnx":
        if not p.is_file():
            raise AqError(f"{source}: no such file")
        from ..interop.onnx_in import float_graph_from_onnx
        from ..models.efficientnet import IMAGENET_MEAN, IMAGENET_STD, imagenet_labels
        fg = float_graph_from_onnx(p, mean or IMAGENET_MEAN, std or IMAGENET_STD,
                                   input_hw=(input_size, input_size) if input_size else None)
        if len(fg.labels) == 1000:
            fg.labels = imagenet_labels()
        return fg
    if not p.exists():
        raise AqError(f"{source}: no such file, and not a built-in model "
                      f"({', '.join(MODEL_NAMES)})")
    if model is None:
        raise AqError(f"{source}: a state dict needs --model ({', '.join(MODEL_NAMES)})")
    import torch

    from ..models.state import float_graph_from_state
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        raise AqError(f"{source}: not a loadable state dict ({e.__class__.__name__})") from None
    return float_graph_from_state(model, sd, input_size)


def calibration_images(fg: FloatGraph, folder: str | None = None) -> np.ndarray:
    """Images from `folder` (resized/cropped as the model wants), none at all for 'none'
    (data-free: synthetic images only), or the bundled defaults."""
    c, h, w = fg.input_shape
    if folder == "none":
        return np.zeros((0, h, w, c), np.uint8)
    if folder:
        from ..data.images import list_images, load_image, resize_center_crop
        paths = list_images(folder)
        if not paths:
            raise AqError(f"{folder}: no images found")
        resize = int(fg.preprocess.get("resize", max(h, w)))
        return np.stack([resize_center_crop(load_image(p, c), resize, (h, w)) for p in paths])
    if fg.name == "digits-cnn":
        from ..models.digits import digits_data
        return digits_data()[0][:512]
    from ..data.photos import CALIBRATION_PHOTOS, crops_of
    if (h, w) != (h, h):
        raise AqError("bundled calibration crops are square; pass --calib")
    return crops_of(CALIBRATION_PHOTOS, h)[0]
