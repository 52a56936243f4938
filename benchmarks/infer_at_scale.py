"""aq-infer at scale: 10,000 generated JPEGs (crops of the bundled photos, 96..320 px) through
the Lite0 model with decoding in worker processes; reports images/s and peak RSS (this process
and the workers). Writes benchmarks/results/infer_at_scale.txt.

    python benchmarks/infer_at_scale.py [n_images]
"""

import subprocess
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
    # the real command in its own process, which reports its own peak RSS and its workers'
    code = ("import resource, sys\nfrom aq_runtime.cli.infer import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "r = resource.getrusage\n"
            "print('RSS', r(resource.RUSAGE_SELF).ru_maxrss, r(resource.RUSAGE_CHILDREN).ru_maxrss,"
            " file=sys.stderr)\nsys.exit(code)\n")
    t = time.time()
    p = subprocess.run([sys.executable, "-c", code, str(d / "lite0.aqz"), str(imgs), "--output",
                        str(d / "preds.csv"), "--workers", "2", "--quiet"],
                       capture_output=True, text=True)
    wall = time.time() - t
    if p.returncode:
        raise SystemExit(p.stderr)
    rss = [ln for ln in p.stderr.splitlines() if ln.startswith("RSS")][0].split()
    main_mib, worker_mib = int(rss[1]) / 1024, int(rss[2]) / 1024
    lines = sum(1 for _ in open(d / "preds.csv"))
    text = (f"aq-infer on {n} generated JPEGs (96..320 px), EfficientNet-Lite0 uniform 8, "
            f"backend auto, 2 decode workers\n{lines - 1} CSV rows, {wall:.0f} s wall including "
            f"start-up, {(lines - 1) / wall:.1f} images/s\n"
            f"peak RSS: aq-infer process {main_mib:.0f} MiB, largest decode worker "
            f"{worker_mib:.0f} MiB; total at most {main_mib + 2 * worker_mib:.0f} MiB\n")
    (Path(__file__).parent / "results" / "infer_at_scale.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
