"""aq-demo: pretrained EfficientNet-Lite0 -> calibrated on real photos -> uniform 8-bit and
`--bits auto` .aqz files -> exact integer inference on held-out real photos; one table of
size, bits, MicroNet score and DESIGN §7 fidelity, then the classes of each held-out photo."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..bench.fidelity import argmax_lowest, fidelity
from ..data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, center_views, crops_of
from ..format import read_aqz, write_aqz
from ..format.inspect import average_act_bits, average_weight_bits
from ..quant.cost import micronet_score
from ..runtime import Session


def run_demo(out_dir: str | Path | None = None, every: int = 2, progress: bool = True) -> str:
    import torch
    from tqdm import tqdm

    from ..export.api import calibrate_ranges, export_graph
    from ..export.float_exec import run_float_graph
    from ..models.efficientnet import lite0_float_graph
    from ..training.fakequant import FakeQuantGraph

    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.time()
    out = Path(out_dir or tempfile.mkdtemp(prefix="aq-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda s: tqdm.write(s)) if progress else (lambda s: None)
    say("loading EfficientNet-Lite0 (pretrained) and the bundled photos")
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    xh, _ = crops_of(HELDOUT_PHOTOS)
    xh = xh[::every]
    say(f"{len(xc)} calibration crops of {len(CALIBRATION_PHOTOS)} photos; "
        f"{len(xh)} held-out crops of {len(HELDOUT_PHOTOS)} other photos")
    ranges = calibrate_ranges(fg, xc)
    f_logits = run_float_graph(fg, xh)
    views = center_views(HELDOUT_PHOTOS)
    f_views = run_float_graph(fg, views)
    fp32_bytes = sum(n.weight.size + n.bias.size for n in fg.conv_nodes()) * 4
    rows = [("float (fp32)", fp32_bytes, 32.0, 32.0, None, None, None)]
    preds = {"float": argmax_lowest(f_views)}
    for label, bits in (("uniform 8", 8), ("auto", "auto")):
        g = export_graph(fg, xc, bits, ranges=ranges, progress=progress)
        path = out / f"lite0_{'u8' if bits == 8 else 'auto'}.aqz"
        size = write_aqz(g, path)
        s = Session(read_aqz(path), "reference")
        q = np.concatenate([s.run(xh[i:i + 16]) for i in
                            tqdm(range(0, len(xh), 16), desc=f"integer {label}", disable=not progress)])
        fq = FakeQuantGraph(g)(xh)
        fid = fidelity(f_logits, q, g.meta["logit_scale"])
        fq_agree = float((argmax_lowest(fq) == argmax_lowest(q)).mean())
        rows.append((label, size, average_weight_bits(g), average_act_bits(g),
                     micronet_score(g)["score"], fid, fq_agree))
        preds[label] = argmax_lowest(s.run(views))
    labels = fg.labels
    lines = [f"EfficientNet-Lite0 on {len(xh)} held-out crops (never calibrated on); "
             f"models in {out}", "",
             f"{'model':13} {'file bytes':>11} {'w bits':>6} {'a bits':>6} {'MicroNet':>9} "
             f"{'top-1':>6} {'top-5':>6} {'conf.':>6} {'SQNR dB':>8} {'int=fq':>7}"]
    for name, size, wb, ab, score, fid, fqa in rows:
        if fid is None:
            lines.append(f"{name:13} {size:>11} {wb:>6.2f} {ab:>6.2f} {'':>9} {'(reference)':>29}")
            continue
        lines.append(f"{name:13} {size:>11} {wb:>6.2f} {ab:>6.2f} {score:>9.4f} "
                     f"{fid.top1_agreement:>6.1%} {fid.top5_containment:>6.1%} "
                     f"{fid.confident_agreement:>6.1%} {fid.sqnr_db:>8.2f} {fqa:>7.1%}")
    lines += ["", "top-1: agreement with float top-1; top-5: float top-1 within integer top-5; "
              f"conf.: agreement where float p >= 0.5 ({rows[1][5].n_confident} crops); "
              "int=fq: integer vs its fake-quant model", "",
              f"{'photo':18} {'float':28} {'uniform 8':28} {'auto':28}"]
    for i, name in enumerate(HELDOUT_PHOTOS):
        lines.append(f"{name:18} " + " ".join(f"{labels[preds[k][i]][:27]:28}"
                                              for k in ("float", "uniform 8", "auto")))
    lines.append(f"\n({time.time() - t0:.0f} s)")
    return "\n".join(lines)
