"""Can a different KD recipe make training beat the best 0.5x export? Variants of the low-bit
table's KD row (`aq-train --kd-only --init-aqz`, lowbit_lite0.py's recipe: lr 1e-4, logits +
10 x block outputs, 8 epochs x 128 random crops of the 8 calibration photos, bits frozen), each
started from the table's best 0.5x file (`auto 0.5 learned coded blk`) and scored, final
checkpoint, on all 376 held-out crops (DESIGN §7's four numbers), with the calibration photos'
fixed crops beside them (what the training sees).

Each variant's run is kept in --keep/<slug> and reused when its stored settings are the
variant's (a run made by train_lite0_kd.py with the same options counts); the table's own
recipe is the KD row's run in runs/lowbit_lite0. About 12 minutes a variant on 2 cores
(synthetic128: 46, 33 of them making the images), resumable. Writes
results/lowbit_kd_variants_lite0.txt (--results: another name, for a set of variants run later
from a start file exported again: each file scores its own start).

    python benchmarks/lowbit_kd_variants_lite0.py [--only SLUG ...] [--results NAME.txt]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from lowbit_lite0 import KD_BLOCKS, KD_EPOCHS, KD_LR, KEEP
from train_lite0_kd import kd_config, timed_train

from aq_runtime.runtime.fidelity import LEGEND, fidelity, sqnr_db
from aq_runtime.bench.machine import describe
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.export.float_exec import run_float_graph
from aq_runtime.format import read_aqz
from aq_runtime.models.efficientnet import lite0_float_graph
from aq_runtime.runtime import Session
from aq_runtime.training.api import checkpoint_graph
from aq_runtime.training.config import TrainConfig
from aq_runtime.training.data import REPORT_STRIDE

RESULTS = Path(__file__).resolve().parent / "results"
START = "efficientnet-lite0_auto_0.5_learned_coded_blk"
# slug -> (what it changes, kd_config options); "recipe" is the table's KD row itself
VARIANTS = {
    "recipe": ("the table's recipe", {}),
    "jitter": ("crops with colour jitter 0.4, grey views p 0.3",
               {"color_jitter": 0.4, "grayscale": 0.3}),
    "lr1e-5": ("weights, biases and ranges at lr 1e-5", {"lr": 1e-5}),
    "ranges": ("weights and biases at lr 1e-6, ranges 1e-4",
               {"lr": 1e-6, "lr_ranges": 1e-4}),
    "ranges-logits": ("the same, logits only (no block term)",
                      {"lr": 1e-6, "lr_ranges": 1e-4, "kd_blocks": 0.0}),
    "mixup": ("crops blended in pairs (aq-train --mixup 1)", {"mixup": 1.0}),
    "batch64": ("batch 64 (8 x 8 accumulated), not 8: less noisy steps",
                {"batch_size": 64, "accumulate": 8}),
    "synthetic": ("+ 16 images from BatchNorm statistics (--synthetic 16)",
                  {"synthetic": 16}),
    "synthetic-e16": ("the same, 16 epochs", {"synthetic": 16, "max_epoch": 16.0}),
    "synthetic128": ("+ 128 BatchNorm-statistics images (--synthetic 128)",
                     {"synthetic": 128}),
}


def variant_config(run: Path, start: Path, opts: dict):
    o = {"lr": KD_LR, "kd_blocks": KD_BLOCKS, **opts}
    lr, blocks = o.pop("lr"), o.pop("kd_blocks")
    return kd_config(run, KD_EPOCHS, lr, kd_blocks=blocks, init_aqz=str(start), **o)


def same_settings(run: Path, cfg) -> bool:
    """Whether `run` was trained with `cfg` (its folder and start file's folder aside)."""
    saved = vars(TrainConfig.from_dict(json.loads((run / "settings.json").read_text())["config"]))
    want = dict(vars(cfg))
    saved.pop("out"), want.pop("out")
    if Path(str(saved.pop("init_aqz"))).name != Path(str(want.pop("init_aqz"))).name:
        return False
    return all(saved.get(k) == v for k, v in want.items())


def ensure_trained(run: Path, cfg) -> float | None:
    """Train `run` unless it holds this finished run; its training seconds when known."""
    clock = run / "seconds.json"
    if (run / "result.json").exists():
        if not same_settings(run, cfg):
            raise SystemExit(f"{run}: trained with other settings; move it away")
        return json.loads(clock.read_text())["seconds"] if clock.exists() else None
    code, seconds = timed_train(cfg, (run / "last.pt").exists())
    if code:
        raise SystemExit(code)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", default="runs/kd_variants", help="the variants' runs")
    ap.add_argument("--only", nargs="*", choices=list(VARIANTS))
    ap.add_argument("--results", default="lowbit_kd_variants_lite0.txt",
                    help="file name under benchmarks/results")
    a = ap.parse_args()
    start = Path(KEEP) / f"{START}.aqz"
    if not start.is_file():
        raise SystemExit(f"{start}: run benchmarks/lowbit_lite0.py --only "
                         "'auto 0.5 learned coded blk' first")
    Path(a.keep).mkdir(parents=True, exist_ok=True)
    fg = lite0_float_graph()
    x, src = crops_of(HELDOUT_PHOTOS)
    f = run_float_graph(fg, x).reshape(len(x), -1)
    src = np.asarray(src)
    per_photo = {}  # column name -> SQNR dB per held-out photo
    lines = [f"KD variants from {start.name} (0.5x, the best post-training export), final "
             "checkpoint on the 376 held-out crops; 'calib dB': the calibration photos' fixed "
             "crops, which training draws its random crops from.",
             f"machine: {describe()}", "",
             f"{'variant':66s} {'top-1':>6s} {'top-5':>6s} {'conf.':>6s} {'SQNR dB':>8s} "
             f"{'calib dB':>8s} {'train s':>8s}"]

    def score(g, column: str, q: np.ndarray | None = None) -> str:
        # numba == reference (tests; lowbit_verify.py for the table's files)
        q = Session(g, "numba").run(x) if q is None else q
        d = fidelity(f, q, g.meta["logit_scale"])
        y = q * g.meta["logit_scale"]
        per_photo[column] = [sqnr_db(f[src == n], y[src == n]) for n in HELDOUT_PHOTOS]
        return (f"{d.top1_agreement:6.1%} {d.top5_containment:6.1%} "
                f"{d.confident_agreement:6.1%} {d.sqnr_db:8.2f}")

    g0 = read_aqz(start)
    s0 = Session(g0, "numba")
    q0, scale0 = s0.run(x), g0.meta["logit_scale"]
    xc, _ = crops_of(CALIBRATION_PHOTOS)  # the start's own numbers on the calibration crops
    calib0 = fidelity(run_float_graph(fg, xc), s0.run(xc), scale0).sqnr_db
    lines.append(f"{'start: the post-training export':66s} {score(g0, 'start', q0)} "
                 f"{calib0:8.2f}")
    quarter = fidelity(f[::REPORT_STRIDE], q0[::REPORT_STRIDE], scale0).sqnr_db
    epochs = [f"  {'start':14s}{quarter:6.2f} (epoch 0)"]
    for slug, (what, opts) in VARIANTS.items():
        if a.only and slug not in a.only:
            continue
        run = (Path(KEEP) / f"kd_{START}" if slug == "recipe" else Path(a.keep) / slug)
        cfg = variant_config(run, start, opts)
        seconds = ensure_trained(run, cfg)
        with open(run / "eval.csv") as fh:
            ev = list(csv.DictReader(fh))
        t = f"{seconds:8.0f}" if seconds is not None else f"{'':>8s}"
        g = checkpoint_graph(run / "last.pt")
        lines.append(f"{slug + ': ' + what:66s} {score(g, slug)} "
                     f"{float(ev[-1]['int_sqnr_db']):8.2f} {t}")
        epochs.append(f"  {slug:14s}" + " ".join(f"{float(r['heldout_int_sqnr_db']):6.2f}"
                                                 for r in ev))
    cols = list(per_photo)
    photo_lines = ["", "SQNR dB per held-out photo, start and each variant's final checkpoint",
                   f"  {'photo':18s}" + "".join(f"{c:>14s}" for c in cols)]
    for i, n in enumerate(HELDOUT_PHOTOS):
        photo_lines.append(f"  {n:18s}" + "".join(f"{per_photo[c][i]:14.2f}" for c in cols))
    lines += photo_lines
    lines += ["", f"per epoch, SQNR dB on every {REPORT_STRIDE}th held-out crop (reported only, "
                  "never used to choose), epoch 1 on", *epochs, "", LEGEND]
    text = "\n".join(lines) + "\n"
    write_result(RESULTS / Path(a.results).name, text)


if __name__ == "__main__":
    main()
