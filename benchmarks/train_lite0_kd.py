"""Training on the real model: EfficientNet-Lite0, distillation-only AQ (no labels) starting
from the post-training mixed model (`aq-export --bits auto`: same calibration crops, same bits),
trained on augmented crops of the 8 calibration photos; scored before and after on the 376
held-out crops of 11 other photos (agreement with the float top-1, top-5, SQNR) with the
average bits, integer numbers (the exported graph on the numba backend, == reference) with the
fake-quant ones beside them.

    python benchmarks/train_lite0_kd.py [--epochs 8] [--out runs/lite0_kd]
    python benchmarks/train_lite0_kd.py --init-aqz l05.aqz --kd-blocks 1 --tag _blocks

Interruptible: rerun with --resume to continue. Writes benchmarks/results/lite0_kd.{txt,json}
and lite0_bits_{before,after}.png. The run (`kd_config`) is aq_runtime/bench/kd_run.py's, shared
with lowbit_lite0.py's KD rows."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from aq_runtime.bench.kd_run import kd_config, timed_train
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import HELDOUT_PHOTOS, crops_of
from aq_runtime.training.build import restore_model
from aq_runtime.training.checkpoint import load_checkpoint
from aq_runtime.training.evaluate import evaluate, plot_bits
from aq_runtime.training.loop import block_outputs, prepare

RESULTS = Path(__file__).parent / "results"


def heldout():
    """The 376 held-out crops (never seen in calibration, training or checkpoint choice)."""
    return crops_of(HELDOUT_PHOTOS)[0]


def row(name, res):
    return (f"{name:34s} {100 * res['int_agree_float']:7.2f}% {100 * res['fq_agree_float']:7.2f}% "
            f"{100 * res['int_top5_float']:7.2f}% {res['int_sqnr_db']:8.2f} "
            f"{100 * res['int_vs_fq_agree']:7.2f}% {res['avg_weight_bits']:7.3f} "
            f"{res['avg_act_bits']:7.3f} {res['metric']:9.5f}")


def epoch_lines(path: Path) -> list[str]:
    """Per-epoch agreement and SQNR: calibration crops (the choice) and held-out (reported)."""
    import csv
    with open(path, newline="") as f:
        ev = list(csv.DictReader(f))
    if not ev or "heldout_int_sqnr_db" not in ev[0]:
        return []
    out = ["", f"{'epoch':>6s} {'calib top1':>10s} {'calib dB':>9s} {'held top1':>10s} "
               f"{'held top5':>10s} {'held dB':>8s}"]
    for r in ev:
        out.append(f"{float(r['epoch']):6.2f} {100 * float(r['int_agree_float']):9.2f}% "
                   f"{float(r['int_sqnr_db']):9.2f} {100 * float(r['heldout_int_agree_float']):9.2f}% "
                   f"{100 * float(r['heldout_int_top5_float']):9.2f}% "
                   f"{float(r['heldout_int_sqnr_db']):8.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/lite0_kd")
    ap.add_argument("--epochs", type=float, default=8.0)
    ap.add_argument("--beta", type=float, default=2.0, help="weight of the MicroNet metric")
    ap.add_argument("--lr-bits", type=float, default=1e-2)
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="no training: report a run")
    ap.add_argument("--init-aqz", help="start from this post-training .aqz instead, bits frozen "
                                       "(no metric term): distillation of its weights, scales "
                                       "and ranges only")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--kd-blocks", type=float, default=0.0,
                    help="weight of the block-output distillation (aq-train --kd-blocks)")
    ap.add_argument("--metric-target", type=float,
                    help="the metric term pulls only above this MicroNet score")
    ap.add_argument("--lr-ranges", type=float, help="learning rate of the ranges (default: --lr)")
    ap.add_argument("--epoch-size", type=int, default=128, help="random crops per epoch")
    ap.add_argument("--color-jitter", type=float, default=0.0,
                    help="brightness/contrast/saturation jitter of the crops (aq-train's)")
    ap.add_argument("--grayscale", type=float, default=0.0,
                    help="probability of a grey view of a crop (aq-train's)")
    a = ap.parse_args()
    out = Path(a.out)
    cfg = kd_config(out, a.epochs, a.lr, a.beta, a.lr_bits, a.kd_blocks, a.metric_target,
                    a.init_aqz, lr_ranges=a.lr_ranges, epoch_size=a.epoch_size,
                    color_jitter=a.color_jitter, grayscale=a.grayscale)
    if not a.resume and not a.report_only:
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tr, _, _, _ = prepare(cfg, False, 0, 1)
        before, g0 = evaluate(tr.model, tr.teacher_fg, heldout(), None, "numba")
        out.mkdir()
        (out / "before.json").write_text(json.dumps(before, indent=1))
        plot_bits(g0, out / "bits_before.png", "Lite0 before KD (post-training bits)")
        del tr
    code = 0 if a.report_only else timed_train(cfg, a.resume)[0]
    if code:
        sys.exit(code)
    before = json.loads((out / "before.json").read_text())
    model, fg = restore_model(load_checkpoint(out / "last.pt"))
    after, g1 = evaluate(model, fg, heldout(), None, "numba")
    model, fg = restore_model(load_checkpoint(out / "best.pt"))
    best, _ = evaluate(model, fg, heldout(), None, "numba")
    log = (out / "log.csv").read_text().splitlines()
    start = (f"the post-training export {Path(cfg.init_aqz).name} (aq-train --init-aqz), "
             "bits frozen" if cfg.init_aqz else "the post-training `--bits auto` model")
    loss = ("KD MSE to the float logits" + (
        f" + {cfg.kd_blocks:g} x relative MSE of the {len(block_outputs(fg))} block outputs"
        if cfg.kd_blocks else "") + (f" + {cfg.beta:g} x MicroNet metric, bits trainable "
            f"(iterative), lr {cfg.lr:g} / bits {cfg.lr_bits:g}" if cfg.bits_trainable else
            f", lr {cfg.lr:g}"))
    aug = "random resized crop + flip" + (
        f" + colour jitter {cfg.color_jitter:g}" if cfg.color_jitter else "") + (
        f" + grey views p {cfg.grayscale:g}" if cfg.grayscale else "")
    if cfg.lr_ranges is not None:
        loss += f" (ranges {cfg.lr_ranges:g})"
    head = (f"EfficientNet-Lite0, distillation-only AQ (no labels), from {start}.\nTraining: "
            f"augmented crops ({aug}) of the "
            f"8 calibration photos, {cfg.max_epoch:g} epochs x {cfg.epoch_size} crops, batch "
            f"{cfg.batch_size}, {loss}; {len(log) - 1} steps on 2 CPU cores.\n"
            "Scored on 376 held-out crops of 11 photos never seen in calibration or training. "
            "int = the exported integer model; fq = its fake-quant twin.\n")
    cols = (f"{'model':34s} {'int top1':>8s} {'fq top1':>8s} {'top-5':>8s} {'SQNR dB':>8s} "
            f"{'int=fq':>8s} {'w bits':>7s} {'a bits':>7s} {'metric':>9s}")
    text = "\n".join([head, cols, row("before (post-training start)", before),
                      row("after KD-only AQ (final)", after),
                      row("best epoch (picked on calib. crops)", best), "",
                      "The best epoch is chosen by agreement on the calibration photos' fixed "
                      "crops (training draws random crops of the same photos), never on the "
                      "held-out crops it is scored on. Per epoch (results/"
                      f"lite0_kd{a.tag}_epochs.csv): the calibration crops' numbers (the "
                      "choice) and heldout_* on every 4th held-out crop (reported only)."]
                     + epoch_lines(out / "eval.csv"))
    t = a.tag
    write_result(RESULTS / f"lite0_kd{t}.txt", text + "\n")
    (RESULTS / f"lite0_kd{t}.json").write_text(json.dumps(
        {"before": before, "after_final": after, "best_epoch": best}, indent=1))
    shutil.copy(out / "eval.csv", RESULTS / f"lite0_kd{t}_epochs.csv")
    shutil.copy(out / "bits_before.png", RESULTS / f"lite0_bits_before{t}.png")
    plot_bits(g1, RESULTS / f"lite0_bits_after{t}.png", "Lite0 after KD-only AQ")


if __name__ == "__main__":
    main()
