"""Where the low-bit noise comes from, and whether it carries over: for exported Lite0 files of
benchmarks/lowbit_lite0.py (by default the 0.5x budget with weight groups, nearest and learned
rounding), each reconstruction block's output SQNR (the fake-quant model against the float
model, every earlier block's error included) on the calibration crops and on the held-out
crops (aq_runtime.bench.block_error). A block whose calibration figure rises while its
held-out figure does not has fitted the calibration photos. Writes
results/lowbit_blocks.txt. Needs the files lowbit_lite0.py leaves in runs/lowbit_lite0.

    python benchmarks/lowbit_blocks.py [--rows "auto 0.5 mse-ch g16" "auto 0.5 learned g16"]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from aq_runtime.bench.block_error import block_errors
from aq_runtime.bench.machine import describe
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.format import read_aqz
from aq_runtime.models.efficientnet import lite0_float_graph
from lowbit_lite0 import KEEP, row_files

RESULTS = Path(__file__).parent / "results"
ROWS = ("auto 0.5 mse-ch g16", "auto 0.5 learned g16")


def db(e: float) -> float:
    return float("inf") if e <= 0 else -10 * np.log10(e)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", nargs="+", default=list(ROWS))
    ap.add_argument("--keep", default=KEEP)
    a = ap.parse_args()
    fg = lite0_float_graph()
    paths = row_files(a.keep, fg.name, a.rows)
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    xh, _ = crops_of(HELDOUT_PHOTOS)
    cols = []
    t0 = time.time()
    for r, p in zip(a.rows, paths):
        g = read_aqz(p)
        cal = block_errors(fg, g, xc)
        held = block_errors(fg, g, xh)
        cols.append((r, cal, held))
        print(f"{r}: {time.time() - t0:.0f} s", flush=True)
    names = [n for n, _ in cols[0][1]]
    head = f"{'block (first node)':28s}" + "".join(f"{r[:25]:>28s}" for r, _, _ in cols)
    sub = f"{'':28s}" + "".join(f"{'calib.':>14s}{'held-out':>14s}" for _ in cols)
    lines = [head, sub]
    for i, n in enumerate(names):
        lines.append(f"{n:28s}" + "".join(f"{db(c[i][1]):14.2f}{db(h[i][1]):14.2f}"
                                          for _, c, h in cols))
    text = (f"EfficientNet-Lite0: each block's output SQNR in dB (fake-quant model vs float "
            f"model, every earlier block's error included),\non the {len(xc)} calibration crops "
            f"of {', '.join(CALIBRATION_PHOTOS)}\nand the {len(xh)} held-out crops of "
            f"{', '.join(HELDOUT_PHOTOS)};\nfiles of benchmarks/lowbit_lite0.py "
            f"({a.keep}); machine: {describe()}\n\n" + "\n".join(lines) + "\n")
    write_result(RESULTS / "lowbit_blocks.txt", text)


if __name__ == "__main__":
    main()
