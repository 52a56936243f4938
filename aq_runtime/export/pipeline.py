"""What aq-export does with a float model, as a library call: resolve the source model,
gather calibration images, export, write atomically, print a summary. (Training checkpoints
are the training half's: `training.api.export_checkpoint`; export never imports training.)"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import AqError
from ..files import output_path
from .api import export_to_file
from .options import ExportOptions
from .sources import calibration_images, load_source


def export_cli(source: str, output: str, options: ExportOptions, model: str | None = None,
               calib: str | None = None, input_size: int | None = None,
               mean: list[float] | None = None, std: list[float] | None = None) -> None:
    """`source` (model name, ONNX file or state dict) -> `output` (.aqz), exported as
    `options` say; prints the summary. (aq-train checkpoints: training.api.export_checkpoint.)"""
    out = output_path(output)
    bits = options.bits
    if isinstance(bits, str) and bits != "auto" and not bits.isdigit() and not Path(bits).is_file():
        raise AqError(f"--bits {bits}: not an integer, 'auto', or an existing JSON file")
    if isinstance(bits, str) and bits.isdigit():
        options = options.with_(bits=int(bits))
    from ..format.inspect import summarize
    fg = load_source(source, model, input_size, mean, std)
    for note in fg.notes:
        print(f"note: {note}", file=sys.stderr)
    images = calibration_images(fg, calib)
    g = export_to_file(fg, images, out, options)
    print(summarize(g, out), file=sys.stderr)
