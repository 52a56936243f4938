"""What calibration data is worth at low bits (issue: <= 4 average weight bits): one row of the
low-bit table (--row; default `auto 0.5 learned`: `--bits auto --budget 0.5 --allocation channel
--clipping mse --rounding learned`) exported again calibrated on different photos, always scored
on crops of photos it never saw, except in the last row.

- the 8 calibration photos (the low-bit table's row), on the 11 held-out photos;
- two folds: the 8 photos plus half of the held-out photos (fold A: every other one from the
  first, fold B: the rest), each scored on the other half; pooled, every held-out crop is
  scored by a model that never saw its photo, comparable with the first row;
- a ceiling, never an export anyone ships: calibrated on the 11 held-out photos alone, scored
  on those same crops and on the 8 calibration photos' (which it never saw).

A probe of the issue's question "what limits 0.5x" (and 0.375x): the photo split of the table
does not move; the folds only add photos to the calibration side. Resumable (each run's file and
logits are kept in --keep, a folder per row). About 35 minutes on 2 cores for the default row,
10-12 minutes an export for a `learned coded blk` row. Writes results/lowbit_calib_data_lite0.txt
(another row: results/lowbit_calib_data_<row>_lite0.txt).

    python benchmarks/lowbit_calib_data_lite0.py [--row NAME] [--runs RUN ...]
                                                 [--aqz the_8_photo_export.aqz]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from lowbit_lite0 import rows_wanted

from aq_runtime.runtime.fidelity import LEGEND, fidelity
from aq_runtime.bench.machine import describe
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.export.api import export_graph
from aq_runtime.export.float_exec import run_float_graph
from aq_runtime.export.options import ExportOptions
from aq_runtime.format import read_aqz, write_aqz
from aq_runtime.models.efficientnet import lite0_float_graph
from aq_runtime.runtime import Session

RESULTS = Path(__file__).parent / "results"
DEFAULT_ROW = "auto 0.5 learned"  # the row this probe first ran on (session 10)
FOLD_A, FOLD_B = HELDOUT_PHOTOS[0::2], HELDOUT_PHOTOS[1::2]
RUNS = {  # name: (calibration photos, scored photos)
    "8 calibration photos": (CALIBRATION_PHOTOS, HELDOUT_PHOTOS),
    "8 + fold B": (CALIBRATION_PHOTOS + FOLD_B, FOLD_A),
    "8 + fold A": (CALIBRATION_PHOTOS + FOLD_A, FOLD_B),
    "held-out photos (ceiling)": (HELDOUT_PHOTOS, HELDOUT_PHOTOS + CALIBRATION_PHOTOS),
}
CEILING = "held-out photos (ceiling)"


def real_logits(s: Session, x: np.ndarray) -> np.ndarray:
    """The model's integer logits on `x`, times its logit scale."""
    return s.run(x).astype(np.float64) * s.graph.meta["logit_scale"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--aqz", help="the 8-photo export, if already made (lowbit_lite0.py keeps "
                                  "it in runs/lowbit_lite0/)")
    ap.add_argument("--keep", default="runs/lowbit_calib_data",
                    help="folder for the exports (a subfolder per row but the default)")
    rows = {name: (bits, opts) for name, bits, opts in rows_wanted()  # exports from photos:
            if (isinstance(bits, dict) or bits == "auto") and "data-free" not in name}  # no KD
    ap.add_argument("--row", default=DEFAULT_ROW, choices=list(rows), metavar="NAME",
                    help="the low-bit table's row to export (its options): one of "
                    + ", ".join(rows))
    ap.add_argument("--runs", nargs="*", default=list(RUNS),
                    help="which to compute (the others are shown when already done): "
                    + ", ".join(RUNS))
    a = ap.parse_args()
    bits, opts = rows[a.row]
    options = ExportOptions(bits=bits, **opts)
    slug_row = "" if a.row == DEFAULT_ROW else a.row.replace(" ", "_")
    keep = Path(a.keep) / slug_row
    keep.mkdir(parents=True, exist_ok=True)
    fg = lite0_float_graph()
    done = {}
    float_of: dict[str, np.ndarray] = {}  # photo -> float logits of its crops, once per photo
    for name, (calib, scored) in RUNS.items():
        slug = name.split(" (")[0].replace(" ", "_").replace("+", "plus")
        path = Path(a.aqz) if name == "8 calibration photos" and a.aqz else keep / f"{slug}.aqz"
        logits = keep / f"{slug}.npz"
        if not logits.exists() and name not in a.runs:
            continue
        if not logits.exists():
            seconds = -1.0
            if not path.exists():
                t0 = time.time()
                g = export_graph(fg, crops_of(calib)[0], options)
                seconds = time.time() - t0
                write_aqz(g, path)
            arrays = {"export_s": np.array(seconds)}
            s = Session(read_aqz(path), "numba")  # == reference (tests)
            for p in scored:
                x, _ = crops_of((p,))
                if p not in float_of:
                    float_of[p] = run_float_graph(fg, x)
                arrays[f"float_{p}"] = float_of[p]
                arrays[f"int_{p}"] = real_logits(s, x)
            np.savez(logits.with_suffix(".tmp.npz"), **arrays)
            logits.with_suffix(".tmp.npz").replace(logits)
            print(f"{name}: done", flush=True)
        z = np.load(logits)
        done[name] = {"export_s": float(z["export_s"]),
                      "photos": {p: {"float": z[f"float_{p}"], "int": z[f"int_{p}"]}
                                 for p in scored}}

    def pooled(runs_photos) -> str:
        """Fidelity columns over the given (run, photos) pairs' crops together."""
        f = np.concatenate([done[n]["photos"][p]["float"] for n, ps in runs_photos for p in ps])
        q = np.concatenate([done[n]["photos"][p]["int"] for n, ps in runs_photos for p in ps])
        r = fidelity(f, q)
        return (f"{len(f):6d} {100 * r.top1_agreement:6.1f}% {100 * r.top5_containment:6.1f}% "
                f"{100 * r.confident_agreement:6.1f}% {r.sqnr_db:8.2f}")

    head = f"{'calibrated on':28s} {'scored on':34s} {'crops':>6s} {'top-1':>7s} {'top-5':>7s} " \
           f"{'conf.':>7s} {'SQNR dB':>8s}"
    flags = " ".join([f"--bits {bits if bits == 'auto' else bits['weight']}"]
                     + [f"--{k.replace('_', '-')} {v}" for k, v in opts.items()])
    lines = [f"EfficientNet-Lite0, the low-bit table's row '{a.row}' (aq-export {flags}), "
             "calibrated on different photos;",
             "integer logits (numba == reference) against the float model's. "
             f"Fold A: {', '.join(FOLD_A)}; fold B: {', '.join(FOLD_B)}.",
             f"machine: {describe()}", "", head]
    a8, b8 = f"8 + fold B ({8 + len(FOLD_B)} photos)", f"8 + fold A ({8 + len(FOLD_A)} photos)"
    eight = "8 calibration photos"
    table = [(eight, "11 held-out photos", [(eight, HELDOUT_PHOTOS)]),
             (eight, "  fold A", [(eight, FOLD_A)]),
             (eight, "  fold B", [(eight, FOLD_B)]),
             (a8, "fold A (unseen)", [("8 + fold B", FOLD_A)]),
             (b8, "fold B (unseen)", [("8 + fold A", FOLD_B)]),
             ("  two folds pooled", "11 held-out photos, each unseen",
              [("8 + fold B", FOLD_A), ("8 + fold A", FOLD_B)]),
             ("11 held-out photos", "the same 11 (seen: a ceiling)", [(CEILING, HELDOUT_PHOTOS)]),
             ("11 held-out photos", "8 calibration photos (unseen)",
              [(CEILING, CALIBRATION_PHOTOS)])]
    for left, right, runs in table:  # the rows whose runs are done (--runs chooses)
        if all(n in done for n, _ in runs):
            lines.append(f"{left:28s} {right:34s} " + pooled(runs))
    secs = [f"{n}: {d['export_s']:.0f} s" for n, d in done.items() if d["export_s"] > 0]
    lines += ["", "export wall times (a paused run counts its pause): " + "; ".join(secs)
              if secs else "",
              LEGEND]
    text = "\n".join(lines) + "\n"
    name = f"lowbit_calib_data_{slug_row}_lite0.txt" if slug_row else "lowbit_calib_data_lite0.txt"
    write_result(RESULTS / name, text)


if __name__ == "__main__":
    main()
