"""Fidelity of EfficientNet-Lite0 exports on all held-out crops, with ONNX Runtime int8 (QDQ)
calibrated on the same calibration photos; uniform 8 bits with each of the default export's two
steps beyond the textbook one alone (bias correction, mixed ranges); `--bits auto` also at other
weight-byte budgets, exported the plain way (one width per layer, nearest rounding: the low-bit
recipe that is the default below budget 1 has its own table, benchmarks/lowbit_lite0.py).
Writes benchmarks/results/fidelity_lite0.txt.

    python benchmarks/fidelity_lite0.py
"""

import tempfile
import time
from pathlib import Path

from aq_runtime.bench.compare import EXPORTS, compare_models, format_rows
from aq_runtime.bench.machine import describe
from aq_runtime.bench.ort_baseline import ORT_CONFIGS
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.export.options import PLAIN_RECIPE
from aq_runtime.models.efficientnet import lite0_float_graph, load_lite0

BUDGETS = (0.6, 0.75, 1.25)  # weight bytes as a ratio of uniform 8 (auto's default is 1.0)


def main() -> None:
    t0 = time.time()
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    xh, _ = crops_of(HELDOUT_PHOTOS)
    steps = (("8 tensor, bc", 8, {"granularity": "tensor"}),
             ("8 mixed, no bc", 8, {"bias_correction": False}))
    budgets = tuple((f"auto {b}x", "auto", {"budget": b, **PLAIN_RECIPE}) for b in BUDGETS)
    rows, _ = compare_models(fg, xc, xh, tempfile.mkdtemp(), EXPORTS + steps + budgets,
                             module=load_lite0(), ort_configs=ORT_CONFIGS)
    text = (f"EfficientNet-Lite0, {len(xc)} calibration crops of {', '.join(CALIBRATION_PHOTOS)};\n"
            f"{len(xh)} held-out crops of {', '.join(HELDOUT_PHOTOS)}\n"
            f"machine: {describe()}\n"
            "ORT int8 QDQ: ONNX Runtime's static int8 as it runs on this CPU (int8 weights: "
            "u8 x s8 kernels, which saturate without VNNI); float-sim: the same model run as\n"
            "DequantizeLinear + float ops (the same on every CPU); u8u8 / reduce_range: the "
            "configurations its docs advise for CPUs without VNNI\n\n"
            + format_rows(rows) + f"\n\n({time.time() - t0:.0f} s)\n")
    write_result(Path(__file__).parent / "results" / "fidelity_lite0.txt", text)


if __name__ == "__main__":
    main()
