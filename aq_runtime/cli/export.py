"""aq-export: a built-in model, a float ONNX file, a state dict or an aq-train checkpoint ->
integerized .aqz (calibrated, or as trained); or a .aqz -> ONNX (--to)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import AqError
from ..export.options import (
    ACT_BITS,
    ALLOCATIONS,
    CALIB_METHODS,
    CLIPPINGS,
    GRANULARITIES,
    ROUNDING_TARGETS,
    ROUNDINGS,
    TARGETS,
    LOW_BUDGET_RECIPE,
    PLAIN_RECIPE,
    WEIGHT_CODINGS,
    ExportOptions,
    recipe_for,
)
from .common import require, run_cli

DEFAULT = ExportOptions()

# options that only mean something beside another choice: (flag, its argparse dest, the
# condition on the parsed arguments, the choice it needs); given without it, an error
DEPENDENT = (
    ("--budget", "budget", lambda a: a.bits == "auto", "--bits auto"),
    ("--allocation", "allocation", lambda a: a.bits == "auto", "--bits auto"),
    ("--rounding-iters", "rounding_iters", lambda a: a.rounding == "learned",
     "--rounding learned"),
    ("--rounding-images", "rounding_images", lambda a: a.rounding == "learned",
     "--rounding learned"),
    ("--rounding-target", "rounding_target", lambda a: a.rounding == "learned",
     "--rounding learned"),
    ("--rounding-blend", "rounding_blend",
     lambda a: a.rounding == "learned" and a.rounding_target == "blend",
     "--rounding learned --rounding-target blend"),
    ("--act-noise", "act_noise", lambda a: a.act_bits == "auto", "--act-bits auto"),
    ("--qdq-weights", "qdq_weights", lambda a: a.to == "onnx-qdq", "--to onnx-qdq"),
)


def recipe_help(text: str, part: str) -> str:
    """`text` with the recipe's default for `part` (export/options.py) appended."""
    return (f"{text} (default: {LOW_BUDGET_RECIPE[part]} with --bits auto below --budget 1, "
            f"else {PLAIN_RECIPE[part]})")


def with_recipe(a: argparse.Namespace) -> argparse.Namespace:
    """`a` with the recipe's parts the user left unset (None) as the recipe decides them for
    these bits and budget (export/options.py)."""
    budget = DEFAULT.budget if a.budget is None else a.budget
    recipe = recipe_for(a.bits, budget)
    return argparse.Namespace(**{k: recipe[k] if k in recipe and v is None else v
                                 for k, v in vars(a).items()})


def check_dependent(a: argparse.Namespace) -> None:
    """An option given where it does nothing is a mistake to report, not to ignore: each
    DEPENDENT option the user set (argparse default None) must have the choice it needs
    (given, or the recipe's)."""
    effective = with_recipe(a)
    for flag, dest, applies, needs in DEPENDENT:
        if getattr(a, dest) is not None and not applies(effective):
            raise AqError(f"{flag} applies only with {needs}")


def only_these(a: argparse.Namespace, defaults: argparse.Namespace, allowed: set[str],
               where: str) -> None:
    """Each option outside `allowed` that the user set (it differs from `defaults`, the
    arguments parsed with none given) is an error naming `where` it does not apply."""
    for dest, value in vars(a).items():
        if dest not in allowed | {"source", "output"} and value != getattr(defaults, dest):
            raise AqError(f"--{dest.replace('_', '-')} does not apply {where}")


def given_or_default(a: argparse.Namespace) -> argparse.Namespace:
    """`a` with each DEPENDENT export option the user did not set at its ExportOptions
    default."""
    d = vars(a).copy()
    for _, dest, _, _ in DEPENDENT:
        if d[dest] is None and hasattr(DEFAULT, dest) and dest not in PLAIN_RECIPE:
            d[dest] = getattr(DEFAULT, dest)
    return argparse.Namespace(**d)


