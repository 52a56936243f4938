"""What aq-export does, as a library call: resolve the source model, gather calibration images,
export, write atomically, print a summary."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import AqError
from .api import export_to_file
from .options import ExportOptions
from .sources import calibration_images, load_source


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


def export_cli(source: str, output: str, options: ExportOptions, model: str | None = None,
               calib: str | None = None, input_size: int | None = None,
               mean: list[float] | None = None, std: list[float] | None = None) -> None:
    """`source` (model name, ONNX, state dict or aq-train checkpoint) -> `output` (.aqz),
    exported as `options` say; prints the summary."""
    out = Path(output)
    if not out.parent.exists():
        raise AqError(f"{out.parent}: output folder does not exist")
    bits = options.bits
    if isinstance(bits, str) and bits != "auto" and not bits.isdigit() and not Path(bits).is_file():
        raise AqError(f"--bits {bits}: not an integer, 'auto', or an existing JSON file")
    if isinstance(bits, str) and bits.isdigit():
        options = options.with_(bits=int(bits))
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
    for note in fg.notes:
        print(f"note: {note}", file=sys.stderr)
    images = calibration_images(fg, calib)
    g = export_to_file(fg, images, out, options)
    print(summarize(g, out), file=sys.stderr)
