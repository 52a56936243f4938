"""Export options, gathered in one object: what `aq-export`, the demo, the benchmarks and the
tests pass from the command line down to `export_graph` (bits plan, calibration, bias
correction, weight rounding and clipping, storage), and the recipe that decides the parts a
caller leaves unset (the low-bit recipe below budget 1 with `bits='auto'`, else the plain
export). Validated once, when built. No torch here (the CLI takes its choices and defaults from
this module while parsing arguments)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .. import AqError
from ..ir.graph import WEIGHT_CODINGS

GRANULARITIES = ("mixed", "tensor", "channel")
DEFAULT_GRANULARITY = "mixed"
CALIB_METHODS = ("minmax", "percentile")
ROUNDINGS = ("nearest", "learned")
ROUNDING_TARGETS = ("model", "block", "blend")  # what each block's learned rounding reproduces
CLIPPINGS = ("max", "mse")
ALLOCATIONS = ("layer", "channel")
ACT_BITS = ("plan", "auto")
TARGETS = ("any", "avx2")  # avx2: no 8-bit weight codes (AVX2 takes |w| > 64 as int16, slower)


# The parts of a low-bit export the recipe decides when the user does not. Below budget 1 with
# `bits='auto'`, the recipe the low-bit table measured best (docs/LOWBIT.md): per-channel
# widths, MSE clipping, learned rounding and entropy-coded weights, each block's rounding
# fitted to a blend of the float model's output and its own above 0.5x (0.3 to 1.1 dB better
# there) and to its own output at 0.5x and below (as many dB, every confident crop kept).
# Everywhere else the plain export: one width per layer, max|w| ranges, nearest rounding,
# bit-packed codes.
PLAIN_RECIPE = dict(allocation="layer", clipping="max", rounding="nearest",
                    rounding_target="model", weight_coding="packed")
LOW_BUDGET_RECIPE = dict(allocation="channel", clipping="mse", rounding="learned",
                         rounding_target="blend", weight_coding="entropy")


def recipe_for(bits: Any, budget: float) -> dict[str, str]:
    """The values `ExportOptions` gives the recipe's parts left None."""
    if bits != "auto" or budget >= 1:
        return PLAIN_RECIPE
    return {**LOW_BUDGET_RECIPE, "rounding_target": "block" if budget <= 0.5 else "blend"}


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise AqError(f"unknown {what} {value!r} ({', '.join(choices)})")


def check_granularity(granularity: str) -> None:
    check_choice("range granularity", granularity, GRANULARITIES)


