"""aq-demo: pretrained EfficientNet-Lite0 -> calibrated on real photos -> uniform 8-bit and
`--bits auto` .aqz files -> exact integer inference on held-out real photos; one table of
size, bits, MicroNet score and the four fidelity numbers, then the classes of each held-out
photo."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, center_views, crops_of
from ..runtime import Session
from .compare import compare_models, format_rows
from ..runtime.fidelity import argmax_lowest


def run_demo(out_dir: str | Path | None = None, every: int = 1, progress: bool = True) -> str:
    from tqdm import tqdm

    from ..export.float_exec import run_float_graph
    from ..models.efficientnet import lite0_float_graph

    t0 = time.time()
    out = Path(out_dir or tempfile.mkdtemp(prefix="aq-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    say = tqdm.write if progress else (lambda s: None)
    say("loading EfficientNet-Lite0 (pretrained) and the bundled photos")
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    xh = crops_of(HELDOUT_PHOTOS)[0][::every]
    say(f"{len(xc)} calibration crops of {len(CALIBRATION_PHOTOS)} photos; "
        f"{len(xh)} held-out crops of {len(HELDOUT_PHOTOS)} other photos")
    rows, _ = compare_models(fg, xc, xh, out, progress=progress)
    views = center_views(HELDOUT_PHOTOS)
    preds = {"float": argmax_lowest(run_float_graph(fg, views))}
    for r in rows[1:]:
        preds[r.name] = argmax_lowest(Session(r.graph).run(views))
    names = list(preds)
    from ..runtime.backends import backend_report
    lines = [f"EfficientNet-Lite0 on {len(xh)} held-out crops (no crop of a calibration photo "
             f"is scored); models in {out}",
             f"integer logits from backend {Session(rows[1].graph).backend_name!r} (auto); "
             "backends here:", *("  " + b for b in backend_report()), "", format_rows(rows), "",
             f"{'photo':18} " + " ".join(f"{n:24}" for n in names)]
    for i, photo in enumerate(HELDOUT_PHOTOS):
        lines.append(f"{photo:18} " + " ".join(f"{fg.labels[preds[n][i]][:23]:24}" for n in names))
    lines.append(f"\n({time.time() - t0:.0f} s)")
    return "\n".join(lines)
