"""The export pipeline: a float graph and calibration images become an integer graph (and a
`.aqz` with `export_to_file`) through a straight line of named stages over one `ExportState`,
each stage a function of the state before it and the `ExportOptions`:

    synthesize -> calibrate -> plan bits -> integerize -> clip weights -> plan activations
    -> correct biases -> learn rounding -> mark storage

A stage that an option turns off returns the state unchanged. aq-export, the demo, training's
initial plan, the benchmarks and the tests all export through `export_graph`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import AqError
from ..ir.float_graph import FloatGraph
from ..ir.graph import Graph
from ..quant.packing import node_weight_bytes
from .auto_bits import auto_bits
from .bias_correction import corrected_biases
from .bits_spec import BitsPlan, load_bits_json, resolve_bits
from .calibrate import Ranges, at_granularity, calibrate
from .clipping import mse_ranges
from .integerize import integerize
from .options import DEFAULT_GRANULARITY, ExportOptions, check_granularity


def calibrate_ranges(fg: FloatGraph, images: np.ndarray, method: str = "minmax",
                     granularity: str = DEFAULT_GRANULARITY) -> Ranges:
    """Activation ranges; mixed by default: per channel on tensors no activation bounds, per
    tensor elsewhere (per-channel ranges of ReLU6 outputs from a few photos clip unseen photos
    badly: see docs/SEMANTICS.md)."""
    check_granularity(granularity)  # before the calibration pass
    return at_granularity(fg, calibrate(fg, images, method=method), granularity)


def plan_bits(fg: FloatGraph, images: np.ndarray, ranges: Ranges,
              options: ExportOptions) -> BitsPlan:
    """Resolve `options.bits` ('auto', an int, a JSON path or a dict) into a plan;
    `options.target` 'avx2' turns 8-bit weight widths into 7 (auto: never chooses 8)."""
    o = options
    if o.bits == "auto":
        return auto_bits(fg, images, ranges, o)
    bits = o.bits
    if isinstance(bits, str):
        bits = int(bits) if bits.isdigit() else load_bits_json(bits)
    plan = resolve_bits(fg, bits)
    if o.target == "avx2":
        plan.weight = {k: np.where(v == 8, 7, v) for k, v in plan.weight.items()}
    return plan


@dataclass
class ExportState:
    """What the stages hand on: the float graph as given (learned rounding's targets), the
    calibration images, and what each stage adds."""
    float_graph: FloatGraph
    images: np.ndarray
    ranges: Ranges | None = None
    plan: BitsPlan | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # graph.json's meta: how it was made
    weight_ranges: dict[str, np.ndarray] = field(default_factory=dict)  # per-channel clipping
    corrected: FloatGraph | None = None  # the float graph with bias-corrected biases
    graph: Graph | None = None

    @property
    def current_float(self) -> FloatGraph:
        """The float graph integerization starts from: bias-corrected once corrected."""
        return self.corrected if self.corrected is not None else self.float_graph

    def integerized(self, o: ExportOptions, fg: FloatGraph | None = None,
                    codes: dict[str, np.ndarray] | None = None) -> Graph:
        """The integer graph of `fg` (default: the bias-corrected float graph, else the one
        given) under this state's ranges, plan and weight ranges; `codes`: weight codes
        chosen already (learned rounding)."""
        p = self.plan
        return integerize(self.current_float if fg is None else fg, self.ranges, p.weight,
                          p.act, p.ternary, meta=self.meta, wrange=self.weight_ranges,
                          codes=codes, group=o.weight_groups)


def synthesize(s: ExportState, o: ExportOptions) -> ExportState:
    """`o.synthetic` images made from the float model's BatchNorm statistics join the
    calibration images (which may then be empty: data-free)."""
    images = s.images
    if o.synthetic:
        from .synthetic import synthesize as make
        made = make(s.float_graph, o.synthetic, progress=o.progress)
        images = np.concatenate([images, made]) if len(images) else made
    if len(images) == 0:
        raise AqError("no calibration images (with --calib none, pass --synthetic N)")
    return replace(s, images=images)


def calibrate_activations(s: ExportState, o: ExportOptions) -> ExportState:
    if s.ranges is not None:
        return s
    return replace(s, ranges=calibrate_ranges(s.float_graph, s.images, o.method, o.granularity))


def plan_weights(s: ExportState, o: ExportOptions) -> ExportState:
    plan = s.plan if s.plan is not None else plan_bits(s.float_graph, s.images, s.ranges, o)
    meta = {"calibration": o.as_meta(len(s.images))}
    if plan.report:
        meta["auto_bits"] = {k: v for k, v in plan.report.items()
                             if k not in ("bits", "full_range")}
    return replace(s, plan=plan, meta=meta)


def first_integerization(s: ExportState, o: ExportOptions) -> ExportState:
    return replace(s, graph=s.integerized(o))


def clip_weights(s: ExportState, o: ExportOptions) -> ExportState:
    """Each channel's weight range at the least rounding error for its width ('mse'); the
    channels `auto` planned at their whole range keep it."""
    if o.clipping != "mse":
        return s
    ranges = mse_ranges(s.float_graph, s.graph, o.weight_groups)
    for name, full in s.plan.report.get("full_range", {}).items():
        ranges[name] = np.where(full, 1.0, ranges[name])
    s = replace(s, weight_ranges=ranges)
    return replace(s, graph=s.integerized(o))


def plan_activations(s: ExportState, o: ExportOptions) -> ExportState:
    """Activation widths 2..8 per tensor within the noise allowance ('auto')."""
    if o.act_bits != "auto":
        return s
    from .auto_act_bits import auto_act_bits

    def with_act(abits: dict[str, np.ndarray]) -> Graph:
        return replace(s, plan=replace(s.plan, act=abits)).integerized(o)

    abits, report = auto_act_bits(s.float_graph, s.graph, s.images, s.ranges, with_act,
                                  o.act_noise, progress=o.progress)
    s.meta["auto_act_bits"] = {k: v for k, v in report.items() if k != "bits"}
    s = replace(s, plan=replace(s.plan, act=abits))
    return replace(s, graph=s.integerized(o))


def correct_biases(s: ExportState, o: ExportOptions) -> ExportState:
    """Each conv's mean weight-rounding error on the calibration images out of its bias."""
    if not o.bias_correction:
        return s
    s = replace(s, corrected=s.float_graph.with_biases(
        corrected_biases(s.float_graph, s.graph, s.images)))
    return replace(s, graph=s.integerized(o))


def learn_rounding(s: ExportState, o: ExportOptions) -> ExportState:
    """Weight codes from block reconstruction on the calibration images and augmented views
    ('learned'); within a coded budget the layers whose learned codes cost most go back to
    nearest; the mean error the learned codes leave is corrected again."""
    if o.rounding != "learned":
        return s
    from ..data.augment import augmented
    from .learned_rounding import learn_rounding as learn
    fg = s.float_graph
    codes, info = learn(fg, s.current_float, s.graph, augmented(s.images, o.rounding_images),
                        o.rounding_iters, s.weight_ranges, o.progress,
                        target=o.rounding_target, blend=o.rounding_blend)
    if o.weight_coding != "packed" and "budget_bytes" in s.plan.report:
        codes, info["nearest_layers"] = within_budget(
            s.graph, s.integerized(o, fg, codes), codes, s.plan.report["budget_bytes"],
            o.weight_coding)
    s.meta["calibration"]["learned_rounding"] = info
    g = s.integerized(o, fg, codes)
    if o.bias_correction:
        g = s.integerized(o, fg.with_biases(corrected_biases(fg, g, s.images)), codes)
    return replace(s, graph=g)


def mark_storage(s: ExportState, o: ExportOptions) -> ExportState:
    """How the writer stores the convs' codes (packed or entropy-coded)."""
    s.graph.store_weights_as(o.weight_coding)
    return s


STAGES: tuple[Callable[[ExportState, ExportOptions], ExportState], ...] = (
    synthesize, calibrate_activations, plan_weights, first_integerization, clip_weights,
    plan_activations, correct_biases, learn_rounding, mark_storage)


def export_graph(fg: FloatGraph, images: np.ndarray, options: ExportOptions | int | str = 8,
                 ranges: Ranges | None = None, plan: BitsPlan | None = None) -> Graph:
    """The integer graph of `fg`, exported as `options` say (a bare int or str is the bits,
    every other option default). `ranges`: activation ranges calibrated already; `plan`: what
    `plan_bits` gave for the same graph, images, ranges and planning options, to export
    several ways (roundings, activation widths) without planning again."""
    o = options if isinstance(options, ExportOptions) else ExportOptions(bits=options)
    state = ExportState(fg, images, ranges=ranges, plan=plan)
    for stage in STAGES:
        state = stage(state, o)
    return state.graph


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
    """`export_graph`, then the `.aqz` written atomically to `out`."""
    from ..format import write_aqz

    g = export_graph(fg, images, options)
    write_aqz(g, out)
    return g
