"""Does distillation transfer with more photos? The low-bit table's KD recipe (`aq-train
--kd-only --init-aqz`, lowbit_lite0.py's KD rows) started from lowbit_calib_data_lite0.py's
"8 + fold B" export (0.5x, calibrated on the 8 calibration photos plus fold B of the held-out
photos, 13 in all) and trained on crops of those 13 photos, scored on fold A, which neither the
export nor the training saw. Per epoch (eval.csv: the training photos' fixed crops and every
4th fold-A crop) and the final checkpoint on all fold-A crops, against its start.

`--data photos` trains on the calibration photo list and reports on the held-out list, both
read from aq_runtime.data.photos when training starts; this probe sets them to the 13 photos
and fold A for its own process (the table's split does not move). About 15 minutes on 2 cores;
resumable (the run is kept in --run). Writes results/lowbit_kd_fold_lite0.txt.

    python benchmarks/lowbit_kd_fold_lite0.py [--run runs/kd_fold_B]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from lowbit_calib_data_lite0 import FOLD_A, FOLD_B
from lowbit_lite0 import KD_BLOCKS, KD_EPOCHS, KD_LR
from train_lite0_kd import kd_config, timed_train

import aq_runtime.data.photos as photos
from aq_runtime.runtime.fidelity import LEGEND, fidelity
from aq_runtime.bench.machine import describe
from aq_runtime.bench.results import write_result
from aq_runtime.export.float_exec import run_float_graph
from aq_runtime.format import read_aqz
from aq_runtime.models.efficientnet import lite0_float_graph
from aq_runtime.runtime import Session
from aq_runtime.training.api import checkpoint_graph

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", default="runs/lowbit_calib_data/8_plus_fold_B.aqz",
                    help="lowbit_calib_data_lite0.py's 8 + fold B export")
    ap.add_argument("--run", default="runs/kd_fold_B", help="the training run's folder")
    a = ap.parse_args()
    start, run = Path(a.start), Path(a.run)
    if not start.is_file():
        raise SystemExit(f"{start}: run benchmarks/lowbit_calib_data_lite0.py first")
    trained = photos.CALIBRATION_PHOTOS + FOLD_B
    photos.CALIBRATION_PHOTOS, photos.HELDOUT_PHOTOS = trained, FOLD_A  # this process only
    clock = run / "seconds.json"  # the training's wall time, summed over resumes
    if not (run / "result.json").exists():  # written when the training ends
        code, _ = timed_train(kd_config(run, KD_EPOCHS, KD_LR, kd_blocks=KD_BLOCKS,
                                        init_aqz=str(start)), (run / "last.pt").exists())
        if code:
            raise SystemExit(code)
    fg = lite0_float_graph()
    x, _ = photos.crops_of(FOLD_A)
    f = run_float_graph(fg, x)
    lines = [f"KD from the 0.5x export calibrated on 13 photos (the 8 calibration photos + fold B: "
             f"{', '.join(FOLD_B)}),", f"trained on crops of those 13 photos ({KD_EPOCHS:g} "
             f"epochs x 128, lr {KD_LR:g}, logits + {KD_BLOCKS:g} x block outputs; bits frozen), "
             f"scored on fold A ({', '.join(FOLD_A)}), seen by neither",
             f"machine: {describe()}", "",
             f"{'model':26s} {'crops':>6s} {'top-1':>7s} {'top-5':>7s} {'conf.':>7s} "
             f"{'SQNR dB':>8s}"]
    for name, g in (("start (8 + fold B export)", read_aqz(start)),
                    ("KD, final checkpoint", checkpoint_graph(run / "last.pt"))):
        q = Session(g, "numba").run(x)  # == reference (tests); runs 16 crops at a time
        d = fidelity(f, q, g.meta["logit_scale"])
        lines.append(f"{name:26s} {len(x):6d} {d.top1_agreement:7.1%} {d.top5_containment:7.1%} "
                     f"{d.confident_agreement:7.1%} {d.sqnr_db:8.2f}")
    lines += ["", "per epoch: SQNR dB on the 13 training photos' fixed crops / every 4th fold-A "
                  "crop (not used to choose anything)"]
    with open(run / "eval.csv") as fh:
        for r in csv.DictReader(fh):
            lines.append(f"  epoch {float(r['epoch']):4.1f}  {float(r['int_sqnr_db']):6.2f} / "
                         f"{float(r['heldout_int_sqnr_db']):6.2f}")
    lines += ["", LEGEND, f"(training {json.loads(clock.read_text())['seconds']:.0f} s)"]
    text = "\n".join(lines) + "\n"
    write_result(RESULTS / "lowbit_kd_fold_lite0.txt", text)


if __name__ == "__main__":
    main()
