"""The export pipeline as one call: float graph + calibration images + bits -> IR graph
(and the `.aqz` when a path is given). Used by aq-export, the demo and the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import AqError
from .auto_bits import auto_bits
from .bias_correction import corrected_biases
from .bits_spec import BitsPlan, load_bits_json, resolve_bits
from .calibrate import (
    DEFAULT_GRANULARITY,
    Ranges,
    at_granularity,
    calibrate,
    check_granularity,
)
from .float_graph import FloatGraph
from .integerize import integerize
from .ir import Graph


def calibrate_ranges(fg: FloatGraph, images: np.ndarray, method: str = "minmax",
                     granularity: str = DEFAULT_GRANULARITY) -> Ranges:
    """Activation ranges; mixed by default: per channel on tensors no activation bounds, per
    tensor elsewhere (per-channel ranges of ReLU6 outputs from a few photos clip unseen photos
    badly: see docs/SEMANTICS.md)."""
    check_granularity(granularity)  # before the calibration pass
    return at_granularity(fg, calibrate(fg, images, method=method), granularity)


def plan_bits(fg: FloatGraph, bits: str | int | dict, images: np.ndarray, ranges: Ranges,
              budget: float = 1.0, progress: bool = True, bias_correction: bool = True
              ) -> tuple[BitsPlan, dict[str, Any]]:
    """Resolve `bits` ('auto', an int, a JSON path or a dict) into a plan and a report."""
    if bits == "auto":
        return auto_bits(fg, images, ranges, budget, progress=progress,
                         bias_correction=bias_correction)
    if isinstance(bits, str):
        if bits.isdigit():
            bits = int(bits)
        else:
            bits = load_bits_json(bits)
    return resolve_bits(fg, bits), {}


def export_graph(fg: FloatGraph, images: np.ndarray, bits: str | int | dict = 8,
                 budget: float = 1.0, method: str = "minmax", granularity: str = DEFAULT_GRANULARITY,
                 ranges: Ranges | None = None, progress: bool = True,
                 bias_correction: bool = True) -> Graph:
    """Calibrate (unless `ranges` is given), plan bits and integerize; with `bias_correction`
    integerize twice, the second time with each conv's mean weight-quantization error on the
    calibration images taken out of its bias (export/bias_correction.py)."""
    if len(images) == 0:
        raise AqError("no calibration images")
    if ranges is None:
        ranges = calibrate_ranges(fg, images, method, granularity)
    plan, report = plan_bits(fg, bits, images, ranges, budget, progress, bias_correction)
    meta = {"calibration": {"method": method, "granularity": granularity,
                            "images": int(len(images)), "bias_correction": bias_correction}}
    if report:
        meta["auto_bits"] = {k: v for k, v in report.items() if k != "bits"}
    g = integerize(fg, ranges, plan[0], plan[1], plan[2], meta=meta)
    if bias_correction:
        fg = fg.with_biases(corrected_biases(fg, g, images))
        g = integerize(fg, ranges, plan[0], plan[1], plan[2], meta=meta)
    return g


def export_to_file(fg: FloatGraph, images: np.ndarray, out: str | Path, **kw: Any) -> Graph:
    from ..format import write_aqz

    g = export_graph(fg, images, **kw)
    write_aqz(g, out)
    return g