@dataclass(frozen=True)
class ExportOptions:
    """How a float model becomes an integer graph. `allocation`, `clipping`, `rounding`,
    `rounding_target` and `weight_coding` left None take `recipe_for(bits, budget)`'s values.

    bits: an int (uniform), 'auto' (sensitivity-driven under `budget`), a bits-JSON path or a
    dict in that format; budget: weight bytes as a ratio of uniform 8 bits and allocation:
    one width per 'layer' or per 'channel' (auto only);
    method/granularity: activation calibration; bias_correction: take each conv's mean
    weight-rounding error out of its bias; clipping: per-channel weight range, 'max' (max|w|)
    or 'mse' (the range minimising each channel's weight error at its bits); rounding:
    'nearest', or 'learned' (block-wise reconstruction, export/learned_rounding.py:
    `rounding_iters` steps per block on `rounding_images` images, the calibration images and
    augmented views of them, each block reproducing `rounding_target`: 'model', the float
    model's output at the block's end (it also makes up for the error reaching the block), or
    'block', the float block's own output on the input it gets, its own weights' error only,
    or 'blend': `rounding_blend` x the first + (1 - `rounding_blend`) x the second);
    target: 'any', or 'avx2', which keeps weight codes within the AVX2 kernel's
    one-instruction range (|w| <= 64): layers planned at 8 bits get 7, and
    `--bits auto` never chooses 8 (7, or 9 and up where the budget allows); synthetic: that
    many images synthesized from the float model's BatchNorm statistics join the calibration
    images (export/synthetic.py; with none of the user's own, a data-free export); progress:
    tqdm bars; act_bits: 'plan' (the widths `bits` gives: 8 unless a bits JSON says
    otherwise) or 'auto' (widths 2..8 per tensor lowering the MicroNet score while the logit
    noise they add stays within `act_noise` times the weight plan's own, export/auto_act_bits.py);
    weight_groups: G > 0 gives each run of G weights of a 2..5-bit channel its own multiplier
    1..8 under the channel's scale (quant/weights.py; `auto` prices the 3 bits per group);
    weight_coding: 'packed' (codes bit-packed at their widths) or 'entropy' (rANS-coded in the
    file where smaller, quant/entropy.py; `auto` then prices each channel's width by its
    codes' coded size, so the budget buys finer codes; the runtime decodes them at load)."""
    bits: int | str | dict = 8
    budget: float = 1.0
    allocation: str | None = None
    method: str = "minmax"
    granularity: str = DEFAULT_GRANULARITY
    bias_correction: bool = True
    clipping: str | None = None
    rounding: str | None = None
    rounding_iters: int = 200
    rounding_images: int = 1024
    rounding_target: str | None = None
    rounding_blend: float = 0.5
    target: str = "any"
    synthetic: int = 0
    act_bits: str = "plan"
    act_noise: float = 0.1
    weight_groups: int = 0
    weight_coding: str | None = None
    progress: bool = True
    chosen: tuple[str, ...] = field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # the recipe's parts left None take the recipe's values; `chosen` keeps which the
        # caller set, so that `with_` (another budget, say) decides the others again
        given = tuple(k for k in PLAIN_RECIPE if getattr(self, k) is not None)
        object.__setattr__(self, "chosen", given)
        for k, v in recipe_for(self.bits, self.budget).items():
            if getattr(self, k) is None:
                object.__setattr__(self, k, v)
        check_granularity(self.granularity)
        check_choice("calibration method", self.method, CALIB_METHODS)
        check_choice("rounding", self.rounding, ROUNDINGS)
        check_choice("rounding target", self.rounding_target, ROUNDING_TARGETS)
        check_choice("bits allocation", self.allocation, ALLOCATIONS)
        check_choice("weight clipping", self.clipping, CLIPPINGS)
        check_choice("target", self.target, TARGETS)
        check_choice("weight coding", self.weight_coding, WEIGHT_CODINGS)
        check_choice("activation bits", self.act_bits, ACT_BITS)
        if not 0 < self.rounding_blend < 1:
            raise AqError(f"--rounding-blend {self.rounding_blend}: must lie in (0, 1)")
        if not 0 < self.act_noise <= 10:
            raise AqError(f"--act-noise {self.act_noise}: must lie in (0, 10]")
        if not 0 < self.budget <= 4:
            raise AqError(f"--budget {self.budget}: must lie in (0, 4]")
        if self.rounding_iters < 1:
            raise AqError("rounding iterations must be at least 1")
        if self.weight_groups and not 2 <= self.weight_groups <= 4096:
            raise AqError(f"--weight-groups {self.weight_groups}: must be 0 (off) or 2..4096")
        if self.synthetic < 0:
            raise AqError("--synthetic: the number of images must not be negative")

    def with_(self, **changes: Any) -> ExportOptions:
        unset = {k: None for k in PLAIN_RECIPE if k not in self.chosen}
        return replace(self, **{**unset, **changes})

    def as_meta(self, n_images: int) -> dict[str, Any]:
        """How the model was calibrated, for graph.json's `calibration` (aq-inspect shows it)."""
        d = {k: v for k, v in asdict(self).items()
             if k not in ("bits", "budget", "allocation", "progress", "chosen")}
        if self.rounding == "nearest":
            d.pop("rounding_iters")
            d.pop("rounding_images")
            d.pop("rounding_target")
        if self.rounding != "learned" or self.rounding_target != "blend":
            d.pop("rounding_blend")
        if not self.synthetic:
            d.pop("synthetic")
        if not self.weight_groups:
            d.pop("weight_groups")
        if self.weight_coding == "packed":
            d.pop("weight_coding")
        if self.act_bits == "plan":
            d.pop("act_bits")
            d.pop("act_noise")
        d["images"] = int(n_images)
        return d
