"""The export pipeline as one call: float graph + calibration images + bits -> IR graph
(and the `.aqz` when a path is given). Used by aq-export, the demo and the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import AqError
from ..quant.packing import node_weight_bytes
from .auto_bits import auto_bits
from .bias_correction import corrected_biases
from .bits_spec import BitsPlan, load_bits_json, resolve_bits
from .calibrate import Ranges, at_granularity, calibrate
from .clipping import mse_ranges
from ..ir.float_graph import FloatGraph
from .integerize import integerize
from ..ir.graph import Graph
from .options import DEFAULT_GRANULARITY, ExportOptions, check_granularity


def calibrate_ranges(fg: FloatGraph, images: np.ndarray, method: str = "minmax",
                     granularity: str = DEFAULT_GRANULARITY) -> Ranges:
    """Activation ranges; mixed by default: per channel on tensors no activation bounds, per
    tensor elsewhere (per-channel ranges of ReLU6 outputs from a few photos clip unseen photos
    badly: see docs/SEMANTICS.md)."""
    check_granularity(granularity)  # before the calibration pass
    return at_granularity(fg, calibrate(fg, images, method=method), granularity)


def plan_bits(fg: FloatGraph, images: np.ndarray, ranges: Ranges,
              options: ExportOptions) -> tuple[BitsPlan, dict[str, Any]]:
    """Resolve `options.bits` ('auto', an int, a JSON path or a dict) into a plan and a report;
    `options.target` 'avx2' turns 8-bit weight widths into 7 (auto: never chooses 8)."""
    o = options
    if o.bits == "auto":
        return auto_bits(fg, images, ranges, o)
    bits = o.bits
    if isinstance(bits, str):
        bits = int(bits) if bits.isdigit() else load_bits_json(bits)
    wbits, abits, tern = resolve_bits(fg, bits)
    if o.target == "avx2":
        wbits = {k: np.where(v == 8, 7, v) for k, v in wbits.items()}
    return (wbits, abits, tern), {}


def export_graph(fg: FloatGraph, images: np.ndarray, options: ExportOptions | int | str = 8,
                 ranges: Ranges | None = None,
                 plan: tuple[BitsPlan, dict[str, Any]] | None = None) -> Graph:
    """Calibrate (unless `ranges` is given), plan bits, choose weight ranges (`clipping`) and
    integerize. With `bias_correction` integerize again with each conv's mean weight-rounding
    error on the calibration images taken out of its bias (export/bias_correction.py); with
    `rounding='learned'` the codes then come from block-wise reconstruction on the calibration
    images and augmented views of them (export/learned_rounding.py), and the mean error they
    leave is corrected again. With `synthetic`, that many images synthesized from the float
    model's BatchNorm statistics join `images` first (which may then be empty: data-free).
    With `weight_coding='entropy'` the convs are marked for the writer to entropy-code.
    A bare int or str is the bits, every other option default. `plan`: what `plan_bits` gave
    for the same graph, images, ranges and planning options (bits, budget, clipping,
    allocation, bias correction, target, weight groups and coding), to export several ways
    (nearest and learned rounding, other activation widths) without planning again; None
    plans here."""
    o = options if isinstance(options, ExportOptions) else ExportOptions(bits=options)
    if o.synthetic:
        from .synthetic import synthesize
        made = synthesize(fg, o.synthetic, progress=o.progress)
        images = np.concatenate([images, made]) if len(images) else made
    if len(images) == 0:
        raise AqError("no calibration images (with --calib none, pass --synthetic N)")
    if ranges is None:
        ranges = calibrate_ranges(fg, images, o.method, o.granularity)
    plan, report = plan if plan is not None else plan_bits(fg, images, ranges, o)
    meta = {"calibration": o.as_meta(len(images))}
    if report:
        meta["auto_bits"] = {k: v for k, v in report.items() if k not in ("bits", "full_range")}
    wrange: dict[str, np.ndarray] = {}

    def build(f: FloatGraph, codes: dict[str, np.ndarray] | None = None,
              abits: dict[str, np.ndarray] | None = None) -> Graph:
        return integerize(f, ranges, plan[0], plan[1] if abits is None else abits, plan[2],
                          meta=meta, wrange=wrange, codes=codes, group=o.weight_groups)

    float_fg = fg
    g = build(fg)
    if o.clipping == "mse":
        wrange = mse_ranges(fg, g, o.weight_groups)
        for name, full in report.get("full_range", {}).items():  # auto kept their whole range
            wrange[name] = np.where(full, 1.0, wrange[name])
        g = build(fg)
    if o.act_bits == "auto":
        from .auto_act_bits import auto_act_bits
        abits, act_report = auto_act_bits(fg, g, images, ranges,
                                          lambda a: build(fg, abits=a), o.act_noise,
                                          progress=o.progress)
        meta["auto_act_bits"] = {k: v for k, v in act_report.items() if k != "bits"}
        plan = (plan[0], abits, plan[2])
        g = build(fg)
    if o.bias_correction:
        fg = fg.with_biases(corrected_biases(fg, g, images))
        g = build(fg)
    if o.rounding == "learned":
        from ..data.augment import augmented
        from .learned_rounding import learn_rounding
        codes, info = learn_rounding(float_fg, fg, g, augmented(images, o.rounding_images),
                                     o.rounding_iters, wrange, o.progress,
                                     target=o.rounding_target, blend=o.rounding_blend)
        if o.weight_coding != "packed" and "budget_bytes" in report:
            codes, info["nearest_layers"] = within_budget(g, build(float_fg, codes), codes,
                                                          report["budget_bytes"],
                                                          o.weight_coding)
        meta["calibration"]["learned_rounding"] = info
        g = build(float_fg, codes)
        if o.bias_correction:  # the mean error the learned codes leave, out of the biases
            g = build(float_fg.with_biases(corrected_biases(float_fg, g, images)), codes)
    g.store_weights_as(o.weight_coding)
    return g


def within_budget(nearest: Graph, learned: Graph, codes: dict[str, np.ndarray],
                  budget: int, coding: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Learned codes whose coded bytes fit `budget`: the plan fits it with nearest rounding,
    and learned codes may code a few bytes longer (at 0.5x +134 bytes in 2.3 MB); while the
    total is over, the layer whose learned codes cost most over its nearest ones goes back to
    nearest rounding. Returns (codes, the layers sent back)."""
    def nbytes(g: Graph) -> dict[str, int]:
        return {n.name: node_weight_bytes(n.arrays, {**n.attrs, "weight_coding": coding})
                for n in g.weight_nodes()}

    near, learn = nbytes(nearest), nbytes(learned)
    weights = {n.name: n.arrays["weight"] for n in nearest.weight_nodes()}
    codes, back = dict(codes), []
    for name in sorted(codes, key=lambda k: near[k] - learn[k]):
        if sum(learn.values()) <= budget:
            break
        codes[name] = weights[name].reshape(codes[name].shape).astype(np.int64)
        learn[name] = near[name]
        back.append(name)
    return codes, back


def export_to_file(fg: FloatGraph, images: np.ndarray, out: str | Path,
                   options: ExportOptions | int | str = 8) -> Graph:
    from ..format import write_aqz

    g = export_graph(fg, images, options)
    write_aqz(g, out)
    return g
