"""Building the training model: the float teacher (built-in weights or a state dict), initial
activation ranges (`--init-thresholds` JSON or calibration on training images), initial bits
(an int, a bits JSON or the exporter's `auto` plan) or a whole post-training `.aqz` as the
start (`--init-aqz`), and restoring both from a checkpoint."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .. import AqError
from ..export.calibrate import Ranges
from ..ir.float_graph import FloatGraph
from .config import TrainConfig
from .data import TrainData
from .qgraph import QuantGraph, QuantSetup, _key, renamed_parameters


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
    from ..export.pipeline import calibrate_ranges
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


def model_from_aqz(cfg: TrainConfig, fg: FloatGraph, path: str | Path) -> QuantGraph:
    """The trainable model that is exactly a post-training `.aqz` of `fg`'s architecture (its
    codes, weight scales, biases, activation ranges and bits), so training starts where the
    exporter's best model is: integerizing it untrained gives the file's integers back.
    Per conv, weights = codes x scale (scale: what the file's multiplier implies), alpha =
    qmax / max|codes| (so alpha * max|We| / qmax is that scale), biases with the zero-point
    terms taken back out; per tensor, the range [-z s, (2^bits - 1 - z) s]."""
    from ..export.dequant import dequantized_conv
    from ..export.integerize import LOGIT_RANGE_BITS
    from ..format import read_aqz
    from ..quant.bits import weight_code_max
    g = read_aqz(path)
    nodes = {n.name: n for n in g.weight_nodes()}
    convs = fg.conv_nodes()
    if g.meta.get("model") != fg.name or set(nodes) != {n.name for n in convs} or any(
            tuple(nodes[n.name].arrays["weight"].shape) != n.weight.shape for n in convs):
        raise AqError(f"{path}: not an export of {fg.name} (--model)")
    if any(n.attrs.get("mode") == "ternary" for n in nodes.values()):
        raise AqError(f"{path}: ternary layers cannot start AQ training (export without TTQ)")
    if any("weight_group" in n.attrs for n in nodes.values()):
        raise AqError(f"{path}: weight groups cannot start AQ training yet (its quantizers are "
                      "per channel: export without --weight-groups)")
    student = copy.copy(fg)
    student.nodes = []
    wbits, alpha = {}, {}
    for n in fg.nodes:
        if n.op == "conv":
            node = nodes[n.name]
            w, b = dequantized_conv(g, node)
            q = node.arrays["weight"].astype(np.int64).reshape(w.shape[0], -1)
            wbits[n.name] = node.arrays["wbits"].astype(np.int64)
            top = np.abs(q).max(axis=1)
            alpha[n.name] = np.where(top > 0, weight_code_max(wbits[n.name]) / np.maximum(top, 1),
                                     1.0)
            n = replace(n, weight=w, bias=b)
        student.nodes.append(n)
    ranges, abits = {}, {}
    for t, spec in g.tensors.items():
        if t in (g.input, g.output):
            continue
        levels = (np.int64(1) << spec.bits.astype(np.int64)) - 1
        z = spec.zero_point.astype(np.float64)
        ranges[t] = (-z * spec.scale, (levels - z) * spec.scale)
        abits[t] = spec.bits.astype(np.int64)
    top = float(g.tensors[g.output].scale.max()) * (1 << LOGIT_RANGE_BITS)
    c = g.tensors[g.output].shape[0]
    ranges[g.output] = (np.full(c, -top), np.full(c, top))
    model = QuantGraph(student, ranges, cfg.quant_setup(), wbits, abits)
    with torch.no_grad():
        for name, a in alpha.items():
            model.w_range[_key(name)].copy_(torch.from_numpy(a).float())
    return model


def new_model(cfg: TrainConfig, fg: FloatGraph, data: TrainData) -> QuantGraph:
    if cfg.init_aqz:
        return model_from_aqz(cfg, fg, cfg.init_aqz)
    images = calibration_set(cfg, fg, data)
    ranges = initial_ranges(cfg, fg, images)
    wbits = abits = None
    if cfg.init_bits:
        from ..export.pipeline import plan_bits
        from ..export.options import ExportOptions
        # training starts from the float biases (it learns its own), so the plan's sensitivity
        # is measured without bias correction, as the starting model has it
        plan = plan_bits(fg, images, ranges,
                         ExportOptions(bits=cfg.init_bits, bias_correction=False))
        wbits, abits = plan.weight, plan.act
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
        m.load_state_dict(renamed_parameters(ck["model"]), strict=True)
    except RuntimeError:
        raise AqError(f"the checkpoint's quantized model does not match {model}") from None
    return m, fg
