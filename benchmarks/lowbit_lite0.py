"""Low-bit EfficientNet-Lite0: how few weight bits keep its fidelity.

One row per model, all scored on the 376 held-out crops (never used for calibration): uniform
weight bits 8/6/5/4/3 (activations 8) and `--bits auto` at weight budgets 0.375/0.5/0.625/0.75
of uniform 8's bytes, each exported with nearest rounding (the default export), with MSE
clipping, (auto) with per-channel bits, and with learned rounding on top, and (auto) the last
two with weight groups (`--weight-groups 16`) and, again, with entropy-coded weights
(`--weight-coding entropy`, rows "coded"), learned and coded once more with each block's
rounding fitted to its own error (`--rounding-target block`, rows "blk") and to a blend of
the two targets (`--rounding-target blend`, rows "bld"); three rows with
activation widths below 8 (`--act-bits auto`, at most 10% more logit noise); the KD-trained
model at each budget (`aq-train --kd-only --init-aqz` from that budget's learned export, bits
frozen, logits + block distillation, its final checkpoint; time column: training), and once
more from the best 0.5x and 0.375x exports (`auto B learned coded blk KD`, their convs kept
coded); the best 0.5x export with activation widths lowered further (`--act-noise` 0.3 and 1:
rows `blk act0.3`, `blk act1`) and KD from each; two data-free rows (uniform 8, and auto 0.5
learned) calibrated on images synthesized from the model's BatchNorm statistics instead of
the photos; ONNX Runtime int8 for reference. Columns: file bytes, average weight/activation
bits, MicroNet score, the four fidelity numbers (runtime/fidelity.py), integer vs fake-quant
agreement, export time. Resumable: finished rows are kept in
results/lowbit_lite0.json and skipped on a rerun (`--redo NAME...` recomputes rows, `--only
NAME...` runs just those). Writes results/lowbit_lite0.{txt,json,png}.

    python benchmarks/lowbit_lite0.py            # everything (about 4 hours on 2 cores)
    python benchmarks/lowbit_lite0.py --only "auto 0.5 learned"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aq_runtime.bench.compare import Row, format_rows, iter_rows, row_path, score_row
from aq_runtime.runtime.fidelity import Fidelity
from aq_runtime.bench.machine import describe
from aq_runtime.bench.pareto import plot_pareto
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.export.float_exec import run_float_graph
from aq_runtime.export.options import PLAIN_RECIPE
from aq_runtime.export.synthetic import synthesize
from aq_runtime.format.reader import read_aqz
from aq_runtime.models.efficientnet import lite0_float_graph, load_lite0

RESULTS = Path(__file__).parent / "results"
DEFAULT_ROW = "auto 0.5 default"  # --bits auto --budget 0.5 and nothing else
KEEP = "runs/lowbit_lite0"  # the exported files of the rows (and the KD rows' training runs)
MSE = {"clipping": "mse"}
CHANNEL = {"clipping": "mse", "allocation": "channel"}
LEARNED = {"clipping": "mse", "rounding": "learned"}
UNIFORM = (("nearest", {}), ("mse", MSE), ("learned", LEARNED))
AUTO = (("nearest", {}), ("mse", MSE), ("mse-ch", CHANNEL),
        ("learned", {**LEARNED, "allocation": "channel"}))


GROUPS = 16  # rows "gN": + a multiplier 1..8 per N weights of 2..5-bit channels
CODED = {"weight_coding": "entropy"}  # rows "coded": codes rANS-coded, widths priced so
BLOCK = {"rounding_target": "block"}  # rows "blk": each block fits its own weights' error
BLEND = {"rounding_target": "blend"}  # rows "bld": half the float model's output, half blk's
ACT_AUTO = {"act_bits": "auto"}  # activation widths 2..8 where they add <= 10% logit noise
SYNTHETIC = 32  # data-free rows: calibration images synthesized from BatchNorm statistics
KD = "kd"  # rows trained from their budget's learned export: aq-train --kd-only --init-aqz
BEST = "auto {} learned coded blk"  # the best export of a budget (per-channel widths, MSE
KD_BEST = (0.5, 0.375)  # clipping, learned rounding to each block's own error, coded): rows
# "... blk KD" train from it at these budgets
KD_BLOCKS, KD_LR, KD_EPOCHS = 10.0, 1e-4, 8.0  # results/lite0_kd_from_aqz_blocks.txt's run
ACT_NOISES = (0.3, 1.0)  # rows "blk actN": the best 0.5x export at activation widths 2..8
# adding <= N x the weight plan's logit noise, and KD from each (training where post-training
# of low activation widths loses most)


def rows_wanted() -> list[tuple[str, object, dict]]:
    out = []
    for b in (8, 6, 5, 4, 3):
        for tag, opts in UNIFORM:
            out.append((f"w{b} {tag}", {"weight": b, "act": 8}, opts))
    for budget in (0.75, 0.625, 0.5, 0.375):
        for tag, opts in AUTO:
            out.append((f"auto {budget} {tag}", "auto", {"budget": budget, **opts}))
    for budget in (0.75, 0.625, 0.5, 0.375):
        for tag, opts in AUTO[2:]:
            out.append((f"auto {budget} {tag} g{GROUPS}", "auto",
                        {"budget": budget, **opts, "allocation": "channel",
                         "weight_groups": GROUPS}))
    for budget in (0.75, 0.625, 0.5, 0.375):
        for tag, opts in AUTO[2:]:
            out.append((f"auto {budget} {tag} coded", "auto",
                        {"budget": budget, **opts, "allocation": "channel", **CODED}))
    for budget in (0.75, 0.625, 0.5, 0.375):
        out.append((f"auto {budget} learned coded blk", "auto",
                    {"budget": budget, **LEARNED, "allocation": "channel", **CODED, **BLOCK}))
    for budget in (0.75, 0.625, 0.5, 0.375):
        out.append((f"auto {budget} learned coded bld", "auto",
                    {"budget": budget, **LEARNED, "allocation": "channel", **CODED, **BLEND}))
    out.append(("w8 nearest act-auto", {"weight": 8, "act": 8}, ACT_AUTO))
    for budget in (0.75, 0.5):
        out.append((f"auto {budget} learned act-auto", "auto",
                    {"budget": budget, **LEARNED, "allocation": "channel", **ACT_AUTO}))
    for budget in (0.75, 0.625, 0.5, 0.375):
        out.append((f"auto {budget} learned KD", KD, {"budget": budget}))
    for budget in KD_BEST:
        out.append((f"{BEST.format(budget)} KD", KD, {"budget": budget,
                                                       "start": BEST.format(budget)}))
    for noise in ACT_NOISES:
        name = f"{BEST.format(0.5)} act{noise:g}"
        out.append((name, "auto", {"budget": 0.5, **LEARNED, "allocation": "channel", **CODED,
                                   **BLOCK, "act_bits": "auto", "act_noise": noise}))
        out.append((f"{name} KD", KD, {"budget": 0.5, "start": name}))
    out.append(("w8 data-free", {"weight": 8, "act": 8}, {}))
    out.append(("auto 0.5 learned data-free", "auto",
                {"budget": 0.5, **LEARNED, "allocation": "channel"}))
    # every row names its recipe in full (the parts it does not name: the plain export's),
    # but the last: `aq-export --bits auto --budget 0.5` alone, the recipe export chooses
    out = [(n, b, o if b == KD else {**PLAIN_RECIPE, **o}) for n, b, o in out]
    out.append((DEFAULT_ROW, "auto", {"budget": 0.5}))
    return out


def _row_dict(r: Row) -> dict:
    """A row just computed, with the machine it ran on."""
    return {"name": r.name, "file_bytes": r.file_bytes, "weight_bits": r.weight_bits,
            "act_bits": r.act_bits, "score": r.score, "fid": r.fid.as_dict() if r.fid else None,
            "fq_agreement": r.fq_agreement, "seconds": r.seconds, "machine": describe()}


def machines_line(rows: list[dict]) -> str:
    """Which machine each row ran on (rows are resumed across runs): the most common one
    for the rows not named, then each other machine with its rows."""
    by: dict[str, list[str]] = {}
    for d in rows:
        by.setdefault(d.get("machine", "not recorded"), []).append(d["name"])
    order = sorted(by, key=lambda m: -len(by[m]))
    if len(order) == 1:
        return f"machine: {order[0]}"
    return "machines: " + "; ".join([f"{order[0]} (rows not named here)"] + [
        f"{m}: {', '.join(by[m])}" for m in order[1:]])


def _row(d: dict) -> Row:
    return Row(d["name"], d["file_bytes"], d["weight_bits"], d["act_bits"], d["score"],
               Fidelity(**d["fid"]) if d["fid"] else None, d["fq_agreement"],
               seconds=d.get("seconds"))


def kd_start(opts: dict) -> str:
    """The row a KD row trains from: its own `start`, or the learned export of its budget."""
    return opts.get("start", f"auto {opts['budget']} learned")


def kd_row(start: Path, run: Path):
    """(integer graph, training seconds) of KD-only training from the export `start` (bits
    frozen, logits + block distillation on augmented calibration crops), its final checkpoint,
    its convs marked for the writer as `start`'s are (entropy-coded stays coded); resumes
    `run` (the seconds add up over resumes in run/seconds.json)."""
    from aq_runtime.bench.kd_run import kd_config, timed_train
    from aq_runtime.training.api import checkpoint_graph

    cfg = kd_config(run, KD_EPOCHS, KD_LR, kd_blocks=KD_BLOCKS, init_aqz=str(start))
    code, seconds = timed_train(cfg, resume=(run / "last.pt").exists())
    if code:
        sys.exit(code)
    g = checkpoint_graph(run / "last.pt")
    # stored as the start stores its convs (coded stays coded; an export marks every conv alike)
    g.store_weights_as(read_aqz(start).weight_nodes()[0].attrs.get("weight_coding", "packed"))
    return g, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redo", nargs="*", default=[])
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--keep", default=KEEP,
                    help="folder for the exported files and the KD rows' training runs")
    a = ap.parse_args()
    store = RESULTS / "lowbit_lite0.json"
    done = {d["name"]: d for d in json.loads(store.read_text())["rows"]} if store.exists() else {}
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    xh, _ = crops_of(HELDOUT_PHOTOS)
    keep = Path(a.keep)
    keep.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        doc = {"machine": describe(),  # the last run's; each row names its own
               "python": sys.version.split()[0], "rows": list(done.values())}
        t = store.with_suffix(".tmp")
        t.write_text(json.dumps(doc, indent=1))
        t.replace(store)

    todo = [(n, b, o) for n, b, o in rows_wanted()
            if not (a.only and n not in a.only) and (n not in done or n in a.redo)]
    ort = "ORT int8 QDQ" not in done or "ORT int8 QDQ" in a.redo
    t0 = time.time()
    kd = [r for r in todo if r[1] == KD]
    for n, _, o in kd:  # their start: the learned export of the same budget, on file
        start = kd_start(o)
        if not row_path(keep, fg.name, start).exists() and start not in [t[0] for t in todo]:
            todo.append(next(r for r in rows_wanted() if r[0] == start))
    real = [r for r in todo if "data-free" not in r[0] and r[1] != KD]
    free = [r for r in todo if "data-free" in r[0]]
    runs = [(xc, real, load_lite0() if ort else None, 0.0)] if real or ort else []
    fh = None  # the float logits of the held-out crops, once computed
    if free:  # the photos never reach these rows: calibration images from the model alone
        t1 = time.time()
        syn = synthesize(fg, SYNTHETIC)
        synth_s = time.time() - t1
        print(f"{SYNTHETIC} synthetic images in {synth_s:.0f} s", flush=True)
        runs.append((syn, free, None, synth_s))
    for calib, rows, module, synth_s in runs:
        for r, f in iter_rows(fg, calib, xh, keep, rows, module=module):
            if r.seconds is not None:  # a data-free export includes making its images
                r.seconds += synth_s
            if r.name == "float (fp32)":
                fh = f
                if r.name in done:
                    continue
            done[r.name] = _row_dict(r)
            save()
            if r.fid is not None:
                print(f"{r.name}: {r.fid.sqnr_db:.2f} dB, export {r.seconds or 0:.0f} s "
                      f"({time.time() - t0:.0f} s so far)", flush=True)
    for n, _, o in kd:
        start = row_path(keep, fg.name, kd_start(o))
        run = keep / (f"kd_{o['budget']}" if "start" not in o else "kd_" + start.stem)
        g, seconds = kd_row(start, run)
        fh = fh if fh is not None else run_float_graph(fg, xh)
        r = score_row(n, g, row_path(keep, fg.name, n), fh, xh, seconds)
        done[n] = _row_dict(r)
        save()
        print(f"{n}: {r.fid.sqnr_db:.2f} dB, training {r.seconds:.0f} s", flush=True)
    order = (["float (fp32)"] + [n for n, _, _ in rows_wanted()]
             + ["ORT int8 QDQ", "ORT int8 QDQ float-sim"])
    shown = [done[n] for n in order if n in done]
    rows = [_row(d) for d in shown]
    table = format_rows(rows, with_seconds=True)
    text = (f"EfficientNet-Lite0 at low weight bits: calibration {len(xc)} crops of "
            f"{', '.join(CALIBRATION_PHOTOS)};\nscored on {len(xh)} held-out crops of "
            f"{', '.join(HELDOUT_PHOTOS)}\n{machines_line(shown)}\n"
            "nearest: the default export (max|w| ranges, nearest rounding, bias correction; auto:"
            " one width per layer);\nmse: + per-channel MSE weight clipping (--clipping mse); "
            "mse-ch: + per-channel bits (--allocation channel);\nlearned: mse (uniform) or "
            "mse-ch (auto) + learned rounding (--rounding learned: block reconstruction on the "
            "calibration crops\nand augmented views of them, 1024 images, 200 steps per block); "
            f"g{GROUPS}: + a multiplier 1..8 per {GROUPS} weights of 2..5-bit channels "
            f"(--weight-groups {GROUPS}; its 3 bits per group count in the budget);\n"
            "coded: mse-ch or learned + --weight-coding entropy, no groups (codes rANS-coded in "
            "the file, widths priced by their coded bytes,\nfull ranges allowed; w bits are the "
            "code bits per weight, stored in fewer: the budget counts the coded bytes);\n"
            "blk: + --rounding-target block (each block's rounding fits the float block's "
            "output on its own quantized input, not the float model's output there);\n"
            "bld: + --rounding-target blend (each block's rounding fits half the float model's "
            "output there, half the float block's on its own input);\n"
            f"{DEFAULT_ROW}: aq-export --bits auto --budget 0.5 and no other option (the "
            "default recipe at 0.5: learned coded blk);\n"
            "act-auto: + activation widths 2..8 (--act-bits auto: MicroNet score down while the "
            "logit noise added on the planning\nimages stays within 10% of the weight plan's; a "
            "bits: per activation value, each channel weighted by its pixels); "
            "actN: the same with --act-noise N (within N x the weight plan's noise); "
            "KD: aq-train --kd-only --init-aqz <the learned file of that budget (blk KD, blk "
            "actN KD: the file of the row named before KD; its convs stay coded)>, bits frozen, "
            f"KD MSE to the float logits + {KD_BLOCKS:g} x relative MSE of the block outputs,\n"
            f"{KD_EPOCHS:g} epochs x 128 augmented crops of the calibration photos (batch 8, lr "
            f"{KD_LR:g}), the final checkpoint; its time column is the training's; "
            f"data-free: no photo at all, {SYNTHETIC} images synthesized from the model's "
            "BatchNorm statistics\n(--calib none --synthetic 32) calibrate everything (their time "
            "column includes the synthesis)"
            "\n\n" + table + "\n")
    write_result(RESULTS / "lowbit_lite0.txt", text)
    plot_pareto(rows, RESULTS / "lowbit_lite0.png",
                "EfficientNet-Lite0: weight bytes vs logit SQNR on held-out crops")


if __name__ == "__main__":
    main()
