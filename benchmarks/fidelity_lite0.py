"""Fidelity of EfficientNet-Lite0 exports on all held-out crops, with ONNX Runtime int8 (QDQ)
calibrated on the same calibration photos. Writes benchmarks/results/fidelity_lite0.txt.

    python benchmarks/fidelity_lite0.py
"""

import platform
import sys
import tempfile
import time
from pathlib import Path

from aq_runtime.bench.compare import compare_models, format_rows
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.models.efficientnet import lite0_float_graph, load_lite0


def main() -> None:
    t0 = time.time()
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    xh, _ = crops_of(HELDOUT_PHOTOS)
    rows, _ = compare_models(fg, xc, xh, tempfile.mkdtemp(), module=load_lite0())
    text = (f"EfficientNet-Lite0, {len(xc)} calibration crops of {', '.join(CALIBRATION_PHOTOS)};\n"
            f"{len(xh)} held-out crops of {', '.join(HELDOUT_PHOTOS)}\n"
            f"machine: {platform.processor() or platform.machine()}, python {sys.version.split()[0]}\n\n"
            + format_rows(rows) + f"\n\n({time.time() - t0:.0f} s)\n")
    out = Path(__file__).parent / "results" / "fidelity_lite0.txt"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
