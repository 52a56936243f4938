"""What aq-export does, as a library call: resolve the source model, gather calibration images,
export, write atomically, print a summary."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .. import AqError
from .api import export_to_file
from .calibrate import DEFAULT_GRANULARITY
from .float_graph import FloatGraph


def load_source(source: str, model: str | None, input_size: int | None,
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


def calibration_images(fg: FloatGraph, folder: str | None) -> np.ndarray:
    """Images from `folder` (resized/cropped as the model wants) or the bundled defaults."""
    c, h, w = fg.input_shape
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


def _training_checkpoint(source: str) -> dict | None:
    """The loaded aq-train checkpoint (its quant params are trained: no calibration, no
    --bits), or None when `source` is something else."""
    p = Path(source)
    if p.suffix.lower() != ".pt" or not p.is_file():
        return None
    import torch

    from ..training.checkpoint import is_training_checkpoint, load_checkpoint
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # not loadable: load_source reports it
        return None
    return load_checkpoint(p, raw) if is_training_checkpoint(raw) else None


def export_cli(source: str, output: str, model: str | None = None, bits: str = "8",
               budget: float = 1.0, calib: str | None = None, method: str = "minmax",
               granularity: str = DEFAULT_GRANULARITY, input_size: int | None = None,
               mean: list[float] | None = None, std: list[float] | None = None,
               bias_correction: bool = True) -> None:
    out = Path(output)
    if not out.parent.exists():
        raise AqError(f"{out.parent}: output folder does not exist")
    if bits != "auto" and not bits.isdigit() and not Path(bits).is_file():
        raise AqError(f"--bits {bits}: not an integer, 'auto', or an existing JSON file")
    from ..format.inspect import summarize
    ck = _training_checkpoint(source)
    if ck is not None:
        from ..format import write_aqz
        from ..training.api import checkpoint_graph
        g = checkpoint_graph(source, ck)
        write_aqz(g, out)
        print(summarize(g, out), file=sys.stderr)
        return
    fg = load_source(source, model, input_size, mean, std)
    images = calibration_images(fg, calib)
    g = export_to_file(fg, images, out, bits=int(bits) if bits.isdigit() else bits,
                       budget=budget, method=method, granularity=granularity,
                       bias_correction=bias_correction)
    print(summarize(g, out), file=sys.stderr)
