"""Building the training model: the float teacher (built-in weights or a state dict), initial
activation ranges (`--init-thresholds` JSON or calibration on training images), initial bits
(an int, a bits JSON or the exporter's `auto` plan), and restoring both from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .. import AqError
from ..export.calibrate import Ranges
from ..export.float_graph import FloatGraph
from .config import TrainConfig
from .data import TrainData
from .qgraph import QuantGraph, QuantSetup


def teacher_graph(cfg: TrainConfig) -> FloatGraph:
    """The float model: the built-in one, or `--float-ckpt` (a state dict, weights_only)."""
    if cfg.float_ckpt:
        from ..export.sources import load_source
        return load_source(cfg.float_ckpt, cfg.model, cfg.input_size)
    from ..models.registry import build_float_graph
    return build_float_graph(cfg.model, cfg.input_size)


def float_state(fg: FloatGraph) -> dict[str, torch.Tensor]:
    out = {}
    for n in fg.conv_nodes():
        out[f"{n.name}.weight"] = torch.from_numpy(np.asarray(n.weight, np.float64).copy())
        out[f"{n.name}.bias"] = torch.from_numpy(np.asarray(n.bias, np.float64).copy())
    return out


def graph_with_state(model: str, state: dict[str, torch.Tensor], input_size: int | None
                     ) -> FloatGraph:
    """The architecture `model` with the float weights of a checkpoint (strict match)."""
    from ..models.state import structure_graph
    fg = structure_graph(model, input_size)
    want = {f"{n.name}.{k}": (n.weight if k == "weight" else n.bias).shape
            for n in fg.conv_nodes() for k in ("weight", "bias")}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if set(want) != set(got) or any(tuple(want[k]) != got[k] for k in want):
        raise AqError(f"the checkpoint's weights do not match {model}")
    for n in fg.conv_nodes():
        n.weight = state[f"{n.name}.weight"].double().numpy().copy()
        n.bias = state[f"{n.name}.bias"].double().numpy().copy()
    return fg


def calibration_set(cfg: TrainConfig, fg: FloatGraph, data: TrainData) -> np.ndarray:
    """For the built-in data sets, the very images `aq-export` calibrates on by default (so a
    run starts from the exporter's post-training model); else the first training samples."""
    if cfg.data in ("digits", "photos"):
        from ..export.sources import calibration_images
        return calibration_images(fg, None)
    images, _ = data.train_batch(np.arange(min(cfg.calib_images, data.size)),
                                 np.random.default_rng(cfg.seed))
    return images


def initial_ranges(cfg: TrainConfig, fg: FloatGraph, images: np.ndarray) -> Ranges:
    from ..export.api import calibrate_ranges
    from ..export.integerize import tensor_shapes
    ranges = calibrate_ranges(fg, images)
    if cfg.init_thresholds:
        p = Path(cfg.init_thresholds)
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise AqError(f"{p}: not a readable thresholds JSON ({e.__class__.__name__})") from None
        shapes = tensor_shapes(fg)
        for t, v in doc.items() if isinstance(doc, dict) else []:
            if t not in shapes:
                raise AqError(f"{p}: unknown tensor {t!r}")
            c = shapes[t][0]
            try:
                lo, hi = (np.broadcast_to(np.asarray(x, np.float64), (c,)).copy() for x in v)
            except (TypeError, ValueError):
                raise AqError(f"{p}: {t!r} must be [lo, hi] (numbers or per-channel lists)") from None
            ranges[t] = (lo, hi)
    return ranges


def new_model(cfg: TrainConfig, fg: FloatGraph, data: TrainData) -> QuantGraph:
    images = calibration_set(cfg, fg, data)
    ranges = initial_ranges(cfg, fg, images)
    wbits = abits = None
    if cfg.init_bits:
        from ..export.api import plan_bits
        from ..export.options import ExportOptions
        # training starts from the float biases (it learns its own), so the plan's sensitivity
        # is measured without bias correction, as the starting model has it
        plan, _ = plan_bits(fg, images, ranges,
                            ExportOptions(bits=cfg.init_bits, bias_correction=False))
        wbits, abits = plan[0], plan[1]
    return QuantGraph(fg, ranges, cfg.quant_setup(), wbits, abits)


def restore_model(ck: dict, input_size: int | None = None) -> tuple[QuantGraph, FloatGraph]:
    """(quantized model, float teacher graph) of a loaded checkpoint."""
    s = ck["settings"]
    model = s["config"]["model"]
    fg = graph_with_state(model, ck["float"], s["config"].get("input_size", input_size))
    from ..export.integerize import tensor_shapes
    shapes = tensor_shapes(fg)
    dummy = {t: (np.zeros(c[0]), np.ones(c[0])) for t, c in shapes.items()}
    m = QuantGraph(fg, dummy, QuantSetup(**s["quant"]))
    try:
        m.load_state_dict(ck["model"], strict=True)
    except RuntimeError:
        raise AqError(f"the checkpoint's quantized model does not match {model}") from None
    return m, fg
