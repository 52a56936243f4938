"""aq-infer at scale: 10,000 generated JPEGs (crops of the bundled photos, 96..320 px) through
the Lite0 model with decoding in worker processes; reports images/s and peak RSS (this process
and the workers). Writes benchmarks/results/infer_at_scale.txt.

    python benchmarks/infer_at_scale.py [n_images]
"""

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aq_runtime.data.photos import CALIBRATION_PHOTOS, crops_of
from aq_runtime.export.api import export_graph
from aq_runtime.format import write_aqz
from aq_runtime.models.efficientnet import lite0_float_graph
from aq_runtime.runtime.predict import infer_folder


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    d = Path(tempfile.mkdtemp())
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    write_aqz(export_graph(fg, xc, 8, progress=False), d / "lite0.aqz")
    rng = np.random.default_rng(0)
    imgs = d / "images"
    for i in range(n):
        sub = imgs / f"{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        side = int(rng.integers(96, 321))
        Image.fromarray(xc[i % len(xc)]).resize((side, side)).save(sub / f"{i:05d}.jpg", quality=85)
    t = time.time()
    res = infer_folder(d / "lite0.aqz", imgs, output=d / "preds.csv", workers=2, progress=True)
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    lines = sum(1 for _ in open(d / "preds.csv"))
    text = (f"aq-infer on {n} generated JPEGs, EfficientNet-Lite0 uniform 8, backend auto, "
            f"2 decode workers\n{res['images']} predicted, {len(res['skipped'])} skipped, "
            f"{lines - 1} CSV rows, {res['seconds']:.0f} s, {res['images_per_s']:.1f} images/s\n"
            f"peak RSS: main process {rss_self:.0f} MiB, largest worker {rss_kids:.0f} MiB "
            f"(wall {time.time() - t:.0f} s)\n")
    (Path(__file__).parent / "results" / "infer_at_scale.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