def export_source(a: argparse.Namespace, options: ExportOptions) -> None:
    """A model name, ONNX file or state dict -> the .aqz, exported as `options` say; prints
    the file's summary."""
    from ..export.pipeline import export_to_file
    from ..export.sources import calibration_images, load_source
    from ..files import output_path
    from ..format.inspect import summarize
    out = output_path(a.output)
    bits = options.bits
    if isinstance(bits, str) and bits != "auto" and not bits.isdigit() \
            and not Path(bits).is_file():
        raise AqError(f"--bits {bits}: not an integer, 'auto', or an existing JSON file")
    if isinstance(bits, str) and bits.isdigit():
        options = options.with_(bits=int(bits))
    fg = load_source(a.source, a.model, a.input_size, a.mean, a.std)
    for note in fg.notes:
        print(f"note: {note}", file=sys.stderr)
    g = export_to_file(fg, calibration_images(fg, a.calib), out, options)
    print(summarize(g, out), file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    require("export", "aq-export")
    ap = argparse.ArgumentParser(prog="aq-export", description=__doc__)
    ap.add_argument("source", help="built-in model name, a float .onnx, or a .pt state dict "
                                   "(with --model); with --to, a .aqz")
    ap.add_argument("output", help="the .aqz file to write")
    ap.add_argument("--model", help="architecture of a .pt state dict")
    ap.add_argument("--bits", default="8", help="8 (uniform), a bits JSON file, or auto")
    ap.add_argument("--budget", type=float, default=None,
                    help="--bits auto: weight bytes as a ratio of uniform 8 bits (default "
                         f"{DEFAULT.budget:g})")
    ap.add_argument("--allocation", choices=ALLOCATIONS, default=None, help=recipe_help(
        "--bits auto: one weight width per layer or per output channel", "allocation"))
    ap.add_argument("--calib", help="folder of calibration images (default: bundled photos; "
                                    "none: only --synthetic images, a data-free export)")
    ap.add_argument("--synthetic", type=int, default=DEFAULT.synthetic, metavar="N",
                    help="add N calibration images synthesized from the float model's "
                         "BatchNorm statistics (no data needed; about 10 s per image on 2 "
                         "cores for Lite0)")
    ap.add_argument("--calib-method", choices=CALIB_METHODS, default=DEFAULT.method)
    ap.add_argument("--granularity", choices=GRANULARITIES, default=DEFAULT.granularity,
                    help="activation ranges per channel where no activation bounds the values "
                         "and per tensor elsewhere (mixed, the default), per tensor, or per "
                         "channel")
    ap.add_argument("--no-bias-correction", action="store_true",
                    help="keep each layer's mean weight-quantization error (min/max and nearest "
                         "rounding only, as ONNX Runtime's static int8)")
    ap.add_argument("--clipping", choices=CLIPPINGS, default=None, help=recipe_help(
        "weight range per output channel: max|w|, or the range with the least squared rounding "
        "error at the channel's bits", "clipping"))
    ap.add_argument("--rounding", choices=ROUNDINGS, default=None, help=recipe_help(
        "weight rounding: to nearest, or learned block by block to reproduce the float model's "
        "block outputs on the calibration images (AdaRound/BRECQ-style; minutes)", "rounding"))
    ap.add_argument("--rounding-iters", type=int, default=None,
                    help="--rounding learned: optimisation steps per block (default "
                         f"{DEFAULT.rounding_iters})")
    ap.add_argument("--rounding-images", type=int, default=None,
                    help="--rounding learned: images to learn from (the calibration "
                         "images, then augmented views of them; default "
                         f"{DEFAULT.rounding_images})")
    ap.add_argument("--rounding-target", choices=ROUNDING_TARGETS, default=None,
                    help="--rounding learned: what each block reproduces: the float model's "
                         "output there (model; it also makes up for earlier blocks' error) or "
                         "the float block's own output on its quantized input (block), or a "
                         "blend of the two (default with --bits auto: blend below --budget 1, "
                         "block at 0.5 and below; else model)")
    ap.add_argument("--rounding-blend", type=float, default=None, metavar="A",
                    help="--rounding-target blend: the float model's output's weight, A in "
                         f"(0, 1); the float block's own output gets 1 - A (default "
                         f"{DEFAULT.rounding_blend:g})")
    ap.add_argument("--weight-groups", type=int, default=DEFAULT.weight_groups, metavar="G",
                    help="give each run of G weights of a 2..5-bit channel its own multiplier "
                         "1..8 under the channel's scale (3 bits per group; the codes' effective "
                         "width grows by 3 bits, at most 8): finer steps where a channel's "
                         "weights are small; 0 (default): off, 32: low bits")
    ap.add_argument("--weight-coding", choices=WEIGHT_CODINGS, default=None, help=recipe_help(
        "how the file stores weight codes: bit-packed at their widths, or entropy: rANS-coded "
        "where smaller, and --bits auto prices widths by their coded bytes (same integers, "
        "smaller file, finer codes within a budget; decoded when the model loads)",
        "weight_coding"))
    ap.add_argument("--target", choices=TARGETS, default=DEFAULT.target,
                    help="avx2: no 8-bit weight codes (7 instead; --bits auto never picks 8), "
                         "so AVX2-only CPUs run every layer of 7 bits or less on vpmaddubsw "
                         "(about 1.5x faster than the int16 vpmaddwd that wider codes take)")
    ap.add_argument("--act-bits", choices=ACT_BITS, default=DEFAULT.act_bits,
                    help="activation widths: as --bits gives them (8 unless a bits JSON says "
                         "otherwise), or auto: 2..8 per tensor, lowered where the MicroNet "
                         "score gains most for the logit noise added")
    ap.add_argument("--act-noise", type=float, default=None, metavar="F",
                    help="--act-bits auto: the added logit noise may reach F times the weight "
                         "plan's own (0.1: at most about 0.4 dB)")
    ap.add_argument("--input-size", type=int, help="square input side (EfficientNets, ONNX)")
    ap.add_argument("--mean", type=float, nargs="+", help="ONNX input normalization mean, pixel units")
    ap.add_argument("--std", type=float, nargs="+", help="ONNX input normalization std, pixel units")
    ap.add_argument("--to", choices=["onnx-int", "onnx-qdq"],
                    help="convert SOURCE (.aqz) instead: onnx-int = integer-exact ONNX, "
                         "onnx-qdq = standard QDQ graph (close, not exact)")
    ap.add_argument("--qdq-weights", choices=["s8", "u8"],
                    help="--to onnx-qdq: int8 weights (s8, the default; ONNX Runtime's u8 x "
                         "s8 kernels; they saturate on CPUs without VNNI) or uint8 weights "
                         "with zero point 128 (its u8 x u8 kernels, exact on every CPU)")
    a = ap.parse_args(argv)

    def go() -> None:
        check_dependent(a)
        defaults = ap.parse_args([a.source, a.output])  # what each option is when not given
        if a.to:
            only_these(a, defaults, {"to", "qdq_weights"},
                       "with --to (it converts the .aqz as it is)")
            from ..format import read_aqz
            from ..interop.onnx_int import to_onnx_int
            from ..interop.onnx_qdq import to_onnx_qdq
            if a.to == "onnx-int":
                to_onnx_int(read_aqz(a.source), a.output)
            else:
                to_onnx_qdq(read_aqz(a.source), a.output, weights=a.qdq_weights or "s8")
            return
        from ..training.api import export_checkpoint, training_checkpoint
        ck = training_checkpoint(a.source)
        if ck is not None:
            only_these(a, defaults, {"weight_coding"}, "to a training checkpoint (its bits, "
                       "ranges and weights are trained; only --weight-coding applies)")
            export_checkpoint(a.source, ck, a.output, coding=a.weight_coding or "packed")
            return
        o = given_or_default(a)
        options = ExportOptions(bits=o.bits, budget=o.budget, allocation=o.allocation,
                                method=o.calib_method, granularity=o.granularity,
                                bias_correction=not o.no_bias_correction, clipping=o.clipping,
                                rounding=o.rounding, rounding_iters=o.rounding_iters,
                                rounding_images=o.rounding_images,
                                rounding_target=o.rounding_target,
                                rounding_blend=o.rounding_blend, target=o.target,
                                synthetic=o.synthetic, act_bits=o.act_bits,
                                act_noise=o.act_noise, weight_groups=o.weight_groups,
                                weight_coding=o.weight_coding)
        export_source(o, options)
    run_cli(go)


if __name__ == "__main__":
    main()
