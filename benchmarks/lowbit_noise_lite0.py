"""Where a low-bit Lite0's logit noise comes from (issue: <= 4 average weight bits): per photo
(the calibration photos it was fitted on vs the held-out ones) and per layer (each layer's
weights alone put back to float, the rest as exported). Fake-quant model of the file (its
integer twin agrees on ~98% of top-1s); logit SQNR against the float model.

    python benchmarks/lowbit_noise_lite0.py                  # exports auto 0.5 learned first
    python benchmarks/lowbit_noise_lite0.py --aqz model.aqz  # or analyses a given Lite0 file

Writes results/lowbit_noise_lite0.txt (about 15 minutes on 2 cores with the export)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from aq_runtime.bench.machine import describe
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.export.fakequant import FakeQuantGraph
from aq_runtime.export.float_exec import run_float_graph
from aq_runtime.format import read_aqz
from aq_runtime.models.efficientnet import lite0_float_graph

RESULTS = Path(__file__).parent / "results"
OPTIONS = dict(bits="auto", budget=0.5, allocation="channel", clipping="mse", rounding="learned")


def db(signal: float, noise: float) -> float:
    return float(10 * np.log10(signal / noise))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--aqz", help="a Lite0 .aqz (default: export auto 0.5 learned now)")
    a = ap.parse_args()
    t0 = time.time()
    fg = lite0_float_graph()
    if a.aqz:
        from aq_runtime.format.inspect import summarize
        g = read_aqz(a.aqz)
        what = summarize(g)
    else:
        from aq_runtime.export.api import export_graph
        from aq_runtime.export.options import ExportOptions
        g = export_graph(fg, crops_of(CALIBRATION_PHOTOS)[0], ExportOptions(**OPTIONS))
        what = "aq-export efficientnet-lite0 --bits auto --budget 0.5 --allocation channel " \
               "--clipping mse --rounding learned"
    fq = FakeQuantGraph(g)
    lines = [f"Lite0 noise sources: {what}", f"machine: {describe()}", "",
             "per photo (all crops of each photo):",
             f"  {'photo':20s} {'set':11s} {'SQNR dB':>8s} {'signal/crop':>12s} {'noise/crop':>11s}"]
    totals = {}
    for label, names in (("calibration", CALIBRATION_PHOTOS), ("held-out", HELDOUT_PHOTOS)):
        s_all = n_all = 0.0
        for p in names:
            x, _ = crops_of((p,))
            f = run_float_graph(fg, x)
            e = float(((f - fq(x)) ** 2).sum())
            s = float((f ** 2).sum())
            s_all, n_all = s_all + s, n_all + e
            lines.append(f"  {p:20s} {label:11s} {db(s, e):8.2f} {s / len(x):12.0f} "
                         f"{e / len(x):11.1f}")
        totals[label] = db(s_all, n_all)
    lines.append("  " + ", ".join(f"all {k}: {v:.2f} dB" for k, v in totals.items()))
    xh = crops_of(HELDOUT_PHOTOS)[0][::2]
    f = run_float_graph(fg, xh)
    signal = float((f ** 2).sum())
    base = float(((fq(xh) - f) ** 2).sum())
    float_nodes = {n.name: n for n in fg.conv_nodes()}
    rows = []
    for name in list(fq.params):
        keep = fq.params[name]
        n = float_nodes[name]
        fq.params[name] = (torch.from_numpy(n.weight).float(), torch.from_numpy(n.bias).float())
        e = float(((fq(xh) - f) ** 2).sum())
        fq.params[name] = keep
        bits = next(m for m in g.weight_nodes() if m.name == name).arrays["wbits"]
        rows.append((base - e, name, e, float(bits.mean()), n.weight.size))
    rows.sort(key=lambda r: -r[0])
    lines += ["", f"per layer ({len(xh)} held-out crops, {db(signal, base):.2f} dB as exported): "
              "that layer's weights alone float; share = noise power it removes",
              f"  {'layer':32s} {'bits':>5s} {'weights':>8s} {'SQNR dB':>8s} {'share':>6s}"]
    for d, name, e, b, size in rows:
        lines.append(f"  {name:32s} {b:5.2f} {size:8d} {db(signal, e):8.2f} {100 * d / base:5.1f}%")
    lines.append(f"\n({time.time() - t0:.0f} s)")
    text = "\n".join(lines) + "\n"
    write_result(RESULTS / "lowbit_noise_lite0.txt", text)


if __name__ == "__main__":
    main()
